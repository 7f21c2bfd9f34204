//! The HTTP API: one module per resource, one error type, and extractors that check the
//! caller's role and reject malformed input before a handler runs.

pub mod auth;
pub mod error;
pub mod extract;

mod admin_connectors;
mod admin_jobs;
mod connector_jobs;
mod packages;
mod push;
pub mod uploads;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

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
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&counts, connectors),
    ))
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
) -> Result<axum::Json<Vec<ferry_proto::AuditEntry>>, error::Error> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(axum::Json(state.store.audit_log(limit, q.before).await?))
}

async fn not_found() -> error::Error {
    error::Error::NotFound("route")
}
