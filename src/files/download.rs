//! Where `get` writes a download: a file, written beside its name and renamed into place
//! once verified ([`Partial`]), or standard output (`get -o -`), written as the bytes come.

use std::fs::File;
use std::os::fd::AsFd;

use anyhow::{Context, Result};

use super::store::{Partial, check_max};

pub(crate) enum Download {
    File(Partial),
    /// Bytes that went out cannot be taken back: a transfer that fails its check is an
    /// error after them, as curl's is.
    Stdout(File),
}

impl From<Partial> for Download {
    fn from(partial: Partial) -> Download {
        Download::File(partial)
    }
}

impl Download {
    /// Standard output, for `-o -`: its descriptor, written without a buffer in between.
    pub(crate) fn stdout() -> Result<Download> {
        let fd = std::io::stdout().as_fd().try_clone_to_owned();
        Ok(Download::Stdout(File::from(
            fd.context("standard output is not open; -o - needs it")?,
        )))
    }

    pub(crate) fn file(&mut self) -> &mut File {
        match self {
            Download::File(partial) => &mut partial.file,
            Download::Stdout(out) => out,
        }
    }

    /// Refuses `size` bytes over `max`; a file also over the free space where it goes.
    pub(crate) fn check_room(&self, size: u64, max: Option<u64>) -> Result<()> {
        match self {
            Download::File(partial) => partial.check_room(size, max),
            Download::Stdout(_) => check_max(size, max),
        }
    }

    /// The verified file into place (standard output has nothing left to do).
    pub(crate) fn commit(self, overwrite: bool) -> Result<()> {
        match self {
            Download::File(partial) => partial.commit(overwrite),
            Download::Stdout(_) => Ok(()),
        }
    }
}
