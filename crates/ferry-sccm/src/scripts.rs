//! The three scripts the connector runs, built as typed [`Script`]s: push, inventory and
//! content-location lookup, plus the parser for their result lines.
//!
//! Why it exists: it is where ConfigMgr knowledge meets the push specification — which cmdlets,
//! in which order, with which parameters. Idempotency uses one pattern for every object:
//! look it up by its exact name (wildcards off), create it with the mandatory parameters if the
//! lookup found nothing, then set every property. A re-push therefore updates, a retry after a
//! crash completes, and the script needs a single kind of branch. After the deployment type,
//! the application is read again by model name (`Get-CMApplication -ModelName $app.ModelName`)
//! so that content, deployment and folder act on the latest revision.
//!
//! Errors: `$ErrorActionPreference = 'Stop'` ends the script at the first failing cmdlet, so the
//! last result line on stdout tells how far a push got (and a retry resumes safely).
//!
//! Result lines (stdout, one per step, `FERRY-RESULT ` + a compact JSON object):
//!
//! | script | `step` | other fields |
//! |---|---|---|
//! | all | `connected` | `site_code` |
//! | push | `application` | `ci_id`, `model_name`, `revision` |
//! | push | `deployment_type` | `ci_id`, `name` |
//! | push | `content` | `distribution_point_group` |
//! | push | `deployment` | `assignment_id`, `collection` |
//! | push | `folder` | `path`, `container_node_id` (only when a folder is given) |
//! | inventory | `folder` | `container_node_id`, `name`, `parent_container_node_id` |
//! | inventory | `folder_item` | `container_node_id`, `instance_key` (the model name) |
//! | inventory | `application` | `ci_id`, `model_name`, `name`, `sdm_package_xml` |
//! | content-location | `content_location` | `model_name` (requested), `ci_id`, `name`, `sdm_package_xml` (null when not found) |
//! | all | `done` | — |

use crate::cmdlets::Cmdlet;
use crate::script::{
    Call, Emit, Literal, Preference, RESULT_MARKER, Script, Statement, Target, Value, Var,
};
use crate::spec::{
    DeployAction, DeployPurpose, DetectionSpec, Installer, PushSpec, SpecError, TimeBase,
    folder_segments, format_datetime, parse_local_datetime,
};

fn var(name: &'static str) -> Var {
    Var::fixed(name)
}

fn assign(v: &Var, call: Call) -> Statement {
    Statement::Call {
        target: Target::Var(v.clone()),
        call,
    }
}

fn bare(call: Call) -> Statement {
    Statement::Call {
        target: Target::None,
        call,
    }
}

/// `$ErrorActionPreference = 'Stop'`, module import, site drive, and the `connected` line.
fn preamble(site_code: &str, console_path: &str, suppress_fast_warning: bool) -> Vec<Statement> {
    let mut s = vec![
        Statement::Preference {
            variable: Preference::ErrorActionPreference,
            value: Literal::Str("Stop".into()),
        },
        Statement::Utf8Output,
    ];
    if suppress_fast_warning {
        s.push(Statement::Preference {
            variable: Preference::CMPSSuppressFastNotUsedCheck,
            value: Literal::Bool(true),
        });
    }
    let module = format!(
        "{}\\ConfigurationManager.psd1",
        console_path.trim_end_matches('\\')
    );
    s.push(bare(
        Call::new(Cmdlet::SetExecutionPolicy)
            .string("ExecutionPolicy", "RemoteSigned")
            .string("Scope", "Process")
            .switch("Force"),
    ));
    s.push(bare(
        Call::new(Cmdlet::ImportModule).string("Name", &module),
    ));
    s.push(bare(
        Call::new(Cmdlet::SetLocation).string("Path", &format!("{site_code}:")),
    ));
    s.push(Statement::Emit(
        Emit::step("connected").field("site_code", Value::Str(site_code.to_owned())),
    ));
    s
}

use crate::spec::validate_site as check_site;

