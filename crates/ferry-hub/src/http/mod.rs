//! The HTTP API: one module per resource, one error type, and extractors that check the
//! caller's role and reject malformed input before a handler runs.

pub mod auth;
pub mod error;
pub mod extract;

mod admin_connectors;
mod admin_jobs;
mod agent;
mod connector_jobs;
mod devices;
mod ops;
mod packages;
mod push;
pub mod uploads;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};

use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/connectors",
            get(admin_connectors::list).post(admin_connectors::register),
        )
        .route(
            "/api/v1/connectors/{id}",
            get(admin_connectors::show).patch(admin_connectors::update),
        )
        .route(
            "/api/v1/connectors/{id}/rotate-secret",
            post(admin_connectors::rotate_secret),
        )
        .route(
            "/api/v1/jobs",
            get(admin_jobs::list).post(admin_jobs::enqueue),
        )
        .route("/api/v1/jobs/{id}", get(admin_jobs::show))
        .route("/api/v1/jobs/{id}/cancel", post(admin_jobs::cancel))
        .route("/api/v1/connector/jobs/next", get(connector_jobs::next))
        .route(
            "/api/v1/connector/jobs/{id}/lease",
            post(connector_jobs::renew),
        )
        .route(
            "/api/v1/connector/jobs/{id}/progress",
            post(connector_jobs::progress),
        )
        .route(
            "/api/v1/connector/jobs/{id}/result",
            post(connector_jobs::result),
        )
        .route(
            "/api/v1/connector/jobs/{id}/release",
            post(connector_jobs::release),
        )
        .route("/api/v1/uploads", post(uploads::open))
        .route(
            "/api/v1/uploads/{id}",
            get(uploads::show).put(uploads::put_range),
        )
        .route("/api/v1/uploads/{id}/complete", post(uploads::complete))
        .route("/api/v1/packages", get(packages::list))
        .route(
            "/api/v1/packages/{id}",
            get(packages::show).patch(packages::update),
        )
        .route("/api/v1/packages/{id}/content", get(packages::content))
        .route("/api/v1/push", post(push::push))
        .route("/api/v1/audit", get(audit))
        .route(
            "/api/v1/connectors/{id}/applications",
            get(admin_connectors::applications),
        )
        .route(
            "/api/v1/connectors/{id}/inventory",
            post(admin_jobs::refresh_inventory),
        )
        .route("/api/v1/connectors/{id}/import", post(admin_jobs::import))
        // Agents (device token, or an enrolment secret for enroll).
        .route("/api/v1/agent/enroll", post(agent::enroll))
        .route("/api/v1/agent/ws", get(agent::ws))
        .route("/api/v1/agent/poll", post(agent::poll))
        .route("/api/v1/agent/policy", get(agent::policy))
        .route("/api/v1/agent/token", post(agent::rotate_token))
        .route(
            "/api/v1/agent/packages/{id}/content",
            get(agent::package_content),
        )
        // Administrators: devices and what they do.
        .route(
            "/api/v1/enrollment-secrets",
            get(devices::list_secrets).post(devices::create_secret),
        )
        .route(
            "/api/v1/enrollment-secrets/{id}/revoke",
            post(devices::revoke_secret),
        )
        .route("/api/v1/devices", get(devices::list_devices))
        .route(
            "/api/v1/devices/{id}",
            get(devices::show_device).patch(devices::update_device),
        )
        .route(
            "/api/v1/devices/{id}/rotate-token",
            post(devices::rotate_device_token),
        )
        .route(
            "/api/v1/collections",
            get(devices::list_collections).post(devices::create_collection),
        )
        .route(
            "/api/v1/collections/{id}",
            get(devices::show_collection).delete(devices::delete_collection),
        )
        .route(
            "/api/v1/collections/{id}/members",
            post(devices::change_members),
        )
        .route(
            "/api/v1/deployments",
            get(devices::list_deployments).post(devices::create_deployment),
        )
        .route(
            "/api/v1/deployments/{id}",
            delete(devices::delete_deployment),
        )
        .route("/api/v1/ops", get(ops::list).post(ops::start))
        .route("/api/v1/ops/{id}", get(ops::show))
        .route("/api/v1/ops/{id}/results", get(ops::results))
        .route("/api/v1/ops/{id}/watch", get(ops::watch))
        .route("/api/v1/ops/{id}/cancel", post(ops::cancel))
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })),
    )
}

async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, error::Error> {
    let counts = state.store.job_counts().await?;
    let connectors = state.store.connector_count().await?;
    let mut text = state.metrics.render(&counts, connectors);
    text.push_str(&state.agents.render_metrics());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    /// Entries with an id below this (paging backwards).
    before: Option<i64>,
}

/// `GET /api/v1/audit`: who did what, newest first.
async fn audit(
    _: auth::Admin,
    State(state): State<AppState>,
    extract::ApiQuery(q): extract::ApiQuery<AuditQuery>,
) -> Result<axum::Json<Vec<ferry_proto::identity::AuditEntry>>, error::Error> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(axum::Json(state.store.audit_log(limit, q.before).await?))
}

async fn not_found() -> error::Error {
    error::Error::NotFound("route")
}
