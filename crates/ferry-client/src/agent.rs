//! The agent's HTTP calls (everything but the WebSocket): enrolment, the long-poll
//! transport, policy, package downloads and token rotation.

use std::path::Path;
use std::time::Duration;

use ferry_proto::agent::{
    AgentMessage, EnrollRequest, EnrollResponse, Inventory, Policy, TokenResponse,
};
use ferry_proto::ops::PackageRef;
use reqwest::Method;

use crate::transfer::{Expected, Patience, no_progress};
use crate::{Client, Error, decode};

impl Client {
    pub async fn enroll(
        &self,
        secret: &str,
        inventory: Inventory,
    ) -> Result<EnrollResponse, Error> {
        let body = EnrollRequest {
            secret: secret.to_owned(),
            inventory,
        };
        decode(
            self.request(Method::POST, "/api/v1/agent/enroll")
                .json(&body)
                .timeout(Duration::from_secs(30))
                .send()
                .await?,
        )
        .await
    }

    /// One long poll: sends `messages`, returns what the hub has (waiting up to `hold`), each
    /// message as JSON still to be read (one unknown kind must not lose the others).
    pub async fn poll(
        &self,
        hold: u32,
        session: Option<u64>,
        messages: &[AgentMessage],
    ) -> Result<Vec<serde_json::Value>, Error> {
        let path = match session {
            Some(id) => format!("/api/v1/agent/poll?hold={hold}&session={id}"),
            None => format!("/api/v1/agent/poll?hold={hold}"),
        };
        decode(
            self.request(Method::POST, &path)
                .json(messages)
                .timeout(Duration::from_secs(u64::from(hold) + 15))
                .send()
                .await?,
        )
        .await
    }

    /// The device's deployments, riding out transient faults within `patience`.
    pub async fn policy(&self, patience: Patience) -> Result<Policy, Error> {
        let mut retry = crate::transfer::Retry::new(patience);
        loop {
            match self.get("/api/v1/agent/policy").await {
                Ok(policy) => return Ok(policy),
                Err(e) => retry.pause_or(e).await?,
            }
        }
    }

    /// Asks for a new device token; the old one works until the new one is first used.
    pub async fn rotate_token(&self) -> Result<String, Error> {
        let response: TokenResponse = decode(
            self.request(Method::POST, "/api/v1/agent/token")
                .timeout(Duration::from_secs(30))
                .send()
                .await?,
        )
        .await?;
        Ok(response.token)
    }

    /// Downloads a package the device was asked to run into `dest`, checking its size and
    /// SHA-256 (a mismatch deletes it), riding out transient faults within `patience`.
    pub async fn download_agent_package(
        &self,
        pkg: &PackageRef,
        dest: &Path,
        patience: Patience,
    ) -> Result<(), Error> {
        let expected = Expected {
            size: pkg.size,
            sha256: pkg.sha256.clone(),
        };
        self.download(
            &format!("/api/v1/agent/packages/{}/content", pkg.id),
            dest,
            &expected,
            patience,
            &no_progress,
        )
        .await
    }
}
