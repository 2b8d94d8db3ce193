//! netecho's entry point: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;

use netecho::cli::{Cli, Command};
use netecho::{client, docs, error, explain, logging, relay, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log);
    if matches!(&cli.command, Command::Serve(a) if a.explain)
        || matches!(&cli.command, Command::Send(a) if a.explain)
    {
        explain::enable();
    }
    let result = match &cli.command {
        Command::Serve(args) => server::run(args),
        Command::Send(args) => client::send::run(args),
        Command::Bench(args) => client::bench::run(args),
        Command::Lab(args) => client::lab::run(args),
        Command::Ping(args) => client::ping::run(args),
        Command::Relay(args) => relay::run(args),
        Command::Get(args) => client::transfer::get(args),
        Command::Put(args) => client::transfer::put(args),
        Command::Exec(args) => match client::exec::run(args) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Completions { shell } => docs::completions(*shell),
        Command::Manpage { subcommand } => docs::manpage(subcommand.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        // A stop signal is being handled (lab, bench): the error is its doing, and the
        // clean-up ends the process with 130 in a moment.
        Err(_) if client::local::stopping() => loop {
            std::thread::park();
        },
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}
