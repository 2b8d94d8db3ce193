//! Shell completions and the man page, generated from the clap definitions so they never
//! drift from the real command line.

use std::io::{self, Write};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap::builder::Resettable::Reset;
use clap_complete::Shell;

use crate::cli::Cli;

/// Writes completions for `shell` to stdout: what each command's --help shows, no more.
pub(crate) fn completions(shell: Shell) -> Result<()> {
    let mut cmd = shown(&Cli::command());
    // Made in memory first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "netecho", &mut script);
    crate::error::write_stdout(&script)
}

/// `cmd` as its --help shows it: its hidden arguments (a command's flags for the
/// other side of a connection, taken only to be refused) and hidden subcommands left out,
/// everywhere below it too. What is left keeps its conflicts among itself; the rules that
/// only parsing uses (requires, groups) are dropped with the arguments they name.
fn shown(cmd: &clap::Command) -> clap::Command {
    let mut shown = clap::Command::new(cmd.get_name().to_owned())
        .visible_aliases(cmd.get_visible_aliases().map(str::to_owned));
    if let Some(about) = cmd.get_about() {
        shown = shown.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        shown = shown.long_about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        shown = shown.version(version.to_owned());
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let conflicts: Vec<clap::Id> = cmd
            .get_arg_conflicts_with(arg)
            .into_iter()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_id().clone())
            .collect();
        shown = shown.arg(
            arg.clone()
                .requires(Reset)
                .group(Reset)
                .overrides_with(Reset)
                .conflicts_with(Reset)
                .conflicts_with_all(conflicts),
        );
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        shown = shown.subcommand(self::shown(sub));
    }
    shown
}

/// Writes a man page (roff) to stdout: netecho(1), or netecho-SUBCOMMAND(1).
pub(crate) fn manpage(subcommand: Option<&str>) -> Result<()> {
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
    let mut page_text = Vec::new();
    render(&page, &mut page_text).context("write the man page")?;
    crate::error::write_stdout(&page_text)
}

/// The page in clap_mangen's sections, with the after-help text as NOTES and its
/// `Examples:` lines as an EXAMPLES section of literal command lines, as man pages have.
fn render(cmd: &clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(out)?;
    }
    let after = cmd
        .get_after_help()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let (notes, examples) = match after.split_once("Examples:\n") {
        Some((notes, examples)) => (notes.trim(), examples),
        None => (after.trim(), ""),
    };
    if !notes.is_empty() {
        writeln!(out, ".SH NOTES")?;
        for para in notes.split("\n\n") {
            writeln!(out, ".PP\n{}", roff_text(&para.replace('\n', " ")))?;
        }
    }
    if !examples.trim().is_empty() {
        writeln!(out, ".SH EXAMPLES\n.PP\n.nf\n.RS 4")?;
        for line in examples.lines().filter(|l| !l.trim().is_empty()) {
            writeln!(out, "{}", roff_text(line.trim()))?;
        }
        writeln!(out, ".RE\n.fi")?;
    }
    match cmd.get_version() {
        Some(_) => man.render_version_section(out),
        None => Ok(()),
    }
}

/// Text as roff shows it literally: backslashes and dashes escaped, no line read as a
/// request.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.starts_with(['.', '\'']) {
        true => format!("\\&{escaped}"),
        false => escaped,
    }
}
