//! The interpreter: executes a script's statements (already accepted by [`crate::read()`]) against
//! a [`Site`], binding every call through [`crate::bind`] and answering with ConfigMgr's and
//! PowerShell's own wording.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value as Json;

use super::Site;
use super::state::*;
use crate::bind::{Bound, bind, parse_datetime};
use crate::cmdlets::Cmdlet;
use crate::script::{Call, Emit, Literal, Preference, RESULT_MARKER, Statement, Target, Value};

/// What a script variable holds. Objects are references into the site, read when a property
/// is, like the live WMI objects the ConfigMgr cmdlets return.
#[derive(Debug, Clone, PartialEq)]
enum Obj {
    Null,
    App { model: String, fast: bool },
    Dt { model: String, logical: String },
    Folder(u32),
    Item(u32),
    Deployment(u32),
    Drive,
    List(Vec<Obj>),
}

fn many(mut objs: Vec<Obj>) -> Obj {
    match objs.len() {
        0 => Obj::Null,
        1 => objs.remove(0),
        _ => Obj::List(objs),
    }
}

impl Obj {
    fn items(&self) -> Vec<Obj> {
        match self {
            Obj::Null => Vec::new(),
            Obj::List(v) => v.clone(),
            one => vec![one.clone()],
        }
    }
}

type CmdResult = Result<Obj, String>;

const NOT_FOUND: &str = "No object corresponds to the specified parameters.";

/// Execution context of one script run.
struct Run {
    vars: HashMap<String, Obj>,
    stdout: String,
    module_loaded: bool,
    on_site_drive: bool,
}

impl Site {
    /// Runs the script's statements in order until one fails (`$ErrorActionPreference =
    /// 'Stop'`); returns the stdout and the failure: line, cmdlet and message.
    pub(super) fn execute(
        &mut self,
        script: &crate::script::Script,
    ) -> (String, Option<(usize, String, String)>) {
        let mut run = Run {
            vars: HashMap::new(),
            stdout: String::new(),
            module_loaded: false,
            on_site_drive: false,
        };
        for (i, statement) in script.statements.iter().enumerate() {
            if let Err((cmdlet, message)) = self.statement(&mut run, statement) {
                // The reader guarantees one statement per line.
                return (run.stdout, Some((i + 1, cmdlet, message)));
            }
        }
        (run.stdout, None)
    }

    fn statement(&mut self, run: &mut Run, statement: &Statement) -> Result<(), (String, String)> {
        match statement {
            Statement::Preference { variable, value } => {
                // Only 'Stop' matches what the emulator does on an error.
                if *variable == Preference::ErrorActionPreference
                    && !matches!(value, Literal::Str(s) if s.eq_ignore_ascii_case("Stop"))
                {
                    return Err((
                        "$ErrorActionPreference".into(),
                        "the emulator only runs scripts with $ErrorActionPreference = 'Stop'"
                            .into(),
                    ));
                }
                Ok(())
            }
            // The emulator's stdout is a Rust string: UTF-8 already.
            Statement::Utf8Output => Ok(()),
            Statement::Call { target, call } => {
                let obj = self.call(run, call)?;
                if let Target::Var(v) = target {
                    run.vars.insert(v.as_str().to_ascii_lowercase(), obj);
                }
                Ok(())
            }
            Statement::IfNull { variable, call } => {
                let key = variable.as_str().to_ascii_lowercase();
                if run.vars.get(&key).is_none_or(|o| *o == Obj::Null) {
                    let obj = self.call(run, call)?;
                    run.vars.insert(key, obj);
                }
                Ok(())
            }
            Statement::Foreach {
                item,
                collection,
                emit,
            } => {
                let objs = run
                    .vars
                    .get(&collection.as_str().to_ascii_lowercase())
                    .cloned()
                    .unwrap_or(Obj::Null);
                for obj in objs.items() {
                    run.vars.insert(item.as_str().to_ascii_lowercase(), obj);
                    self.emit(run, emit);
                }
                Ok(())
            }
            Statement::Emit(emit) => {
                self.emit(run, emit);
                Ok(())
            }
        }
    }

