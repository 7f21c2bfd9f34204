//! The agent's side of the API: enrolment, the persistent channel (WebSocket, or long poll
//! where WebSockets are blocked), policy, package content and token rotation.
//!
//! Both transports share one session model ([`crate::agents`]): a session starts with the
//! agent's `hello` (inventory), is answered with `welcome`, then receives every unfinished
//! operation of the device; reports are queued for the batched writer and results are
//! acknowledged (`result_stored`) only once committed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_proto::ErrorCode;
use ferry_proto::agent::{
    AGENT_PROTOCOL, AgentMessage, EnrollRequest, EnrollResponse, HubMessage, Inventory, Policy,
    TokenResponse,
};

use super::auth::Caller;
use super::error::{Error, Result};
use super::extract::{AgentJson, ApiJson, ApiQuery, IdPath};
use crate::AppState;
use crate::agents::{Connecting, Session, Transport, mono_ms};
use crate::service::fleet::{DeviceCaller, validate_inventory};
use crate::store::AgentWrite;

/// How long a new WebSocket may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// The WebSocket read buffer per connection. Agent messages are small except results.
/// (tungstenite's default, 128 KiB, would cost 2.5 GiB for 20,000 idle agents.)
const WS_READ_BUFFER: usize = 1024;
// (tungstenite keeps a grown read buffer after a large message; a session that sent a big
// result holds that memory until it reconnects. Results are capped at 2 × 256 KiB of output.)

/// Unreadable messages a session survives; past this the agent is broken or hostile.
const MAX_BAD_MESSAGES: u32 = 100;

/// `POST /api/v1/agent/enroll`: an enrolment secret buys a device token.
pub async fn enroll(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<EnrollResponse>)> {
    let enrolled = state.enroll(&req, caller.address).await?;
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// `POST /api/v1/agent/token`: the agent asks for a new token (the old one works until the
/// new one is first used).
pub async fn rotate_token(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<TokenResponse>> {
    let device = caller.device()?.id;
    Ok(Json(
        state.request_device_token(&caller.actor(), device).await?,
    ))
}

/// `GET /api/v1/agent/policy`: the deployments assigned to the device's collections.
pub async fn policy(caller: Caller, State(state): State<AppState>) -> Result<Json<Policy>> {
    Ok(Json(state.policy(caller.device()?.id).await?))
}

/// `GET /api/v1/agent/packages/{id}/content`: a package the device was asked to run.
pub async fn package_content(
    caller: Caller,
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response> {
    state.check_package_access(&caller.actor(), id).await?;
    super::packages::serve_content(&state, id, &headers).await
}

// ----- the session -----------------------------------------------------------------------

fn welcome(state: &AppState, session: &Session) -> HubMessage {
    HubMessage::Welcome {
        protocol: AGENT_PROTOCOL,
        device_id: session.device,
        ping_interval_secs: state.config.agent_ping_secs,
        max_message_bytes: state.config.agent_max_message_bytes,
        session_id: session.id,
    }
}

/// Registers the session, records the inventory, and queues `welcome` plus every unfinished
/// operation of the device.
async fn start_session(
    state: &AppState,
    auth: &DeviceCaller,
    addr: SocketAddr,
    transport: Transport,
    inventory: Inventory,
) -> Arc<Session> {
    let device = auth.id;
    let session = state.agents.open(device, transport);
    // A disable or token rotation that committed after this request authenticated, but
    // before the session was registered, found no session to close; look again.
    match state.store.device_auth(device).await {
        Ok(Some(row)) if row.enabled && row.token_hash == auth.token_hash => {}
        _ => {
            session.request_close(
                ferry_proto::agent::CLOSE_REVOKED,
                "this device was disabled or its token replaced",
            );
            return session;
        }
    }
    state
        .agents
        .note_inventory(device, inventory, state.trusts_inventory())
        .await;
    state.agents.note_seen(device, Some(addr)).await;
    session.push_message(&welcome(state, &session));
    match state.store.open_assignments(device).await {
        Ok(assignments) => {
            for a in assignments {
                session.push_message(&HubMessage::Operation(a));
            }
        }
        Err(e) => {
            // The agent gets them at its next session; closing makes that happen soon.
            tracing::error!(%device, error = %e, "could not load the device's operations");
            session.request_close(1011, "the hub could not load this device's operations");
        }
    }
    session
}

fn error_frame(code: ErrorCode, message: impl Into<String>) -> HubMessage {
    HubMessage::Error {
        code,
        message: message.into(),
    }
}

async fn handle_message(state: &AppState, session: &Arc<Session>, msg: AgentMessage) {
    let device = session.device;
    match msg {
        AgentMessage::Hello { .. } => session.push_message(&error_frame(
            ErrorCode::UnexpectedHello,
            "this session has already started; hello comes once, first",
        )),
        AgentMessage::Received { op_id } => {
            state
                .agents
                .record(AgentWrite::Received { op: op_id, device }, None)
                .await
        }
        AgentMessage::Running { op_id } => {
            state
                .agents
                .record(AgentWrite::Running { op: op_id, device }, None)
                .await
        }
        AgentMessage::Finished { op_id, mut outcome } => {
            // No operation keeps more than this per stream; cut before queuing, so a
            // device cannot park megabytes in the writer's queue.
            cut(&mut outcome.output);
            cut(&mut outcome.error);
            state
                .agents
                .record(
                    AgentWrite::Finished {
                        op: op_id,
                        device,
                        outcome,
                    },
                    Some((device, op_id)),
                )
                .await
        }
        AgentMessage::Inventory { inventory } => match validate_inventory(&inventory) {
            Ok(()) => {
                state
                    .agents
                    .note_inventory(device, inventory, state.trusts_inventory())
                    .await
            }
            Err(e) => {
                session.push_message(&error_frame(ErrorCode::InvalidInventory, e.to_string()))
            }
        },
    }
}

fn cut(s: &mut String) {
    let max = crate::service::ops::MAX_OUTPUT_LIMIT as usize;
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
}

/// Handles one text frame; `false` if it could not be read.
async fn handle_text(state: &AppState, session: &Arc<Session>, text: &str) -> bool {
    match serde_json::from_str::<AgentMessage>(text) {
        Ok(msg) => {
            handle_message(state, session, msg).await;
            true
        }
        Err(e) => {
            session.push_message(&error_frame(
                ErrorCode::BadMessage,
                format!("unreadable message (the session goes on): {e}"),
            ));
            false
        }
    }
}

/// `GET /api/v1/agent/ws`: upgrades to the agent's WebSocket.
pub async fn ws(
    caller: Caller,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
    upgrade: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let device = caller.device()?.clone();
    let upgrade = upgrade.map_err(|e| Error::bad(ErrorCode::NotAWebsocket, e.body_text()))?;
    if *state.shutdown.borrow() {
        return Err(Error::ShuttingDown);
    }
    // One connection per device between upgrade and hello: a stolen token cannot pile up
    // sockets that have not said who they are.
    let connecting = state.agents.connecting(device.id).ok_or_else(|| {
        Error::conflict(
            ErrorCode::AlreadyConnecting,
            "a connection for this device is being set up; retry after it",
        )
    })?;
    state.agents.admit().map_err(Error::Deferred)?;
    let max = state.config.agent_max_message_bytes as usize;
    Ok(upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| run_ws(state, device, addr, socket, connecting)))
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }))
}

