//! Shell completions and the man page, generated from the clap definitions so they never
//! drift from the real command line.

use std::io::{self, Write};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Writes completions for `shell` to stdout.
pub fn completions(shell: Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "netecho", &mut out);
    out.flush().context("write to stdout")
}

/// Writes a man page (roff) to stdout: netecho(1), or netecho-SUBCOMMAND(1).
pub fn manpage(subcommand: Option<&str>) -> Result<()> {
    let cmd = Cli::command();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .find_subcommand(name)
                .cloned()
                .with_context(|| format!("no subcommand '{name}'"))?;
            // The page's title and synopsis name the command as typed: `netecho-serve`.
            sub.name(format!("netecho-{name}"))
        }
    };
    let mut out = io::stdout().lock();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("write the man page")?;
    out.flush().context("write to stdout")
}
