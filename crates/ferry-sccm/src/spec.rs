//! The push specification: everything one push to ConfigMgr needs (PRODUCT.md W3), as the hub
//! stores it in a job and the connector receives it.
//!
//! Why it exists: validation happens here, once, before any script exists. Field names are the
//! issue's (`site`, `application`, `deployment_type`, `deployment`); unknown fields are errors,
//! and every error names the field (`deployment.deadline`), because the person fixing a spec
//! needs the field, not a line number in generated PowerShell.

use std::fmt;

use ferry_proto::connector::SiteSettings;
use ferry_proto::package::PackageMetadata;
pub use ferry_proto::push::{
    ApplicationSpec, DEFAULT_MAX_RUNTIME_MINS, DeployAction, DeployPurpose, DeploymentSpec,
    DeploymentTypeSpec, DetectionSpec, Installer, PushSpec, ScriptLanguage, SiteSpec, SlowNetwork,
    TimeBase,
};
use serde_json::Value;

/// The `-ScriptLanguage` value.
pub fn script_language_value(language: ScriptLanguage) -> &'static str {
    match language {
        ScriptLanguage::Powershell => "PowerShell",
        ScriptLanguage::Vbscript => "VBScript",
        ScriptLanguage::Javascript => "JavaScript",
    }
}

/// The `-SlowNetworkDeploymentMode` value (the cmdlet knows only two; "download content for
/// local" is ConfigMgr's `Download`).
pub fn slow_network_value(mode: SlowNetwork) -> &'static str {
    match mode {
        SlowNetwork::Download | SlowNetwork::DownloadContentForLocal => "Download",
        SlowNetwork::DoNothing => "DoNothing",
    }
}

/// An invalid specification: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub fn new(field: &str, message: impl fmt::Display) -> Self {
        SpecError {
            field: field.to_owned(),
            message: message.to_string(),
        }
    }
}

/// ConfigMgr's limit for names (`-Name`, `-LocalizedName`, DT names, folder names).
pub const MAX_NAME: usize = 256;
/// ConfigMgr's limit for descriptions and comments.
pub const MAX_TEXT: usize = 2048;

/// Parses and validates JSON; errors name the field (`deployment.purpose`).
pub fn parse(text: &str) -> Result<PushSpec, SpecError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let spec: PushSpec = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "spec".to_owned() } else { path };
        SpecError {
            field,
            message: e.into_inner().to_string(),
        }
    })?;
    validate(&spec)?;
    Ok(spec)
}

