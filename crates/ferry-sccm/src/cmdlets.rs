//! The one table of cmdlet metadata: every cmdlet the generator may emit, with its parameters
//! (canonical name, aliases, value kind, accepted values) and parameter sets (mandatory
//! parameters and the parameters only that set has).
//!
//! Why one table: the generator, the reader and the emulator's parameter binder must agree on
//! what a cmdlet accepts, and the facts must come from ConfigMgr's documentation, not from
//! whatever each piece of code happens to assume. The ConfigMgr rows were produced once from the
//! documented parameter sets (MicrosoftDocs/sccm-docs-powershell, via the project reference) and
//! are committed here as Rust; the PowerShell built-ins (`Set-ExecutionPolicy`, `Import-Module`,
//! `Set-Location`, `Get-PSDrive`, `Get-CimInstance`, `Get-WmiObject`, `ConvertTo-Json`,
//! `Write-Output`) are written by hand from the Windows PowerShell 5.1 documentation, limited to
//! the parameters that matter here.

/// Every cmdlet Ferry's scripts use. The reader refuses any other command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Cmdlet {
    SetExecutionPolicy,
    ImportModule,
    SetLocation,
    GetPSDrive,
    GetCimInstance,
    GetWmiObject,
    ConvertToJson,
    WriteOutput,
    NewCMApplication,
    SetCMApplication,
    GetCMApplication,
    AddCMScriptDeploymentType,
    AddCMMsiDeploymentType,
    SetCMScriptDeploymentType,
    SetCMMsiDeploymentType,
    GetCMDeploymentType,
    StartCMContentDistribution,
    NewCMApplicationDeployment,
    SetCMApplicationDeployment,
    GetCMApplicationDeployment,
    NewCMFolder,
    GetCMFolder,
    MoveCMObject,
}

impl Cmdlet {
    /// The table row of this cmdlet.
    pub fn info(self) -> &'static CmdletInfo {
        // Every variant has exactly one row (pinned by the `every_cmdlet_has_one_row` test), so
        // the fallback is unreachable; it keeps this function total without a panic.
        CMDLETS.iter().find(|c| c.id == self).unwrap_or(&CMDLETS[0])
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Case-insensitive lookup, as PowerShell resolves command names.
    pub fn from_name(name: &str) -> Option<Cmdlet> {
        CMDLETS
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .map(|c| c.id)
    }

    /// Whether the cmdlet writes objects to the pipeline. The reader only accepts a bare call
    /// (no assignment) for cmdlets that write nothing, because any object left on the pipeline
    /// would be formatted onto stdout and corrupt the result lines.
    pub fn writes_output(self) -> bool {
        !matches!(
            self,
            Cmdlet::SetExecutionPolicy
                | Cmdlet::ImportModule
                | Cmdlet::SetLocation
                | Cmdlet::StartCMContentDistribution
                | Cmdlet::MoveCMObject
        )
    }
}

/// What a parameter accepts, which decides how a value binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    StrArray,
    Int,
    Bool,
    Switch,
    DateTime,
    /// A .NET enum: type name and the accepted names.
    Enum(&'static str, &'static [&'static str]),
    /// A ConfigMgr object (IResultObject) passed as a variable.
    Object,
    /// A type our subset can never produce (hashtables, detection clauses, rules…).
    Other(&'static str),
}

#[derive(Debug)]
pub struct ParamInfo {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: Kind,
}

#[derive(Debug)]
pub struct ParamSet {
    pub name: &'static str,
    pub mandatory: &'static [&'static str],
    /// Parameters that belong to this set only; parameters in no set's `only` list belong to
    /// every set. This is how the documented sets are stored compactly.
    pub only: &'static [&'static str],
}

#[derive(Debug)]
pub struct CmdletInfo {
    pub id: Cmdlet,
    pub name: &'static str,
    pub params: &'static [ParamInfo],
    pub sets: &'static [ParamSet],
}

impl CmdletInfo {
    pub fn param(&self, canonical: &str) -> Option<&'static ParamInfo> {
        self.params.iter().find(|p| p.name == canonical)
    }

    /// Whether `param` (canonical name) belongs to `set`.
    pub fn in_set(&self, set: &ParamSet, param: &str) -> bool {
        set.only.contains(&param) || !self.sets.iter().any(|s| s.only.contains(&param))
    }
}

/// PowerShell's common parameters: every cmdlet accepts them; the emulator ignores them.
pub const COMMON_PARAMETERS: &[&str] = &[
    "Verbose",
    "Debug",
    "ErrorAction",
    "WarningAction",
    "InformationAction",
    "ErrorVariable",
    "WarningVariable",
    "InformationVariable",
    "OutVariable",
    "OutBuffer",
    "PipelineVariable",
];

const fn p(name: &'static str, aliases: &'static [&'static str], kind: Kind) -> ParamInfo {
    ParamInfo {
        name,
        aliases,
        kind,
    }
}

const fn set(
    name: &'static str,
    mandatory: &'static [&'static str],
    only: &'static [&'static str],
) -> ParamSet {
    ParamSet {
        name,
        mandatory,
        only,
    }
}

const EXECUTION_POLICY: Kind = Kind::Enum(
    "Microsoft.PowerShell.ExecutionPolicy",
    &[
        "Unrestricted",
        "RemoteSigned",
        "AllSigned",
        "Restricted",
        "Default",
        "Bypass",
        "Undefined",
    ],
);

