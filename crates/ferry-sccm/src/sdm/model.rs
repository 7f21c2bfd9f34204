//! The typed view of an SDMPackageXML document.
//!
//! Conventions (they make `parse(to_xml(a)) == a` easy to state):
//!
//! * Text that the document may carry as an empty element *or* leave out altogether
//!   (`<Publisher />` vs. no `Publisher`) is a `String`, empty meaning "absent or empty":
//!   ConfigMgr itself treats both the same.
//! * Command lines and other values where "not set" differs from "set to something" are
//!   `Option<String>`; the parser maps an empty element to `None`, so a normalised value is
//!   never `Some("")`.
//! * Base64 payloads (icons) are never kept; only the fact that an icon exists
//!   ([`Application::icon_present`]).

use serde::{Deserialize, Serialize};

/// One application: the `Application` element plus its full `DeploymentType` definitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    /// `AuthoringScopeId`, e.g. `ScopeId_FAA1136B-8C9D-41AC-98A5-926609F05C60`.
    pub scope_id: String,
    /// `LogicalName`, e.g. `Application_1142d387-45ff-4d7e-b4af-8a460818d7e7`.
    pub logical_name: String,
    /// The `Version` attribute: the CI revision, bumped by the provider on every change.
    pub revision: u32,
    /// Admin (non-localised) `Title` (`New-CMApplication -Name`).
    pub title: String,
    /// Admin `Publisher`.
    pub publisher: String,
    /// Admin `SoftwareVersion`.
    pub version: String,
    /// Admin `Description`.
    pub description: String,
    /// Admin `CustomId` (`-OptionalReference`).
    pub custom_id: String,
    /// Admin `ReleaseDate`, kept verbatim (the vectors use the site's locale, e.g. `4/19/2017`).
    pub release_date: String,
    /// `DisplayInfo/@DefaultLanguage`, e.g. `en-US`.
    pub default_language: String,
    /// `DisplayInfo/Info`, one per language (Software Center texts).
    pub localized: Vec<LocalizedInfo>,
    /// `AutoInstall` ("allow this application to be installed from a task sequence").
    pub auto_install: bool,
    /// `Owners/User/@Id` (logon names).
    pub owners: Vec<String>,
    /// `Contacts/User/@Id` (logon names).
    pub contacts: Vec<String>,
    /// True when the document references or carries an icon. The payload itself is dropped,
    /// so [`to_xml`](crate::sdm::to_xml) never writes an icon and a round trip clears this.
    pub icon_present: bool,
    /// Full deployment type definitions, in priority order (the order of the
    /// `Application/DeploymentTypes` references).
    pub deployment_types: Vec<DeploymentType>,
}

/// `DisplayInfo/Info`: the texts Software Center shows for one language.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalizedInfo {
    /// `@Language`, e.g. `fr-FR`.
    pub language: String,
    pub title: String,
    pub publisher: String,
    pub version: String,
    pub description: String,
    pub release_date: String,
    /// `Tags/Tag` (`-Keyword`; inferred from a real sample).
    pub keywords: Vec<String>,
    /// `UserCategories/Tag`.
    pub user_categories: Vec<String>,
    /// `InfoUrl` (`-UserDocumentation`). Element name not confirmed by any vector.
    pub info_url: String,
    /// `InfoUrlText` (`-LinkText`). Element name not confirmed by any vector.
    pub info_url_text: String,
    /// `PrivacyUrl` (`-PrivacyUrl`). Element name not confirmed by any vector.
    pub privacy_url: String,
}

