//! Who is calling, and whether they may: one middleware in front of every route.
//!
//! Each route declares the least [`Access`] it needs in the route table (`http::ROUTES`); the
//! router is built from that table, so a route cannot exist without a declared access. The
//! middleware authenticates the caller the way the access kind expects, checks the role,
//! checks the CSRF token of cookie-authenticated requests that change something, and hands
//! the handler a [`Caller`]. Handlers never parse credentials.
//!
//! Credentials (`Authorization: Bearer …` unless noted):
//! - technicians: an API key `fk_<id>_<secret>`, or the browser session cookie
//!   (`__Host-ferry_session`: the prefix makes browsers refuse one planted by a sibling domain), which needs the `x-csrf-token` header on every non-GET request;
//! - connectors: `<remote id>:<secret>`; devices: `<device id>:<secret>`.
//!
//! Status rules: no or unusable credentials → 401 (with `WWW-Authenticate`); a valid credential
//! of the wrong kind (a connector's secret on a technician's route, a technician's key on the
//! agent's routes, …) or too small a role → 403; a disabled connector or device → 403 (only
//! after its secret checked out). Refusals change nothing: the wrong-kind check has no side
//! effects, and a key's or session's use is recorded only once the request is let through.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferry_proto::ErrorCode;
use ferry_proto::identity::{CSRF_HEADER, Role, SESSION_COOKIE, Via};
use uuid::Uuid;

use super::error::{Error, Result};
use crate::AppState;
use crate::service::fleet::DeviceCaller;
use crate::service::identity::TechnicianCaller;
use crate::store::Actor;

/// The least a caller must be to use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `/healthz` and `/metrics` (counts only, for load balancers and Prometheus).
    Public,
    /// Anyone; the route checks a password itself and is throttled (`POST /api/v1/login`).
    Login,
    /// Anyone; the credential is the enrolment secret in the body (`POST /api/v1/agent/enroll`).
    Enrollment,
    /// A technician with at least this role.
    Technician(Role),
    /// The technician the path's `{id}` names, or an administrator.
    SelfOrAdmin,
    /// A technician with at least this role, or a connector (which the service then limits to
    /// its own uploads and to the packages it may read).
    TechnicianOrConnector(Role),
    /// A registered, enabled connector.
    Connector,
    /// An enrolled, enabled device.
    Device,
}

pub const PUBLIC: Access = Access::Public;
pub const LOGIN: Access = Access::Login;
pub const ENROLLMENT: Access = Access::Enrollment;
pub const GUEST: Access = Access::Technician(Role::Guest);
pub const OPERATOR: Access = Access::Technician(Role::Operator);
pub const ADMIN: Access = Access::Technician(Role::Admin);
pub const SELF_OR_ADMIN: Access = Access::SelfOrAdmin;
pub const OPERATOR_OR_CONNECTOR: Access = Access::TechnicianOrConnector(Role::Operator);
pub const CONNECTOR: Access = Access::Connector;
pub const DEVICE: Access = Access::Device;

/// Who the caller proved to be.
#[derive(Debug, Clone)]
pub enum Who {
    Anonymous,
    Technician(TechnicianCaller),
    Connector(Uuid),
    Device(DeviceCaller),
}

/// The authenticated caller of a request, and its address.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Who,
    pub address: Option<IpAddr>,
}

impl Caller {
    /// The caller as the audit log records it.
    pub fn actor(&self) -> Actor {
        match &self.who {
            Who::Technician(t) => Actor::technician(t.id, &t.name, t.via, self.address),
            Who::Connector(id) => Actor::connector(*id, self.address),
            Who::Device(d) => Actor::device(d.id, Via::DeviceToken, self.address),
            Who::Anonymous => Actor {
                kind: ferry_proto::identity::ActorKind::Hub,
                id: None,
                name: "anonymous".to_owned(),
                via: None,
                address: self.address,
            },
        }
    }