/// Checks everything ConfigMgr or the script would otherwise trip on.
pub fn validate(spec: &PushSpec) -> Result<(), SpecError> {
    let s = &spec.site;
    validate_site(&s.site_code, &s.console_path)?;
    line("site.share_path", &s.share_path, 1024)?;

    let a = &spec.application;
    line("application.name", &a.name, MAX_NAME)?;
    if !ferry_proto::push::is_folder_name(&a.name) {
        return Err(SpecError::new(
            "application.name",
            "must be usable as a folder name (the package unpacks to <share>\\<name>): no \\ / : * ? \" < > |, not . or .., no trailing dot or space",
        ));
    }
    line("application.version", &a.version, MAX_NAME)?;
    line("application.publisher", &a.publisher, MAX_NAME)?;
    line("application.product_name", &a.product_name, MAX_NAME)?;
    line("application.language", &a.language, MAX_NAME)?;
    opt_line("application.owner", a.owner.as_deref(), MAX_NAME)?;
    opt_text(
        "application.description",
        a.description.as_deref(),
        MAX_TEXT,
    )?;
    opt_line(
        "application.optional_reference",
        a.optional_reference.as_deref(),
        MAX_NAME,
    )?;
    if let Some(folder) = &a.folder {
        folder_segments(folder)?;
    }

    let d = &spec.deployment_type;
    opt_line("deployment_type.name", d.name.as_deref(), MAX_NAME)?;
    if d.name.is_none() && spec.deployment_type_name().chars().count() > MAX_NAME {
        return Err(SpecError::new(
            "deployment_type.name",
            format!(
                "is not given and the default (application.name + \"_DT\") is longer than {MAX_NAME} characters"
            ),
        ));
    }
    line(
        "deployment_type.content_location",
        &d.content_location,
        1024,
    )?;
    line(
        "deployment_type.distribution_point_group",
        &d.distribution_point_group,
        MAX_NAME,
    )?;
    line("deployment_type.install_command", &d.install_command, 8191)?;
    opt_line(
        "deployment_type.uninstall_command",
        d.uninstall_command.as_deref(),
        8191,
    )?;
    opt_text(
        "deployment_type.admin_comment",
        d.admin_comment.as_deref(),
        MAX_TEXT,
    )?;
    match &d.detection {
        DetectionSpec::Script { text, .. } => {
            text_field("deployment_type.detection.script.text", text, 1 << 20)?;
            if text.trim().is_empty() {
                return Err(SpecError::new(
                    "deployment_type.detection.script.text",
                    "is empty",
                ));
            }
        }
        DetectionSpec::MsiProductCode(code) => {
            if !is_braced_guid(code) {
                return Err(SpecError::new(
                    "deployment_type.detection.msi_product_code",
                    format!(
                        "{code:?} is not a product code like {{23170F69-40C1-2702-1900-000001000000}}"
                    ),
                ));
            }
        }
    }
    // ConfigMgr's console accepts 15 to 720 minutes for the maximum run time.
    if !(15..=720).contains(&d.max_runtime_mins) {
        return Err(SpecError::new(
            "deployment_type.max_runtime_mins",
            "must be between 15 and 720",
        ));
    }
    if d.estimated_runtime_mins > d.max_runtime_mins {
        return Err(SpecError::new(
            "deployment_type.estimated_runtime_mins",
            "must not exceed max_runtime_mins",
        ));
    }

    let dep = &spec.deployment;
    line("deployment.collection", &dep.collection, MAX_NAME)?;
    let available = parse_local_datetime(&dep.available_at).ok_or_else(|| {
        SpecError::new("deployment.available_at", "expected YYYY-MM-DDTHH:MM[:SS]")
    })?;
    if let Some(deadline) = &dep.deadline {
        let deadline = parse_local_datetime(deadline).ok_or_else(|| {
            SpecError::new("deployment.deadline", "expected YYYY-MM-DDTHH:MM[:SS]")
        })?;
        if deadline <= available {
            return Err(SpecError::new(
                "deployment.deadline",
                "must be after available_at",
            ));
        }
    }
    Ok(())
}

