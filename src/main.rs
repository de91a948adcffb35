//! The `lookalike` command: parses arguments, calls the library, maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::args::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOOKALIKE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Output piped into `head` and the like: end quietly when the reader goes away, as
    // Unix tools do, instead of panicking in println! on the closed pipe. Not for the
    // server, whose writes to a client that hung up must fail as errors, not kill it.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve { .. }) {
        // SAFETY: restoring a signal's default action; no other thread runs yet.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cli::message(&e));
            let user =
                e.downcast_ref::<lookalike::Error>().is_some_and(lookalike::Error::is_user_error);
            ExitCode::from(if user { 2 } else { 1 })
        }
    }
}

/// Each command to its one function in `cli`.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Index(a) => cli::index::index(a),
        Command::Search(a) => cli::search::run(a),
        Command::Add(a) => cli::items::add(a),
        Command::Remove(a) => cli::items::remove(a),
        Command::Repartition(a) => cli::index::repartition(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Train(a) => cli::train::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Bench { what } => {
            cli::bench::run(what)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Info(a) => cli::info::run(a),
    }
}
