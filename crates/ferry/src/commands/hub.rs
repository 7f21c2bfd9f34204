//! `ferry serve`: the hub.

use std::process::ExitCode;

use crate::cli::ServeArgs;
use crate::logging;

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = ferry_hub::HubConfig::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let format = match config.log_format {
        ferry_hub::config::LogFormat::Human => logging::Format::Human,
        ferry_hub::config::LogFormat::Json => logging::Format::Json,
    };
    logging::init(format, &config.log_level);
    let files = crate::sys::raise_fd_limit();
    tracing::info!(open_files = files, "each agent connection holds one");
    ferry_hub::run(config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C on Windows).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
