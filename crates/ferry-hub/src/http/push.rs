//! `POST /api/v1/push`: build a push specification from the package's metadata, the
//! connector's site settings and the caller's overrides; validate all of it before anything is
//! queued; answer a dry run with the exact script, or queue a `push` job.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_proto::connector::SiteSettings;
use ferry_proto::job::JobKind;
use ferry_proto::package::Package;
use ferry_proto::push::{PushPayload, PushPreview, PushRequest};
use serde_json::{Value, json};

use super::auth::Admin;
use super::error::{Error, Result};
use super::extract::ApiJson;
use crate::AppState;
use crate::store::JobInsert;

pub async fn push(
    admin: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<Response> {
    let package = state
        .store
        .get_package(req.package_id)
        .await?
        .ok_or_else(|| {
            Error::bad(
                "unknown_package",
                format!("no package with id {}", req.package_id),
            )
        })?;
    let connector = state
        .store
        .get_connector(req.connector_id)
        .await?
        .ok_or_else(|| {
            Error::bad(
                "unknown_connector",
                format!("no connector with id {}", req.connector_id),
            )
        })?;
    let mut spec = base_spec(&package, &connector.site, admin.actor());
    if let Some(overrides) = &req.spec {
        if !overrides.is_object() {
            return Err(Error::bad("invalid_field", "`spec` must be an object"));
        }
        merge(&mut spec, overrides);
    }
    derive_content_location(&mut spec);
    if let Some(name) = spec["application"]["name"].as_str()
        && !ferry_proto::push::is_folder_name(name)
    {
        return Err(Error::bad(
            "invalid_spec",
            "application.name: must be usable as a folder name (the package unpacks to <share>\\<name>): no \\ / : * ? \" < > |, not . or .., no trailing dot or space",
        ));
    }
    let spec = ferry_sccm::PushSpec::from_json(&spec.to_string())
        .map_err(|e| Error::bad("invalid_spec", e.to_string()))?;
    let script = ferry_sccm::scripts::push_script(&spec)
        .map_err(|e| Error::bad("invalid_spec", e.to_string()))?;
    let spec_json = serde_json::to_value(&spec).map_err(anyhow::Error::from)?;
    if req.dry_run {
        let preview = PushPreview {
            spec: spec_json,
            script: ferry_sccm::generate(&script),
        };
        return Ok((StatusCode::OK, Json(preview)).into_response());
    }
    let payload = PushPayload {
        package_id: package.id,
        sha256: package.sha256.clone(),
        size: package.size,
        spec: spec_json,
    };
    let insert = JobInsert {
        connector_id: connector.id,
        kind: JobKind::Push,
        payload: serde_json::to_value(payload).map_err(anyhow::Error::from)?,
        not_before_ms: None,
        expires_at_ms: None,
        max_attempts: state.config.max_attempts,
    };
    let job = super::admin_jobs::queue_job(&state, admin.actor(), &insert).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

/// The specification the hub proposes: names, commands and detection from the package, site
/// paths and defaults from the connector, the rest from ConfigMgr's usual defaults. Missing
/// values stay `null`, so validation names exactly what the caller still has to supply.
fn base_spec(package: &Package, site: &SiteSettings, actor: &str) -> Value {
    let m = &package.metadata;
    let text = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    let name = m.get("package_name").and_then(Value::as_str);
    let now = time::OffsetDateTime::now_utc();
    let available_at = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    );
    json!({
        "site": {
            "site_code": site.site_code,
            "console_path": site.console_path,
            "share_path": site.share_path,
        },
        "application": {
            "name": name,
            "version": text("version"),
            "publisher": text("vendor"),
            "product_name": text("product"),
            "language": text("language"),
            "auto_install": true,
            "owner": actor,
            "description": null,
            "optional_reference": null,
            "folder": site.folder,
        },
        "deployment_type": {
            "name": null,
            "content_location": null,
            "distribution_point_group": site.distribution_point_group,
            "installer": text("installer"),
            "detection": text("detection"),
            "persist_in_cache": true,
            "install_command": text("install_command"),
            "uninstall_command": text("uninstall_command"),
            "slow_network": "download",
            "max_runtime_mins": 120,
            "estimated_runtime_mins": 0,
            "force_32bit": false,
            "admin_comment": null,
        },
        "deployment": {
            "collection": site.collection,
            "action": "install",
            "purpose": "available",
            "available_at": available_at,
            "deadline": null,
            "time_base": "utc",
        },
    })
}

/// The content location defaults to `<share>\\<application name>`, computed after the overrides so
/// that a renamed application gets its own folder.
fn derive_content_location(spec: &mut Value) {
    let share = spec
        .pointer("/site/share_path")
        .and_then(Value::as_str)
        .map(|s| s.trim_end_matches('\\').to_owned());
    let name = spec
        .pointer("/application/name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // An override may have replaced the section with something that is not an object; the
    // validation that follows names that field, so leave it be here.
    let Some(dt) = spec
        .get_mut("deployment_type")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if !dt.get("content_location").is_none_or(Value::is_null) {
        return;
    }
    if let (Some(share), Some(name)) = (share, name) {
        dt.insert(
            "content_location".into(),
            Value::String(format!("{share}\\{name}")),
        );
    }
}

/// Lays `overrides` over `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::merge;
    use serde_json::json;

    #[test]
    fn overrides_merge_objects_and_replace_values() {
        let mut base = json!({ "a": { "x": 1, "y": 2 }, "b": 3 });
        merge(&mut base, &json!({ "a": { "y": 20, "z": 30 }, "b": null }));
        assert_eq!(
            base,
            json!({ "a": { "x": 1, "y": 20, "z": 30 }, "b": null })
        );
    }
}
