//! `ferry sccm …` commands (placeholder so the binary builds; being written).

#[derive(Debug, clap::Subcommand)]
pub enum SccmCmd {
    /// Not yet available.
    Todo,
}

#[derive(Debug, clap::Args)]
pub struct SccmBenchArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(_cmd: SccmCmd) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not yet available")
}

pub fn bench(_args: SccmBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet available")
}
