//! The push specification: everything one push to ConfigMgr needs (PRODUCT.md W3), as the hub
//! stores it in a job and the connector receives it.
//!
//! Why it exists: validation happens here, once, before any script exists. Field names are the
//! issue's (`site`, `application`, `deployment_type`, `deployment`); unknown fields are errors,
//! and every error names the field (`deployment.deadline`), because the person fixing a spec
//! needs the field, not a line number in generated PowerShell.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSpec {
    pub site: SiteSpec,
    pub application: ApplicationSpec,
    pub deployment_type: DeploymentTypeSpec,
    pub deployment: DeploymentSpec,
}

/// Where the ConfigMgr console is and which site to drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    /// Three letters or digits, e.g. `DEM`.
    pub site_code: String,
    /// The console's `bin` folder holding `ConfigurationManager.psd1`.
    pub console_path: String,
    /// The sources share the connector unpacks packages to.
    pub share_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationSpec {
    /// The package name, used as the application name (`New-CMApplication -Name`).
    pub name: String,
    pub version: String,
    /// The vendor (`-Publisher`).
    pub publisher: String,
    /// The product's own name, shown in Software Center (`-LocalizedApplicationName`).
    pub product_name: String,
    /// A culture name (`en-US`) or its English display name (`English(United States)`).
    pub language: String,
    /// Allow installing from a task sequence without a deployment.
    #[serde(default)]
    pub auto_install: bool,
    /// Administrative owner; the hub fills in the requesting user's name.
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub optional_reference: Option<String>,
    /// Console folder, e.g. `Applications/Test 1` (the leading `Applications` is optional).
    #[serde(default)]
    pub folder: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentTypeSpec {
    /// Defaults to `<application name>_DT`.
    #[serde(default)]
    pub name: Option<String>,
    /// UNC folder of the sources (for an MSI installer, the path of the `.msi`).
    pub content_location: String,
    pub distribution_point_group: String,
    pub installer: Installer,
    pub detection: DetectionSpec,
    #[serde(default)]
    pub persist_in_cache: bool,
    pub install_command: String,
    #[serde(default)]
    pub uninstall_command: Option<String>,
    #[serde(default)]
    pub slow_network: SlowNetwork,
    #[serde(default = "default_max_runtime")]
    pub max_runtime_mins: u32,
    #[serde(default)]
    pub estimated_runtime_mins: u32,
    /// Run the installer as a 32-bit process on 64-bit clients.
    #[serde(default)]
    pub force_32bit: bool,
    #[serde(default)]
    pub admin_comment: Option<String>,
}

fn default_max_runtime() -> u32 {
    120
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Installer {
    Script,
    Msi,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DetectionSpec {
    Script {
        language: ScriptLanguage,
        text: String,
    },
    MsiProductCode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptLanguage {
    #[serde(alias = "PowerShell")]
    Powershell,
    #[serde(alias = "VBScript")]
    Vbscript,
    #[serde(alias = "JavaScript")]
    Javascript,
}

impl ScriptLanguage {
    /// The `-ScriptLanguage` value.
    pub fn cmdlet_value(self) -> &'static str {
        match self {
            ScriptLanguage::Powershell => "PowerShell",
            ScriptLanguage::Vbscript => "VBScript",
            ScriptLanguage::Javascript => "JavaScript",
        }
    }
}

/// What a client does when its distribution point is on a slow network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowNetwork {
    #[default]
    Download,
    DoNothing,
    /// "Download content from distribution point and run locally": ConfigMgr's `Download`.
    DownloadContentForLocal,
}

impl SlowNetwork {
    /// The `-SlowNetworkDeploymentMode` value (the cmdlet knows only two).
    pub fn cmdlet_value(self) -> &'static str {
        match self {
            SlowNetwork::Download | SlowNetwork::DownloadContentForLocal => "Download",
            SlowNetwork::DoNothing => "DoNothing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    pub collection: String,
    pub action: DeployAction,
    pub purpose: DeployPurpose,
    /// `YYYY-MM-DDTHH:MM[:SS]`, read in `time_base`.
    pub available_at: String,
    #[serde(default)]
    pub deadline: Option<String>,
    #[serde(default)]
    pub time_base: TimeBase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployAction {
    Install,
    Uninstall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployPurpose {
    Available,
    Required,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBase {
    #[default]
    Local,
    Utc,
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

impl PushSpec {
    /// Parses and validates JSON; errors name the field (`deployment.purpose`).
    pub fn from_json(text: &str) -> Result<PushSpec, SpecError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let spec: PushSpec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "spec".to_owned() } else { path };
            SpecError {
                field,
                message: e.into_inner().to_string(),
            }
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks everything ConfigMgr or the script would otherwise trip on.
    pub fn validate(&self) -> Result<(), SpecError> {
        let s = &self.site;
        validate_site(&s.site_code, &s.console_path)?;
        line("site.share_path", &s.share_path, 1024)?;

        let a = &self.application;
        line("application.name", &a.name, MAX_NAME)?;
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

        let d = &self.deployment_type;
        opt_line("deployment_type.name", d.name.as_deref(), MAX_NAME)?;
        if d.name.is_none() && self.deployment_type_name().chars().count() > MAX_NAME {
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

        let dep = &self.deployment;
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

    /// The deployment type name, defaulted.
    pub fn deployment_type_name(&self) -> String {
        self.deployment_type
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_DT", self.application.name))
    }
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