/// The push script for a validated specification.
pub fn push_script(spec: &PushSpec) -> Result<Script, SpecError> {
    crate::spec::validate(spec)?;
    let site = &spec.site.site_code;
    let a = &spec.application;
    let d = &spec.deployment_type;
    let dep = &spec.deployment;
    let app = var("app");
    let dt = var("dt");
    let deployment = var("deployment");
    let folder = var("folder");
    let mut s = preamble(site, &spec.site.console_path, false);

    // Application: exact-name lookup (wildcards off, so `[` or `*` in a name match literally).
    s.push(assign(
        &app,
        Call::new(Cmdlet::GetCMApplication)
            .string("Name", &a.name)
            .switch("DisableWildcardHandling")
            .switch("Fast"),
    ));
    s.push(Statement::IfNull {
        variable: app.clone(),
        call: Call::new(Cmdlet::NewCMApplication).string("Name", &a.name),
    });
    let mut set_app = Call::new(Cmdlet::SetCMApplication)
        .arg("InputObject", Value::Var(app.clone()))
        .string("Publisher", &a.publisher)
        .string("SoftwareVersion", &a.version)
        .string("LocalizedApplicationName", &a.product_name)
        .arg("AutoInstall", Value::Bool(a.auto_install))
        .opt_string("Owner", a.owner.as_deref())
        .opt_string("Description", a.description.as_deref())
        .opt_string("OptionalReference", a.optional_reference.as_deref());
    if let Some(lcid) = culture(&a.language).map(|c| c.1) {
        set_app = set_app.arg("DefaultLanguageId", Value::Int(lcid));
    }
    s.push(assign(&app, set_app.switch("PassThru")));
    s.push(Statement::Emit(
        Emit::step("application")
            .member("ci_id", &app, "CI_ID")
            .member("model_name", &app, "ModelName")
            .member("revision", &app, "SDMPackageVersion"),
    ));

    // Deployment type.
    let dt_name = spec.deployment_type_name();
    s.push(assign(
        &dt,
        Call::new(Cmdlet::GetCMDeploymentType)
            .arg("InputObject", Value::Var(app.clone()))
            .string("DeploymentTypeName", &dt_name)
            .switch("DisableWildcardHandling"),
    ));
    let (add, set) = match d.installer {
        Installer::Script => (
            Cmdlet::AddCMScriptDeploymentType,
            Cmdlet::SetCMScriptDeploymentType,
        ),
        Installer::Msi => (
            Cmdlet::AddCMMsiDeploymentType,
            Cmdlet::SetCMMsiDeploymentType,
        ),
    };
    let detection = |call: Call| match &d.detection {
        DetectionSpec::Script { language, text } => call
            .string(
                "ScriptLanguage",
                crate::spec::script_language_value(*language),
            )
            .string("ScriptText", text),
        DetectionSpec::MsiProductCode(code) => call.string("ProductCode", code),
    };
    let create = Call::new(add)
        .arg("InputObject", Value::Var(app.clone()))
        .string("DeploymentTypeName", &dt_name)
        .string("ContentLocation", &d.content_location)
        .string("InstallCommand", &d.install_command);
    s.push(Statement::IfNull {
        variable: dt.clone(),
        call: detection(create),
    });
    let mut update = Call::new(set)
        .arg("InputObject", Value::Var(dt.clone()))
        .string("ContentLocation", &d.content_location)
        .string("InstallCommand", &d.install_command)
        .opt_string("UninstallCommand", d.uninstall_command.as_deref());
    update = detection(update)
        .arg("CacheContent", Value::Bool(d.persist_in_cache))
        .string(
            "SlowNetworkDeploymentMode",
            crate::spec::slow_network_value(d.slow_network),
        )
        .arg("MaximumRuntimeMins", Value::Int(d.max_runtime_mins))
        .arg("EstimatedRuntimeMins", Value::Int(d.estimated_runtime_mins))
        .arg("Force32Bit", Value::Bool(d.force_32bit))
        .opt_string("Comment", d.admin_comment.as_deref());
    if let Some(tag) = culture(&a.language).map(|c| c.0) {
        update = update.string("AddLanguage", tag);
    }
    s.push(assign(&dt, update.switch("PassThru")));
    s.push(Statement::Emit(
        Emit::step("deployment_type")
            .member("ci_id", &dt, "CI_ID")
            .member("name", &dt, "LocalizedDisplayName"),
    ));

    // Re-read the application by its stable key: the object in `$app` is the revision from
    // before the deployment type was added, and content, deployment and folder must act on the
    // latest one.
    s.push(assign(
        &app,
        Call::new(Cmdlet::GetCMApplication)
            .arg("ModelName", Value::Member(app.clone(), "ModelName".into()))
            .switch("Fast"),
    ));

    // Content.
    s.push(bare(
        Call::new(Cmdlet::StartCMContentDistribution)
            .arg("InputObject", Value::Var(app.clone()))
            .string("DistributionPointGroupName", &d.distribution_point_group),
    ));
    s.push(Statement::Emit(Emit::step("content").field(
        "distribution_point_group",
        Value::Str(d.distribution_point_group.clone()),
    )));

    // Deployment: one per application and collection.
    s.push(assign(
        &deployment,
        Call::new(Cmdlet::GetCMApplicationDeployment)
            .arg("InputObject", Value::Var(app.clone()))
            .string("CollectionName", &dep.collection),
    ));
    let new_dep = Call::new(Cmdlet::NewCMApplicationDeployment)
        .arg("InputObject", Value::Var(app.clone()))
        .string("CollectionName", &dep.collection)
        .string(
            "DeployAction",
            match dep.action {
                DeployAction::Install => "Install",
                DeployAction::Uninstall => "Uninstall",
            },
        )
        .string(
            "DeployPurpose",
            match dep.purpose {
                DeployPurpose::Available => "Available",
                DeployPurpose::Required => "Required",
            },
        );
    // Validated above, so both parse; re-formatting pins the seconds.
    let times = |mut call: Call| {
        if let Some(t) = parse_local_datetime(&dep.available_at) {
            call = call.string("AvailableDateTime", &format_datetime(t));
        }
        if let Some(t) = dep.deadline.as_deref().and_then(parse_local_datetime) {
            call = call.string("DeadlineDateTime", &format_datetime(t));
        }
        call.string(
            "TimeBaseOn",
            match dep.time_base {
                TimeBase::Local => "LocalTime",
                TimeBase::Utc => "Utc",
            },
        )
    };
    s.push(Statement::IfNull {
        variable: deployment.clone(),
        call: times(new_dep),
    });
    // An existing deployment gets the new schedule. Action and purpose cannot be changed on a
    // deployment (Set-CMApplicationDeployment has no such parameters); changing them means
    // removing the deployment, which a push never does on its own.
    s.push(assign(
        &deployment,
        times(
            Call::new(Cmdlet::SetCMApplicationDeployment)
                .arg("InputObject", Value::Var(deployment.clone())),
        )
        .switch("PassThru"),
    ));
    s.push(Statement::Emit(
        Emit::step("deployment")
            .member("assignment_id", &deployment, "AssignmentID")
            .field("collection", Value::Str(dep.collection.clone())),
    ));

    // Folder: create each missing level, then move the application.
    if let Some(path) = &a.folder {
        let segments = folder_segments(path)?;
        if !segments.is_empty() {
            let mut parent = format!("{site}:\\Application");
            for segment in &segments {
                let here = format!("{parent}\\{segment}");
                s.push(assign(
                    &folder,
                    Call::new(Cmdlet::GetCMFolder).string("FolderPath", &here),
                ));
                s.push(Statement::IfNull {
                    variable: folder.clone(),
                    call: Call::new(Cmdlet::NewCMFolder)
                        .string("ParentFolderPath", &parent)
                        .string("Name", segment),
                });
                parent = here;
            }
            s.push(bare(
                Call::new(Cmdlet::MoveCMObject)
                    .string("FolderPath", &parent)
                    .arg("InputObject", Value::Var(app.clone())),
            ));
            s.push(Statement::Emit(
                Emit::step("folder")
                    .field("path", Value::Str(format!("/{}", segments.join("/"))))
                    .member("container_node_id", &folder, "ContainerNodeID"),
            ));
        }
    }
    s.push(Statement::Emit(Emit::step("done")));
    Ok(Script { statements: s })
}

