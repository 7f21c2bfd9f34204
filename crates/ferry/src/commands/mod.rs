//! What each command does: thin shells over the libraries and the hub's API. The argument
//! types are in [`crate::cli`]; long-running programs (benchmarks, the demo) have their own
//! module trees.

pub mod agent;
pub mod connectors;
pub mod fleet;
pub mod helpdesk;
pub mod hub;
pub mod identity;
pub mod jobs;
pub mod packages;
pub mod sccm;

use std::process::ExitCode;

use crate::cli::{BenchCmd, Cli, Command};

/// Runs the command line's command.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::output::set_json(cli.json);
    match cli.command {
        Command::Sccm(crate::commands::sccm::SccmCmd::Apps {
            connector,
            refresh,
            hub,
        }) => runtime()?.block_on(connectors::site_apps(connector, refresh, hub)),
        Command::Sccm(cmd) => sccm::run(cmd),
        Command::Bench(BenchCmd::Sccm(args)) => sccm::bench(args).map(|()| ExitCode::SUCCESS),
        other => runtime()?.block_on(dispatch_async(other)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn dispatch_async(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => hub::serve(args).await,
        Command::Connector(cmd) => connectors::connector(cmd).await,
        Command::Job(cmd) => jobs::job(cmd).await,
        Command::Package(cmd) => packages::run(cmd).await,
        Command::Agent(cmd) => agent::run(cmd).await,
        Command::EnrollmentSecret(cmd) => fleet::secrets(cmd).await,
        Command::Device(cmd) => fleet::devices(cmd).await,
        Command::Collection(cmd) => fleet::collections(cmd).await,
        Command::Deployment(cmd) => fleet::deployments(cmd).await,
        Command::Ops(cmd) => fleet::ops(cmd).await,
        Command::Catalog(args) => helpdesk::catalog(args).await,
        Command::Script(cmd) => helpdesk::script(cmd).await,
        Command::Integration(cmd) => helpdesk::integration(cmd).await,
        Command::Task(cmd) => helpdesk::task(cmd).await,
        Command::Notification(cmd) => helpdesk::notification(cmd).await,
        Command::Technician(cmd) => identity::technician(cmd).await,
        Command::Me { hub } => identity::me(&hub).await,
        Command::Audit(args) => identity::audit(args).await,
        Command::Import {
            connector,
            applications,
            wait,
            hub,
        } => connectors::import(connector, applications, wait, &hub).await,
        Command::Push {
            package,
            connector,
            spec,
            dry_run,
            wait,
            hub,
        } => connectors::push(package, connector, spec, dry_run, wait, &hub).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Bench(BenchCmd::Dispatch(args)) => crate::bench::dispatch::dispatch(args).await,
        Command::Bench(BenchCmd::Transfer(args)) => crate::bench::transfer::run(args).await,
        Command::Bench(BenchCmd::Fanout(args)) => crate::bench::fanout::run(args).await,
        Command::Bench(BenchCmd::Callbacks(args)) => crate::bench::callbacks::run(args).await,
        Command::Bench(BenchCmd::Abuse(args)) => crate::bench::abuse::abuse(args).await,
        Command::Bench(BenchCmd::Swarm(args)) => crate::bench::swarm::run(args).await,
        Command::Bench(BenchCmd::Sccm(_)) | Command::Sccm(_) => {
            unreachable!("handled synchronously in dispatch")
        }
    }
}
