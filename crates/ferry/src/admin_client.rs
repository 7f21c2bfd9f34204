//! How the CLI, the demo and the benchmarks find the hub and prove who they are; the calls
//! themselves are `ferry-client`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub use ferry_client::Client as AdminClient;

/// Where the hub is and which credential to use.
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Hub URL. Defaults to the `hub.url` file in --data-dir, then https://127.0.0.1:8443.
    #[arg(long, env = "FERRY_HUB")]
    pub hub: Option<String>,
    /// A technician's API key (`fk_…`). Defaults to the `admin.token` file in --data-dir.
    #[arg(long, env = "FERRY_API_KEY", hide_env_values = true)]
    pub token: Option<String>,
    /// The hub's data dir, to read the initial admin's key and the URL from (on the hub's
    /// own machine).
    #[arg(long, env = "FERRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the hub's HTTPS.
    #[arg(long, env = "FERRY_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// A client for the hub named by `args`.
pub fn connect(args: &HubArgs) -> anyhow::Result<AdminClient> {
    let dir = args.data_dir.as_deref();
    let base = match (&args.hub, dir) {
        (Some(h), _) => h.clone(),
        (None, Some(d)) => read_trimmed(&d.join(ferry_hub::URL_FILE))?,
        (None, None) => "https://127.0.0.1:8443".to_owned(),
    };
    let token = match (&args.token, dir) {
        (Some(t), _) => t.clone(),
        (None, Some(d)) => read_trimmed(&d.join(ferry_hub::ADMIN_TOKEN_FILE))?,
        (None, None) => bail!(
            "no API key: pass --token, set FERRY_API_KEY, or point --data-dir at the hub's data dir"
        ),
    };
    client(&base, &token, args.ca_cert.as_deref())
}

/// A client for `base` with `token`, trusting `ca_cert` besides the platform's roots.
pub fn client(base: &str, token: &str, ca_cert: Option<&Path>) -> anyhow::Result<AdminClient> {
    Ok(AdminClient::new(&ferry_client::Config {
        hub_url: base.to_owned(),
        credential: Some(token.to_owned()),
        ca_cert: ca_cert.map(Path::to_owned),
        proxy: None,
        user_agent: Some(concat!("ferry-cli/", env!("CARGO_PKG_VERSION")).to_owned()),
    })?)
}

fn read_trimmed(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}