fn wmi_namespace(site_code: &str) -> String {
    format!("root\\SMS\\site_{site_code}")
}

/// The inventory script: application folders, their members, and every application with its
/// SDMPackageXML. WMI filters are constants; nothing from data is ever put into a query.
pub fn inventory_script(site_code: &str, console_path: &str) -> Result<Script, SpecError> {
    check_site(site_code, console_path)?;
    let drive = var("drive");
    let nodes = var("nodes");
    let node = var("node");
    let items = var("items");
    let item = var("item");
    let apps = var("apps");
    let a = var("a");
    let mut s = preamble(site_code, console_path, true);
    s.push(assign(
        &drive,
        Call::new(Cmdlet::GetPSDrive)
            .string("Name", site_code)
            .string("PSProvider", "CMSite"),
    ));
    // Get-WmiObject (DCOM), not Get-CimInstance (WinRM by default): DCOM is what the console
    // itself uses to reach the SMS Provider, so it works wherever the console does.
    let cim = |class: &str| {
        Call::new(Cmdlet::GetWmiObject)
            .arg("ComputerName", Value::Member(drive.clone(), "Root".into()))
            .string("Namespace", &wmi_namespace(site_code))
            .string("Class", class)
            .string("Filter", "ObjectType = 6000")
    };
    s.push(assign(&nodes, cim("SMS_ObjectContainerNode")));
    s.push(Statement::Foreach {
        item: node.clone(),
        collection: nodes,
        emit: Emit::step("folder")
            .member("container_node_id", &node, "ContainerNodeID")
            .member("name", &node, "Name")
            .member("parent_container_node_id", &node, "ParentContainerNodeID"),
    });
    s.push(assign(&items, cim("SMS_ObjectContainerItem")));
    s.push(Statement::Foreach {
        item: item.clone(),
        collection: items,
        emit: Emit::step("folder_item")
            .member("container_node_id", &item, "ContainerNodeID")
            .member("instance_key", &item, "InstanceKey"),
    });
    s.push(assign(&apps, Call::new(Cmdlet::GetCMApplication)));
    s.push(Statement::Foreach {
        item: a.clone(),
        collection: apps,
        emit: Emit::step("application")
            .member("ci_id", &a, "CI_ID")
            .member("model_name", &a, "ModelName")
            .member("name", &a, "LocalizedDisplayName")
            .member("sdm_package_xml", &a, "SDMPackageXML"),
    });
    s.push(Statement::Emit(Emit::step("done")));
    Ok(Script { statements: s })
}

