//! `netecho bench`: runs the load loop against any echo server and prints what it measured.

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::cli::BenchArgs;
use crate::report::{self, Run};

use super::load;

pub fn run(args: &BenchArgs) -> Result<()> {
    let spec = args.spec()?;
    let result = load::run(&spec)?;
    let text = report::render(args.format, &[Run::new(&spec, &result)]);
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("write to stdout")?;
    if result.mismatched > 0 {
        bail!(
            "{} replies did not match their requests byte for byte (use --expect echo against a \
             server that does not upper-case)",
            result.mismatched
        );
    }
    if let Some(err) = &result.first_error {
        bail!(
            "{} client(s) failed; the first: {err}",
            result.failed_clients
        );
    }
    Ok(())
}
