//! The JSON API: one table of routes (each with the least access it needs), thin handlers
//! (parse, call one service function, render), one error type, and extractors that reject bad
//! input before a handler runs.

pub mod auth;
pub mod error;
pub mod extract;

mod agent;
mod connectors;
mod devices;
mod helpdesk;
mod identity;
mod jobs;
mod ops;
mod packages;
mod uploads;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use self::auth::{
    ADMIN, CONNECTOR, DEVICE, ENROLLMENT, GUEST, LOGIN, OPERATOR, OPERATOR_OR_CONNECTOR, PUBLIC,
    SELF_OR_ADMIN,
};
use crate::AppState;

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// Lower case: `get`, `post`, `put`, `patch`, `delete`.
    pub method: &'static str,
    /// axum syntax: `/api/v1/jobs/{id}`.
    pub path: &'static str,
    pub access: auth::Access,
}

/// Declares the route table and the function that builds the router from it, so that the two
/// cannot disagree: a route exists only with its access, and the auth-matrix test walks the
/// very list the router was built from.
macro_rules! routes {
    ($($method:ident $path:literal $access:ident => $handler:path;)*) => {
        /// Every route of the API with the least access it needs.
        pub const ROUTES: &[RouteInfo] = &[
            $(RouteInfo { method: stringify!($method), path: $path, access: $access },)*
        ];

        fn add_routes(router: Router<AppState>, state: &AppState) -> Router<AppState> {
            router $(.route(
                $path,
                axum::routing::$method($handler).route_layer(axum::middleware::from_fn_with_state(
                    (state.clone(), $access),
                    auth::authorize,
                )),
            ))*
        }
    };
}

