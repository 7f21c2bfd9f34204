//! `ferry`: one binary for the hub, the connector, the demo, benchmarks and the CLI.
//! Each subcommand is a thin shell over a library crate (see ARCHITECTURE.md).

mod admin_client;
mod bench;
mod cli;
mod commands;
mod demo;
mod logging;
mod output;
mod sys;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    sys::tune_allocator();
    let args = cli::Cli::parse();
    match commands::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
