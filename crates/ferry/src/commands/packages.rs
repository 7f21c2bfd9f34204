//! `ferry package upload|list|show`: the CLI side of resumable uploads.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry_client::transfer::UploadOptions;
use ferry_proto::package::Package;
use uuid::Uuid;

use crate::admin_client::{AdminClient, HubArgs};
use crate::output::emit;

#[derive(Debug, clap::Subcommand)]
pub enum PackageCmd {
    /// Upload a zip; resumes after broken connections, verifies SHA-256, shows progress.
    Upload {
        file: PathBuf,
        /// Continue an earlier upload session instead of opening a new one.
        #[arg(long)]
        resume: Option<Uuid>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// List packages.
    List {
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Show one package with the metadata the hub found.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
}

pub async fn run(cmd: PackageCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PackageCmd::Upload { file, resume, hub } => {
            let client = crate::admin_client::connect(&hub)?;
            let package = upload(&client, &file, resume, true).await?;
            println!("{}", serde_json::to_string_pretty(&package)?);
        }
        PackageCmd::List { hub } => {
            let list: Vec<Package> = crate::admin_client::connect(&hub)?
                .get("/api/v1/packages")
                .await?;
            emit(&list, |list| {
                for p in list {
                    let name = p.metadata.proposal.package_name.as_deref().unwrap_or("");
                    println!("{}  {:>12}  {}  {}", p.id, p.size, p.filename, name);
                }
            })?;
        }
        PackageCmd::Show { id, hub } => {
            let p: Package = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/packages/{id}"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&p)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Uploads `path` and returns the package (resumable and verified: `ferry-client`'s upload),
/// with a progress bar when `progress` is set.
pub async fn upload(
    client: &AdminClient,
    path: &std::path::Path,
    resume: Option<Uuid>,
    progress: bool,
) -> anyhow::Result<Package> {
    let bar = if progress {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let on_progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let options = UploadOptions {
        resume,
        ..UploadOptions::default()
    };
    let package = client
        .upload_package(path, &options, &on_progress)
        .await
        .with_context(|| format!("uploading {}", path.display()))?;
    bar.finish_and_clear();
    Ok(package)
}
