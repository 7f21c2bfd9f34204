//! The `inventory` job: list the site's application folders, folder members and applications
//! (with their SDMPackageXML), and turn them into what the hub shows: each application with
//! its folder path, container ID, title resource ID, duplicate flag and parsed metadata.

use std::collections::HashMap;

use ferry_proto::inventory::{InventoryPayload, InventoryResult, SiteApplication, SiteFolder};
use ferry_proto::job::{JobKind, JobPayload, LeasedJob};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::backend::{ScriptBackend, Step};
use crate::config::ConnectorConfig;
use crate::executor::{Executor, JobContext, JobFailure, fail};

pub struct Inventory {
    scripts: ScriptBackend,
}

impl Inventory {
    pub fn new(config: &ConnectorConfig) -> Self {
        Inventory {
            scripts: ScriptBackend::new(config),
        }
    }
}

impl Executor for Inventory {
    fn kind(&self) -> JobKind {
        JobKind::Inventory
    }

    fn run<'a>(
        &'a self,
        job: &'a LeasedJob,
        ctx: JobContext,
    ) -> BoxFuture<'a, Result<Value, JobFailure>> {
        Box::pin(async move {
            let payload: &InventoryPayload = crate::executor::payload_as(job, |p| match p {
                JobPayload::Inventory(i) => Some(i),
                _ => None,
            })?;
            let script =
                ferry_sccm::scripts::inventory_script(&payload.site_code, &payload.console_path)
                    .map_err(fail)?;
            let text = ferry_sccm::generate(&script);
            ctx.progress(
                "inventory",
                Some(format!("listing site {}", payload.site_code)),
                Some(10),
            );
            let steps = self.scripts.run(&ctx, job.id, &text, |_| {}).await?;
            ctx.progress(
                "inventory",
                Some(format!(
                    "{} result lines; parsing SDMPackageXML",
                    steps.len()
                )),
                Some(60),
            );
            let steps_for_parse = steps;
            let site_code = payload.site_code.clone();
            let result = tokio::task::spawn_blocking(move || assemble(site_code, &steps_for_parse))
                .await
                .map_err(fail)?;
            ctx.progress(
                "inventory",
                Some(format!(
                    "{} folders, {} applications",
                    result.folders.len(),
                    result.applications.len()
                )),
                Some(100),
            );
            serde_json::to_value(result).map_err(fail)
        })
    }
}

fn text(step: &Step, key: &str) -> String {
    step.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn number(step: &Step, key: &str) -> u64 {
    step.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Builds the hub's view from the script's result lines.
pub fn assemble(site_code: String, steps: &[Step]) -> InventoryResult {
    let of = |kind: &'static str| {
        steps
            .iter()
            .filter(move |s| s.get("step").and_then(Value::as_str) == Some(kind))
    };
    let raw: Vec<(u64, String, u64)> = of("folder")
        .map(|s| {
            (
                number(s, "container_node_id"),
                text(s, "name"),
                number(s, "parent_container_node_id"),
            )
        })
        .collect();
    let by_id: HashMap<u64, (String, u64)> = raw
        .iter()
        .map(|(id, n, p)| (*id, (n.clone(), *p)))
        .collect();
    let path_of = |mut id: u64| {
        let mut parts = Vec::new();
        // Bounded by the number of folders, so a cycle in bad data cannot hang us.
        for _ in 0..=by_id.len() {
            match by_id.get(&id) {
                Some((name, parent)) => {
                    parts.push(name.clone());
                    id = *parent;
                }
                None => break,
            }
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    };
    let folders: Vec<SiteFolder> = raw
        .iter()
        .map(|(id, name, parent)| SiteFolder {
            container_node_id: *id,
            name: name.clone(),
            parent_container_node_id: *parent,
            path: path_of(*id),
        })
        .collect();
    let membership: HashMap<String, u64> = of("folder_item")
        .map(|s| (text(s, "instance_key"), number(s, "container_node_id")))
        .collect();
    let apps: Vec<&Step> = of("application").collect();
    let mut name_count: HashMap<String, usize> = HashMap::new();
    for app in &apps {
        *name_count.entry(text(app, "name")).or_default() += 1;
    }
    let applications = apps
        .iter()
        .map(|app| {
            let name = text(app, "name");
            let model_name = text(app, "model_name");
            let xml = text(app, "sdm_package_xml");
            let container_id = membership.get(&model_name).copied();
            let (metadata, parse_error) = match ferry_sccm::sdm::parse(xml.as_bytes()) {
                Ok(parsed) => (serde_json::to_value(parsed).ok(), None),
                Err(e) => (None, Some(e.to_string())),
            };
            SiteApplication {
                ci_id: number(app, "ci_id"),
                model_name,
                path: container_id.map(path_of).unwrap_or_else(|| "/".to_owned()),
                container_id,
                resource_id: title_resource_id(&xml),
                is_duplicated: name_count.get(&name).copied().unwrap_or(0) > 1,
                name,
                metadata,
                parse_error,
            }
        })
        .collect();
    InventoryResult {
        site_code,
        folders,
        applications,
    }
}

/// The `ResourceId` of the application's title (`<Title ResourceId="Res_…">`, the first titled
/// element carrying one: the application's own title precedes its deployment types'; the
/// per-language titles inside `DisplayInfo` carry none). ConfigMgr and the source system use it
/// to name an application across languages. A plain scan: the codec does not keep resource IDs.
fn title_resource_id(xml: &str) -> Option<String> {
    const MARK: &str = "<Title ResourceId=\"";
    let rest = &xml[xml.find(MARK)? + MARK.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(v: Value) -> Step {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn applications_get_their_folder_path_and_duplicates_are_flagged() {
        let steps = vec![
            step(
                json!({ "step": "folder", "container_node_id": 1, "name": "Test 1", "parent_container_node_id": 0 }),
            ),
            step(
                json!({ "step": "folder", "container_node_id": 2, "name": "Sub", "parent_container_node_id": 1 }),
            ),
            step(
                json!({ "step": "folder_item", "container_node_id": 2, "instance_key": "S/App_a" }),
            ),
            step(
                json!({ "step": "application", "ci_id": 10, "model_name": "S/App_a", "name": "A", "sdm_package_xml": "" }),
            ),
            step(
                json!({ "step": "application", "ci_id": 11, "model_name": "S/App_b", "name": "A", "sdm_package_xml": "" }),
            ),
        ];
        let inv = assemble("DEM".into(), &steps);
        assert_eq!(inv.folders[1].path, "/Test 1/Sub");
        assert_eq!(inv.applications[0].path, "/Test 1/Sub");
        assert_eq!(inv.applications[0].container_id, Some(2));
        assert_eq!(inv.applications[1].path, "/");
        assert!(inv.applications.iter().all(|a| a.is_duplicated));
        assert!(inv.applications[0].parse_error.is_some());
    }

    #[test]
    fn the_title_resource_id_is_found() {
        let xml = r#"<AppMgmtDigest><Application><DisplayInfo><Info><Title>FileZilla</Title></Info></DisplayInfo><Title ResourceId="Res_810274514">FileZilla</Title></Application></AppMgmtDigest>"#;
        assert_eq!(title_resource_id(xml).as_deref(), Some("Res_810274514"));
    }
}
