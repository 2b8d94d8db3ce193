//! The file of a Unix socket at a path: a stale one cleared before a server binds, the
//! server's own removed when it is done. The path is walked once, to open its directory;
//! every later look, probe and unlink goes through that descriptor, so a user who swaps a
//! directory on the path between two steps never makes netecho remove a file elsewhere.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use socket2::{Domain, SockAddr, Type};
use tracing::{debug, warn};

use super::super::calls;

/// Where a socket file goes: the directory, held open, and the name in it.
pub(crate) struct Place {
    dir: OwnedFd,
    name: OsString,
    /// The path as the user gave it, for messages.
    shown: PathBuf,
}

/// The device and inode of a file: which file it is, whatever its name.
fn identity(stat: &FileStat) -> (u64, u64) {
    (stat.st_dev, stat.st_ino)
}

fn is_socket(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK
}

impl Place {
    /// Opens the directory of `path` (O_PATH: a handle, no read right needed); the kernel's
    /// error when it cannot.
    pub(crate) fn open(path: &Path) -> io::Result<Place> {
        let name = path.file_name().ok_or(Errno::EISDIR)?.to_os_string();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let dir = openat(nix::fcntl::AT_FDCWD, dir, flags, Mode::empty())?;
        Ok(Place {
            dir,
            name,
            shown: path.to_path_buf(),
        })
    }

    /// Whether the path's directory now is another than the one opened (a directory on
    /// the path renamed or swapped for a symlink since): a failed bind's cause then, not
    /// the file system.
    pub(crate) fn moved(&self) -> bool {
        let dir = match self.shown.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let now = nix::sys::stat::stat(dir);
        let held = fstat(&self.dir);
        !matches!((now, held), (Ok(now), Ok(held)) if identity(&now) == identity(&held))
    }

    /// The file at the name, itself (a symlink is not followed), held open: while held, its
    /// inode cannot be freed and its number given to another file.
    fn file(&self) -> nix::Result<(OwnedFd, FileStat)> {
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let file = openat(&self.dir, self.name.as_os_str(), flags, Mode::empty())?;
        let stat = fstat(&file)?;
        Ok((file, stat))
    }

    /// Whether the name in the directory still is the file of `id`.
    fn still(&self, id: (u64, u64)) -> bool {
        fstatat(
            &self.dir,
            self.name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|stat| identity(&stat) == id)
    }

    /// Makes room for a server socket of `ty`: nothing there is fine, a socket file of this
    /// user's that nobody listens on is removed, and anything else is refused and left as
    /// it is.
    pub(crate) fn clear_stale(&self, ty: Type) -> Result<()> {
        let shown = self.shown.display();
        let (file, stat) = match self.file() {
            Ok(found) => found,
            Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EACCES) => return Err(may_not_enter(&self.shown)),
            Err(e) => return Err(anyhow!("cannot inspect {shown}: {}", e.desc())),
        };
        if !is_socket(&stat) {
            return Err(anyhow!(
                "{shown} exists and is not a socket; netecho never removes or overwrites it: \
                 choose another path"
            ));
        }
        // Ask the socket: if a connect succeeds, a server is alive behind it. Through the
        // descriptor just opened (/proc/self/fd), so it is this very file that answers.
        // Non-blocking, so a server with a full backlog counts as alive instead of stalling.
        let probe = calls::socket(Domain::UNIX, ty)?;
        calls::set_nonblocking(&probe, true)?;
        let held = SockAddr::unix(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        match calls::connect(&probe, &held).map_err(|e| e.raw_os_error().map(Errno::from_raw)) {
            Err(Some(Errno::ECONNREFUSED)) => self.remove_stale(&stat),
            Err(Some(Errno::EPROTOTYPE)) => Err(anyhow!(
                "a server of another socket type is using {shown}; stop it or choose another path"
            )),
            Err(Some(Errno::EACCES)) => Err(anyhow!(
                "{shown} is a socket you may not use; choose another path"
            )),
            Err(Some(Errno::ENOENT)) => Err(anyhow!(
                "cannot tell whether a server listens on {shown}: /proc is not mounted; \
                 remove the file yourself or choose another path"
            )),
            _ => Err(anyhow!(
                "a server is already listening on {shown}; stop it or choose another path"
            )),
        }
    }

    /// Removes the stale socket file `stat` describes: only this user's own, and only if the
    /// name still is that file.
    fn remove_stale(&self, stat: &FileStat) -> Result<()> {
        let shown = self.shown.display();
        let me = nix::unistd::geteuid().as_raw();
        if stat.st_uid != me {
            return Err(anyhow!(
                "{shown} is a stale socket file owned by uid {}; remove it yourself or choose \
                 another path",
                stat.st_uid
            ));
        }
        if !self.still(identity(stat)) {
            return Err(anyhow!(
                "{shown} changed while netecho looked at it; try again, or choose a path in a \
                 directory only you can change"
            ));
        }
        unlinkat(&self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir)
            .map_err(|e| anyhow!("cannot remove stale socket file {shown}: {}", e.desc()))?;
        warn!("removed stale socket file {shown} (nobody was listening on it)");
        Ok(())
    }

    /// The socket file a server just bound at this place, to remove when it is done.
    pub(crate) fn record(self) -> Result<SocketFile> {
        let theirs = |what: &str| {
            anyhow!(
                "{} is {what} after the bind (a directory on the path changed meanwhile?); \
                 choose a path in a directory only you can change",
                self.shown.display()
            )
        };
        let (file, stat) = self.file().map_err(|_| theirs("gone"))?;
        if !is_socket(&stat) || stat.st_uid != nix::unistd::geteuid().as_raw() {
            return Err(theirs("not the socket this server bound"));
        }
        Ok(SocketFile {
            id: identity(&stat),
            _pinned: file,
            place: self,
            owner: std::process::id(),
        })
    }
}

/// "cannot look for a stale socket at PATH: permission denied": a directory on the path
/// may not be entered.
pub(crate) fn may_not_enter(path: &Path) -> anyhow::Error {
    anyhow!(
        "cannot look for a stale socket at {}: {}",
        path.display(),
        crate::error::may_not_enter(&super::directory(path))
    )
}

/// The socket file a server created, removed when the server is done with it, but only if
/// the name in its directory still is that file.
pub(crate) struct SocketFile {
    place: Place,
    id: (u64, u64),
    /// The file, held open so its inode number is never another file's while the server runs.
    _pinned: OwnedFd,
    /// The process that bound it: a forked child (even one that panics and unwinds) never
    /// removes its parent's socket file.
    owner: u32,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            return;
        }
        let place = &self.place;
        let shown = place.shown.display();
        if !place.still(self.id) {
            debug!("{shown} is no longer the socket this server created; left alone");
            return;
        }
        match unlinkat(
            &place.dir,
            place.name.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) => debug!("removed socket file {shown}"),
            Err(e) => warn!("could not remove {shown}: {}", e.desc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_file_is_removed_only_by_the_process_that_bound_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut inherited = Place::open(&path).unwrap().record().unwrap();
        // As a forked child sees it: bound by another process.
        inherited.owner += 1;
        drop(inherited);
        assert!(path.exists(), "a child removed its parent's socket file");
        drop(Place::open(&path).unwrap().record().unwrap());
        assert!(!path.exists(), "the owner left its socket file");
    }
}