    fn emit(&self, run: &mut Run, emit: &Emit) {
        let mut line = String::from(RESULT_MARKER);
        line.push('{');
        for (i, (key, value)) in emit.fields.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            write_ps_json(&mut line, &Json::String(key.clone()));
            line.push(':');
            let v = self.value_json(run, value);
            write_ps_json(&mut line, &v);
        }
        line.push_str("}\n");
        run.stdout.push_str(&line);
    }

    fn value_json(&self, run: &Run, value: &Value) -> Json {
        match value {
            Value::Str(s) => Json::String(s.clone()),
            Value::Int(i) => Json::from(*i),
            Value::Bool(b) => Json::Bool(*b),
            Value::Var(_) => Json::Null,
            Value::Member(v, prop) => {
                let obj = run
                    .vars
                    .get(&v.as_str().to_ascii_lowercase())
                    .cloned()
                    .unwrap_or(Obj::Null);
                self.property(&obj, prop)
            }
        }
    }

    /// `$obj.Property`, with PowerShell's member enumeration over collections and `$null` for
    /// anything unknown.
    fn property(&self, obj: &Obj, prop: &str) -> Json {
        let p = prop.to_ascii_lowercase();
        let s = &self.state;
        match obj {
            Obj::Null => Json::Null,
            Obj::Drive if p == "root" => Json::String(s.provider.clone()),
            Obj::Drive => Json::Null,
            Obj::List(items) => Json::Array(items.iter().map(|o| self.property(o, prop)).collect()),
            Obj::App { model, fast } => {
                let Some(app) = self.app_pos(model).map(|i| &s.applications[i]) else {
                    return Json::Null;
                };
                match p.as_str() {
                    "ci_id" => app.ci_id.into(),
                    "modelname" => app.model_name.clone().into(),
                    "ci_uniqueid" => format!("{}/{}", app.model_name, app.revision).into(),
                    "localizeddisplayname" => app.name.clone().into(),
                    "localizeddescription" => app.description.clone().into(),
                    "manufacturer" => app.publisher.clone().into(),
                    "softwareversion" => app.software_version.clone().into(),
                    "sdmpackageversion" => app.revision.into(),
                    "numberofdeploymenttypes" => (app.deployment_types.len() as u32).into(),
                    "numberofdeployments" => (s
                        .deployments
                        .iter()
                        .filter(|d| &d.application_model_name == model)
                        .count() as u32)
                        .into(),
                    "isdeployed" => s
                        .deployments
                        .iter()
                        .any(|d| &d.application_model_name == model)
                        .into(),
                    "hascontent" => (!app.deployment_types.is_empty()).into(),
                    "islatest" => true.into(),
                    // A lazy property: `-Fast` leaves it empty, as on a real site.
                    "sdmpackagexml" if *fast => Json::Null,
                    "sdmpackagexml" => self.sdm_package_xml(app).into(),
                    _ => Json::Null,
                }
            }
            Obj::Dt { model, logical } => {
                let app = self.app_pos(model).map(|i| &s.applications[i]);
                let Some(dt) = app.and_then(|a| {
                    a.deployment_types
                        .iter()
                        .find(|d| &d.logical_name == logical)
                }) else {
                    return Json::Null;
                };
                match p.as_str() {
                    "ci_id" => dt.ci_id.into(),
                    "localizeddisplayname" => dt.name.clone().into(),
                    "modelname" => format!("{}/{}", s.scope_id, dt.logical_name).into(),
                    "appmodelname" => model.clone().into(),
                    "technology" => dt.technology.clone().into(),
                    "sdmpackageversion" => dt.revision.into(),
                    _ => Json::Null,
                }
            }
            Obj::Folder(id) => {
                let Some(f) = s.folders.iter().find(|f| f.container_node_id == *id) else {
                    return Json::Null;
                };
                match p.as_str() {
                    "containernodeid" => f.container_node_id.into(),
                    "name" => f.name.clone().into(),
                    "parentcontainernodeid" => f.parent_container_node_id.into(),
                    "objecttype" => f.object_type.into(),
                    "objecttypename" => "SMS_ApplicationLatest".into(),
                    _ => Json::Null,
                }
            }
            Obj::Item(id) => {
                let Some(item) = s.folder_items.iter().find(|i| i.member_id == *id) else {
                    return Json::Null;
                };
                match p.as_str() {
                    "memberid" => item.member_id.into(),
                    "containernodeid" => item.container_node_id.into(),
                    "instancekey" => item.instance_key.clone().into(),
                    "objecttype" => item.object_type.into(),
                    "objecttypename" => "SMS_ApplicationLatest".into(),
                    _ => Json::Null,
                }
            }
            Obj::Deployment(id) => {
                let Some(d) = s.deployments.iter().find(|d| d.assignment_id == *id) else {
                    return Json::Null;
                };
                match p.as_str() {
                    "assignmentid" => d.assignment_id.into(),
                    "assignmentuniqueid" => d.assignment_unique_id.clone().into(),
                    "applicationname" => d.application_name.clone().into(),
                    "collectionname" => d.collection_name.clone().into(),
                    "targetcollectionid" => d.collection_id.clone().into(),
                    _ => Json::Null,
                }
            }
        }
    }

    fn call(&mut self, run: &mut Run, call: &Call) -> Result<Obj, (String, String)> {
        let name = call.cmdlet.name().to_owned();
        let is_cm = name.contains("-CM");
        if is_cm && !run.module_loaded {
            return Err((
                name.clone(),
                format!(
                    "The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
                ),
            ));
        }
        // `$var.Property` arguments pass the property's value, as PowerShell evaluates them
        // before binding.
        let mut resolved = call.clone();
        for arg in &mut resolved.args {
            if let Some(Value::Member(v, prop)) = &arg.value {
                let obj = run
                    .vars
                    .get(&v.as_str().to_ascii_lowercase())
                    .cloned()
                    .unwrap_or(Obj::Null);
                arg.value = match self.property(&obj, prop) {
                    Json::String(s) => Some(Value::Str(s)),
                    Json::Number(n) => n
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .map(Value::Int),
                    Json::Bool(b) => Some(Value::Bool(b)),
                    _ => None,
                };
            }
        }
        let bound = bind(&resolved).map_err(|m| (name.clone(), m))?;
        // Variables become objects here; a `$null` object argument fails validation.
        let mut objects: HashMap<&'static str, Obj> = HashMap::new();
        for (param, value) in &bound.values {
            let Some(Value::Var(v)) = value else { continue };
            let obj = run
                .vars
                .get(&v.as_str().to_ascii_lowercase())
                .cloned()
                .unwrap_or(Obj::Null);
            if obj == Obj::Null {
                return Err((
                    name.clone(),
                    format!(
                        "Cannot validate argument on parameter '{param}'. The argument is null. Provide a valid value for the argument, and then try the command again."
                    ),
                ));
            }
            objects.insert(param, obj);
        }
        if is_cm && !run.on_site_drive {
            return Err((name.clone(), "This command cannot be run from the current drive. To run this command you must first connect to a Configuration Manager drive.".into()));
        }
        let result = self.dispatch(run, call.cmdlet, &bound, &objects);
        result.map_err(|m| (name, m))
    }

    fn dispatch(
        &mut self,
        run: &mut Run,
        cmdlet: Cmdlet,
        b: &Bound,
        objects: &HashMap<&'static str, Obj>,
    ) -> CmdResult {
        match cmdlet {
            Cmdlet::SetExecutionPolicy => Ok(Obj::Null),
            Cmdlet::ImportModule => {
                let name = b.str("Name").unwrap_or_default();
                let file = name.rsplit('\\').next().unwrap_or(name);
                if file.eq_ignore_ascii_case("ConfigurationManager.psd1")
                    || name.eq_ignore_ascii_case("ConfigurationManager")
                {
                    run.module_loaded = true;
                    Ok(Obj::Null)
                } else {
                    Err(format!(
                        "The specified module '{name}' was not loaded because no valid module file was found in any module directory."
                    ))
                }
            }
            Cmdlet::SetLocation => {
                let path = b.str("Path").or(b.str("LiteralPath")).unwrap_or_default();
                let drive = path.split(':').next().unwrap_or_default();
                if !path.contains(':') {
                    return Err(format!(
                        "Cannot find path '{path}' because it does not exist."
                    ));
                }
                if drive.eq_ignore_ascii_case(&self.state.site_code) && run.module_loaded {
                    run.on_site_drive = true;
                } else if drive.len() == 1 && drive.bytes().all(|b| b.is_ascii_alphabetic()) {
                    // A file-system drive: leaving the site drive.
                    run.on_site_drive = false;
                } else {
                    return Err(format!(
                        "Cannot find drive. A drive with the name '{drive}' does not exist."
                    ));
                }
                Ok(Obj::Null)
            }
            Cmdlet::GetPSDrive => {
                let name = b.str("Name").unwrap_or_default();
                if name.eq_ignore_ascii_case(&self.state.site_code) && run.module_loaded {
                    Ok(Obj::Drive)
                } else {
                    Err(format!(
                        "Cannot find drive. A drive with the name '{name}' does not exist."
                    ))
                }
            }
            Cmdlet::GetCimInstance | Cmdlet::GetWmiObject => self.wmi(b),
            Cmdlet::ConvertToJson | Cmdlet::WriteOutput => {
                Err("the emulator runs ConvertTo-Json and Write-Output only in result lines".into())
            }
            Cmdlet::GetCMApplication => {
                let fast = b.has("Fast");
                let literal = b.has("DisableWildcardHandling");
                let s = &self.state;
                let found: Vec<Obj> = s
                    .applications
                    .iter()
                    .filter(
                        |a| match (b.str("Name"), b.str("ModelName"), b.value("Id")) {
                            (Some(n), _, _) => name_matches(n, &a.name, literal),
                            (_, Some(m), _) => a.model_name.eq_ignore_ascii_case(m),
                            (_, _, Some(Value::Int(id))) => a.ci_id == *id,
                            _ => true,
                        },
                    )
                    .map(|a| Obj::App {
                        model: a.model_name.clone(),
                        fast,
                    })
                    .collect();
                Ok(many(found))
            }
            Cmdlet::NewCMApplication => {
                let name = b.str("Name").unwrap_or_default().to_owned();
                if self
                    .state
                    .applications
                    .iter()
                    .any(|a| a.name.eq_ignore_ascii_case(&name))
                {
                    return Err("An object with the specified name already exists.".into());
                }
                let logical = format!("Application_{}", uuid::Uuid::new_v4());
                let app = Application {
                    ci_id: self.next_id(),
                    model_name: format!("{}/{logical}", self.state.scope_id),
                    logical_name: logical,
                    revision: 1,
                    name,
                    description: String::new(),
                    publisher: String::new(),
                    software_version: String::new(),
                    optional_reference: String::new(),
                    owners: Vec::new(),
                    localized_name: String::new(),
                    auto_install: false,
                    default_language_id: None,
                    deployment_types: Vec::new(),
                    content: Vec::new(),
                };
                let model = app.model_name.clone();
                self.push_app(app);
                let i = self.state.applications.len() - 1;
                apply_app(&mut self.state.applications[i], b);
                Ok(Obj::App { model, fast: false })
            }
            Cmdlet::SetCMApplication => {
                let i = self.find_app(b, objects, "InputObject", "Name", "Id")?;
                if let Some(new) = b.str("NewName")
                    && self
                        .state
                        .applications
                        .iter()
                        .enumerate()
                        .any(|(j, a)| j != i && a.name.eq_ignore_ascii_case(new))
                {
                    return Err("An object with the specified name already exists.".into());
                }
                let app = &mut self.state.applications[i];
                if apply_app(app, b) {
                    app.revision += 1;
                }
                Ok(if b.has("PassThru") {
                    Obj::App {
                        model: app.model_name.clone(),
                        fast: false,
                    }
                } else {
                    Obj::Null
                })
            }
            Cmdlet::GetCMDeploymentType => {
                let i = self.find_app(b, objects, "InputObject", "ApplicationName", "")?;
                let app = &self.state.applications[i];
                let literal = b.has("DisableWildcardHandling");
                let found = app
                    .deployment_types
                    .iter()
                    .filter(|d| b.str("DeploymentTypeName").is_none_or(|n| name_matches(n, &d.name, literal)))
                    .filter(|d| !matches!(b.value("DeploymentTypeId"), Some(Value::Int(id)) if *id != d.ci_id))
                    .map(|d| Obj::Dt { model: app.model_name.clone(), logical: d.logical_name.clone() })
                    .collect();
                Ok(many(found))
            }
            Cmdlet::AddCMScriptDeploymentType | Cmdlet::AddCMMsiDeploymentType => {
                let i = self.find_app(
                    b,
                    objects,
                    "InputObject",
                    "ApplicationName",
                    "ApplicationId",
                )?;
                let msi = cmdlet == Cmdlet::AddCMMsiDeploymentType;
                let location = b.str("ContentLocation").unwrap_or_default().to_owned();
                let name = match b.str("DeploymentTypeName") {
                    Some(n) => n.to_owned(),
                    // ConfigMgr names an MSI DT after the file when no name is given.
                    None => location.rsplit('\\').next().unwrap_or_default().to_owned(),
                };
                let detection = match (b.str("ProductCode"), b.str("ScriptLanguage"), b.str("ScriptText")) {
                    (Some(code), _, _) => DtDetection::ProductCode(code.to_owned()),
                    (None, Some(lang), Some(text)) => DtDetection::Script {
                        language: lang.to_owned(),
                        text: text.to_owned(),
                        run_as_32bit: b.has("ForceScriptDetection32Bit"),
                    },
                    _ => return Err("The emulator needs -ProductCode or -ScriptLanguage with -ScriptText for detection (it cannot read MSI files, script files or detection clauses).".into()),
                };
                if self.state.applications[i]
                    .deployment_types
                    .iter()
                    .any(|d| d.name.eq_ignore_ascii_case(&name))
                {
                    return Err(format!(
                        "A deployment type named '{name}' already exists in this application."
                    ));
                }
                let dt = DeploymentType {
                    ci_id: self.next_id(),
                    logical_name: format!("DeploymentType_{}", uuid::Uuid::new_v4()),
                    revision: 1,
                    name,
                    technology: if msi { "MSI" } else { "Script" }.into(),
                    content_location: location,
                    install_command: b.str("InstallCommand").unwrap_or_default().to_owned(),
                    uninstall_command: None,
                    detection,
                    cache_content: false,
                    slow_network: "DoNothing".into(),
                    max_runtime_mins: 120,
                    estimated_runtime_mins: 0,
                    force_32bit: false,
                    comment: String::new(),
                    languages: Vec::new(),
                };
                let app = &mut self.state.applications[i];
                let logical = dt.logical_name.clone();
                app.deployment_types.push(dt);
                let last = app.deployment_types.len() - 1;
                apply_dt(&mut app.deployment_types[last], b);
                app.revision += 1;
                Ok(Obj::Dt {
                    model: app.model_name.clone(),
                    logical,
                })
            }
            Cmdlet::SetCMScriptDeploymentType | Cmdlet::SetCMMsiDeploymentType => {
                let (i, logical) = match objects.get("InputObject") {
                    Some(Obj::Dt { model, logical }) => {
                        let i = self.app_pos(model).ok_or(NOT_FOUND)?;
                        (i, logical.clone())
                    }
                    Some(_) => return Err(wrong_type("InputObject")),
                    None => {
                        let i = self.find_app(
                            b,
                            objects,
                            "Application",
                            "ApplicationName",
                            "ApplicationId",
                        )?;
                        let name = b.str("DeploymentTypeName").unwrap_or_default();
                        let dt = self.state.applications[i]
                            .deployment_types
                            .iter()
                            .find(|d| d.name.eq_ignore_ascii_case(name))
                            .ok_or(NOT_FOUND)?;
                        (i, dt.logical_name.clone())
                    }
                };
                let app = &mut self.state.applications[i];
                let dt = app
                    .deployment_types
                    .iter_mut()
                    .find(|d| d.logical_name == logical)
                    .ok_or(NOT_FOUND)?;
                if apply_dt(dt, b) {
                    dt.revision += 1;
                    app.revision += 1;
                }
                Ok(if b.has("PassThru") {
                    Obj::Dt {
                        model: app.model_name.clone(),
                        logical,
                    }
                } else {
                    Obj::Null
                })
            }
            Cmdlet::StartCMContentDistribution => {
                let apps = self.find_apps(b, objects)?;
                let groups: Vec<String> = match b.str("DistributionPointGroupName") {
                    Some(g) => vec![g.to_owned()],
                    None => return Err("The emulator distributes content to distribution point groups only: pass -DistributionPointGroupName.".into()),
                };
                for g in &groups {
                    if !self
                        .state
                        .distribution_point_groups
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(g))
                    {
                        return Err(format!("Distribution point group '{g}' does not exist."));
                    }
                }
                for i in apps {
                    let app = &mut self.state.applications[i];
                    if app.deployment_types.is_empty() {
                        return Err(format!(
                            "The application '{}' has no content to distribute: it has no deployment types.",
                            app.name
                        ));
                    }
                    for g in &groups {
                        let revision = app.revision;
                        match app
                            .content
                            .iter_mut()
                            .find(|c| c.distribution_point_group.eq_ignore_ascii_case(g))
                        {
                            Some(c) => c.revision = revision,
                            None => app.content.push(ContentStatus {
                                distribution_point_group: g.clone(),
                                revision,
                            }),
                        }
                    }
                }
                Ok(Obj::Null)
            }
            Cmdlet::NewCMApplicationDeployment => {
                let i = self.find_app(b, objects, "InputObject", "Name", "Id")?;
                let collection = self.find_collection(b)?;
                let app = &self.state.applications[i];
                if app.deployment_types.is_empty() {
                    return Err(format!(
                        "The application '{}' has no deployment types and cannot be deployed.",
                        app.name
                    ));
                }
                if self.state.deployments.iter().any(|d| {
                    d.application_model_name == app.model_name && d.collection_id == collection.id
                }) {
                    return Err(format!(
                        "The application '{}' is already deployed to collection '{}'.",
                        app.name, collection.name
                    ));
                }
                let available = b.str("AvailableDateTime").map(str::to_owned);
                let deadline = b.str("DeadlineDateTime").map(str::to_owned);
                if let (Some(a), Some(d)) = (
                    available.as_deref().and_then(parse_datetime),
                    deadline.as_deref().and_then(parse_datetime),
                ) && d <= a
                {
                    return Err("The deadline must be later than the available time.".into());
                }
                let deployment = Deployment {
                    assignment_id: 0,
                    assignment_unique_id: format!(
                        "{{{}}}",
                        uuid::Uuid::new_v4().to_string().to_uppercase()
                    ),
                    application_model_name: app.model_name.clone(),
                    application_name: app.name.clone(),
                    collection_id: collection.id.clone(),
                    collection_name: collection.name.clone(),
                    action: b.str("DeployAction").unwrap_or("Install").to_owned(),
                    purpose: b.str("DeployPurpose").unwrap_or("Available").to_owned(),
                    available,
                    deadline,
                    time_base: b.str("TimeBaseOn").unwrap_or("LocalTime").to_owned(),
                };
                let id = self.next_id();
                self.state.deployments.push(Deployment {
                    assignment_id: id,
                    ..deployment
                });
                Ok(Obj::Deployment(id))
            }
            Cmdlet::SetCMApplicationDeployment => {
                let id = match objects.get("InputObject") {
                    Some(Obj::Deployment(id)) => *id,
                    Some(Obj::App { model, .. }) => {
                        let collection = self.find_collection(b)?;
                        self.state
                            .deployments
                            .iter()
                            .find(|d| {
                                &d.application_model_name == model
                                    && d.collection_id == collection.id
                            })
                            .map(|d| d.assignment_id)
                            .ok_or(NOT_FOUND)?
                    }
                    Some(_) => return Err(wrong_type("InputObject")),
                    None => {
                        let i = self.find_app(
                            b,
                            objects,
                            "InputObject",
                            "ApplicationName",
                            "ApplicationId",
                        )?;
                        let collection = self.find_collection(b)?;
                        let model = &self.state.applications[i].model_name;
                        self.state
                            .deployments
                            .iter()
                            .find(|d| {
                                &d.application_model_name == model
                                    && d.collection_id == collection.id
                            })
                            .map(|d| d.assignment_id)
                            .ok_or(NOT_FOUND)?
                    }
                };
                let d = self
                    .state
                    .deployments
                    .iter_mut()
                    .find(|d| d.assignment_id == id)
                    .ok_or(NOT_FOUND)?;
                let available = b
                    .str("AvailableDateTime")
                    .map(str::to_owned)
                    .or(d.available.clone());
                let deadline = b
                    .str("DeadlineDateTime")
                    .map(str::to_owned)
                    .or(d.deadline.clone());
                if let (Some(a), Some(dl)) = (
                    available.as_deref().and_then(parse_datetime),
                    deadline.as_deref().and_then(parse_datetime),
                ) && dl <= a
                {
                    return Err("The deadline must be later than the available time.".into());
                }
                d.available = available;
                d.deadline = deadline;
                if let Some(t) = b.str("TimeBaseOn") {
                    d.time_base = t.to_owned();
                }
                Ok(if b.has("PassThru") {
                    Obj::Deployment(id)
                } else {
                    Obj::Null
                })
            }
            Cmdlet::GetCMApplicationDeployment => {
                let app_model = match (
                    objects.get("InputObject"),
                    b.str("Name"),
                    b.value("SmsObjectId"),
                ) {
                    (Some(Obj::App { model, .. }), _, _) => Some(model.clone()),
                    (Some(_), _, _) => return Err(wrong_type("InputObject")),
                    (None, Some(n), _) => Some(
                        self.state
                            .applications
                            .iter()
                            .find(|a| a.name.eq_ignore_ascii_case(n))
                            .map(|a| a.model_name.clone())
                            .unwrap_or_default(),
                    ),
                    (None, None, Some(Value::Int(id))) => Some(
                        self.state
                            .applications
                            .iter()
                            .find(|a| a.ci_id == *id)
                            .map(|a| a.model_name.clone())
                            .unwrap_or_default(),
                    ),
                    _ => None,
                };
                let found = self
                    .state
                    .deployments
                    .iter()
                    .filter(|d| {
                        app_model
                            .as_ref()
                            .is_none_or(|m| &d.application_model_name == m)
                    })
                    .filter(|d| {
                        b.str("CollectionName")
                            .is_none_or(|c| d.collection_name.eq_ignore_ascii_case(c))
                    })
                    .filter(|d| {
                        b.str("CollectionId")
                            .is_none_or(|c| d.collection_id.eq_ignore_ascii_case(c))
                    })
                    .map(|d| Obj::Deployment(d.assignment_id))
                    .collect();
                Ok(many(found))
            }
            Cmdlet::NewCMFolder => {
                let parent_path = b.str("ParentFolderPath").unwrap_or_default();
                let parent = self
                    .folder_by_path(parent_path)?
                    .ok_or_else(|| format!("Folder path '{parent_path}' does not exist."))?;
                let name = b
                    .str("Name")
                    .ok_or("Specify the folder name with -Name.")?
                    .to_owned();
                if self.state.folders.iter().any(|f| {
                    f.parent_container_node_id == parent && f.name.eq_ignore_ascii_case(&name)
                }) {
                    return Err("An object with the specified name already exists.".into());
                }
                let id = self.next_id();
                self.state.folders.push(Folder {
                    container_node_id: id,
                    name,
                    parent_container_node_id: parent,
                    object_type: 6000,
                });
                Ok(Obj::Folder(id))
            }
            Cmdlet::GetCMFolder => match b.str("FolderPath") {
                Some(path) => Ok(match self.folder_by_path(path)? {
                    Some(0) | None => Obj::Null,
                    Some(id) => Obj::Folder(id),
                }),
                None => Ok(many(
                    self.state
                        .folders
                        .iter()
                        .filter(|f| b.str("Name").is_none_or(|n| f.name.eq_ignore_ascii_case(n)))
                        .map(|f| Obj::Folder(f.container_node_id))
                        .collect(),
                )),
            },
            Cmdlet::MoveCMObject => {
                let path = b.str("FolderPath").unwrap_or_default();
                let target = self
                    .folder_by_path(path)?
                    .ok_or_else(|| format!("Folder path '{path}' does not exist."))?;
                let keys: Vec<String> = match (objects.get("InputObject"), b.str("ObjectId")) {
                    (Some(obj), _) => obj
                        .items()
                        .into_iter()
                        .map(|o| match o {
                            Obj::App { model, .. } => Ok(model),
                            _ => Err(wrong_type("InputObject")),
                        })
                        .collect::<Result<_, _>>()?,
                    (None, Some(id)) => {
                        if !self.state.applications.iter().any(|a| a.model_name == id) {
                            return Err(NOT_FOUND.into());
                        }
                        vec![id.to_owned()]
                    }
                    (None, None) => return Err(NOT_FOUND.into()),
                };
                for key in keys {
                    // An object lives in one folder: moving replaces its membership.
                    self.state.folder_items.retain(|i| i.instance_key != key);
                    if target != 0 {
                        let member_id = self.next_id();
                        self.state.folder_items.push(FolderItem {
                            member_id,
                            container_node_id: target,
                            instance_key: key,
                            object_type: 6000,
                        });
                    }
                }
                Ok(Obj::Null)
            }
        }
    }

    fn wmi(&self, b: &Bound) -> CmdResult {
        let namespace = b.str("Namespace").unwrap_or("root\\cimv2");
        if !namespace.eq_ignore_ascii_case(&format!("root\\SMS\\site_{}", self.state.site_code)) {
            return Err(format!("Invalid namespace \"{namespace}\""));
        }
        let (class, filter) = match (b.str("ClassName").or(b.str("Class")), b.str("Query")) {
            (Some(c), _) => (c.to_owned(), b.str("Filter").map(str::to_owned)),
            (None, Some(q)) => parse_wql(q).ok_or_else(|| format!("Invalid query \"{q}\""))?,
            (None, None) => return Err("Invalid query".into()),
        };
        let object_type = match filter.as_deref() {
            None => None,
            Some(f) => {
                Some(parse_object_type_filter(f).ok_or_else(|| format!("Invalid query \"{f}\""))?)
            }
        };
        let wanted = |t: u32| object_type.is_none_or(|o| o == t);
        let s = &self.state;
        match class.to_ascii_lowercase().as_str() {
            "sms_objectcontainernode" => Ok(many(
                s.folders
                    .iter()
                    .filter(|f| wanted(f.object_type))
                    .map(|f| Obj::Folder(f.container_node_id))
                    .collect(),
            )),
            "sms_objectcontaineritem" => Ok(many(
                s.folder_items
                    .iter()
                    .filter(|i| wanted(i.object_type))
                    .map(|i| Obj::Item(i.member_id))
                    .collect(),
            )),
            _ => Err(format!("Invalid class \"{class}\"")),
        }
    }

    pub(super) fn next_id(&mut self) -> u32 {
        let id = self.state.next_id;
        self.state.next_id += 1;
        id
    }

    /// The application a call addresses, by object, name or CI_ID. The index it returns is a
    /// position in `state.applications`, valid for the whole run: applications are only ever
    /// appended, never removed.
    fn find_app(
        &self,
        b: &Bound,
        objects: &HashMap<&'static str, Obj>,
        obj_param: &str,
        name_param: &str,
        id_param: &str,
    ) -> Result<usize, String> {
        let apps = &self.state.applications;
        if let Some(obj) = objects.get(obj_param) {
            return match obj {
                Obj::App { model, .. } => self.app_pos(model).ok_or_else(|| NOT_FOUND.into()),
                Obj::List(_) => Err(format!(
                    "Cannot convert 'System.Object[]' to the type 'Microsoft.ConfigurationManagement.ManagementProvider.IResultObject' required by parameter '{obj_param}'. Specified method is not supported."
                )),
                _ => Err(wrong_type(obj_param)),
            };
        }
        if let Some(name) = b.str(name_param) {
            return apps
                .iter()
                .position(|a| a.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| NOT_FOUND.into());
        }
        if let Some(Value::Int(id)) = b.value(id_param) {
            return apps
                .iter()
                .position(|a| a.ci_id == *id)
                .ok_or_else(|| NOT_FOUND.into());
        }
        Err(NOT_FOUND.into())
    }

    fn find_apps(
        &self,
        b: &Bound,
        objects: &HashMap<&'static str, Obj>,
    ) -> Result<Vec<usize>, String> {
        match objects.get("InputObject") {
            Some(obj) => obj
                .items()
                .iter()
                .map(|o| match o {
                    Obj::App { model, .. } => {
                        self.app_pos(model).ok_or_else(|| NOT_FOUND.to_owned())
                    }
                    _ => Err(wrong_type("InputObject")),
                })
                .collect(),
            None => self
                .find_app(
                    b,
                    objects,
                    "InputObject",
                    "ApplicationName",
                    "ApplicationId",
                )
                .map(|i| vec![i]),
        }
    }

    fn find_collection(&self, b: &Bound) -> Result<Collection, String> {
        let found = match (b.str("CollectionName"), b.str("CollectionId")) {
            (Some(n), _) => self
                .state
                .collections
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(n))
                .ok_or_else(|| format!("Collection '{n}' does not exist.")),
            (None, Some(id)) => self
                .state
                .collections
                .iter()
                .find(|c| c.id.eq_ignore_ascii_case(id))
                .ok_or_else(|| format!("Collection '{id}' does not exist.")),
            (None, None) => {
                Err("Specify the target collection with -CollectionName or -CollectionId.".into())
            }
        };
        found.cloned()
    }

    /// `DEM:\Application\a\b` → the folder's container node ID (`Some(0)` for the root),
    /// `None` if a level is missing. Other object types and other sites are errors.
    fn folder_by_path(&self, path: &str) -> Result<Option<u32>, String> {
        let mut parts = path.trim_end_matches('\\').split('\\');
        let root = parts.next().unwrap_or_default();
        let kind = parts.next().unwrap_or_default();
        let site_root = format!("{}:", self.state.site_code);
        if !root.eq_ignore_ascii_case(&site_root) || !kind.eq_ignore_ascii_case("Application") {
            return Err(format!(
                "The folder path '{path}' is not an application folder path of this site ({site_root}\\Application\\…)."
            ));
        }
        let mut current = 0;
        for name in parts {
            match self.state.folders.iter().find(|f| {
                f.parent_container_node_id == current
                    && f.object_type == 6000
                    && f.name.eq_ignore_ascii_case(name)
            }) {
                Some(f) => current = f.container_node_id,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }
}

fn wrong_type(param: &str) -> String {
    format!(
        "Cannot bind parameter '{param}': the object is not of the type this parameter requires."
    )
}

/// Applies `Set-CMApplication`/`New-CMApplication` properties; true if any was given.
fn apply_app(app: &mut Application, b: &Bound) -> bool {
    let mut changed = false;
    let mut set = |field: &mut String, param: &str| {
        if let Some(v) = b.str(param) {
            *field = v.to_owned();
            changed = true;
        }
    };
    set(&mut app.description, "Description");
    set(&mut app.publisher, "Publisher");
    set(&mut app.software_version, "SoftwareVersion");
    set(&mut app.optional_reference, "OptionalReference");
    set(&mut app.localized_name, "LocalizedName");
    set(&mut app.localized_name, "LocalizedApplicationName");
    set(&mut app.name, "NewName");
    if let Some(owner) = b.str("Owner") {
        app.owners = vec![owner.to_owned()];
        changed = true;
    }
    if let Some(Value::Bool(v)) = b.value("AutoInstall") {
        app.auto_install = *v;
        changed = true;
    }
    if let Some(Value::Int(v)) = b.value("DefaultLanguageId") {
        app.default_language_id = Some(*v);
        changed = true;
    }
    changed
}

/// A switch (`-X`) or a Boolean (`-X $true`) parameter's value, if given.
fn flag(b: &Bound, name: &str) -> Option<bool> {
    match b.values.get(name) {
        Some(None) => Some(true),
        Some(Some(Value::Bool(v))) => Some(*v),
        _ => None,
    }
}

/// Applies deployment type properties; true if any was given.
fn apply_dt(dt: &mut DeploymentType, b: &Bound) -> bool {
    let before = dt.clone();
    if let Some(v) = b.str("ContentLocation") {
        dt.content_location = v.to_owned();
    }
    if let Some(v) = b.str("InstallCommand") {
        dt.install_command = v.to_owned();
    }
    if let Some(v) = b.str("UninstallCommand") {
        dt.uninstall_command = Some(v.to_owned());
    }
    if let Some(v) = b.str("NewName") {
        dt.name = v.to_owned();
    }
    if let Some(v) = b.str("Comment") {
        dt.comment = v.to_owned();
    }
    if let Some(v) = b.str("SlowNetworkDeploymentMode") {
        dt.slow_network = v.to_owned();
    }
    if let Some(Value::Int(v)) = b.value("MaximumRuntimeMins") {
        dt.max_runtime_mins = *v;
    }
    if let Some(Value::Int(v)) = b.value("EstimatedRuntimeMins") {
        dt.estimated_runtime_mins = *v;
    }
    if let Some(v) = flag(b, "CacheContent") {
        dt.cache_content = v;
    }
    if let Some(v) = flag(b, "Force32Bit") {
        dt.force_32bit = v;
    }
    if let Some(v) = b.str("AddLanguage")
        && !dt.languages.iter().any(|l| l.eq_ignore_ascii_case(v))
    {
        dt.languages.push(v.to_owned());
    }
    if let Some(code) = b.str("ProductCode") {
        dt.detection = DtDetection::ProductCode(code.to_owned());
    } else if let (Some(language), Some(text)) = (b.str("ScriptLanguage"), b.str("ScriptText")) {
        let run_as_32bit = flag(b, "ForceScriptDetection32Bit").unwrap_or(false);
        dt.detection = DtDetection::Script {
            language: language.to_owned(),
            text: text.to_owned(),
            run_as_32bit,
        };
    }
    // Any property given counts as a change, as every Set call saves a new revision.
    *dt != before
        || b.values.keys().any(|k| {
            !matches!(
                *k,
                "InputObject"
                    | "PassThru"
                    | "Application"
                    | "ApplicationName"
                    | "ApplicationId"
                    | "DeploymentTypeName"
            )
        })
}

/// PowerShell's `-Name` matching for ConfigMgr objects: case-insensitive, `*` and `?`
/// wildcards unless `-DisableWildcardHandling` (the linear matcher of [`ferry_proto::glob`]).
fn name_matches(pattern: &str, name: &str, literal: bool) -> bool {
    if literal || !ferry_proto::glob::has_wildcards(pattern) {
        return pattern.to_lowercase() == name.to_lowercase();
    }
    ferry_proto::glob::matches(pattern, name)
}

/// `ObjectType = 6000`, `ObjectType='6000'` → 6000.
fn parse_object_type_filter(filter: &str) -> Option<u32> {
    let (left, right) = filter.split_once('=')?;
    if !left.trim().eq_ignore_ascii_case("ObjectType") {
        return None;
    }
    right.trim().trim_matches('\'').parse().ok()
}

/// `SELECT * FROM <class> [WHERE <filter>]`.
fn parse_wql(query: &str) -> Option<(String, Option<String>)> {
    let words: Vec<&str> = query.split_whitespace().collect();
    match words.as_slice() {
        [select, "*", from, class, rest @ ..]
            if select.eq_ignore_ascii_case("SELECT") && from.eq_ignore_ascii_case("FROM") =>
        {
            match rest {
                [] => Some(((*class).to_owned(), None)),
                [w, filter @ ..] if w.eq_ignore_ascii_case("WHERE") => {
                    Some(((*class).to_owned(), Some(filter.join(" "))))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

pub(super) fn culture_by_lcid(lcid: u32) -> Option<&'static str> {
    const TAGS: &[&str] = &[
        "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL", "pt-BR", "ru-RU", "pl-PL",
        "ja-JP", "zh-CN",
    ];
    TAGS.iter()
        .copied()
        .find(|t| crate::scripts::culture(t).is_some_and(|c| c.1 == lcid))
}

/// JSON as Windows PowerShell 5.1's `ConvertTo-Json -Compress` writes it (JavaScriptSerializer):
/// besides the usual escapes it writes `<`, `>`, `&` and `'` as `\u003c`, `\u003e`, `\u0026`,
/// `\u0027`. Any JSON parser reads it; the emulator matches it so its stdout is the real one.
pub fn write_ps_json(out: &mut String, value: &Json) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Json::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    '<' | '>' | '&' | '\'' => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c if (c as u32) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_ps_json(out, item);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_ps_json(out, &Json::String(k.clone()));
                out.push(':');
                write_ps_json(out, v);
            }
            out.push('}');
        }
    }
}
