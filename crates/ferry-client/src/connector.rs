//! The connector's calls: long-poll for the next job, renew its lease, report progress and
//! the result, release it, and fetch the package a push needs.

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_proto::job::{Job, JobReport, LeaseRef, LeaseStatus, LeasedJob, ProgressReport};
use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::transfer::{Expected, Patience, Progress};
use crate::{Client, Error, check, decode};

/// Extra time a long poll may take beyond its hold before the client gives up on it.
const HOLD_MARGIN: Duration = Duration::from_secs(15);
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// Asks for the next job, letting the hub hold the request up to `hold` seconds.
    pub async fn next_job(&self, hold: u32) -> Result<Option<LeasedJob>, Error> {
        let response = self
            .request(
                Method::GET,
                &format!("/api/v1/connector/jobs/next?hold={hold}"),
            )
            .timeout(Duration::from_secs(u64::from(hold)) + HOLD_MARGIN)
            .send()
            .await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        decode(response).await.map(Some)
    }

    pub async fn renew(&self, job: Uuid, lease_token: Uuid) -> Result<LeaseStatus, Error> {
        self.report_call(
            &format!("/api/v1/connector/jobs/{job}/lease"),
            &LeaseRef { lease_token },
        )
        .await
    }

    pub async fn progress(&self, job: Uuid, report: &ProgressReport) -> Result<LeaseStatus, Error> {
        self.report_call(&format!("/api/v1/connector/jobs/{job}/progress"), report)
            .await
    }

    pub async fn report(&self, job: Uuid, report: &JobReport) -> Result<Job, Error> {
        self.report_call(&format!("/api/v1/connector/jobs/{job}/result"), report)
            .await
    }

    pub async fn release(&self, job: Uuid, lease_token: Uuid) -> Result<(), Error> {
        let response = self
            .request(
                Method::POST,
                &format!("/api/v1/connector/jobs/{job}/release"),
            )
            .timeout(REPORT_TIMEOUT)
            .json(&LeaseRef { lease_token })
            .send()
            .await?;
        check(response).await.map(drop)
    }

    /// Downloads a package the connector was asked to push into `part` (resuming what it
    /// holds), verified against the job's size and SHA-256.
    pub async fn download_package(
        &self,
        package: Uuid,
        part: &Path,
        expected: &Expected,
        patience: Patience,
        progress: Progress<'_>,
    ) -> Result<(), Error> {
        self.download(
            &format!("/api/v1/packages/{package}/content"),
            part,
            expected,
            patience,
            progress,
        )
        .await
    }

    /// One round trip to `/healthz`, timed.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let start = Instant::now();
        let response = self
            .request(Method::GET, "/healthz")
            .timeout(REPORT_TIMEOUT)
            .send()
            .await?;
        check(response).await?.bytes().await?;
        Ok(start.elapsed())
    }

    async fn report_call<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        decode(
            self.request(Method::POST, path)
                .timeout(REPORT_TIMEOUT)
                .json(body)
                .send()
                .await?,
        )
        .await
    }
}