routes! {
    get    "/healthz"                                   PUBLIC => healthz;
    get    "/metrics"                                   PUBLIC => metrics;

    // Technicians: who is calling, logins, accounts, keys.
    post   "/api/v1/login"                              LOGIN => identity::login;
    post   "/api/v1/logout"                             GUEST => identity::logout;
    get    "/api/v1/me"                                 GUEST => identity::me;
    get    "/api/v1/technicians"                        ADMIN => identity::list;
    post   "/api/v1/technicians"                        ADMIN => identity::create;
    get    "/api/v1/technicians/{id}"                   SELF_OR_ADMIN => identity::show;
    patch  "/api/v1/technicians/{id}"                   ADMIN => identity::update;
    post   "/api/v1/technicians/{id}/password"          SELF_OR_ADMIN => identity::set_password;
    post   "/api/v1/technicians/{id}/sessions/revoke"   SELF_OR_ADMIN => identity::end_sessions;
    get    "/api/v1/technicians/{id}/keys"              SELF_OR_ADMIN => identity::keys;
    post   "/api/v1/technicians/{id}/keys"              SELF_OR_ADMIN => identity::create_key;
    post   "/api/v1/technicians/{id}/keys/{key}/regenerate" SELF_OR_ADMIN => identity::regenerate_key;
    post   "/api/v1/technicians/{id}/keys/{key}/revoke" SELF_OR_ADMIN => identity::revoke_key;
    get    "/api/v1/technicians/{id}/notifications"     SELF_OR_ADMIN => helpdesk::list_rules;
    post   "/api/v1/technicians/{id}/notifications"     SELF_OR_ADMIN => helpdesk::create_rule;
    delete "/api/v1/technicians/{id}/notifications/{key}" SELF_OR_ADMIN => helpdesk::delete_rule;
    // Operators and up: the log names people, their e-mail changes and their addresses.
    get    "/api/v1/audit"                              OPERATOR => audit;

    // Connectors and their sites.
    get    "/api/v1/connectors"                         GUEST => connectors::list;
    post   "/api/v1/connectors"                         ADMIN => connectors::register;
    get    "/api/v1/connectors/{id}"                    GUEST => connectors::show;
    patch  "/api/v1/connectors/{id}"                    ADMIN => connectors::update;
    post   "/api/v1/connectors/{id}/rotate-secret"      ADMIN => connectors::rotate_secret;
    get    "/api/v1/connectors/{id}/applications"       GUEST => connectors::applications;
    post   "/api/v1/connectors/{id}/inventory"          OPERATOR => connectors::refresh_inventory;
    post   "/api/v1/connectors/{id}/import"             OPERATOR => connectors::import;

    // Jobs: administrators' side, then the connector's.
    get    "/api/v1/jobs"                               GUEST => jobs::list;
    post   "/api/v1/jobs"                               OPERATOR => jobs::enqueue;
    get    "/api/v1/jobs/{id}"                          GUEST => jobs::show;
    post   "/api/v1/jobs/{id}/cancel"                   OPERATOR => jobs::cancel;
    get    "/api/v1/connector/jobs/next"                CONNECTOR => jobs::next;
    post   "/api/v1/connector/jobs/{id}/lease"          CONNECTOR => jobs::renew;
    post   "/api/v1/connector/jobs/{id}/progress"       CONNECTOR => jobs::progress;
    post   "/api/v1/connector/jobs/{id}/result"         CONNECTOR => jobs::result;
    post   "/api/v1/connector/jobs/{id}/release"        CONNECTOR => jobs::release;

    // Packages.
    post   "/api/v1/uploads"                            OPERATOR_OR_CONNECTOR => uploads::open;
    get    "/api/v1/uploads/{id}"                       OPERATOR_OR_CONNECTOR => uploads::show;
    put    "/api/v1/uploads/{id}"                       OPERATOR_OR_CONNECTOR => uploads::put_range;
    post   "/api/v1/uploads/{id}/complete"              OPERATOR_OR_CONNECTOR => uploads::complete;
    get    "/api/v1/packages"                           GUEST => packages::list;
    get    "/api/v1/packages/{id}"                      GUEST => packages::show;
    patch  "/api/v1/packages/{id}"                      OPERATOR => packages::update;
    get    "/api/v1/packages/{id}/content"              OPERATOR_OR_CONNECTOR => packages::content;
    post   "/api/v1/push"                               OPERATOR => packages::push;

    // Agents (a device token; an enrolment secret in the body for enroll).
    post   "/api/v1/agent/enroll"                       ENROLLMENT => agent::enroll;
    get    "/api/v1/agent/ws"                           DEVICE => agent::ws;
    post   "/api/v1/agent/poll"                         DEVICE => agent::poll;
    get    "/api/v1/agent/policy"                       DEVICE => agent::policy;
    post   "/api/v1/agent/token"                        DEVICE => agent::rotate_token;
    get    "/api/v1/agent/packages/{id}/content"        DEVICE => agent::package_content;

    // Devices and what they do.
    get    "/api/v1/enrollment-secrets"                 ADMIN => devices::list_secrets;
    post   "/api/v1/enrollment-secrets"                 ADMIN => devices::create_secret;
    post   "/api/v1/enrollment-secrets/{id}/revoke"     ADMIN => devices::revoke_secret;
    get    "/api/v1/devices"                            GUEST => devices::list_devices;
    post   "/api/v1/devices/import"                     ADMIN => devices::import_devices;
    get    "/api/v1/devices/{id}"                       GUEST => devices::show_device;
    patch  "/api/v1/devices/{id}"                       ADMIN => devices::update_device;
    post   "/api/v1/devices/{id}/rotate-token"          ADMIN => devices::rotate_device_token;
    post   "/api/v1/devices/{id}/approve-inventory"     ADMIN => devices::approve_inventory;
    get    "/api/v1/collections"                        GUEST => devices::list_collections;
    post   "/api/v1/collections"                        ADMIN => devices::create_collection;
    get    "/api/v1/collections/{id}"                   GUEST => devices::show_collection;
    delete "/api/v1/collections/{id}"                   ADMIN => devices::delete_collection;
    post   "/api/v1/collections/{id}/members"           ADMIN => devices::change_members;
    get    "/api/v1/deployments"                        GUEST => devices::list_deployments;
    post   "/api/v1/deployments"                        ADMIN => devices::create_deployment;
    delete "/api/v1/deployments/{id}"                   ADMIN => devices::delete_deployment;
    get    "/api/v1/ops"                                GUEST => ops::list;
    post   "/api/v1/ops"                                OPERATOR => ops::start;
    get    "/api/v1/ops/{id}"                           GUEST => ops::show;
    get    "/api/v1/ops/{id}/results"                   GUEST => ops::results;
    get    "/api/v1/ops/{id}/watch"                     GUEST => ops::watch;
    post   "/api/v1/ops/{id}/cancel"                    OPERATOR => ops::cancel;

    // The helpdesk: what it may offer, where callbacks go, tasks from service requests.
    get    "/api/v1/catalog/software"                   GUEST => helpdesk::software;
    get    "/api/v1/catalog/scripts"                    GUEST => helpdesk::scripts_catalog;
    get    "/api/v1/catalog/domains"                    GUEST => helpdesk::domains;
    get    "/api/v1/catalog/workstations"               GUEST => helpdesk::workstations;
    get    "/api/v1/catalog/users"                      GUEST => helpdesk::users;
    get    "/api/v1/scripts"                            GUEST => helpdesk::list_scripts;
    post   "/api/v1/scripts"                            ADMIN => helpdesk::add_script;
    get    "/api/v1/scripts/{id}"                       GUEST => helpdesk::show_script;
    post   "/api/v1/scripts/{id}/retire"                ADMIN => helpdesk::retire_script;
    get    "/api/v1/integrations"                       ADMIN => helpdesk::list_integrations;
    post   "/api/v1/integrations"                       ADMIN => helpdesk::create_integration;
    post   "/api/v1/integrations/{id}/rotate-secret"    ADMIN => helpdesk::rotate_secret;
    get    "/api/v1/tasks"                              GUEST => helpdesk::list_tasks;
    post   "/api/v1/tasks"                              OPERATOR => helpdesk::create_task;
    get    "/api/v1/tasks/{id}"                         GUEST => helpdesk::show_task;
    post   "/api/v1/tasks/{id}/cancel"                  OPERATOR => helpdesk::cancel_task;
    post   "/api/v1/tasks/{id}/status"                  OPERATOR => helpdesk::inbound_status;
    // Attempts name receivers' errors and addresses: operators and up.
    get    "/api/v1/tasks/{id}/deliveries"              OPERATOR => helpdesk::deliveries;
    post   "/api/v1/tasks/{id}/deliveries/{delivery}/redeliver" OPERATOR => helpdesk::redeliver;
    post   "/api/v1/requests/{ref}/close"               OPERATOR => helpdesk::close_request;
}

pub fn router(state: AppState) -> Router {
    add_routes(Router::new(), &state)
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn metrics(State(state): State<AppState>) -> error::Result<impl IntoResponse> {
    let counts = state.store.job_counts().await?;
    let connectors = state.store.connector_count().await?;
    let mut text = state.metrics.render(&counts, connectors);
    text.push_str(&state.connections.render_metrics());
    text.push_str(&state.agents.render_metrics());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

/// `GET /api/v1/audit`: who did what, newest first, filtered by actor, action and time.
async fn audit(
    State(state): State<AppState>,
    extract::ApiQuery(q): extract::ApiQuery<ferry_proto::identity::AuditQuery>,
) -> error::Result<axum::Json<Vec<ferry_proto::identity::AuditEntry>>> {
    Ok(axum::Json(state.store.audit_log(&q).await?))
}

async fn not_found() -> error::Error {
    error::Error::NotFound("route")
}