    pub fn technician(&self) -> Result<&TechnicianCaller> {
        match &self.who {
            Who::Technician(t) => Ok(t),
            _ => Err(misrouted()),
        }
    }

    pub fn connector(&self) -> Result<Uuid> {
        match &self.who {
            Who::Connector(id) => Ok(*id),
            _ => Err(misrouted()),
        }
    }

    pub fn device(&self) -> Result<&DeviceCaller> {
        match &self.who {
            Who::Device(d) => Ok(d),
            _ => Err(misrouted()),
        }
    }
}

/// A handler asked for a caller kind its route's access does not produce: a bug in the
/// route table, never the client's fault.
fn misrouted() -> Error {
    Error::Internal(anyhow::anyhow!(
        "the route's declared access does not match what its handler needs"
    ))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(misrouted)
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthorized("malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(|t| Some(t.trim()))
        .ok_or(Error::Unauthorized(
            "the Authorization header must use the Bearer scheme",
        ))
}

fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

/// A technician's key or session.
async fn technician(state: &AppState, parts: &Parts) -> Result<Who> {
    if let Some(token) = bearer(parts)? {
        return Ok(Who::Technician(state.authenticate_key(token).await?));
    }
    if let Some(cookie) = session_cookie(parts) {
        let t = state.authenticate_session(cookie).await?;
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let Via::Session(session) = t.via else {
                return Err(misrouted());
            };
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !state.csrf_ok(session, given) {
                return Err(Error::Forbidden {
                    code: ErrorCode::CsrfRequired,
                    message: format!(
                        "a request made with the session cookie that changes something must carry the session's CSRF token in `{CSRF_HEADER}`"
                    ),
                });
            }
        }
        return Ok(Who::Technician(t));
    }
    Err(Error::Unauthorized(
        "missing credentials: send an `Authorization: Bearer <API key>` header, or log in",
    ))
}

fn check_role(who: &Who, least: Role) -> Result<()> {
    if let Who::Technician(t) = who
        && t.role < least
    {
        return Err(Error::forbidden(format!(
            "this needs the {least} role; you are {}",
            t.role
        )));
    }
    Ok(())
}

async fn authenticate(state: &AppState, access: Access, parts: &mut Parts) -> Result<Who> {
    match access {
        Access::Public | Access::Login | Access::Enrollment => Ok(Who::Anonymous),
        Access::Connector => {
            let token = bearer(parts)?.ok_or(Error::Unauthorized(
                "missing Authorization header: send `Bearer <remote id>:<secret>`",
            ))?;
            Ok(Who::Connector(state.authenticate_connector(token).await?))
        }
        Access::Device => {
            let token = bearer(parts)?.ok_or(Error::Unauthorized(
                "missing Authorization header: send `Bearer <device token>`",
            ))?;
            Ok(Who::Device(state.authenticate_device(token).await?))
        }
        Access::Technician(least) => {
            let who = technician(state, parts).await?;
            check_role(&who, least)?;
            Ok(who)
        }
        Access::TechnicianOrConnector(least) => {
            let connector_like = bearer(parts)?
                .is_some_and(|t| !t.starts_with(ferry_proto::identity::API_KEY_PREFIX));
            if connector_like {
                let token = bearer(parts)?.unwrap_or_default();
                return Ok(Who::Connector(state.authenticate_connector(token).await?));
            }
            let who = technician(state, parts).await?;
            check_role(&who, least)?;
            Ok(who)
        }
        Access::SelfOrAdmin => {
            let who = technician(state, parts).await?;
            let Who::Technician(t) = &who else {
                return Err(misrouted());
            };
            if t.role == Role::Admin {
                return Ok(who);
            }
            let params = RawPathParams::from_request_parts(parts, state)
                .await
                .map_err(|_| misrouted())?;
            let named = params
                .iter()
                .find(|(k, _)| *k == "id")
                .and_then(|(_, v)| Uuid::parse_str(v).ok());
            if named == Some(t.id) {
                Ok(who)
            } else {
                Err(Error::forbidden(
                    "only administrators may act on another technician",
                ))
            }
        }
    }
}

