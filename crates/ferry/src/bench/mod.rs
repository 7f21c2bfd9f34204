//! `ferry bench …`: benchmarks that measure Ferry against a baseline in the same run, and the
//! load process they start. Each prints a table and, with `--json`, one JSON object.

pub mod abuse;
pub mod callbacks;
pub mod dispatch;
pub mod fanout;
pub mod swarm;
pub mod transfer;

pub(crate) use dispatch::{Hub, ProcStat, start_hub, start_hub_with};