pub static CMDLETS: &[CmdletInfo] = &[
    // Windows PowerShell 5.1, Microsoft.PowerShell.Security/Set-ExecutionPolicy.
    CmdletInfo {
        id: Cmdlet::SetExecutionPolicy,
        name: "Set-ExecutionPolicy",
        params: &[
            p("Confirm", &["cf"], Kind::Switch),
            p("ExecutionPolicy", &[], EXECUTION_POLICY),
            p("Force", &[], Kind::Switch),
            p(
                "Scope",
                &[],
                Kind::Enum(
                    "Microsoft.PowerShell.ExecutionPolicyScope",
                    &[
                        "Process",
                        "CurrentUser",
                        "LocalMachine",
                        "UserPolicy",
                        "MachinePolicy",
                    ],
                ),
            ),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[set("All", &["ExecutionPolicy"], &[])],
    },
    // Windows PowerShell 5.1, Microsoft.PowerShell.Core/Import-Module (the Name set).
    CmdletInfo {
        id: Cmdlet::ImportModule,
        name: "Import-Module",
        params: &[
            p("DisableNameChecking", &[], Kind::Switch),
            p("Force", &[], Kind::Switch),
            p("Global", &[], Kind::Switch),
            p("Name", &[], Kind::StrArray),
            p("NoClobber", &["NoOverwrite"], Kind::Switch),
            p("PassThru", &[], Kind::Switch),
            p("Prefix", &[], Kind::Str),
            p(
                "Scope",
                &[],
                Kind::Enum("System.String", &["Local", "Global"]),
            ),
        ],
        sets: &[set("Name", &["Name"], &[])],
    },
    // Windows PowerShell 5.1, Microsoft.PowerShell.Management/Set-Location.
    CmdletInfo {
        id: Cmdlet::SetLocation,
        name: "Set-Location",
        params: &[
            p("LiteralPath", &["PSPath"], Kind::Str),
            p("PassThru", &[], Kind::Switch),
            p("Path", &[], Kind::Str),
            p("StackName", &[], Kind::Str),
        ],
        sets: &[
            set("Path", &[], &["Path"]),
            set("LiteralPath", &["LiteralPath"], &["LiteralPath"]),
            set("Stack", &[], &["StackName"]),
        ],
    },
    // Windows PowerShell 5.1, Microsoft.PowerShell.Management/Get-PSDrive: the CMSite drive's
    // Root is the SMS Provider's computer name, which the WMI/CIM queries need.
    CmdletInfo {
        id: Cmdlet::GetPSDrive,
        name: "Get-PSDrive",
        params: &[
            p("LiteralName", &[], Kind::StrArray),
            p("Name", &[], Kind::StrArray),
            p("PSProvider", &[], Kind::StrArray),
            p("Scope", &[], Kind::Str),
        ],
        sets: &[
            set("Name", &[], &["Name"]),
            set("LiteralName", &["LiteralName"], &["LiteralName"]),
        ],
    },
    // Windows PowerShell 5.1, CimCmdlets/Get-CimInstance (ClassName and Query sets).
    CmdletInfo {
        id: Cmdlet::GetCimInstance,
        name: "Get-CimInstance",
        params: &[
            p("ClassName", &[], Kind::Str),
            p("ComputerName", &["CN", "ServerName"], Kind::StrArray),
            p("Filter", &[], Kind::Str),
            p("KeyOnly", &[], Kind::Switch),
            p("Namespace", &[], Kind::Str),
            p("OperationTimeoutSec", &["OT"], Kind::Int),
            p("Property", &["SelectProperties"], Kind::StrArray),
            p("Query", &[], Kind::Str),
            p("QueryDialect", &[], Kind::Str),
            p("Shallow", &[], Kind::Switch),
        ],
        sets: &[
            set(
                "ClassNameComputerSet",
                &["ClassName"],
                &["ClassName", "Filter", "KeyOnly", "Property"],
            ),
            set("QueryComputerSet", &["Query"], &["Query", "QueryDialect"]),
        ],
    },
    // Windows PowerShell 5.1, Microsoft.PowerShell.Management/Get-WmiObject (query and list sets).
    CmdletInfo {
        id: Cmdlet::GetWmiObject,
        name: "Get-WmiObject",
        params: &[
            p("Class", &[], Kind::Str),
            p("ComputerName", &["Cn"], Kind::StrArray),
            p("Filter", &[], Kind::Str),
            p("Namespace", &["NS"], Kind::Str),
            p("Property", &[], Kind::StrArray),
            p("Query", &[], Kind::Str),
        ],
        sets: &[
            set("query", &["Class"], &["Class", "Filter", "Property"]),
            set("WQLQuery", &["Query"], &["Query"]),
        ],
    },
    // Windows PowerShell 5.1, Microsoft.PowerShell.Utility/ConvertTo-Json.
    CmdletInfo {
        id: Cmdlet::ConvertToJson,
        name: "ConvertTo-Json",
        params: &[
            p("Compress", &[], Kind::Switch),
            p("Depth", &[], Kind::Int),
            p("InputObject", &[], Kind::Object),
        ],
        sets: &[set("All", &["InputObject"], &[])],
    },
    // Windows PowerShell 5.1, Microsoft.PowerShell.Utility/Write-Output.
    CmdletInfo {
        id: Cmdlet::WriteOutput,
        name: "Write-Output",
        params: &[
            p("InputObject", &[], Kind::Object),
            p("NoEnumerate", &[], Kind::Switch),
        ],
        sets: &[set("All", &["InputObject"], &[])],
    },
    // ---- ConfigMgr rows, produced once from the documented parameter sets. ----
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/New-CMApplication.md
    CmdletInfo {
        id: Cmdlet::NewCMApplication,
        name: "New-CMApplication",
        params: &[
            p("AddOwner", &["AddOwners"], Kind::StrArray),
            p("AddSupportContact", &["AddSupportContacts"], Kind::StrArray),
            p(
                "AppCatalog",
                &["AppCatalogs"],
                Kind::Other("AppDisplayInfo[]"),
            ),
            p("AutoInstall", &[], Kind::Bool),
            p("Confirm", &["cf"], Kind::Switch),
            p("DefaultLanguageId", &[], Kind::Int),
            p("Description", &[], Kind::Str),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p(
                "DisplaySupersedenceInApplicationCatalog",
                &["DisplaySupersedencesInApplicationCatalog"],
                Kind::Bool,
            ),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("IconLocationFile", &[], Kind::Str),
            p("IsFeatured", &[], Kind::Bool),
            p("Keyword", &["Keywords"], Kind::StrArray),
            p("LinkText", &[], Kind::Str),
            p(
                "LocalizedDescription",
                &["LocalizedApplicationDescription"],
                Kind::Str,
            ),
            p("LocalizedName", &["LocalizedApplicationName"], Kind::Str),
            p("Name", &["LocalizedDisplayName"], Kind::Str),
            p("OptionalReference", &[], Kind::Str),
            p("Owner", &[], Kind::Str),
            p("PrivacyUrl", &[], Kind::Str),
            p("Publisher", &["Manufacturer"], Kind::Str),
            p("ReleaseDate", &[], Kind::DateTime),
            p("SoftwareVersion", &[], Kind::Str),
            p("SupportContact", &[], Kind::Str),
            p("UserDocumentation", &[], Kind::Str),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[set("__AllParameterSets", &["Name"], &[])],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Set-CMApplication.md
    CmdletInfo {
        id: Cmdlet::SetCMApplication,
        name: "Set-CMApplication",
        params: &[
            p(
                "AddAppCatalog",
                &["AppCatalogs"],
                Kind::Other("AppDisplayInfo[]"),
            ),
            p("AddAppCategory", &["AddAppCategories"], Kind::Object),
            p("AddOwner", &["AddOwners"], Kind::StrArray),
            p("AddSupportContact", &["AddSupportContacts"], Kind::StrArray),
            p("AddUserCategory", &["AddUserCategories"], Kind::Object),
            p("AppCategory", &["AppCategories"], Kind::StrArray),
            p(
                "ApplyToLanguageById",
                &["ApplySettingToSpecificLanguage"],
                Kind::Int,
            ),
            p("AutoInstall", &[], Kind::Bool),
            p("CleanAppCategory", &["CleanAppCategories"], Kind::Switch),
            p("CleanUserCategory", &["CleanUserCategories"], Kind::Switch),
            p(
                "ClearAppCatalog",
                &["CleanAppCatalog", "CleanAppCatalogs", "ClearAppCatalogs"],
                Kind::Switch,
            ),
            p("ClearOwner", &["CleanOwners"], Kind::Switch),
            p(
                "ClearSupportContact",
                &["CleanSupportContacts"],
                Kind::Switch,
            ),
            p("Confirm", &["cf"], Kind::Switch),
            p("DefaultLanguageId", &[], Kind::Int),
            p("Description", &[], Kind::Str),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p(
                "DisplaySupersedenceInApplicationCatalog",
                &["DisplaySupersedencesInApplicationCatalog"],
                Kind::Bool,
            ),
            p(
                "DistributionPointSetting",
                &[],
                Kind::Enum(
                    "DistributionPointSettingType",
                    &["AutoDownload", "DeltaCopy", "NoDownload"],
                ),
            ),
            p(
                "DistributionPriority",
                &[],
                Kind::Enum("DistributionPriorityType", &["High", "Medium", "Low"]),
            ),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("IconLocationFile", &[], Kind::Str),
            p("Id", &["CIId", "CI_ID"], Kind::Int),
            p("InputObject", &["Application"], Kind::Object),
            p("IsFeatured", &[], Kind::Bool),
            p("Keyword", &["Keywords"], Kind::StrArray),
            p("LinkText", &[], Kind::Str),
            p("LocalizedApplicationName", &[], Kind::Str),
            p(
                "LocalizedDescription",
                &["LocalizedApplicationDescription"],
                Kind::Str,
            ),
            p("ModelName", &[], Kind::Str),
            p(
                "Name",
                &["ApplicationName", "LocalizedDisplayName"],
                Kind::Str,
            ),
            p("NewName", &[], Kind::Str),
            p("OptionalReference", &[], Kind::Str),
            p("Owner", &[], Kind::Str),
            p("PassThru", &[], Kind::Switch),
            p("PrivacyUrl", &[], Kind::Str),
            p("Publisher", &["Manufacturer"], Kind::Str),
            p("ReleaseDate", &[], Kind::DateTime),
            p(
                "RemoveAppCatalog",
                &["RemoveAppCatalogsByLanguageId"],
                Kind::Other("Int32[]"),
            ),
            p(
                "RemoveAppCategoryName",
                &["RemoveAppCategoryNames"],
                Kind::StrArray,
            ),
            p("RemoveOwner", &["RemoveOwners"], Kind::StrArray),
            p(
                "RemoveSupportContact",
                &["RemoveSupportContacts"],
                Kind::StrArray,
            ),
            p(
                "RemoveUserCategoryName",
                &["RemoveUserCategoryNames"],
                Kind::StrArray,
            ),
            p("SendToProtectedDistributionPoint", &[], Kind::Bool),
            p("SoftwareVersion", &[], Kind::Str),
            p("SupportContact", &[], Kind::Str),
            p("UserCategory", &["UserCategories"], Kind::StrArray),
            p("UserDocumentation", &[], Kind::Str),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set("SetById", &["Id"], &["Id"]),
            set("SetByModelName", &["ModelName"], &["ModelName"]),
            set("SetByName", &["Name"], &["Name"]),
            set("SetByValue", &["InputObject"], &["InputObject"]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Get-CMApplication.md
    CmdletInfo {
        id: Cmdlet::GetCMApplication,
        name: "Get-CMApplication",
        params: &[
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("Fast", &[], Kind::Switch),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("Id", &["CIId", "CI_ID"], Kind::Int),
            p("InputObject", &["DeploymentType"], Kind::Object),
            p("ModelName", &[], Kind::Str),
            p(
                "Name",
                &["ApplicationName", "LocalizedDisplayName"],
                Kind::Str,
            ),
            p("ShowHidden", &[], Kind::Switch),
        ],
        sets: &[
            set("SearchByDeploymentType", &["InputObject"], &["InputObject"]),
            set("SearchByIdMandatory", &["Id"], &["Id"]),
            set("SearchByModelName", &["ModelName"], &["ModelName"]),
            set("SearchByName", &[], &["Name"]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Add-CMScriptDeploymentType.md
    CmdletInfo {
        id: Cmdlet::AddCMScriptDeploymentType,
        name: "Add-CMScriptDeploymentType",
        params: &[
            p(
                "AddDetectionClause",
                &["AddDetectionClauses"],
                Kind::Other("DetectionClause[]"),
            ),
            p(
                "AddLanguage",
                &["AddLanguages", "Language", "Languages"],
                Kind::StrArray,
            ),
            p("AddRequirement", &[], Kind::Other("Rule[]")),
            p("ApplicationId", &[], Kind::Int),
            p("ApplicationName", &[], Kind::Str),
            p(
                "CacheContent",
                &["PersistContentInClientCache"],
                Kind::Switch,
            ),
            p("Comment", &["AdministratorComment"], Kind::Str),
            p("Confirm", &["cf"], Kind::Switch),
            p(
                "ContentFallback",
                &[
                    "AllowClientsToUseFallbackSourceLocationForContent",
                    "EnableContentLocationFallback",
                ],
                Kind::Switch,
            ),
            p("ContentLocation", &["InstallationFileLocation"], Kind::Str),
            p("DeploymentTypeName", &[], Kind::Str),
            p(
                "DetectionClauseConnector",
                &["DetectionClauseConnectors"],
                Kind::Other("Hashtable[]"),
            ),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p(
                "EnableBranchCache",
                &["AllowClientsToShareContentOnSameSubnet"],
                Kind::Switch,
            ),
            p(
                "EstimatedRuntimeMins",
                &[
                    "EstimatedInstallationTimeMins",
                    "EstimatedInstallationTimeMinutes",
                    "EstimatedRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("Force", &["ForceForUnknownPublisher"], Kind::Switch),
            p("Force32Bit", &["Force32BitInstaller"], Kind::Switch),
            p(
                "ForceScriptDetection32Bit",
                &["Force32BitDetectionScript"],
                Kind::Switch,
            ),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p(
                "GroupDetectionClauses",
                &["GroupDetectionClausesByLogicalName"],
                Kind::StrArray,
            ),
            p("InputObject", &["Application"], Kind::Object),
            p("InstallCommand", &["InstallationProgram"], Kind::Str),
            p(
                "InstallWorkingDirectory",
                &["InstallFolder", "InstallationStartIn"],
                Kind::Str,
            ),
            p(
                "InstallationBehaviorType",
                &[],
                Kind::Enum(
                    "InstallationBehaviorType",
                    &[
                        "InstallForUser",
                        "InstallForSystem",
                        "InstallForSystemIfResourceIsDeviceOtherwiseInstallForUser",
                    ],
                ),
            ),
            p(
                "LogonRequirementType",
                &[],
                Kind::Enum(
                    "LogonRequirementType",
                    &[
                        "OnlyWhenUserLoggedOn",
                        "WhereOrNotUserLoggedOn",
                        "WhetherOrNotUserLoggedOn",
                        "OnlyWhenNoUserLoggedOn",
                    ],
                ),
            ),
            p(
                "MaximumRuntimeMins",
                &[
                    "MaximumAllowedRunTimeMins",
                    "MaximumAllowedRunTimeMinutes",
                    "MaximumRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("ProductCode", &[], Kind::Str),
            p(
                "RebootBehavior",
                &[],
                Kind::Enum(
                    "PostExecutionBehavior",
                    &[
                        "BasedOnExitCode",
                        "NoAction",
                        "ForceReboot",
                        "ProgramReboot",
                    ],
                ),
            ),
            p("RemoveLanguage", &["RemoveLanguages"], Kind::StrArray),
            p(
                "RemoveRequirement",
                &["RemoveRequirements"],
                Kind::Other("Rule[]"),
            ),
            p("RepairCommand", &["RepairProgram"], Kind::Str),
            p(
                "RepairWorkingDirectory",
                &["RepairFolder", "RepairStartIn"],
                Kind::Str,
            ),
            p(
                "RequireUserInteraction",
                &["RequiresUserInteraction"],
                Kind::Switch,
            ),
            p("ScriptFile", &[], Kind::Str),
            p(
                "ScriptLanguage",
                &["ScriptType"],
                Kind::Enum("ScriptLanguage", &["PowerShell", "VBScript", "JavaScript"]),
            ),
            p("ScriptText", &["ScriptContent"], Kind::Str),
            p(
                "SlowNetworkDeploymentMode",
                &[],
                Kind::Enum("ContentHandlingMode", &["DoNothing", "Download"]),
            ),
            p("SourceUpdateProductCode", &[], Kind::Str),
            p("UninstallCommand", &["UninstallationProgram"], Kind::Str),
            p("UninstallContentLocation", &[], Kind::Str),
            p(
                "UninstallOption",
                &[],
                Kind::Enum(
                    "UninstallContentSetting",
                    &["SameAsInstall", "NoneRequired", "Different"],
                ),
            ),
            p(
                "UninstallWorkingDirectory",
                &["UninstallFolder", "UninstallationStartIn"],
                Kind::Str,
            ),
            p(
                "UserInteractionMode",
                &["InstallationProgramVisibility"],
                Kind::Enum(
                    "UserInteractionMode",
                    &["Normal", "Minimized", "Maximized", "Hidden"],
                ),
            ),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "ByAppId",
                &[
                    "ApplicationId",
                    "DeploymentTypeName",
                    "InstallCommand",
                    "ProductCode",
                ],
                &["ApplicationId", "ProductCode"],
            ),
            set(
                "ByAppIdDetectionClause",
                &[
                    "AddDetectionClause",
                    "ApplicationId",
                    "DeploymentTypeName",
                    "InstallCommand",
                ],
                &[
                    "AddDetectionClause",
                    "ApplicationId",
                    "DetectionClauseConnector",
                    "GroupDetectionClauses",
                ],
            ),
            set(
                "ByAppIdScript",
                &[
                    "ApplicationId",
                    "DeploymentTypeName",
                    "InstallCommand",
                    "ScriptLanguage",
                ],
                &[
                    "ApplicationId",
                    "ForceScriptDetection32Bit",
                    "ScriptFile",
                    "ScriptLanguage",
                    "ScriptText",
                ],
            ),
            set(
                "ByAppName",
                &[
                    "ApplicationName",
                    "DeploymentTypeName",
                    "InstallCommand",
                    "ProductCode",
                ],
                &["ApplicationName", "ProductCode"],
            ),
            set(
                "ByAppNameDetectionClause",
                &[
                    "AddDetectionClause",
                    "ApplicationName",
                    "DeploymentTypeName",
                    "InstallCommand",
                ],
                &[
                    "AddDetectionClause",
                    "ApplicationName",
                    "DetectionClauseConnector",
                    "GroupDetectionClauses",
                ],
            ),
            set(
                "ByAppNameScript",
                &[
                    "ApplicationName",
                    "DeploymentTypeName",
                    "InstallCommand",
                    "ScriptLanguage",
                ],
                &[
                    "ApplicationName",
                    "ForceScriptDetection32Bit",
                    "ScriptFile",
                    "ScriptLanguage",
                    "ScriptText",
                ],
            ),
            set(
                "ByAppValue",
                &[
                    "DeploymentTypeName",
                    "InputObject",
                    "InstallCommand",
                    "ProductCode",
                ],
                &["InputObject", "ProductCode"],
            ),
            set(
                "ByAppValueDetectionClause",
                &[
                    "AddDetectionClause",
                    "DeploymentTypeName",
                    "InputObject",
                    "InstallCommand",
                ],
                &[
                    "AddDetectionClause",
                    "DetectionClauseConnector",
                    "GroupDetectionClauses",
                    "InputObject",
                ],
            ),
            set(
                "ByAppValueScript",
                &[
                    "DeploymentTypeName",
                    "InputObject",
                    "InstallCommand",
                    "ScriptLanguage",
                ],
                &[
                    "ForceScriptDetection32Bit",
                    "InputObject",
                    "ScriptFile",
                    "ScriptLanguage",
                    "ScriptText",
                ],
            ),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Add-CMMsiDeploymentType.md
    CmdletInfo {
        id: Cmdlet::AddCMMsiDeploymentType,
        name: "Add-CMMsiDeploymentType",
        params: &[
            p(
                "AddDetectionClause",
                &["AddDetectionClauses"],
                Kind::Other("DetectionClause[]"),
            ),
            p(
                "AddLanguage",
                &["AddLanguages", "Language", "Languages"],
                Kind::StrArray,
            ),
            p("AddRequirement", &[], Kind::Other("Rule[]")),
            p("ApplicationId", &[], Kind::Int),
            p("ApplicationName", &[], Kind::Str),
            p(
                "CacheContent",
                &["PersistContentInClientCache"],
                Kind::Switch,
            ),
            p("Comment", &["AdministratorComment"], Kind::Str),
            p("Confirm", &["cf"], Kind::Switch),
            p(
                "ContentFallback",
                &[
                    "AllowClientsToUseFallbackSourceLocationForContent",
                    "EnableContentLocationFallback",
                ],
                Kind::Switch,
            ),
            p("ContentLocation", &["InstallationFileLocation"], Kind::Str),
            p("DeploymentTypeName", &[], Kind::Str),
            p(
                "DetectionClauseConnector",
                &["DetectionClauseConnectors"],
                Kind::Other("Hashtable[]"),
            ),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p(
                "EnableBranchCache",
                &["AllowClientsToShareContentOnSameSubnet"],
                Kind::Switch,
            ),
            p(
                "EstimatedRuntimeMins",
                &[
                    "EstimatedInstallationTimeMins",
                    "EstimatedInstallationTimeMinutes",
                    "EstimatedRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("Force", &["ForceForUnknownPublisher"], Kind::Switch),
            p("Force32Bit", &["Force32BitInstaller"], Kind::Switch),
            p(
                "ForceScriptDetection32Bit",
                &["Force32BitDetectionScript"],
                Kind::Switch,
            ),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p(
                "GroupDetectionClauses",
                &["GroupDetectionClausesByLogicalName"],
                Kind::StrArray,
            ),
            p("InputObject", &["Application"], Kind::Object),
            p("InstallCommand", &["InstallationProgram"], Kind::Str),
            p(
                "InstallWorkingDirectory",
                &["InstallFolder", "InstallationStartIn"],
                Kind::Str,
            ),
            p(
                "InstallationBehaviorType",
                &[],
                Kind::Enum(
                    "InstallationBehaviorType",
                    &[
                        "InstallForUser",
                        "InstallForSystem",
                        "InstallForSystemIfResourceIsDeviceOtherwiseInstallForUser",
                    ],
                ),
            ),
            p(
                "LogonRequirementType",
                &[],
                Kind::Enum(
                    "LogonRequirementType",
                    &[
                        "OnlyWhenUserLoggedOn",
                        "WhereOrNotUserLoggedOn",
                        "WhetherOrNotUserLoggedOn",
                        "OnlyWhenNoUserLoggedOn",
                    ],
                ),
            ),
            p(
                "MaximumRuntimeMins",
                &[
                    "MaximumAllowedRunTimeMins",
                    "MaximumAllowedRunTimeMinutes",
                    "MaximumRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("ProductCode", &[], Kind::Str),
            p(
                "RebootBehavior",
                &[],
                Kind::Enum(
                    "PostExecutionBehavior",
                    &[
                        "BasedOnExitCode",
                        "NoAction",
                        "ForceReboot",
                        "ProgramReboot",
                    ],
                ),
            ),
            p("RemoveLanguage", &["RemoveLanguages"], Kind::StrArray),
            p(
                "RemoveRequirement",
                &["RemoveRequirements"],
                Kind::Other("Rule[]"),
            ),
            p("RepairCommand", &["RepairProgram"], Kind::Str),
            p(
                "RepairWorkingDirectory",
                &["RepairFolder", "RepairStartIn"],
                Kind::Str,
            ),
            p(
                "RequireUserInteraction",
                &["RequiresUserInteraction"],
                Kind::Switch,
            ),
            p("ScriptFile", &[], Kind::Str),
            p(
                "ScriptLanguage",
                &["ScriptType"],
                Kind::Enum("ScriptLanguage", &["PowerShell", "VBScript", "JavaScript"]),
            ),
            p("ScriptText", &["ScriptContent"], Kind::Str),
            p(
                "SlowNetworkDeploymentMode",
                &[],
                Kind::Enum("ContentHandlingMode", &["DoNothing", "Download"]),
            ),
            p("SourceUpdateProductCode", &[], Kind::Str),
            p("UninstallCommand", &["UninstallationProgram"], Kind::Str),
            p("UninstallContentLocation", &[], Kind::Str),
            p(
                "UninstallOption",
                &[],
                Kind::Enum(
                    "UninstallContentSetting",
                    &["SameAsInstall", "NoneRequired", "Different"],
                ),
            ),
            p(
                "UninstallWorkingDirectory",
                &["UninstallFolder", "UninstallationStartIn"],
                Kind::Str,
            ),
            p(
                "UserInteractionMode",
                &["InstallationProgramVisibility"],
                Kind::Enum(
                    "UserInteractionMode",
                    &["Normal", "Minimized", "Maximized", "Hidden"],
                ),
            ),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "ByAppId",
                &["ApplicationId", "ContentLocation"],
                &["ApplicationId", "ProductCode"],
            ),
            set(
                "ByAppIdDetectionClause",
                &[
                    "AddDetectionClause",
                    "ApplicationId",
                    "DeploymentTypeName",
                    "InstallCommand",
                ],
                &[
                    "AddDetectionClause",
                    "ApplicationId",
                    "DetectionClauseConnector",
                    "GroupDetectionClauses",
                ],
            ),
            set(
                "ByAppIdScript",
                &[
                    "ApplicationId",
                    "DeploymentTypeName",
                    "InstallCommand",
                    "ScriptLanguage",
                ],
                &[
                    "ApplicationId",
                    "ForceScriptDetection32Bit",
                    "ScriptFile",
                    "ScriptLanguage",
                    "ScriptText",
                ],
            ),
            set(
                "ByAppName",
                &["ApplicationName", "ContentLocation"],
                &["ApplicationName", "ProductCode"],
            ),
            set(
                "ByAppNameDetectionClause",
                &[
                    "AddDetectionClause",
                    "ApplicationName",
                    "DeploymentTypeName",
                    "InstallCommand",
                ],
                &[
                    "AddDetectionClause",
                    "ApplicationName",
                    "DetectionClauseConnector",
                    "GroupDetectionClauses",
                ],
            ),
            set(
                "ByAppNameScript",
                &[
                    "ApplicationName",
                    "DeploymentTypeName",
                    "InstallCommand",
                    "ScriptLanguage",
                ],
                &[
                    "ApplicationName",
                    "ForceScriptDetection32Bit",
                    "ScriptFile",
                    "ScriptLanguage",
                    "ScriptText",
                ],
            ),
            set(
                "ByAppValue",
                &["ContentLocation", "InputObject"],
                &["InputObject", "ProductCode"],
            ),
            set(
                "ByAppValueDetectionClause",
                &[
                    "AddDetectionClause",
                    "DeploymentTypeName",
                    "InputObject",
                    "InstallCommand",
                ],
                &[
                    "AddDetectionClause",
                    "DetectionClauseConnector",
                    "GroupDetectionClauses",
                    "InputObject",
                ],
            ),
            set(
                "ByAppValueScript",
                &[
                    "DeploymentTypeName",
                    "InputObject",
                    "InstallCommand",
                    "ScriptLanguage",
                ],
                &[
                    "ForceScriptDetection32Bit",
                    "InputObject",
                    "ScriptFile",
                    "ScriptLanguage",
                    "ScriptText",
                ],
            ),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Set-CMScriptDeploymentType.md
    CmdletInfo {
        id: Cmdlet::SetCMScriptDeploymentType,
        name: "Set-CMScriptDeploymentType",
        params: &[
            p(
                "AddDetectionClause",
                &["AddDetectionClauses"],
                Kind::Other("DetectionClause[]"),
            ),
            p(
                "AddLanguage",
                &["AddLanguages", "Language", "Languages"],
                Kind::StrArray,
            ),
            p("AddRequirement", &[], Kind::Other("Rule[]")),
            p("Application", &[], Kind::Object),
            p("ApplicationId", &["CIId", "CI_ID"], Kind::Int),
            p("ApplicationName", &[], Kind::Str),
            p("CacheContent", &["PersistContentInClientCache"], Kind::Bool),
            p("Comment", &["AdministratorComment"], Kind::Str),
            p("Confirm", &["cf"], Kind::Switch),
            p(
                "ContentFallback",
                &[
                    "AllowClientsToUseFallbackSourceLocationForContent",
                    "EnableContentLocationFallback",
                ],
                Kind::Bool,
            ),
            p("ContentLocation", &[], Kind::Str),
            p("DeploymentTypeName", &[], Kind::Str),
            p(
                "DetectionClauseConnector",
                &["DetectionClauseConnectors"],
                Kind::Other("Hashtable[]"),
            ),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p(
                "EnableBranchCache",
                &["AllowClientsToShareContentOnSameSubnet"],
                Kind::Bool,
            ),
            p(
                "EstimatedRuntimeMins",
                &[
                    "EstimatedInstallationTimeMins",
                    "EstimatedInstallationTimeMinutes",
                    "EstimatedRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("Force", &["ForceForUnknownPublisher"], Kind::Switch),
            p("Force32Bit", &["Force32BitInstaller"], Kind::Bool),
            p(
                "ForceScriptDetection32Bit",
                &["Force32BitDetectionScript"],
                Kind::Bool,
            ),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p(
                "GroupDetectionClauses",
                &["GroupDetectionClausesByLogicalName"],
                Kind::StrArray,
            ),
            p("InputObject", &["DeploymentType"], Kind::Object),
            p("InstallCommand", &["InstallationProgram"], Kind::Str),
            p(
                "InstallWorkingDirectory",
                &["InstallFolder", "InstallationStartIn"],
                Kind::Str,
            ),
            p(
                "InstallationBehaviorType",
                &[],
                Kind::Enum(
                    "InstallationBehaviorType",
                    &[
                        "InstallForUser",
                        "InstallForSystem",
                        "InstallForSystemIfResourceIsDeviceOtherwiseInstallForUser",
                    ],
                ),
            ),
            p(
                "LogonRequirementType",
                &[],
                Kind::Enum(
                    "LogonRequirementType",
                    &[
                        "OnlyWhenUserLoggedOn",
                        "WhereOrNotUserLoggedOn",
                        "WhetherOrNotUserLoggedOn",
                        "OnlyWhenNoUserLoggedOn",
                    ],
                ),
            ),
            p(
                "MaximumRuntimeMins",
                &[
                    "MaximumAllowedRunTimeMins",
                    "MaximumAllowedRunTimeMinutes",
                    "MaximumRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("NewName", &["NewDeploymentTypeName"], Kind::Str),
            p("PassThru", &[], Kind::Switch),
            p("ProductCode", &[], Kind::Str),
            p(
                "RebootBehavior",
                &[],
                Kind::Enum(
                    "PostExecutionBehavior",
                    &[
                        "BasedOnExitCode",
                        "NoAction",
                        "ForceReboot",
                        "ProgramReboot",
                    ],
                ),
            ),
            p(
                "RemoveDetectionClause",
                &["RemoveDetectionClauses"],
                Kind::StrArray,
            ),
            p("RemoveLanguage", &["RemoveLanguages"], Kind::StrArray),
            p(
                "RemoveRequirement",
                &["RemoveRequirements"],
                Kind::Other("Rule[]"),
            ),
            p("RepairCommand", &["RepairProgram"], Kind::Str),
            p(
                "RepairWorkingDirectory",
                &["RepairFolder", "RepairStartIn"],
                Kind::Str,
            ),
            p(
                "RequireUserInteraction",
                &["RequiresUserInteraction"],
                Kind::Bool,
            ),
            p("ScriptFile", &[], Kind::Str),
            p(
                "ScriptLanguage",
                &["ScriptType"],
                Kind::Enum("ScriptLanguage", &["PowerShell", "VBScript", "JavaScript"]),
            ),
            p("ScriptText", &["Script", "ScriptContent"], Kind::Str),
            p(
                "SlowNetworkDeploymentMode",
                &[],
                Kind::Enum("ContentHandlingMode", &["DoNothing", "Download"]),
            ),
            p("SourceUpdateProductCode", &[], Kind::Str),
            p("UninstallCommand", &["UninstallationProgram"], Kind::Str),
            p("UninstallContentLocation", &[], Kind::Str),
            p(
                "UninstallOption",
                &[],
                Kind::Enum(
                    "UninstallContentSetting",
                    &["SameAsInstall", "NoneRequired", "Different"],
                ),
            ),
            p(
                "UninstallWorkingDirectory",
                &["UninstallFolder", "UninstallationStartIn"],
                Kind::Str,
            ),
            p(
                "UserInteractionMode",
                &["InstallationProgramVisibility"],
                Kind::Enum(
                    "UserInteractionMode",
                    &["Normal", "Minimized", "Maximized", "Hidden"],
                ),
            ),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "ByAppId",
                &["ApplicationId", "DeploymentTypeName"],
                &["ApplicationId", "DeploymentTypeName"],
            ),
            set(
                "ByAppName",
                &["ApplicationName", "DeploymentTypeName"],
                &["ApplicationName", "DeploymentTypeName"],
            ),
            set(
                "ByAppValue",
                &["Application", "DeploymentTypeName"],
                &["Application", "DeploymentTypeName"],
            ),
            set("ByDTValue", &["InputObject"], &["InputObject"]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Set-CMMsiDeploymentType.md
    CmdletInfo {
        id: Cmdlet::SetCMMsiDeploymentType,
        name: "Set-CMMsiDeploymentType",
        params: &[
            p(
                "AddDetectionClause",
                &["AddDetectionClauses"],
                Kind::Other("DetectionClause[]"),
            ),
            p(
                "AddLanguage",
                &["AddLanguages", "Language", "Languages"],
                Kind::StrArray,
            ),
            p("AddRequirement", &[], Kind::Other("Rule[]")),
            p("Application", &[], Kind::Object),
            p("ApplicationId", &["CIId", "CI_ID"], Kind::Int),
            p("ApplicationName", &[], Kind::Str),
            p("CacheContent", &["PersistContentInClientCache"], Kind::Bool),
            p("Comment", &["AdministratorComment"], Kind::Str),
            p("Confirm", &["cf"], Kind::Switch),
            p(
                "ContentFallback",
                &[
                    "AllowClientsToUseFallbackSourceLocationForContent",
                    "EnableContentLocationFallback",
                ],
                Kind::Bool,
            ),
            p("ContentLocation", &[], Kind::Str),
            p("DeploymentTypeName", &[], Kind::Str),
            p(
                "DetectionClauseConnector",
                &["DetectionClauseConnectors"],
                Kind::Other("Hashtable[]"),
            ),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p(
                "EnableBranchCache",
                &["AllowClientsToShareContentOnSameSubnet"],
                Kind::Bool,
            ),
            p(
                "EstimatedRuntimeMins",
                &[
                    "EstimatedInstallationTimeMins",
                    "EstimatedInstallationTimeMinutes",
                    "EstimatedRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("Force", &["ForceForUnknownPublisher"], Kind::Switch),
            p("Force32Bit", &["Force32BitInstaller"], Kind::Bool),
            p(
                "ForceScriptDetection32Bit",
                &["Force32BitDetectionScript"],
                Kind::Bool,
            ),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p(
                "GroupDetectionClauses",
                &["GroupDetectionClausesByLogicalName"],
                Kind::StrArray,
            ),
            p("InputObject", &["DeploymentType"], Kind::Object),
            p("InstallCommand", &["InstallationProgram"], Kind::Str),
            p(
                "InstallWorkingDirectory",
                &["InstallFolder", "InstallationStartIn"],
                Kind::Str,
            ),
            p(
                "InstallationBehaviorType",
                &[],
                Kind::Enum(
                    "InstallationBehaviorType",
                    &[
                        "InstallForUser",
                        "InstallForSystem",
                        "InstallForSystemIfResourceIsDeviceOtherwiseInstallForUser",
                    ],
                ),
            ),
            p(
                "LogonRequirementType",
                &[],
                Kind::Enum(
                    "LogonRequirementType",
                    &[
                        "OnlyWhenUserLoggedOn",
                        "WhereOrNotUserLoggedOn",
                        "WhetherOrNotUserLoggedOn",
                        "OnlyWhenNoUserLoggedOn",
                    ],
                ),
            ),
            p(
                "MaximumRuntimeMins",
                &[
                    "MaximumAllowedRunTimeMins",
                    "MaximumAllowedRunTimeMinutes",
                    "MaximumRunTimeMinutes",
                ],
                Kind::Int,
            ),
            p("NewName", &["NewDeploymentTypeName"], Kind::Str),
            p("PassThru", &[], Kind::Switch),
            p("ProductCode", &[], Kind::Str),
            p(
                "RebootBehavior",
                &[],
                Kind::Enum(
                    "PostExecutionBehavior",
                    &[
                        "BasedOnExitCode",
                        "NoAction",
                        "ForceReboot",
                        "ProgramReboot",
                    ],
                ),
            ),
            p(
                "RemoveDetectionClause",
                &["RemoveDetectionClauses"],
                Kind::StrArray,
            ),
            p("RemoveLanguage", &["RemoveLanguages"], Kind::StrArray),
            p(
                "RemoveRequirement",
                &["RemoveRequirements"],
                Kind::Other("Rule[]"),
            ),
            p("RepairCommand", &["RepairProgram"], Kind::Str),
            p(
                "RepairWorkingDirectory",
                &["RepairFolder", "RepairStartIn"],
                Kind::Str,
            ),
            p(
                "RequireUserInteraction",
                &["RequiresUserInteraction"],
                Kind::Bool,
            ),
            p("ScriptFile", &[], Kind::Str),
            p(
                "ScriptLanguage",
                &["ScriptType"],
                Kind::Enum("ScriptLanguage", &["PowerShell", "VBScript", "JavaScript"]),
            ),
            p("ScriptText", &["Script", "ScriptContent"], Kind::Str),
            p(
                "SlowNetworkDeploymentMode",
                &[],
                Kind::Enum("ContentHandlingMode", &["DoNothing", "Download"]),
            ),
            p("SourceUpdateProductCode", &[], Kind::Str),
            p("UninstallCommand", &["UninstallationProgram"], Kind::Str),
            p("UninstallContentLocation", &[], Kind::Str),
            p(
                "UninstallOption",
                &[],
                Kind::Enum(
                    "UninstallContentSetting",
                    &["SameAsInstall", "NoneRequired", "Different"],
                ),
            ),
            p(
                "UninstallWorkingDirectory",
                &["UninstallFolder", "UninstallationStartIn"],
                Kind::Str,
            ),
            p(
                "UserInteractionMode",
                &["InstallationProgramVisibility"],
                Kind::Enum(
                    "UserInteractionMode",
                    &["Normal", "Minimized", "Maximized", "Hidden"],
                ),
            ),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "ByAppId",
                &["ApplicationId", "DeploymentTypeName"],
                &["ApplicationId", "DeploymentTypeName"],
            ),
            set(
                "ByAppName",
                &["ApplicationName", "DeploymentTypeName"],
                &["ApplicationName", "DeploymentTypeName"],
            ),
            set(
                "ByAppValue",
                &["Application", "DeploymentTypeName"],
                &["Application", "DeploymentTypeName"],
            ),
            set("ByDTValue", &["InputObject"], &["InputObject"]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Get-CMDeploymentType.md
    CmdletInfo {
        id: Cmdlet::GetCMDeploymentType,
        name: "Get-CMDeploymentType",
        params: &[
            p("ApplicationName", &[], Kind::Str),
            p("DeploymentTypeId", &["CIId", "CI_ID"], Kind::Int),
            p("DeploymentTypeName", &["LocalizedDisplayName"], Kind::Str),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("InputObject", &["Application"], Kind::Object),
        ],
        sets: &[
            set(
                "SearchByDTValue",
                &["InputObject"],
                &["DeploymentTypeName", "InputObject"],
            ),
            set(
                "SearchByIdMandatory",
                &["ApplicationName", "DeploymentTypeId"],
                &["ApplicationName", "DeploymentTypeId"],
            ),
            set(
                "SearchByName",
                &["ApplicationName"],
                &["ApplicationName", "DeploymentTypeName"],
            ),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Start-CMContentDistribution.md
    CmdletInfo {
        id: Cmdlet::StartCMContentDistribution,
        name: "Start-CMContentDistribution",
        params: &[
            p("ApplicationId", &[], Kind::StrArray),
            p("ApplicationName", &[], Kind::StrArray),
            p("BootImageId", &["BootImageIds"], Kind::StrArray),
            p("BootImageName", &["BootImageNames"], Kind::StrArray),
            p("CollectionName", &[], Kind::StrArray),
            p("Confirm", &["cf"], Kind::Switch),
            p(
                "DeploymentPackageId",
                &[
                    "DeploymentPackageIds",
                    "SoftwareUpdatesPackageId",
                    "SoftwareUpdatesPackageIds",
                ],
                Kind::StrArray,
            ),
            p(
                "DeploymentPackageName",
                &[
                    "DeploymentPackageNames",
                    "SoftwareUpdatesPackageName",
                    "SoftwareUpdatesPackageNames",
                ],
                Kind::StrArray,
            ),
            p(
                "DisableContentDependencyDetection",
                &["DisableDetectAssociatedContentDependencies"],
                Kind::Switch,
            ),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("DistributionPointGroupName", &[], Kind::StrArray),
            p("DistributionPointName", &[], Kind::StrArray),
            p("DriverPackageId", &["DriverPackageIds"], Kind::StrArray),
            p("DriverPackageName", &["DriverPackageNames"], Kind::StrArray),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p(
                "InputObject",
                &[
                    "Application",
                    "BootImage",
                    "DeploymentPackage",
                    "DriverPackage",
                    "ImagePackage",
                    "OperatingSystemInstaller",
                    "Package",
                    "SoftwareUpdatePackage",
                    "TaskSequence",
                ],
                Kind::Object,
            ),
            p("OperatingSystemImage", &[], Kind::Object),
            p(
                "OperatingSystemImageId",
                &["OperatingSystemImageIds"],
                Kind::StrArray,
            ),
            p(
                "OperatingSystemImageName",
                &["OperatingSystemImageNames"],
                Kind::StrArray,
            ),
            p(
                "OperatingSystemInstallerId",
                &["OperatingSystemInstallerIds"],
                Kind::StrArray,
            ),
            p(
                "OperatingSystemInstallerName",
                &["OperatingSystemImageInstallerNames"],
                Kind::StrArray,
            ),
            p("PackageId", &["PackageIds"], Kind::StrArray),
            p("PackageName", &["PackageNames"], Kind::StrArray),
            p("TaskSequenceId", &["TaskSequenceIds"], Kind::StrArray),
            p("TaskSequenceName", &["TaskSequenceNames"], Kind::StrArray),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "SearchByIdMandatory_Application",
                &["ApplicationId"],
                &["ApplicationId", "DisableContentDependencyDetection"],
            ),
            set(
                "SearchByIdMandatory_BootImage",
                &["BootImageId"],
                &["BootImageId"],
            ),
            set(
                "SearchByIdMandatory_DeploymentPackage",
                &["DeploymentPackageId"],
                &["DeploymentPackageId"],
            ),
            set(
                "SearchByIdMandatory_DriverPackage",
                &["DriverPackageId"],
                &["DriverPackageId"],
            ),
            set(
                "SearchByIdMandatory_OperatingSystemImage",
                &["OperatingSystemImageId"],
                &["OperatingSystemImageId"],
            ),
            set(
                "SearchByIdMandatory_OperatingSystemInstaller",
                &["OperatingSystemInstallerId"],
                &["OperatingSystemInstallerId"],
            ),
            set(
                "SearchByIdMandatory_Package",
                &["PackageId"],
                &["PackageId"],
            ),
            set(
                "SearchByIdMandatory_TaskSequence",
                &["TaskSequenceId"],
                &["TaskSequenceId"],
            ),
            set(
                "SearchByNameMandatory_Application",
                &["ApplicationName"],
                &["ApplicationName", "DisableContentDependencyDetection"],
            ),
            set(
                "SearchByNameMandatory_BootImage",
                &["BootImageName"],
                &["BootImageName"],
            ),
            set(
                "SearchByNameMandatory_DeploymentPackage",
                &["DeploymentPackageName"],
                &["DeploymentPackageName"],
            ),
            set(
                "SearchByNameMandatory_DriverPackage",
                &["DriverPackageName"],
                &["DriverPackageName"],
            ),
            set(
                "SearchByNameMandatory_OperatingSystemImage",
                &["OperatingSystemImageName"],
                &["OperatingSystemImageName"],
            ),
            set(
                "SearchByNameMandatory_OperatingSystemInstaller",
                &["OperatingSystemInstallerName"],
                &["OperatingSystemInstallerName"],
            ),
            set(
                "SearchByNameMandatory_Package",
                &["PackageName"],
                &["PackageName"],
            ),
            set(
                "SearchByNameMandatory_TaskSequence",
                &["TaskSequenceName"],
                &["TaskSequenceName"],
            ),
            set("SearchByValueMandatory", &["InputObject"], &["InputObject"]),
            set(
                "SearchByValueMandatory_Application",
                &[],
                &["DisableContentDependencyDetection"],
            ),
            set(
                "SearchByValueMandatory_OperatingSystemImage",
                &["OperatingSystemImage"],
                &["OperatingSystemImage"],
            ),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/New-CMApplicationDeployment.md
    CmdletInfo {
        id: Cmdlet::NewCMApplicationDeployment,
        name: "New-CMApplicationDeployment",
        params: &[
            p(
                "AllowRepairApp",
                &["AllowUserRepairApplication"],
                Kind::Bool,
            ),
            p("ApprovalRequired", &["AppRequiresApproval"], Kind::Bool),
            p(
                "AutoCloseExecutable",
                &["AutoCloseExeOnInstallBehavior"],
                Kind::Bool,
            ),
            p("AvailableDateTime", &[], Kind::DateTime),
            p("Collection", &[], Kind::Object),
            p("CollectionId", &[], Kind::Str),
            p("CollectionName", &[], Kind::Str),
            p("Comment", &[], Kind::Str),
            p("Confirm", &["cf"], Kind::Switch),
            p(
                "DeadlineDateTime",
                &["SupersedenceDeadlineDateTime"],
                Kind::DateTime,
            ),
            p(
                "DeployAction",
                &[],
                Kind::Enum("DeployActionType", &["Install", "Uninstall"]),
            ),
            p(
                "DeployPurpose",
                &[],
                Kind::Enum("DeployPurposeType", &["Available", "Required"]),
            ),
            p(
                "DisableContentDependencyDetection",
                &["DisableDetectAssociatedContentDependencies"],
                Kind::Switch,
            ),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("DistributeCollectionName", &[], Kind::Str),
            p("DistributeContent", &[], Kind::Switch),
            p("DistributionPointGroupName", &[], Kind::Str),
            p("DistributionPointName", &[], Kind::Str),
            p("EnableMomAlert", &[], Kind::Bool),
            p("EnableSoftDeadline", &[], Kind::Bool),
            p("FailParameterValue", &[], Kind::Int),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p(
                "GenerateScomAlertOnFailure",
                &["RaiseMomAlertsOnFailure"],
                Kind::Bool,
            ),
            p("Id", &["ApplicationId", "CIId", "CI_ID"], Kind::Int),
            p("InputObject", &["Application"], Kind::Object),
            p(
                "Name",
                &["ApplicationName", "LocalizedDisplayName"],
                Kind::Str,
            ),
            p("OverrideServiceWindow", &[], Kind::Bool),
            p("PersistOnWriteFilterDevice", &[], Kind::Bool),
            p("PostponeDateTime", &[], Kind::DateTime),
            p("PreDeploy", &[], Kind::Bool),
            p("RebootOutsideServiceWindow", &[], Kind::Bool),
            p("ReplaceToastNotificationWithDialog", &[], Kind::Bool),
            p("SendWakeupPacket", &[], Kind::Bool),
            p("Simulation", &[], Kind::Switch),
            p("SuccessParameterValue", &[], Kind::Int),
            p(
                "TimeBaseOn",
                &[],
                Kind::Enum("TimeType", &["LocalTime", "Utc"]),
            ),
            p("UpdateSupersedence", &[], Kind::Bool),
            p("UseMeteredNetwork", &[], Kind::Bool),
            p(
                "UserNotification",
                &[],
                Kind::Enum(
                    "UserNotificationType",
                    &["DisplayAll", "DisplaySoftwareCenterOnly", "HideAll"],
                ),
            ),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set("SearchByIdMandatory", &["Id"], &["Id"]),
            set("SearchByNameMandatory", &["Name"], &["Name"]),
            set("SearchByValueMandatory", &["InputObject"], &["InputObject"]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Get-CMApplicationDeployment.md
    CmdletInfo {
        id: Cmdlet::GetCMApplicationDeployment,
        name: "Get-CMApplicationDeployment",
        params: &[
            p("Collection", &[], Kind::Object),
            p("CollectionId", &[], Kind::Str),
            p("CollectionName", &[], Kind::Str),
            p(
                "DeploymentId",
                &["ApplicationDeploymentID", "AssignmentUniqueID"],
                Kind::Str,
            ),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("InputObject", &["Application"], Kind::Object),
            p("Name", &["ApplicationName"], Kind::Str),
            p("SmsObjectId", &["ApplicationID", "CI_ID"], Kind::Int),
            p("Summary", &[], Kind::Switch),
        ],
        sets: &[
            set("SearchByDeploymentId", &[], &["DeploymentId"]),
            set("SearchById", &[], &["SmsObjectId"]),
            set("SearchByName", &[], &["Name"]),
            set("SearchByValue", &[], &["InputObject"]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/New-CMFolder.md
    CmdletInfo {
        id: Cmdlet::NewCMFolder,
        name: "New-CMFolder",
        params: &[
            p("Confirm", &["cf"], Kind::Switch),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("InputObject", &["ParentContainerNode"], Kind::Object),
            p("Name", &[], Kind::Str),
            p("ParentFolderPath", &[], Kind::Str),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "CreateByParentObjectMandatory",
                &["InputObject"],
                &["InputObject"],
            ),
            set(
                "CreateByParentPathMandatory",
                &["ParentFolderPath"],
                &["ParentFolderPath"],
            ),
            set("SearchByNameMandatory", &[], &[]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Get-CMFolder.md
    CmdletInfo {
        id: Cmdlet::GetCMFolder,
        name: "Get-CMFolder",
        params: &[
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("FolderPath", &[], Kind::Str),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("Guid", &["FolderGuid"], Kind::Other("Guid")),
            p("Id", &["ContainerNodeID"], Kind::Int),
            p("InputObject", &["ParentContainerNode"], Kind::Object),
            p("IsEmpty", &[], Kind::Bool),
            p("IsSearchFolder", &[], Kind::Bool),
            p("Name", &[], Kind::Str),
            p("ParentFolderPath", &[], Kind::Str),
            p("SiteCode", &["SourceSite"], Kind::Str),
            p("TypeName", &["ObjectTypeName"], Kind::Str),
        ],
        sets: &[
            set("SearchByGuidMandatory", &["Guid"], &["Guid"]),
            set("SearchByIdMandatory", &["Id"], &["Id"]),
            set(
                "SearchByName",
                &[],
                &[
                    "InputObject",
                    "IsEmpty",
                    "IsSearchFolder",
                    "Name",
                    "ParentFolderPath",
                    "SiteCode",
                    "TypeName",
                ],
            ),
            set("SearchByPathMandatory", &["FolderPath"], &["FolderPath"]),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Move-CMObject.md
    CmdletInfo {
        id: Cmdlet::MoveCMObject,
        name: "Move-CMObject",
        params: &[
            p("Confirm", &["cf"], Kind::Switch),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("FolderPath", &[], Kind::Str),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p("InputObject", &[], Kind::Object),
            p("ObjectId", &["InstanceKey"], Kind::StrArray),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "SearchByIdMandatory",
                &["FolderPath", "ObjectId"],
                &["ObjectId"],
            ),
            set(
                "SearchByObjectMandatory",
                &["FolderPath", "InputObject"],
                &["InputObject"],
            ),
        ],
    },
    // MicrosoftDocs/sccm-docs-powershell sccm-ps/ConfigurationManager/Set-CMApplicationDeployment.md
    CmdletInfo {
        id: Cmdlet::SetCMApplicationDeployment,
        name: "Set-CMApplicationDeployment",
        params: &[
            p(
                "AllowRepairApp",
                &["AllowUserRepairApplication"],
                Kind::Bool,
            ),
            p("ApplicationId", &[], Kind::Str),
            p("ApplicationName", &[], Kind::Str),
            p(
                "AutoCloseExecutable",
                &["AutoCloseExeOnInstallBehavior"],
                Kind::Bool,
            ),
            p("AvailableDateTime", &[], Kind::DateTime),
            p("Collection", &[], Kind::Object),
            p("CollectionId", &[], Kind::Str),
            p("CollectionName", &[], Kind::Str),
            p("Comment", &[], Kind::Str),
            p("Confirm", &["cf"], Kind::Switch),
            p("CreateAlertBaseOnPercentFailure", &[], Kind::Bool),
            p("CreateAlertBaseOnPercentSuccess", &[], Kind::Bool),
            p("DeadlineDateTime", &[], Kind::DateTime),
            p("DisableWildcardHandling", &[], Kind::Switch),
            p("EnableMomAlert", &[], Kind::Bool),
            p("EnableSoftDeadline", &[], Kind::Bool),
            p("FailParameterValue", &[], Kind::Int),
            p("ForceWildcardHandling", &[], Kind::Switch),
            p(
                "InputObject",
                &["Application", "Assignment", "DeploymentSummary"],
                Kind::Object,
            ),
            p("OverrideServiceWindow", &[], Kind::Bool),
            p("PassThru", &[], Kind::Switch),
            p("PersistOnWriteFilterDevice", &[], Kind::Bool),
            p("PostponeDateTime", &[], Kind::DateTime),
            p("PreDeploy", &[], Kind::Bool),
            p("RaiseMomAlertsOnFailure", &[], Kind::Bool),
            p("RebootOutsideServiceWindow", &[], Kind::Bool),
            p("ReplaceToastNotificationWithDialog", &[], Kind::Bool),
            p("RequireApproval", &["AppRequiresApproval"], Kind::Bool),
            p("SendWakeUpPacket", &[], Kind::Bool),
            p("SuccessParameterValue", &[], Kind::Int),
            p(
                "TimeBaseOn",
                &[],
                Kind::Enum("TimeType", &["LocalTime", "Utc"]),
            ),
            p("UseMeteredNetwork", &[], Kind::Bool),
            p(
                "UserNotification",
                &[],
                Kind::Enum(
                    "UserNotificationType",
                    &["DisplayAll", "DisplaySoftwareCenterOnly", "HideAll"],
                ),
            ),
            p("WhatIf", &["wi"], Kind::Switch),
        ],
        sets: &[
            set(
                "SetApplicationDeploymentByIdMandatory",
                &["ApplicationId"],
                &["ApplicationId"],
            ),
            set(
                "SetApplicationDeploymentByNameMandatory",
                &["ApplicationName"],
                &["ApplicationName"],
            ),
            set(
                "SetApplicationDeploymentByValueMandatory",
                &["InputObject"],
                &["InputObject"],
            ),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cmdlet_has_one_row() {
        for c in CMDLETS {
            assert_eq!(
                CMDLETS.iter().filter(|o| o.id == c.id).count(),
                1,
                "{}",
                c.name
            );
            assert_eq!(c.id.info().name, c.name);
            for s in c.sets {
                for m in s.mandatory {
                    assert!(c.param(m).is_some(), "{}: {m}", c.name);
                    assert!(c.in_set(s, m), "{}: {m}", c.name);
                }
            }
        }
        assert_eq!(CMDLETS.len(), 23);
    }
}