/// A 403 naming the kind of credential the caller holds, if its bearer credential is valid
/// but was refused as not this route's kind; `None` if it is no credential at all.
async fn wrong_kind(state: &AppState, parts: &Parts) -> Option<Error> {
    let token = bearer(parts).ok()??;
    let kind = state.credential_kind(token).await?;
    Some(Error::forbidden(format!(
        "this route is not for a {kind}'s credentials"
    )))
}

/// The middleware every route runs behind (see the module docs).
pub async fn authorize(
    State((state, access)): State<(AppState, Access)>,
    request: Request,
    next: Next,
) -> Response {
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (mut parts, body) = request.into_parts();
    // An address that keeps failing to authenticate is refused before any checking. A
    // credential id guessed at (from many addresses) is not: its real holder must still get
    // in, so its failures only turn further failures into 429 (below).
    if access != Access::Public
        && state.auth_failures.any()
        && let Err(secs) = state.auth_gate(addr)
    {
        return Error::Throttled(secs).into_response();
    }
    // Kept (cheap reference-counted copies) to name the credential should it be refused.
    let presented = (
        parts.headers.get(header::AUTHORIZATION).cloned(),
        parts.headers.get(header::COOKIE).cloned(),
    );
    let outcome = match authenticate(&state, access, &mut parts).await {
        Err(Error::Unauthorized(why)) => Err(wrong_kind(&state, &parts)
            .await
            .unwrap_or(Error::Unauthorized(why))),
        other => other,
    };
    let uri = parts.uri.clone();
    let response = match outcome {
        Ok(who) => {
            if let Who::Technician(t) = &who {
                state.note_use(t, addr);
            }
            if !matches!(who, Who::Anonymous)
                && let Some(conn) = parts.extensions.get::<crate::conn::ConnHandle>()
            {
                conn.authenticated();
            }
            parts.extensions.insert(Caller { who, address: addr });
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
    };
    // Handlers refuse credentials too (an enrolment secret, a login): every 401 counts.
    if response.status() == StatusCode::UNAUTHORIZED {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(v) = presented.0 {
            headers.insert(header::AUTHORIZATION, v);
        }
        if let Some(v) = presented.1 {
            headers.insert(header::COOKIE, v);
        }
        let (mut probe, _) = Request::new(()).into_parts();
        probe.headers = headers;
        // On the login and enrolment routes a stale cookie is not what is being tried.
        let credential = match access {
            Access::Login | Access::Enrollment | Access::Public => None,
            _ => credential_key(&probe),
        };
        if let Err(secs) = state.auth_failed(addr, credential.as_deref(), uri.path()) {
            return Error::Throttled(secs).into_response();
        }
    }
    response
}

/// What identifies the credential a request presents, never the secret: `key:<id>` for an
/// API key, `id:<uuid>` for a connector's or device's `<uuid>:<secret>`, `session:<id>`.
fn credential_key(parts: &Parts) -> Option<String> {
    let id = |s: &str| -> Option<String> {
        let s: String = s.chars().take(40).collect();
        Uuid::parse_str(&s).ok().map(|u| u.to_string())
    };
    if let Ok(Some(token)) = bearer(parts) {
        if let Some(rest) = token.strip_prefix(ferry_proto::identity::API_KEY_PREFIX) {
            return id(rest.split('_').next().unwrap_or("")).map(|k| format!("key:{k}"));
        }
        return id(token.split(':').next().unwrap_or("")).map(|k| format!("id:{k}"));
    }
    session_cookie(parts)
        .and_then(|c| id(c.split('.').next().unwrap_or("")))
        .map(|s| format!("session:{s}"))
}
