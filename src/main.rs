//! netecho: the socket lab in one binary. An uppercase echo service and its client over every
//! socket family and type a first socket-programming lesson names, and the tools around
//! them (bench, lab, relay, files, exec, ping, lesson).
//!
//! The layers, top to bottom (ARCHITECTURE.md draws them): [`cli`] turns the command line
//! into plain configs; commands in [`client`], [`relay`], [`server`] and [`lesson`] run them;
//! [`service`] and [`files`] say what a server does with a client; [`transport`] owns sockets
//! and what a message is on each; [`packet`] and `transport::framing` are the codecs.

// Every item is for this binary alone: `pub` would promise an API nobody uses and hide dead
// code from the compiler.
#![warn(unreachable_pub)]

mod access;
mod choice;
mod cli;
mod client;
mod docs;
mod endpoint;
mod error;
mod explain;
mod fair_share;
mod files;
mod habits;
mod hexdump;
mod impair;
mod labwire;
mod lesson;
mod lifecycle;
mod logging;
mod packet;
mod relay;
mod report;
mod server;
mod service;
mod signal;
mod slots;
mod transport;
mod units;
mod wrap;

use std::process::ExitCode;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match habits::parse() {
        Ok(cli) => cli,
        Err(help) => return ended(help.print(), help.exec),
    };
    logging::init(cli.log.config());
    crate::endpoint::choose_family(cli.family.family());
    if matches!(&cli.command, Command::Serve(a) if a.explain)
        || matches!(&cli.command, Command::Send(a) if a.explain)
    {
        explain::enable();
    }
    if matches!(&cli.command, Command::Serve(a) if a.hex)
        || matches!(&cli.command, Command::Relay(a) if a.hex)
    {
        hexdump::enable();
    }
    ended(dispatch(&cli), matches!(cli.command, Command::Exec(_)))
}

/// The exit status of a run that ended with `result`: a command's own, or its failure's,
/// said in one line (`exec`'s own failures are 255, as ssh's); a stdout whose reader left
/// ends it by SIGPIPE.
fn ended(result: anyhow::Result<ExitCode>, exec: bool) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if error::is_broken_pipe(&err) => signal::reader_left(),
        // A stop signal is being handled (lab, bench): the error is its doing, and the
        // clean-up ends the process by that signal in a moment.
        Err(_) if client::local::stopping() => loop {
            std::thread::park();
        },
        Err(err) => {
            logging::error(&format!("{err:#}"));
            match exec {
                // exec's own status is the remote program's: its own failures, usage
                // errors too, are 255, as ssh's.
                true => ExitCode::from(client::exec::FAILED),
                false => ExitCode::from(error::exit_code(&err)),
            }
        }
    }
}

/// Turns the command's arguments into its configuration and runs it; the exit status when
/// it succeeds (exec's is the remote program's).
fn dispatch(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve(args) if args.lab.lab => server::lab::run(args.lab_config()?)?,
        Command::Serve(args) => server::run(args.config()?)?,
        Command::Send(args) => client::send::run(args.config()?)?,
        Command::Bench(args) => return client::bench::run(args.config()?),
        Command::Lab(args) => client::lab::run(args.config()?)?,
        Command::Ping(args) => client::ping::run(args.config(cli.log.quiet))?,
        Command::Relay(args) => relay::run(args.config()?)?,
        Command::Get(args) => client::transfer::get(args.config()?)?,
        Command::Put(args) => client::transfer::put(args.config()?)?,
        Command::Exec(args) => return client::exec::run(args.config()?).map(ExitCode::from),
        Command::Lesson(args) => lesson::run(args.config())?,
        Command::Completions { shell } => docs::completions(*shell)?,
        Command::Manpage { subcommand } => docs::manpage(subcommand.as_deref())?,
    }
    Ok(ExitCode::SUCCESS)
}
