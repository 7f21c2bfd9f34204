//! Technicians: logins and sessions, who is calling, accounts, and personal API keys.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_proto::identity::{
    ApiKey, CreatedApiKey, LoginRequest, Me, NewApiKey, NewTechnician, Reauthenticate,
    SESSION_COOKIE, SetPassword, Technician, UpdateTechnician,
};

use super::auth::Caller;
use super::error::Result;
use super::extract::{ApiJson, IdKeyPath, IdPath, OptionalJson};
use crate::AppState;

/// The session cookie: script cannot read it (`HttpOnly`), it travels only over HTTPS
/// (`Secure`; browsers make an exception for `localhost`), and never with a request another
/// site starts (`SameSite=Strict`), which with the CSRF token makes forged requests useless.
fn session_cookie(value: &str, max_age_secs: i64) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .map_err(|e| anyhow::anyhow!("session cookie: {e}").into())
}

/// `POST /api/v1/login`: a session for a name and password, as a cookie, with the CSRF token
/// in the body.
pub async fn login(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let done = state.login(&req, caller.address, user_agent).await?;
    let mut response = Json(done.me).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&done.cookie, done.max_age_secs)?,
    );
    Ok(response)
}

/// `POST /api/v1/logout`: ends the session (and clears its cookie).
pub async fn logout(caller: Caller, State(state): State<AppState>) -> Result<Response> {
    state.logout(&caller.actor()).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0)?);
    Ok(response)
}

pub async fn me(caller: Caller, State(state): State<AppState>) -> Result<Json<Me>> {
    Ok(Json(state.me(caller.technician()?).await?))
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Technician>>> {
    Ok(Json(state.technicians().await?))
}

pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewTechnician>,
) -> Result<(StatusCode, Json<Technician>)> {
    let created = state.create_technician(&caller.actor(), &req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn show(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Json<Technician>> {
    Ok(Json(state.technician(id).await?))
}

pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<UpdateTechnician>,
) -> Result<Json<Technician>> {
    Ok(Json(
        state.update_technician(&caller.actor(), id, &req).await?,
    ))
}

pub async fn set_password(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<SetPassword>,
) -> Result<StatusCode> {
    state
        .set_password(caller.technician()?, &caller.actor(), id, &req)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize)]
pub struct Ended {
    sessions_ended: u64,
}

pub async fn end_sessions(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<Ended>> {
    let sessions_ended = state.end_sessions(&caller.actor(), id).await?;
    Ok(Json(Ended { sessions_ended }))
}

pub async fn keys(State(state): State<AppState>, IdPath(id): IdPath) -> Result<Json<Vec<ApiKey>>> {
    Ok(Json(state.api_keys(id).await?))
}

/// The key's secret is in this answer and never again.
pub async fn create_key(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    let created = state
        .create_api_key(caller.technician()?, &caller.actor(), id, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A new secret for the key; the old one stops working at once. Through a browser session
/// the body must carry `current_password`; otherwise it may be empty.
pub async fn regenerate_key(
    caller: Caller,
    State(state): State<AppState>,
    IdKeyPath(id, key): IdKeyPath,
    OptionalJson(req): OptionalJson<Reauthenticate>,
) -> Result<Json<CreatedApiKey>> {
    let current = req.and_then(|r| r.current_password);
    Ok(Json(
        state
            .regenerate_api_key(
                caller.technician()?,
                &caller.actor(),
                id,
                key,
                current.as_deref(),
            )
            .await?,
    ))
}

pub async fn revoke_key(
    caller: Caller,
    State(state): State<AppState>,
    IdKeyPath(id, key): IdKeyPath,
) -> Result<Json<ApiKey>> {
    Ok(Json(state.revoke_api_key(&caller.actor(), id, key).await?))
}