/// One full `DeploymentType` definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentType {
    pub scope_id: String,
    /// `DeploymentType_<guid>`.
    pub logical_name: String,
    /// The DT's own `Version` attribute.
    pub revision: u32,
    /// `Title` (the DT name).
    pub title: String,
    /// `Description` (the administrator comment).
    pub admin_comment: String,
    /// `Technology` as written (`Script`, `MSI`, `WebApp`, `Android`, `WinPhone8`, …). Unknown
    /// values are kept verbatim, never an error.
    pub technology: String,
    /// `Installer/Contents/Content/Location` (UNC source folders), in document order.
    pub content_locations: Vec<String>,
    /// `Content/File` entries of all contents, in document order (names decoded; the
    /// generator writes them all under the first content).
    pub content_files: Vec<ContentFile>,
    /// `InstallAction` `InstallCommandLine` (falls back to `CustomData/InstallCommandLine`).
    pub install_command: Option<String>,
    /// `InstallAction` `WorkingDirectory`.
    pub install_working_directory: Option<String>,
    /// `UninstallAction` `InstallCommandLine` (sic; falls back to `CustomData/UninstallCommandLine`).
    pub uninstall_command: Option<String>,
    /// `UninstallAction` `WorkingDirectory`.
    pub uninstall_working_directory: Option<String>,
    /// `System`, `User` or `Any`.
    pub execution_context: Option<String>,
    /// `Some(true)`: only when a user is logged on; `Some(false)`: only when no user is logged
    /// on; `None`: whether or not a user is logged on.
    pub requires_log_on: Option<bool>,
    /// `RequiresUserInteraction` ("allow users to see and interact").
    pub requires_user_interaction: bool,
    /// `Hidden`, `Normal`, `Minimized`, `Maximized`.
    pub user_interaction_mode: Option<String>,
    /// `BasedOnExitCode`, `NoAction`, `ProgramReboot`, `ForceReboot`.
    pub post_install_behavior: Option<String>,
    /// `MaxExecuteTime` in minutes.
    pub max_run_time_mins: Option<u32>,
    /// `ExecuteTime` in minutes.
    pub estimated_run_time_mins: Option<u32>,
    /// `RunAs32Bit` of the install action (`-Force32Bit`).
    pub run_as_32bit: bool,
    /// `InstallAction` arguments without a field of their own (e.g. `TargetUrl` of a web
    /// app, `Package` of an Android app, `RequiresReboot`), in document order. Array-typed
    /// arguments (`Int32[]`, `String[]`) other than the exit-code lists are not kept.
    pub other_install_args: Vec<ActionArg>,
    /// How the client decides whether the DT is installed.
    pub detection: Detection,
    /// `CustomData/ExitCodes` (falls back to the `*ExitCodes` action args).
    pub exit_codes: Vec<ExitCode>,
    /// `Requirements/Rule`.
    pub requirements: Vec<RequirementRule>,
    /// `Dependencies/DeploymentTypeRule` (dependency groups).
    pub dependencies: Vec<DependencyGroup>,
    /// `Supersedes/DeploymentTypeRule` (same shape as dependencies; no real sample seen).
    pub supersedes: Vec<DependencyGroup>,
}

/// One `Args/Arg` of an action: `<Arg Name="TargetUrl" Type="String">https://…</Arg>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionArg {
    pub name: String,
    /// `String`, `Boolean`, `Int32`, …
    pub arg_type: String,
    pub value: String,
}

/// One `Content/File` entry (file name relative to the content location, size in bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentFile {
    pub name: String,
    pub size: u64,
}

/// An exit code and its class (`Success`, `SoftReboot`, `HardReboot`, `FastRetry`, `Failure`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitCode {
    pub code: i64,
    pub class: String,
}

/// Detection method of a deployment type.
// One value per deployment type: boxing the large variant would buy nothing but noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detection {
    /// Windows Installer product code (`DetectAction/Provider = MSI`).
    MsiProductCode { product_code: String },
    /// A script (`DetectAction/Provider = Script`).
    Script {
        /// `PowerShell`, `VBScript` or `JavaScript`.
        language: String,
        body: String,
        run_as_32bit: bool,
    },
    /// Clause-based detection (`EnhancedDetectionMethod`).
    Enhanced {
        settings: Vec<DetectionSetting>,
        /// The rule combining the settings; `None` if the document has no rule.
        rule: Option<Rule>,
    },
    /// No detection (web apps, store apps, or a document without one).
    #[default]
    None,
}

/// One setting of an `EnhancedDetectionMethod/Settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DetectionSetting {
    /// `SimpleSetting` with a `RegistryDiscoverySource`.
    Registry {
        logical_name: String,
        /// `Version`, `String`, `Int64`, `Boolean`, …
        data_type: String,
        /// `HKEY_LOCAL_MACHINE`, …
        hive: String,
        key: String,
        /// Empty for the key's default value.
        value_name: String,
        is_64bit: bool,
    },
    /// `File` (Path + Filter = file name).
    File {
        logical_name: String,
        path: String,
        filter: String,
        is_64bit: bool,
    },
    /// `Folder` (Path + Filter = folder name).
    Folder {
        logical_name: String,
        path: String,
        filter: String,
        is_64bit: bool,
    },
    /// `MSI` (ProductCode).
    Msi {
        logical_name: String,
        product_code: String,
    },
    /// Anything else (e.g. a `SimpleSetting` with a WQL or script source): only its element
    /// name and logical name are kept.
    Other {
        element: String,
        logical_name: String,
    },
}

/// A `rules:Rule` (detection rule or requirement rule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// `@id`.
    pub id: String,
    /// `@Severity` (`None`, `Informational`, `Critical`, …).
    pub severity: String,
    /// `@NonCompliantWhenSettingIsNotFound`.
    pub non_compliant_when_setting_not_found: bool,
    /// `Annotation/DisplayName/@Text`.
    pub display_name: String,
    /// The rule's expression; `None` if the element is missing.
    pub expression: Option<Expression>,
}