/// For import: each requested application's SDMPackageXML (which holds the content locations),
/// looked up by model name, the stable key the inventory returned.
pub fn content_location_script(
    site_code: &str,
    console_path: &str,
    model_names: &[String],
) -> Result<Script, SpecError> {
    check_site(site_code, console_path)?;
    let app = var("app");
    let mut s = preamble(site_code, console_path, true);
    for (i, model) in model_names.iter().enumerate() {
        let field = format!("model_names[{i}]");
        let valid = model.starts_with("ScopeId_")
            && model.contains("/Application_")
            && model.len() <= 200
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-/".contains(c));
        if !valid {
            return Err(SpecError::new(
                &field,
                "is not a model name like ScopeId_<guid>/Application_<guid>",
            ));
        }
        s.push(assign(
            &app,
            Call::new(Cmdlet::GetCMApplication).string("ModelName", model),
        ));
        s.push(Statement::Emit(
            Emit::step("content_location")
                .field("model_name", Value::Str(model.clone()))
                .member("ci_id", &app, "CI_ID")
                .member("name", &app, "LocalizedDisplayName")
                .member("sdm_package_xml", &app, "SDMPackageXML"),
        ));
    }
    s.push(Statement::Emit(Emit::step("done")));
    Ok(Script { statements: s })
}

/// A result line that is not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("result line {line} is not a JSON object: {message}")]
pub struct ResultLineError {
    pub line: usize,
    pub message: String,
}

/// The result objects of a script's stdout, in order. Lines without the marker (anything a
/// cmdlet may print) are ignored; `\r\n` is accepted.
pub fn result_lines(
    stdout: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, ResultLineError> {
    let mut out = Vec::new();
    for (i, raw) in stdout.lines().enumerate() {
        let Some(json) = raw.strip_prefix(RESULT_MARKER) else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| ResultLineError {
            line: i + 1,
            message: e.to_string(),
        })?;
        match value {
            serde_json::Value::Object(map) => out.push(map),
            _ => {
                return Err(ResultLineError {
                    line: i + 1,
                    message: "not an object".into(),
                });
            }
        }
    }
    Ok(out)
}

/// Culture name and LCID for the languages packages are usually labelled with, accepting the
/// culture name itself or its English display name with or without a space before `(`.
/// Unknown languages are kept in the application name only.
pub fn culture(language: &str) -> Option<(&'static str, u32)> {
    const CULTURES: &[(&str, &str, u32)] = &[
        ("en-US", "English(United States)", 1033),
        ("en-GB", "English(United Kingdom)", 2057),
        ("de-DE", "German(Germany)", 1031),
        ("fr-FR", "French(France)", 1036),
        ("es-ES", "Spanish(Spain)", 3082),
        ("it-IT", "Italian(Italy)", 1040),
        ("nl-NL", "Dutch(Netherlands)", 1043),
        ("pt-BR", "Portuguese(Brazil)", 1046),
        ("ru-RU", "Russian(Russia)", 1049),
        ("pl-PL", "Polish(Poland)", 1045),
        ("ja-JP", "Japanese(Japan)", 1041),
        ("zh-CN", "Chinese(Simplified, PRC)", 2052),
    ];
    let compact: String = language
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" (", "(");
    CULTURES
        .iter()
        .find(|(tag, name, _)| {
            tag.eq_ignore_ascii_case(language.trim()) || name.eq_ignore_ascii_case(&compact)
        })
        .map(|(tag, _, lcid)| (*tag, *lcid))
}
