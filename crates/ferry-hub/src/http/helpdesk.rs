//! The helpdesk's routes: catalogue (with `ETag`), scripts, integrations, tasks, deliveries,
//! request closure and signed inbound status.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::helpdesk::{
    CloseRequest, CreatedNotificationRule, Delivery, Integration, IntegrationSecret,
    NewIntegration, NewNotificationRule, NewScript, NewTask, NotificationRule, Redelivered,
    RotateSigningSecret, Script, Task,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::Result;
use super::extract::{
    ApiJson, ApiQuery, IdKeyPath, IdNamePath, IdPath, NamePath, OptionalJson, RawBody,
};
use crate::AppState;
use crate::webhooks;

/// A JSON answer with a strong `ETag` of its bytes; `304` when `If-None-Match` names it, so
/// a helpdesk's "sync now" of an unchanged catalogue costs one empty answer.
fn with_etag<T: Serialize>(headers: &HeaderMap, value: &T) -> Result<Response> {
    let body = serde_json::to_vec(value).map_err(|e| crate::error::Error::Internal(e.into()))?;
    let digest = Sha256::digest(&body);
    let tag = crate::blobs::hex(&digest[..16]);
    let etag = format!("\"{tag}\"");
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let etag_value =
        HeaderValue::from_str(&etag).map_err(|e| crate::error::Error::Internal(e.into()))?;
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    Ok((
        [
            (header::ETAG, etag_value),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response())
}

pub async fn software(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    with_etag(&headers, &state.catalog_software().await?)
}

pub async fn scripts_catalog(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response> {
    with_etag(&headers, &state.scripts(false).await?)
}

pub async fn domains(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    with_etag(&headers, &state.catalog_domains().await?)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryQuery {
    domain: Option<String>,
    q: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

pub async fn workstations(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DirectoryQuery>,
) -> Result<Response> {
    let page = state
        .catalog_workstations(q.domain.as_deref(), q.q.as_deref(), q.limit, q.offset)
        .await?;
    with_etag(&headers, &page)
}

pub async fn users(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DirectoryQuery>,
) -> Result<Response> {
    let page = state
        .catalog_users(q.domain.as_deref(), q.q.as_deref(), q.limit, q.offset)
        .await?;
    with_etag(&headers, &page)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptsQuery {
    #[serde(default)]
    retired: bool,
}

pub async fn list_scripts(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ScriptsQuery>,
) -> Result<Json<Vec<Script>>> {
    Ok(Json(state.scripts(q.retired).await?))
}

pub async fn add_script(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewScript>,
) -> Result<(StatusCode, Json<Script>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.add_script(&caller.actor(), new).await?),
    ))
}

pub async fn show_script(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Script>> {
    Ok(Json(state.script(id).await?))
}

pub async fn retire_script(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Script>> {
    Ok(Json(state.retire_script(&caller.actor(), id).await?))
}

pub async fn list_integrations(State(state): State<AppState>) -> Result<Json<Vec<Integration>>> {
    Ok(Json(state.integrations().await?))
}

pub async fn create_integration(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewIntegration>,
) -> Result<(StatusCode, Json<IntegrationSecret>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.create_integration(&caller.actor(), new).await?),
    ))
}

pub async fn rotate_secret(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    OptionalJson(req): OptionalJson<RotateSigningSecret>,
) -> Result<Json<IntegrationSecret>> {
    Ok(Json(
        state
            .rotate_signing_secret(&caller.actor(), id, req.unwrap_or_default())
            .await?,
    ))
}

/// `POST /api/v1/tasks`: `201` with a new task, `200` with the one the idempotency key
/// created before.
pub async fn create_task(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewTask>,
) -> Result<(StatusCode, Json<Task>)> {
    let me = caller.technician()?;
    let (task, created) = state
        .create_task(&caller.actor(), me.id, me.role, new)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(task)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    request_ref: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

pub async fn list_tasks(
    caller: Caller,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TasksQuery>,
) -> Result<Json<Vec<Task>>> {
    let role = caller.technician()?.role;
    Ok(Json(
        state
            .tasks(role, q.request_ref.as_deref(), q.status.as_deref(), q.limit)
            .await?,
    ))
}

pub async fn show_task(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Task>> {
    let role = caller.technician()?.role;
    Ok(Json(state.task_for(role, id).await?))
}

pub async fn cancel_task(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Task>> {
    Ok(Json(state.cancel_task(&caller.actor(), id).await?))
}

pub async fn deliveries(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Vec<Delivery>>> {
    Ok(Json(state.deliveries(id).await?))
}

pub async fn redeliver(
    caller: Caller,
    State(state): State<AppState>,
    IdNamePath(id, delivery): IdNamePath,
) -> Result<(StatusCode, Json<Redelivered>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.redeliver(&caller.actor(), id, &delivery).await?),
    ))
}

#[derive(Debug, Serialize)]
pub struct Closed {
    tasks: u64,
}

pub async fn close_request(
    caller: Caller,
    State(state): State<AppState>,
    NamePath(request_ref): NamePath,
    ApiJson(req): ApiJson<CloseRequest>,
) -> Result<Json<Closed>> {
    let tasks = state
        .close_request(&caller.actor(), &request_ref, req)
        .await?;
    Ok(Json(Closed { tasks }))
}

/// `POST /api/v1/tasks/{id}/status`, signed with the task's integration secret.
pub async fn inbound_status(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Task>> {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Ok(Json(
        state
            .inbound_status(
                &caller.actor(),
                id,
                h(webhooks::ID_HEADER),
                h(webhooks::TIMESTAMP_HEADER),
                h(webhooks::SIGNATURE_HEADER),
                &body,
            )
            .await?,
    ))
}

pub async fn list_rules(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Vec<NotificationRule>>> {
    Ok(Json(state.notification_rules(id).await?))
}

pub async fn create_rule(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(new): ApiJson<NewNotificationRule>,
) -> Result<(StatusCode, Json<CreatedNotificationRule>)> {
    let role = caller.technician()?.role;
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .create_notification_rule(&caller.actor(), role, id, new)
                .await?,
        ),
    ))
}

pub async fn delete_rule(
    caller: Caller,
    State(state): State<AppState>,
    IdKeyPath(id, rule): IdKeyPath,
) -> Result<StatusCode> {
    state
        .delete_notification_rule(&caller.actor(), id, rule)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