/// A requirement is a [`Rule`].
pub type RequirementRule = Rule;

/// A node of a rule expression tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Expression {
    /// `Expression`: `Operator` applied to `Operands`.
    Operation {
        operator: String,
        operands: Vec<Expression>,
    },
    /// `OperatingSystemExpression` (requirement on the OS; operands are rule references).
    OperatingSystem {
        operator: String,
        operands: Vec<Expression>,
    },
    /// `SettingReference` (a setting of this CI) or `GlobalSettingReference` (`global: true`).
    Setting(SettingReference),
    /// `ConstantValue`.
    Constant { value: String, data_type: String },
    /// `RuleExpression RuleId="Windows/All_x64_Windows_10_and_higher_Clients"`.
    RuleReference { rule_id: String },
    /// An operand element we do not model; only its local name is kept.
    Unknown { element: String },
}

/// `SettingReference` / `GlobalSettingReference` attributes (empty string = attribute absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingReference {
    /// True for `GlobalSettingReference`.
    pub global: bool,
    pub authoring_scope_id: String,
    pub logical_name: String,
    pub version: String,
    pub data_type: String,
    pub setting_logical_name: String,
    pub setting_source_type: String,
    pub method: String,
    pub property_path: String,
    pub changeable: String,
}

/// A `DeploymentTypeRule` (dependency group or supersedence entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyGroup {
    /// `@id` (`DTRule_<guid>`).
    pub id: String,
    /// `@Severity`.
    pub severity: String,
    /// `Annotation/DisplayName/@Text` (the group name).
    pub name: String,
    /// `DeploymentTypeExpression/Operator` (`And`/`Or`); empty when the rule has a single
    /// `DeploymentTypeIntentExpression` (supersedence).
    pub operator: String,
    pub items: Vec<DependencyItem>,
}

/// One `DeploymentTypeIntentExpression`: a referenced deployment type of another application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyItem {
    /// `@DesiredState` (`Required`, `Prohibited`, …).
    pub desired_state: String,
    pub application_scope_id: String,
    pub application_logical_name: String,
    pub application_version: String,
    pub dt_scope_id: String,
    pub dt_logical_name: String,
    pub dt_version: String,
    /// `DeploymentTypeReference/@Changeable` (the "auto install" flag of a dependency).
    pub changeable: bool,
}

impl Application {
    /// The deployment type with this logical name, if any.
    pub fn deployment_type(&self, logical_name: &str) -> Option<&DeploymentType> {
        self.deployment_types
            .iter()
            .find(|dt| dt.logical_name == logical_name)
    }
}

impl Detection {
    /// The serde tag of this variant: `msi_product_code`, `script`, `enhanced` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Detection::MsiProductCode { .. } => "msi_product_code",
            Detection::Script { .. } => "script",
            Detection::Enhanced { .. } => "enhanced",
            Detection::None => "none",
        }
    }
}

/// A one-line readable form, e.g.
/// `(Registry:RegSetting_1 GreaterEquals '16.0') And (Registry:RegSetting_2 Equals 'x')`.
impl std::fmt::Display for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn operand(f: &mut std::fmt::Formatter<'_>, e: &Expression) -> std::fmt::Result {
            match e {
                Expression::Operation { .. } | Expression::OperatingSystem { .. } => {
                    write!(f, "({e})")
                }
                _ => write!(f, "{e}"),
            }
        }
        match self {
            Expression::Operation { operator, operands } => match operands.as_slice() {
                [] => write!(f, "{operator}()"),
                [single] => {
                    write!(f, "{operator} ")?;
                    operand(f, single)
                }
                [first, rest @ ..] => {
                    operand(f, first)?;
                    for o in rest {
                        write!(f, " {operator} ")?;
                        operand(f, o)?;
                    }
                    Ok(())
                }
            },
            Expression::OperatingSystem { operator, operands } => {
                write!(f, "OperatingSystem {operator} [")?;
                for (i, o) in operands.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    operand(f, o)?;
                }
                write!(f, "]")
            }
            Expression::Setting(s) => {
                let source = if s.setting_source_type.is_empty() {
                    "Setting"
                } else {
                    &s.setting_source_type
                };
                let name = if s.setting_logical_name.is_empty() {
                    &s.logical_name
                } else {
                    &s.setting_logical_name
                };
                if s.global {
                    write!(f, "Global:")?;
                }
                write!(f, "{source}:{name}")?;
                if !s.property_path.is_empty() {
                    write!(f, ".{}", s.property_path)?;
                }
                Ok(())
            }
            Expression::Constant { value, .. } => write!(f, "'{value}'"),
            Expression::RuleReference { rule_id } => write!(f, "{rule_id}"),
            Expression::Unknown { element } => write!(f, "<{element}>"),
        }
    }
}
