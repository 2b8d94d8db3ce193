//! netecho's entry point: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use netecho::cli::{Cli, Command};
use netecho::{client, docs, error, explain, habits, hexdump, lesson, logging, relay, server};

fn main() -> ExitCode {
    let cli = habits::parse();
    logging::init(cli.log.config());
    netecho::endpoint::choose_family(cli.family.family());
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
    match dispatch(&cli) {
        Ok(code) => code,
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

/// Turns the command's arguments into its configuration and runs it; the exit status when
/// it succeeds (exec's is the remote program's).
fn dispatch(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Serve(args) => server::run(args.config()?)?,
        Command::Send(args) => client::send::run(args.config()?)?,
        Command::Bench(args) => client::bench::run(args.config()?)?,
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