/// The push specification Ferry proposes for a package on a site, with the caller's
/// `overrides` (a partial specification) laid over it, validated.
///
/// Names, commands and detection come from the package, paths and defaults from the
/// connector's site settings, the rest from ConfigMgr's usual defaults (available now, in UTC;
/// 120 minutes maximum run time; persist in cache; auto-install). What nobody said stays empty,
/// so the validation error names exactly what the caller still has to supply. The content
/// location defaults to `<share>\<application name>`, computed after the overrides so that a
/// renamed application gets its own folder.
pub fn propose(
    meta: &PackageMetadata,
    site: &SiteSettings,
    owner: &str,
    now: time::OffsetDateTime,
    overrides: Option<&Value>,
) -> Result<PushSpec, SpecError> {
    let p = &meta.proposal;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let base = PushSpec {
        site: SiteSpec {
            site_code: text(&site.site_code),
            console_path: text(&site.console_path),
            share_path: text(&site.share_path),
        },
        application: ApplicationSpec {
            name: text(&p.package_name),
            version: text(&p.version),
            publisher: text(&p.vendor),
            product_name: text(&p.product),
            language: text(&p.language),
            auto_install: true,
            owner: Some(owner.to_owned()),
            description: None,
            optional_reference: None,
            folder: site.folder.clone(),
        },
        deployment_type: DeploymentTypeSpec {
            name: None,
            content_location: String::new(),
            distribution_point_group: text(&site.distribution_point_group),
            installer: p.installer.unwrap_or(Installer::Script),
            // An empty script is refused by validation with the field named, unless the
            // caller supplies a detection method.
            detection: p.detection.clone().unwrap_or(DetectionSpec::Script {
                language: ScriptLanguage::Powershell,
                text: String::new(),
            }),
            persist_in_cache: true,
            install_command: text(&p.install_command),
            uninstall_command: p.uninstall_command.clone(),
            slow_network: SlowNetwork::Download,
            max_runtime_mins: DEFAULT_MAX_RUNTIME_MINS,
            estimated_runtime_mins: 0,
            force_32bit: false,
            admin_comment: None,
        },
        deployment: DeploymentSpec {
            collection: text(&site.collection),
            action: DeployAction::Install,
            purpose: DeployPurpose::Available,
            available_at: format_minute(now),
            deadline: None,
            time_base: TimeBase::Utc,
        },
    };
    let mut json = serde_json::to_value(&base).map_err(|e| SpecError::new("spec", e))?;
    let content_overridden = match overrides {
        None => false,
        Some(o) => {
            if !o.is_object() {
                return Err(SpecError::new("spec", "must be an object"));
            }
            merge(&mut json, o, "");
            o.pointer("/deployment_type/content_location")
                .is_some_and(|v| !v.is_null())
        }
    };
    if !content_overridden {
        let share = json
            .pointer("/site/share_path")
            .and_then(Value::as_str)
            .map(|s| s.trim_end_matches('\\').to_owned())
            .unwrap_or_default();
        let name = json
            .pointer("/application/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(dt) = json
            .get_mut("deployment_type")
            .and_then(Value::as_object_mut)
            && !share.is_empty()
            && !name.is_empty()
        {
            dt.insert(
                "content_location".into(),
                Value::String(format!("{share}\\{name}")),
            );
        }
    }
    parse(&json.to_string())
}

/// Fields replaced whole by an override rather than merged key by key: each is an enum whose
/// variant is its one key, so merging `{"msi_product_code": …}` into `{"script": …}` would
/// give an object that is neither.
const REPLACED_WHOLE: &[&str] = &["/deployment_type/detection"];

/// Lays `overrides` over `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, overrides: &Value, path: &str) {
    match (base, overrides) {
        (Value::Object(b), Value::Object(o)) if !REPLACED_WHOLE.contains(&path) => {
            for (k, v) in o {
                let child = format!("{path}/{k}");
                merge(b.entry(k.clone()).or_insert(Value::Null), v, &child);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn format_minute(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The two site fields every script needs.
pub fn validate_site(site_code: &str, console_path: &str) -> Result<(), SpecError> {
    if site_code.len() != 3 || !site_code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SpecError::new(
            "site.site_code",
            "must be three letters or digits",
        ));
    }
    line("site.console_path", console_path, 1024)
}

/// The push of source document 000, case 1 (FileZilla to the demo site): the example every
/// test, snapshot and demo starts from.
pub fn filezilla_example() -> PushSpec {
    let name = "TimKosse_FileZilla_3.46.3_English(United States)";
    let share = format!("\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming\\{name}");
    PushSpec {
        site: SiteSpec {
            site_code: "DEM".into(),
            console_path:
                "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin".into(),
            share_path: "\\\\WIN-2HDJCBHRRVB\\Sources$\\incoming".into(),
        },
        application: ApplicationSpec {
            name: name.into(),
            version: "3.46.3".into(),
            publisher: "Tim Kosse".into(),
            product_name: "FileZilla".into(),
            language: "English(United States)".into(),
            auto_install: true,
            owner: Some("John Doe".into()),
            description: None,
            optional_reference: None,
            folder: Some("Applications/Test 1".into()),
        },
        deployment_type: DeploymentTypeSpec {
            name: Some(format!("{name}_DT")),
            content_location: share,
            distribution_point_group: "Demo Distribution Group".into(),
            installer: Installer::Script,
            detection: DetectionSpec::Script {
                language: ScriptLanguage::Powershell,
                text: format!(
                    "Get-ItemProperty \"HKLM:Software\\{name}\\TimKosse\\FileZilla\\3.46.3\" -ErrorAction SilentlyContinue | Where {{ $_.IsInstalled -eq 1 }}"
                ),
            },
            persist_in_cache: true,
            install_command: "Deploy-Application.exe -DeploymentType Install".into(),
            uninstall_command: Some("Deploy-Application.exe -DeploymentType Uninstall".into()),
            slow_network: SlowNetwork::Download,
            max_runtime_mins: 120,
            estimated_runtime_mins: 0,
            force_32bit: false,
            admin_comment: None,
        },
        deployment: DeploymentSpec {
            collection: "Demo devices".into(),
            action: DeployAction::Install,
            purpose: DeployPurpose::Available,
            available_at: "2020-02-02T00:00".into(),
            deadline: Some("2020-02-02T18:00".into()),
            time_base: TimeBase::Local,
        },
    }
}

/// The console folder as path segments below the `Application` node: `Applications/Test 1`,
/// `/Test 1` and `Test 1` all give `["Test 1"]`.
pub fn folder_segments(folder: &str) -> Result<Vec<String>, SpecError> {
    const FIELD: &str = "application.folder";
    line(FIELD, folder, 1024)?;
    let mut parts: Vec<&str> = folder.split('/').collect();
    if parts.first() == Some(&"") {
        parts.remove(0);
    }
    if parts.first().is_some_and(|p| {
        p.eq_ignore_ascii_case("Applications") || p.eq_ignore_ascii_case("Application")
    }) {
        parts.remove(0);
    }
    let mut out = Vec::new();
    for part in parts {
        if part.trim().is_empty() {
            return Err(SpecError::new(FIELD, "has an empty folder name"));
        }
        if part.contains('\\') {
            return Err(SpecError::new(
                FIELD,
                "folder names cannot contain `\\` (it separates console folder paths)",
            ));
        }
        if part.chars().count() > MAX_NAME {
            return Err(SpecError::new(
                FIELD,
                format!("a folder name is longer than {MAX_NAME} characters"),
            ));
        }
        out.push(part.to_owned());
    }
    Ok(out)
}

/// `YYYY-MM-DDTHH:MM[:SS]` → the generator's `YYYY-MM-DDTHH:MM:SS`.
pub fn parse_local_datetime(s: &str) -> Option<time::PrimitiveDateTime> {
    let long = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(s, &long)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &short))
        .ok()
}

pub fn format_datetime(t: time::PrimitiveDateTime) -> String {
    let long = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    t.format(&long).unwrap_or_default()
}

fn is_braced_guid(s: &str) -> bool {
    s.len() == 38
        && s.starts_with('{')
        && s.ends_with('}')
        && uuid::Uuid::parse_str(&s[1..37]).is_ok()
        && s[1..37].chars().filter(|c| *c == '-').count() == 4
}

/// Characters ConfigMgr cannot store: it keeps text in XML 1.0 (SDMPackageXML) and SQL, so
/// control characters (other than tab/CR/LF in multi-line text) and the non-characters
/// U+FFFE/U+FFFF are refused.
fn bad_char(c: char, multiline: bool) -> bool {
    if multiline && matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

fn check_chars(field: &str, value: &str, max: usize, multiline: bool) -> Result<(), SpecError> {
    if let Some((i, c)) = value
        .chars()
        .enumerate()
        .find(|(_, c)| bad_char(*c, multiline))
    {
        return Err(SpecError::new(
            field,
            format!(
                "contains the {} U+{:04X} at position {}, which ConfigMgr cannot store",
                if c.is_control() {
                    "control character"
                } else {
                    "non-character"
                },
                c as u32,
                i + 1
            ),
        ));
    }
    let n = value.chars().count();
    if n > max {
        return Err(SpecError::new(
            field,
            format!("is {n} characters long; the limit is {max}"),
        ));
    }
    Ok(())
}

/// A required one-line value.
fn line(field: &str, value: &str, max: usize) -> Result<(), SpecError> {
    if value.trim().is_empty() {
        return Err(SpecError::new(field, "is empty"));
    }
    check_chars(field, value, max, false)
}

fn opt_line(field: &str, value: Option<&str>, max: usize) -> Result<(), SpecError> {
    value.map_or(Ok(()), |v| line(field, v, max))
}

/// Multi-line text (descriptions, comments, scripts): tab, CR and LF allowed.
fn text_field(field: &str, value: &str, max: usize) -> Result<(), SpecError> {
    check_chars(field, value, max, true)
}

fn opt_text(field: &str, value: Option<&str>, max: usize) -> Result<(), SpecError> {
    value.map_or(Ok(()), |v| text_field(field, v, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_merge_objects_and_replace_values() {
        let mut base = json!({ "a": { "x": 1, "y": 2 }, "b": 3 });
        merge(
            &mut base,
            &json!({ "a": { "y": 20, "z": 30 }, "b": null }),
            "",
        );
        assert_eq!(
            base,
            json!({ "a": { "x": 1, "y": 20, "z": 30 }, "b": null })
        );
    }

    #[test]
    fn a_detection_override_replaces_the_proposed_method() {
        let mut base = json!({ "deployment_type": { "detection": { "script": { "text": "x" } } } });
        let code = "{23170F69-40C1-2702-1900-000001000000}";
        merge(
            &mut base,
            &json!({ "deployment_type": { "detection": { "msi_product_code": code } } }),
            "",
        );
        assert_eq!(
            base,
            json!({ "deployment_type": { "detection": { "msi_product_code": code } } })
        );
    }

    #[test]
    fn what_nobody_said_is_named_by_the_error() {
        let err = propose(
            &PackageMetadata::default(),
            &SiteSettings::default(),
            "alice",
            time::OffsetDateTime::UNIX_EPOCH,
            None,
        )
        .unwrap_err();
        assert_eq!(err.field, "site.site_code");
    }

    #[test]
    fn the_content_location_follows_a_renamed_application() {
        let example = filezilla_example();
        let mut meta = PackageMetadata::default();
        let p = &mut meta.proposal;
        p.package_name = Some(example.application.name.clone());
        p.version = Some("3.46.3".into());
        p.vendor = Some("Tim Kosse".into());
        p.product = Some("FileZilla".into());
        p.language = Some("English(United States)".into());
        p.install_command = Some("Deploy-Application.exe".into());
        p.detection = Some(example.deployment_type.detection.clone());
        let site = SiteSettings {
            site_code: Some("DEM".into()),
            console_path: Some("C:\\bin".into()),
            share_path: Some("\\\\srv\\src\\".into()),
            distribution_point_group: Some("DPs".into()),
            collection: Some("All".into()),
            folder: None,
        };
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let spec = propose(&meta, &site, "alice", now, None).unwrap();
        assert_eq!(
            spec.deployment_type.content_location,
            format!("\\\\srv\\src\\{}", example.application.name)
        );
        assert_eq!(spec.application.owner.as_deref(), Some("alice"));
        let renamed = json!({ "application": { "name": "Other" } });
        let spec = propose(&meta, &site, "alice", now, Some(&renamed)).unwrap();
        assert_eq!(spec.deployment_type.content_location, "\\\\srv\\src\\Other");
    }
}
