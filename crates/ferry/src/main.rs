//! `ferry`: one binary for the hub, the connector, the demo, benchmarks and the CLI.
//! Each subcommand is a thin shell over a library crate (see ARCHITECTURE.md).

mod admin_client;
mod agent_cmd;
mod bench;
mod bench_fanout;
mod bench_transfer;
mod cli;
mod demo;
mod demo_agents;
mod logging;
mod ops_cmd;
mod package_cmd;
mod sccm_cmd;
mod swarm;
mod sys;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    sys::tune_allocator();
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
