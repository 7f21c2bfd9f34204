//! Jobs: enqueue, show, list, cancel, and following one to its end.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ferry_proto::job::{Job, JobKind, NewJob};
use uuid::Uuid;

use crate::admin_client::AdminClient;
use crate::cli::JobCmd;
use crate::output::emit;

pub async fn job(cmd: JobCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCmd::Enqueue {
            connector,
            kind,
            payload,
            wait,
            hub,
        } => {
            let client = crate::admin_client::connect(&hub)?;
            let kind =
                JobKind::parse(&kind).with_context(|| format!("unknown job kind {kind:?}"))?;
            let payload = match payload {
                Some(p) => serde_json::from_str(&p).context("--payload is not valid JSON")?,
                None => serde_json::Value::Null,
            };
            let new = NewJob {
                connector_id: connector,
                kind,
                payload,
                not_before: None,
                expires_at: None,
                max_attempts: None,
            };
            let mut job: Job = client.post("/api/v1/jobs", &new).await?;
            if wait {
                job = wait_for_job(&client, job.id, Duration::from_secs(600)).await?;
            }
            println!("{}", serde_json::to_string_pretty(&job)?);
        }
        JobCmd::Show { id, hub } => {
            let job: Job = crate::admin_client::connect(&hub)?
                .get(&format!("/api/v1/jobs/{id}"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&job)?);
        }
        JobCmd::List { connector, hub } => {
            let path = match connector {
                Some(c) => format!("/api/v1/jobs?connector_id={c}"),
                None => "/api/v1/jobs".to_owned(),
            };
            let jobs: Vec<Job> = crate::admin_client::connect(&hub)?.get(&path).await?;
            emit(&jobs, |jobs| {
                for j in jobs {
                    println!(
                        "{}  {:<11} {:<12} attempts {}  {}",
                        j.id,
                        j.kind().as_str(),
                        j.state.as_str(),
                        j.attempts,
                        j.error.as_deref().unwrap_or_default()
                    );
                }
            })?;
        }
        JobCmd::Cancel { id, hub } => {
            let job: Job = crate::admin_client::connect(&hub)?
                .post(&format!("/api/v1/jobs/{id}/cancel"), &serde_json::json!({}))
                .await?;
            println!(
                "{} is {}{}",
                job.id,
                job.state.as_str(),
                if job.cancel_requested {
                    " (cancel requested)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls a job until it is in a terminal state. (The CLI polls once a second: it is a
/// person waiting, not a fleet.)
/// Prints a queued job (after waiting for its end with `wait`); exits 1 if it failed.
pub async fn report_job(
    client: &AdminClient,
    mut job: Job,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    if wait {
        job = wait_for_job(client, job.id, Duration::from_secs(3600)).await?;
    }
    println!("{}", serde_json::to_string_pretty(&job)?);
    Ok(if job.state == ferry_proto::job::JobState::Failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn wait_for_job(client: &AdminClient, id: Uuid, limit: Duration) -> anyhow::Result<Job> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let job: Job = client.get(&format!("/api/v1/jobs/{id}")).await?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "job {id} still {} after {}s",
                job.state.as_str(),
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