fn text_frame(frame: Bytes) -> Option<Message> {
    // Every frame was produced by serde_json, so it is UTF-8.
    Utf8Bytes::try_from(frame).ok().map(Message::Text)
}

async fn run_ws(
    state: AppState,
    device: DeviceCaller,
    addr: SocketAddr,
    mut socket: WebSocket,
    connecting: Connecting,
) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<AgentMessage>(text.as_str()),
        _ => {
            let _ = socket
                .send(close_frame(1008, "the first message must be hello"))
                .await;
            return;
        }
    };
    let inventory = match hello {
        Ok(AgentMessage::Hello {
            protocol,
            inventory,
        }) if protocol == AGENT_PROTOCOL => inventory,
        Ok(AgentMessage::Hello { protocol, .. }) => {
            let reason =
                format!("agent protocol {protocol} is not supported (hub speaks {AGENT_PROTOCOL})");
            let _ = socket.send(close_frame(1008, &reason)).await;
            return;
        }
        _ => {
            let _ = socket
                .send(close_frame(1008, "the first message must be hello"))
                .await;
            return;
        }
    };
    if let Err(e) = validate_inventory(&inventory) {
        let _ = socket.send(close_frame(1008, &e.to_string())).await;
        return;
    }
    let session = start_session(&state, &device, addr, Transport::WebSocket, inventory).await;
    drop(connecting);
    let device = device.id;
    let ping_ms = i64::from(state.config.agent_ping_secs) * 1000;
    let idle_limit_ms = 3 * ping_ms;
    let check = tokio::time::sleep(Duration::from_millis(idle_limit_ms as u64));
    tokio::pin!(check);
    let mut shutdown = state.shutdown.clone();
    let send_limit = Duration::from_millis(ping_ms as u64);
    let mut bad = 0u32;
    loop {
        if bad > MAX_BAD_MESSAGES {
            let _ = socket
                .send(close_frame(1008, "too many unreadable messages"))
                .await;
            break;
        }
        tokio::select! {
            biased;
            _ = session.notify.notified() => {
                if let Some((code, reason)) = session.close_requested() {
                    let _ = socket.send(close_frame(code, reason)).await;
                    break;
                }
                let mut ok = true;
                for frame in session.drain() {
                    let Some(msg) = text_frame(frame) else { continue };
                    // An agent that stops reading must not hold this task forever.
                    match tokio::time::timeout(send_limit, socket.send(msg)).await {
                        Ok(Ok(())) => {}
                        _ => {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    session.heard();
                    if !handle_text(&state, &session, text.as_str()).await {
                        bad += 1;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    session.heard();
                    bad += 1;
                    session.push_message(&error_frame(
                        ErrorCode::BadMessage,
                        "binary frames are not used; send JSON text frames",
                    ));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => session.heard(),
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    // A protocol violation or a message over the size limit.
                    tracing::debug!(%device, error = %e, "agent WebSocket error");
                    let _ = socket
                        .send(close_frame(1009, "message too big or malformed frame"))
                        .await;
                    break;
                }
            },
            _ = &mut check => {
                let silent = mono_ms() - session.last_heard.load(std::sync::atomic::Ordering::Relaxed);
                if silent >= idle_limit_ms {
                    tracing::info!(%device, "closing a silent agent session (half-open connection?)");
                    let _ = socket
                        .send(close_frame(1001, "no ping from the agent in three intervals"))
                        .await;
                    break;
                }
                check
                    .as_mut()
                    .reset(tokio::time::Instant::now() + Duration::from_millis((idle_limit_ms - silent) as u64));
            }
            _ = shutdown.changed() => {
                let _ = socket.send(close_frame(1012, "the hub is restarting")).await;
                break;
            }
        }
    }
    if state.agents.close(&session) {
        state.agents.note_seen(device, None).await;
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollQuery {
    /// Seconds to wait for a message when there is none (0–`max_hold_secs`).
    hold: Option<u32>,
    /// The session the agent was welcomed into (absent on the poll that says hello).
    session: Option<u64>,
}

/// `POST /api/v1/agent/poll?hold=S`: the long-poll transport. The body is the agent's
/// messages (a session starts with `hello`), the answer the hub's.
pub async fn poll(
    caller: Caller,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PollQuery>,
    AgentJson(messages): AgentJson<Vec<AgentMessage>>,
) -> Result<Response> {
    let device = caller.device()?;
    let hold = q
        .hold
        .unwrap_or(state.config.default_hold_secs)
        .min(state.config.max_hold_secs);
    let mut messages = messages.into_iter().peekable();
    let session = match messages.peek() {
        Some(AgentMessage::Hello {
            protocol,
            inventory,
        }) => {
            if *protocol != AGENT_PROTOCOL {
                return Err(Error::bad(
                    ErrorCode::UnsupportedProtocol,
                    format!(
                        "agent protocol {protocol} is not supported (hub speaks {AGENT_PROTOCOL})"
                    ),
                ));
            }
            validate_inventory(inventory)?;
            if *state.shutdown.borrow() {
                return Err(Error::ShuttingDown);
            }
            state.agents.admit().map_err(Error::Deferred)?;
            let Some(AgentMessage::Hello { inventory, .. }) = messages.next() else {
                return Err(anyhow::anyhow!("peeked hello vanished").into());
            };
            start_session(&state, device, addr, Transport::LongPoll, inventory).await
        }
        _ => {
            let current = state
                .agents
                .session(device.id)
                .filter(|s| s.transport == Transport::LongPoll)
                .ok_or_else(|| {
                    Error::conflict(
                        ErrorCode::SessionRequired,
                        "no session for this device on this hub: start one with a hello message",
                    )
                })?;
            if q.session.is_some_and(|id| id != current.id) {
                return Err(Error::conflict(
                    ErrorCode::SessionReplaced,
                    "another session with this device token replaced this one",
                ));
            }
            current
        }
    };
    session.heard();
    for msg in messages {
        handle_message(&state, &session, msg).await;
    }
    if !session.has_frames() && session.close_requested().is_none() && hold > 0 {
        let mut shutdown = state.shutdown.clone();
        tokio::select! {
            _ = session.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(hold.into())) => {}
            _ = shutdown.changed() => {}
        }
    }
    session.heard();
    if let Some((code, reason)) = session.close_requested() {
        state.agents.close(&session);
        return Err(if code == ferry_proto::agent::CLOSE_REPLACED {
            Error::conflict(ErrorCode::SessionReplaced, reason)
        } else {
            Error::conflict(ErrorCode::SessionClosed, reason)
        });
    }
    let frames = session.drain();
    let mut body = Vec::with_capacity(2 + frames.iter().map(|f| f.len() + 1).sum::<usize>());
    body.push(b'[');
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(f);
    }
    body.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
