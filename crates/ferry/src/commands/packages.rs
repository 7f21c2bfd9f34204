//! `ferry package upload|list|show|set`: the CLI side of resumable uploads, and of what the
//! hub proposed from a package (with where each value came from) and its corrections.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ferry_client::transfer::UploadOptions;
use ferry_proto::package::{
    DetectionSpec, MetadataField, MetadataPatch, Package, Proposal, UpdatePackage,
};
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
    /// Show one package: the metadata the hub proposed, where each value came from
    /// (`psadt_script`, `msi`, `msi+transform`, `exe_version`, `layout`, `derived`, `user`),
    /// and what it could not read.
    Show {
        id: Uuid,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Correct the proposal: each option given replaces that field (its source becomes
    /// `user`); `--clear FIELD` empties one. `--msi-file` chooses which of several MSIs the
    /// proposal comes from (the hub reads the package again).
    Set(Box<SetArgs>),
}

/// `ferry package set`'s options.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    id: Uuid,
    #[arg(long)]
    vendor: Option<String>,
    #[arg(long)]
    product: Option<String>,
    #[arg(long)]
    version: Option<String>,
    #[arg(long)]
    language: Option<String>,
    #[arg(long)]
    architecture: Option<String>,
    #[arg(long)]
    revision: Option<String>,
    #[arg(long)]
    package_name: Option<String>,
    #[arg(long)]
    install_command: Option<String>,
    #[arg(long)]
    uninstall_command: Option<String>,
    /// Where the main binary is once installed (`%ProgramFiles%\App\app.exe`): detection
    /// then checks its file version.
    #[arg(long)]
    main_binary: Option<String>,
    /// Which MSI of the package to read metadata from.
    #[arg(long)]
    msi_file: Option<String>,
    /// Fields to empty (repeatable): vendor, product, version, language, architecture,
    /// revision, package_name, install_command, uninstall_command, main_binary, detection.
    #[arg(long, value_name = "FIELD")]
    clear: Vec<String>,
    /// Fields to hand back to the proposal (repeatable): their hand-set values are dropped
    /// and the hub reads the package again for them.
    #[arg(long, value_name = "FIELD")]
    reset: Vec<String>,
    #[command(flatten)]
    hub: HubArgs,
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
            emit(&p, print_package)?;
        }
        PackageCmd::Set(args) => {
            let SetArgs {
                id,
                vendor,
                product,
                version,
                language,
                architecture,
                revision,
                package_name,
                install_command,
                uninstall_command,
                main_binary,
                msi_file,
                clear,
                reset,
                hub,
            } = *args;
            let mut patch = MetadataPatch {
                vendor: vendor.map(Some),
                product: product.map(Some),
                version: version.map(Some),
                language: language.map(Some),
                architecture: architecture.map(Some),
                revision: revision.map(Some),
                package_name: package_name.map(Some),
                install_command: install_command.map(Some),
                uninstall_command: uninstall_command.map(Some),
                main_binary: main_binary.map(Some),
                msi_file,
                ..MetadataPatch::default()
            };
            for field in &clear {
                let slot = match field.as_str() {
                    "vendor" => &mut patch.vendor,
                    "product" => &mut patch.product,
                    "version" => &mut patch.version,
                    "language" => &mut patch.language,
                    "architecture" => &mut patch.architecture,
                    "revision" => &mut patch.revision,
                    "package_name" => &mut patch.package_name,
                    "install_command" => &mut patch.install_command,
                    "uninstall_command" => &mut patch.uninstall_command,
                    "main_binary" => &mut patch.main_binary,
                    "detection" => {
                        patch.detection = Some(None);
                        continue;
                    }
                    other => anyhow::bail!("--clear {other}: not a field that can be emptied"),
                };
                *slot = Some(None);
            }
            for field in &reset {
                let parsed: MetadataField =
                    serde_json::from_value(serde_json::Value::String(field.clone()))
                        .map_err(|_| anyhow::anyhow!("--reset {field}: not a metadata field"))?;
                patch.reset.push(parsed);
            }
            let p: Package = crate::admin_client::connect(&hub)?
                .patch(
                    &format!("/api/v1/packages/{id}"),
                    &UpdatePackage { metadata: patch },
                )
                .await?;
            emit(&p, print_package)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A package for people: each proposed field with its value and source, then the files the
/// proposal chose among, then what could not be read.
fn print_package(p: &Package) {
    let m = &p.metadata;
    let pr = &m.proposal;
    println!("package   {}", p.id);
    println!(
        "file      {} ({} bytes, sha256 {})",
        p.filename, p.size, p.sha256
    );
    println!();
    let detection = pr.detection.as_ref().map(|d| match d {
        DetectionSpec::MsiProductCode(code) => format!("MSI product code {code}"),
        DetectionSpec::Script { text, .. } => {
            let first = text.lines().next().unwrap_or("");
            format!("script: {first} …")
        }
    });
    let installer = pr.installer.map(|i| format!("{i:?}").to_lowercase());
    let rows: [(MetadataField, Option<&str>); 14] = [
        (MetadataField::Vendor, pr.vendor.as_deref()),
        (MetadataField::Product, pr.product.as_deref()),
        (MetadataField::Version, pr.version.as_deref()),
        (MetadataField::Language, pr.language.as_deref()),
        (MetadataField::Architecture, pr.architecture.as_deref()),
        (MetadataField::Revision, pr.revision.as_deref()),
        (MetadataField::PackageName, pr.package_name.as_deref()),
        (MetadataField::Installer, installer.as_deref()),
        (MetadataField::InstallCommand, pr.install_command.as_deref()),
        (
            MetadataField::UninstallCommand,
            pr.uninstall_command.as_deref(),
        ),
        (MetadataField::MainBinary, pr.main_binary.as_deref()),
        (MetadataField::Detection, detection.as_deref()),
        (MetadataField::ProductCode, pr.product_code.as_deref()),
        (MetadataField::UpgradeCode, pr.upgrade_code.as_deref()),
    ];
    for (field, value) in rows {
        let source = pr.source(field).map_or("", |s| s.as_str());
        println!(
            "{:<18} {:<60} {}",
            field.as_str(),
            printable(value.unwrap_or("-")),
            source
        );
    }
    if let Some(note) = &pr.detection_note {
        println!("{:<18} {}", "", printable(note));
    }
    print_files(pr);
    if let Some(source) = &m.imported_from {
        println!(
            "imported from ConfigMgr application {:?} ({})",
            source.name, source.model_name
        );
    }
    if !pr.notes.is_empty() {
        println!();
        println!("notes:");
        for note in &pr.notes {
            println!("  - {}", printable(note));
        }
    }
}

/// Text from a package as it may reach a terminal: control characters shown escaped, so that
/// a hostile package cannot send escape sequences.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<char>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn print_files(pr: &Proposal) {
    let list = |files: &[String]| files.join(", ");
    println!();
    if let Some(w) = &pr.wrapper_path {
        println!("wrapper      {w}");
    }
    if !pr.msi_files.is_empty() {
        let chosen = pr.msi_file.as_deref().unwrap_or("none chosen");
        println!("MSI files    {} (read: {chosen})", list(&pr.msi_files));
    }
    if !pr.transforms.is_empty() {
        println!(
            "transforms   {} (applied: {})",
            list(&pr.transforms),
            if pr.transforms_applied.is_empty() {
                "none".to_owned()
            } else {
                list(&pr.transforms_applied)
            }
        );
    }
    if !pr.patches.is_empty() {
        println!("patches      {}", list(&pr.patches));
    }
    if let Some(exe) = &pr.exe_file {
        println!("EXE read     {exe}");
    }
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
