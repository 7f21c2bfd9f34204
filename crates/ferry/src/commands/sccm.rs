//! `ferry sccm …` and `ferry bench sccm`: thin command-line wrappers over `ferry-sccm`.
//!
//! Why it exists: an administrator (or a reviewer) can read a digest, see the exact script a
//! push would run, run it against the emulated site and look at the result, without a hub or a
//! connector. All logic lives in the library; this module only reads files and prints.

use anyhow::Context as _;
use ferry_sccm::emulator::EmulatorError;
use ferry_sccm::scripts::{content_location_script, inventory_script, push_script};
use ferry_sccm::{Site, generate, read, sdm};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum SccmCmd {
    /// Parse an SDMPackageXML document and print the application as JSON.
    Digest {
        /// The SDMPackageXML file (UTF-8 or UTF-16 with BOM).
        file: PathBuf,
    },
    /// Print a script the connector would run.
    Script {
        #[command(subcommand)]
        kind: ScriptKind,
    },
    /// Run a script against the emulated site in DIR (created with the demo site if absent) and
    /// print its stdout exactly as a real site would.
    Emulate {
        #[arg(long, value_name = "DIR")]
        site: PathBuf,
        #[arg(long, value_name = "FILE")]
        script: PathBuf,
    },
    /// Inspect the emulated site.
    Site {
        #[command(subcommand)]
        cmd: SiteCmd,
    },
    /// The applications in a connector's site, from its latest inventory (`--refresh` runs a
    /// new inventory first).
    Apps {
        #[arg(long)]
        connector: uuid::Uuid,
        #[arg(long)]
        refresh: bool,
        #[command(flatten)]
        hub: crate::admin_client::HubArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ScriptKind {
    /// The push script for a push specification (JSON).
    Push {
        #[arg(long, value_name = "SPEC.json")]
        spec: PathBuf,
    },
    /// The inventory script (folders, folder members, applications with SDMPackageXML).
    Inventory {
        #[arg(long, default_value = "DEM")]
        site_code: String,
        #[arg(long, value_name = "PATH")]
        console_path: String,
    },
    /// The content-location lookup for import (SDMPackageXML of the given applications).
    ContentLocation {
        #[arg(long, default_value = "DEM")]
        site_code: String,
        #[arg(long, value_name = "PATH")]
        console_path: String,
        /// Model name (`ScopeId_…/Application_…`); repeat for several applications.
        #[arg(long = "model-name", value_name = "MODEL", required = true)]
        model_names: Vec<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SiteCmd {
    /// Print the site state as JSON (applications with deployment types and content status,
    /// deployments, folders).
    Show {
        #[arg(long, value_name = "DIR")]
        site: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct SccmBenchArgs {
    /// Print a JSON object with the figures as the last line.
    #[arg(long)]
    pub json: bool,
    /// Folder of SDMPackageXML vectors (default: ../shared/reference/sdmpackagexml).
    #[arg(long, value_name = "DIR")]
    pub vectors: Option<PathBuf>,
}

pub fn run(cmd: SccmCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        SccmCmd::Apps { .. } => {
            unreachable!("`ferry sccm apps` talks to the hub; cli::dispatch runs it")
        }
        SccmCmd::Digest { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            match sdm::parse(&bytes) {
                Ok(app) => {
                    println!("{}", serde_json::to_string_pretty(&app)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("ferry sccm digest: {}: {e}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        SccmCmd::Script { kind } => {
            let script = match kind {
                ScriptKind::Push { spec } => {
                    let text = std::fs::read_to_string(&spec)
                        .with_context(|| format!("reading {}", spec.display()))?;
                    ferry_sccm::spec::parse(&text).and_then(|s| push_script(&s))
                }
                ScriptKind::Inventory {
                    site_code,
                    console_path,
                } => inventory_script(&site_code, &console_path),
                ScriptKind::ContentLocation {
                    site_code,
                    console_path,
                    model_names,
                } => content_location_script(&site_code, &console_path, &model_names),
            };
            match script {
                Ok(script) => {
                    print!("{}", generate(&script));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("ferry sccm script: invalid specification: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        SccmCmd::Emulate { site, script } => {
            let text = std::fs::read_to_string(&script)
                .with_context(|| format!("reading {}", script.display()))?;
            // PowerShell ignores a UTF-8 BOM at the start of a script file.
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            let mut site = Site::open(&site)?;
            match site.run(text) {
                Ok(stdout) => {
                    print!("{stdout}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(EmulatorError::Cmdlet {
                    line,
                    cmdlet,
                    message,
                    stdout,
                }) => {
                    print!("{stdout}");
                    // The shape of a PowerShell error record on stderr.
                    eprintln!("{cmdlet} : {message}\nAt {}:{line}", script.display());
                    Ok(ExitCode::from(1))
                }
                Err(EmulatorError::Refused(e)) => {
                    eprintln!("ferry sccm emulate: {}: {e}", script.display());
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            }
        }
        SccmCmd::Site {
            cmd: SiteCmd::Show { site },
        } => {
            let site = Site::open(&site)?;
            println!("{}", serde_json::to_string_pretty(site.state())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `f` repeatedly for at least `budget`; returns (iterations, seconds).
fn repeat(budget: Duration, mut f: impl FnMut()) -> (u64, f64) {
    let start = Instant::now();
    let mut n = 0;
    while n == 0 || start.elapsed() < budget {
        f();
        n += 1;
    }
    (n, start.elapsed().as_secs_f64())
}

fn default_vectors() -> Option<PathBuf> {
    let rel = Path::new("shared/reference/sdmpackagexml");
    let cwd = std::env::current_dir().ok()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    [cwd.join("..").join(rel), cwd.join(rel), repo.join(rel)]
        .into_iter()
        .find(|p| p.is_dir())
}

pub fn bench(args: SccmBenchArgs) -> anyhow::Result<()> {
    const MB: f64 = 1_000_000.0;
    let budget = Duration::from_millis(700);
    let mut figures = serde_json::Map::new();

    // 1. Digest parse over the real vectors.
    match args.vectors.or_else(default_vectors) {
        Some(dir) if dir.is_dir() => {
            let mut docs = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "xml") {
                    docs.push(std::fs::read(&path)?);
                }
            }
            let bytes: usize = docs.iter().map(Vec::len).sum();
            let (n, secs) = repeat(budget, || {
                for d in &docs {
                    std::hint::black_box(sdm::parse(d).is_ok());
                }
            });
            let parse = bytes as f64 * n as f64 / secs / MB;
            let (n, secs) = repeat(budget, || {
                for d in &docs {
                    std::hint::black_box(ferry_sccm::perf::xml_token_pass(d));
                }
            });
            let baseline = bytes as f64 * n as f64 / secs / MB;
            println!(
                "digest parse, {} vectors ({bytes} bytes): {parse:.1} MB/s (quick-xml tokenizing baseline {baseline:.1} MB/s, ratio {:.2})",
                docs.len(),
                parse / baseline
            );
            figures.insert("vectors".into(), docs.len().into());
            figures.insert("vectors_parse_mb_per_s".into(), parse.into());
            figures.insert("vectors_baseline_mb_per_s".into(), baseline.into());
        }
        _ => println!(
            "digest parse over the vectors: skipped (no vectors folder; pass --vectors DIR)"
        ),
    }

    // 2. A generated 10 000-application inventory, as the emulator prints it.
    let count = 10_000;
    let started = Instant::now();
    let stdout = ferry_sccm::perf::generated_inventory(count)?;
    let generate_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let lines = ferry_sccm::scripts::result_lines(&stdout)?;
    let xmls: Vec<String> = lines
        .iter()
        .filter(|l| l["step"] == "application")
        .filter_map(|l| l["sdm_package_xml"].as_str().map(str::to_owned))
        .collect();
    let mut parsed = 0;
    for x in &xmls {
        parsed += usize::from(sdm::parse(x.as_bytes()).is_ok());
    }
    let parse_10k_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        parsed == count,
        "only {parsed} of {count} generated digests parsed"
    );
    let bytes: usize = xmls.iter().map(String::len).sum();
    let started = Instant::now();
    for x in &xmls {
        std::hint::black_box(sdm::parse(x.as_bytes()).is_ok());
    }
    let parse = bytes as f64 / started.elapsed().as_secs_f64() / MB;
    let started = Instant::now();
    for x in &xmls {
        std::hint::black_box(ferry_sccm::perf::xml_token_pass(x.as_bytes()));
    }
    let baseline = bytes as f64 / started.elapsed().as_secs_f64() / MB;
    println!(
        "inventory of {count} applications ({} bytes of stdout, generated in {generate_secs:.2} s): result lines + digests parsed in {parse_10k_secs:.3} s; digest parse {parse:.1} MB/s (baseline {baseline:.1} MB/s, ratio {:.2})",
        stdout.len(),
        parse / baseline
    );
    figures.insert("inventory_apps".into(), count.into());
    figures.insert("inventory_parse_secs".into(), parse_10k_secs.into());
    figures.insert("inventory_parse_mb_per_s".into(), parse.into());
    figures.insert("inventory_baseline_mb_per_s".into(), baseline.into());

    // 3. Generate + read round trips of the push script.
    let script = push_script(&ferry_sccm::spec::filezilla_example())?;
    let (n, secs) = repeat(budget, || {
        let text = generate(&script);
        std::hint::black_box(read(&text).is_ok());
    });
    let per_s = n as f64 / secs;
    println!("push script generate + read: {per_s:.0} round trips/s");
    figures.insert("roundtrips_per_s".into(), per_s.into());

    if args.json {
        println!("{}", serde_json::Value::Object(figures));
    }
    Ok(())
}
