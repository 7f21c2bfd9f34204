//! The Ferry SCCM connector: it sits inside the customer network, dials *out* to the hub over
//! HTTPS, long-polls for jobs, and runs them through [`executor::Executor`]s.
//!
//! * [`config`] — the connector's TOML file.
//! * [`runner`] — the poll loop, leases, progress, cancellation and graceful shutdown.
//! * [`executor`] — the job-kind plug-in point, and [`diagnostics`], the first kind.

pub mod backend;
pub use ferry_proto::backoff;
pub mod config;
pub mod diagnostics;
pub mod executor;
pub mod import;
pub mod inventory;
pub mod push;
pub mod runner;

pub use config::ConnectorConfig;
