//! Streaming decoder: AppMgmtDigest text → [`Application`].
//!
//! Recursive descent over the pull layer in [`super::xml`]: each function reads the children
//! of one element and skips what it does not know, so unknown elements (newer ConfigMgr
//! versions, technologies we do not model) never cause an error.

use std::collections::HashMap;

use super::error::SdmError;
use super::model::*;
use super::xml::{Elem, Ns, Xml, decode};

/// Parses an SDMPackageXML document from bytes (UTF-8, or UTF-16 with a BOM).
pub fn parse(bytes: &[u8]) -> Result<Application, SdmError> {
    // The size limit applies to the input bytes (checked by `decode`); UTF-16 input may
    // grow when converted to UTF-8.
    let text = decode(bytes)?;
    parse_text(&text)
}

/// Parses an SDMPackageXML document from text (e.g. the `SDMPackageXML` WMI/JSON string).
pub fn parse_str(text: &str) -> Result<Application, SdmError> {
    if text.len() > super::MAX_INPUT_BYTES {
        return Err(SdmError::TooLarge {
            size: text.len(),
            limit: super::MAX_INPUT_BYTES,
        });
    }
    parse_text(text)
}

fn parse_text(text: &str) -> Result<Application, SdmError> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(SdmError::Empty);
    }
    let mut x = Xml::new(text);
    let root = x
        .root()?
        .ok_or_else(|| SdmError::NotAppMgmtDigest("no root element".into()))?;
    if !root.is(Ns::Digest, "AppMgmtDigest") {
        let found = if root.name() == "AppMgmtDigest" {
            "<AppMgmtDigest> in another namespace".to_owned()
        } else {
            format!("<{}>", root.name())
        };
        return Err(SdmError::NotAppMgmtDigest(format!(
            "root element is {found}, expected <AppMgmtDigest> in namespace {}",
            super::xml::NS_DIGEST
        )));
    }
    let mut app: Option<Application> = None;
    let mut dt_refs: Vec<String> = Vec::new();
    let mut dts: Vec<DeploymentType> = Vec::new();
    let mut icon = false;
    if !root.empty {
        while let Some(el) = x.next_child()? {
            match (el.ns, el.name()) {
                (Ns::Digest, "Application") => {
                    if app.is_some() {
                        return Err(SdmError::NotAppMgmtDigest(
                            "more than one Application element".into(),
                        ));
                    }
                    app = Some(application(&mut x, &el, &mut dt_refs)?);
                }
                (Ns::Digest, "DeploymentType") => dts.push(deployment_type(&mut x, &el)?),
                (Ns::Digest, "Resources") => {
                    icon |= !el.empty;
                    x.skip(&el)?;
                }
                _ => x.skip(&el)?,
            }
        }
    }
    x.finish()?;
    let mut app = app.ok_or_else(|| SdmError::NotAppMgmtDigest("no Application element".into()))?;
    app.icon_present |= icon;
    // Priority order = order of the references; definitions without a reference go last.
    // (A map, not a search per definition: a hostile document may hold 100 000s of both.)
    let mut rank: HashMap<&str, usize> = HashMap::with_capacity(dt_refs.len());
    for (i, r) in dt_refs.iter().enumerate() {
        rank.entry(r.as_str()).or_insert(i);
    }
    dts.sort_by_cached_key(|dt| {
        rank.get(dt.logical_name.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    });
    app.deployment_types = dts;
    Ok(app)
}

fn revision(value: &str, what: &'static str) -> Result<u32, SdmError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(0);
    }
    v.parse().map_err(|_| SdmError::InvalidValue {
        what,
        value: value.to_owned(),
    })
}

fn truthy(s: &str) -> bool {
    let s = s.trim();
    s.eq_ignore_ascii_case("true") || s == "1"
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

fn application(
    x: &mut Xml<'_>,
    el: &Elem<'_>,
    dt_refs: &mut Vec<String>,
) -> Result<Application, SdmError> {
    let mut app = Application::default();
    let mut rev = String::new();
    el.attrs(x.pos(), |k, v| match k {
        "AuthoringScopeId" => app.scope_id = v.into_owned(),
        "LogicalName" => app.logical_name = v.into_owned(),
        "Version" => rev = v.into_owned(),
        _ => {}
    })?;
    app.revision = revision(&rev, "Application/@Version")?;
    if el.empty {
        return Ok(app);
    }
    while let Some(c) = x.next_child()? {
        if c.ns != Ns::Digest {
            x.skip(&c)?;
            continue;
        }
        match c.name() {
            "DisplayInfo" => {
                app.default_language = c.attr(x.pos(), "DefaultLanguage")?;
                if !c.empty {
                    while let Some(info) = x.next_child()? {
                        if info.is(Ns::Digest, "Info") {
                            let (li, icon) = localized(x, &info)?;
                            app.icon_present |= icon;
                            app.localized.push(li);
                        } else {
                            x.skip(&info)?;
                        }
                    }
                }
            }
            "DeploymentTypes" => {
                if !c.empty {
                    while let Some(r) = x.next_child()? {
                        if r.is(Ns::Digest, "DeploymentType") {
                            dt_refs.push(r.attr(x.pos(), "LogicalName")?);
                        }
                        x.skip(&r)?;
                    }
                }
            }
            "Title" => app.title = x.text(&c)?,
            "Description" => app.description = x.text(&c)?,
            "Publisher" => app.publisher = x.text(&c)?,
            "SoftwareVersion" => app.version = x.text(&c)?,
            "CustomId" => app.custom_id = x.text(&c)?,
            "ReleaseDate" => app.release_date = x.text(&c)?,
            "AutoInstall" => app.auto_install = truthy(&x.text(&c)?),
            "Owners" => app.owners = users(x, &c)?,
            "Contacts" => app.contacts = users(x, &c)?,
            _ => x.skip(&c)?,
        }
    }
    Ok(app)
}

fn users(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Vec<String>, SdmError> {
    let mut out = Vec::new();
    if el.empty {
        return Ok(out);
    }
    while let Some(u) = x.next_child()? {
        if u.is(Ns::Digest, "User") {
            out.push(u.attr(x.pos(), "Id")?);
        }
        x.skip(&u)?;
    }
    Ok(out)
}

fn tags(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Vec<String>, SdmError> {
    let mut out = Vec::new();
    if el.empty {
        return Ok(out);
    }
    while let Some(t) = x.next_child()? {
        if t.is(Ns::Digest, "Tag") {
            out.push(x.text(&t)?);
        } else {
            x.skip(&t)?;
        }
    }
    Ok(out)
}

fn localized(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<(LocalizedInfo, bool), SdmError> {
    let mut li = LocalizedInfo {
        language: el.attr(x.pos(), "Language")?,
        ..LocalizedInfo::default()
    };
    let mut icon = false;
    if el.empty {
        return Ok((li, icon));
    }
    while let Some(c) = x.next_child()? {
        if c.ns != Ns::Digest {
            x.skip(&c)?;
            continue;
        }
        match c.name() {
            "Title" => li.title = x.text(&c)?,
            "Description" => li.description = x.text(&c)?,
            "Publisher" => li.publisher = x.text(&c)?,
            "Version" => li.version = x.text(&c)?,
            "ReleaseDate" => li.release_date = x.text(&c)?,
            "InfoUrl" => li.info_url = x.text(&c)?,
            "InfoUrlText" => li.info_url_text = x.text(&c)?,
            "PrivacyUrl" => li.privacy_url = x.text(&c)?,
            "Tags" => li.keywords = tags(x, &c)?,
            "UserCategories" => li.user_categories = tags(x, &c)?,
            "Icon" => {
                icon = true;
                x.skip(&c)?;
            }
            _ => x.skip(&c)?,
        }
    }
    Ok((li, icon))
}

/// Values read from an `InstallAction`/`UninstallAction` `Args` list.
#[derive(Default)]
struct ActionArgs {
    command_line: Option<String>,
    working_directory: Option<String>,
    execution_context: Option<String>,
    requires_log_on: Option<String>,
    requires_user_interaction: Option<bool>,
    user_interaction_mode: Option<String>,
    post_install_behavior: Option<String>,
    execute_time: Option<String>,
    max_execute_time: Option<String>,
    run_as_32bit: Option<bool>,
    exit_codes: Vec<ExitCode>,
    other: Vec<ActionArg>,
}

/// Values read from `DetectAction`.
#[derive(Default)]
struct DetectArgs {
    provider: String,
    product_code: String,
    script_type: String,
    script_body: Option<String>,
    run_as_32bit: bool,
    method_body: Option<String>,
}

/// Values read from `CustomData`.
#[derive(Default)]
struct Custom {
    detection_method: String,
    product_code: String,
    enhanced: Option<Detection>,
    script: Option<(String, String)>,
    install_command_line: Option<String>,
    uninstall_command_line: Option<String>,
    exit_codes: Option<Vec<ExitCode>>,
    requires_user_interaction: Option<bool>,
    user_interaction_mode: Option<String>,
    execute_time: Option<String>,
    max_execute_time: Option<String>,
}

fn deployment_type(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<DeploymentType, SdmError> {
    let mut dt = DeploymentType::default();
    let mut rev = String::new();
    el.attrs(x.pos(), |k, v| match k {
        "AuthoringScopeId" => dt.scope_id = v.into_owned(),
        "LogicalName" => dt.logical_name = v.into_owned(),
        "Version" => rev = v.into_owned(),
        _ => {}
    })?;
    dt.revision = revision(&rev, "DeploymentType/@Version")?;
    if el.empty {
        return Ok(dt);
    }
    while let Some(c) = x.next_child()? {
        if c.ns != Ns::Digest {
            x.skip(&c)?;
            continue;
        }
        match c.name() {
            "Title" => dt.title = x.text(&c)?,
            "Description" => dt.admin_comment = x.text(&c)?,
            "Technology" => dt.technology = x.text(&c)?,
            "Requirements" => dt.requirements = rules(x, &c)?,
            "Dependencies" => dt.dependencies = dt_rules(x, &c)?,
            "Supersedes" => dt.supersedes = dt_rules(x, &c)?,
            "Installer" => installer(x, &c, &mut dt)?,
            _ => x.skip(&c)?,
        }
    }
    Ok(dt)
}

fn installer(x: &mut Xml<'_>, el: &Elem<'_>, dt: &mut DeploymentType) -> Result<(), SdmError> {
    if dt.technology.is_empty() {
        dt.technology = el.attr(x.pos(), "Technology")?;
    }
    if el.empty {
        return Ok(());
    }
    let mut exec_ctx = None;
    let mut log_on = None;
    let mut detect = DetectArgs::default();
    let mut install = ActionArgs::default();
    let mut uninstall = ActionArgs::default();
    let mut custom = Custom::default();
    while let Some(c) = x.next_child()? {
        if c.ns != Ns::Digest {
            x.skip(&c)?;
            continue;
        }
        match c.name() {
            "ExecutionContext" => exec_ctx = non_empty(x.text(&c)?),
            "RequiresLogOn" => log_on = non_empty(x.text(&c)?).map(|s| truthy(&s)),
            "Contents" => contents(x, &c, dt)?,
            "DetectAction" => detect = detect_action(x, &c)?,
            "InstallAction" => install = action(x, &c)?,
            "UninstallAction" => uninstall = action(x, &c)?,
            "CustomData" => custom = custom_data(x, &c)?,
            _ => x.skip(&c)?,
        }
    }

    // Args first (what the client runs), CustomData when Args has nothing.
    dt.install_command = install
        .command_line
        .and_then(non_empty)
        .or_else(|| custom.install_command_line.and_then(non_empty));
    dt.install_working_directory = install.working_directory.and_then(non_empty);
    dt.uninstall_command = uninstall
        .command_line
        .and_then(non_empty)
        .or_else(|| custom.uninstall_command_line.and_then(non_empty));
    dt.uninstall_working_directory = uninstall.working_directory.and_then(non_empty);
    dt.execution_context = install.execution_context.and_then(non_empty).or(exec_ctx);
    dt.requires_log_on = log_on.or_else(|| {
        install
            .requires_log_on
            .and_then(non_empty)
            .map(|s| truthy(&s))
    });
    dt.requires_user_interaction = install
        .requires_user_interaction
        .or(custom.requires_user_interaction)
        .unwrap_or(false);
    dt.user_interaction_mode = install
        .user_interaction_mode
        .and_then(non_empty)
        .or_else(|| custom.user_interaction_mode.and_then(non_empty));
    dt.post_install_behavior = install.post_install_behavior.and_then(non_empty);
    let minutes = |s: Option<String>| s.and_then(|s| s.trim().parse::<u32>().ok());
    dt.estimated_run_time_mins =
        minutes(install.execute_time).or_else(|| minutes(custom.execute_time));
    dt.max_run_time_mins =
        minutes(install.max_execute_time).or_else(|| minutes(custom.max_execute_time));
    dt.run_as_32bit = install.run_as_32bit.unwrap_or(false);
    dt.other_install_args = install.other;
    dt.exit_codes = custom.exit_codes.unwrap_or(install.exit_codes);

    // Detection: CustomData (the console's editable copy, real XML) first, DetectAction
    // (what the client runs) as the fallback.
    let kind = match custom.detection_method.as_str() {
        "Enhanced" => "Local",
        "Script" => "Script",
        "ProductCode" => "MSI",
        _ => detect.provider.as_str(),
    };
    dt.detection = match kind {
        "Local" => match custom.enhanced {
            Some(d) => d,
            None => match &detect.method_body {
                Some(body) if !body.trim().is_empty() => {
                    enhanced_document(body).map_err(|e| SdmError::BadMethodBody(Box::new(e)))?
                }
                _ => Detection::None,
            },
        },
        "Script" => {
            let (language, body) = match custom.script {
                Some(s) => s,
                None => (
                    script_language(&detect.script_type).to_owned(),
                    detect.script_body.unwrap_or_default(),
                ),
            };
            Detection::Script {
                language,
                body,
                run_as_32bit: detect.run_as_32bit,
            }
        }
        "MSI" => {
            let product_code = if custom.product_code.is_empty() {
                detect.product_code
            } else {
                custom.product_code
            };
            if product_code.is_empty() {
                Detection::None
            } else {
                Detection::MsiProductCode { product_code }
            }
        }
        _ => Detection::None,
    };
    Ok(())
}

/// `ScriptType` values of a script detection (`Int32`).
pub(crate) fn script_language(script_type: &str) -> &'static str {
    match script_type.trim() {
        "1" => "VBScript",
        "2" => "JavaScript",
        _ => "PowerShell",
    }
}

fn contents(x: &mut Xml<'_>, el: &Elem<'_>, dt: &mut DeploymentType) -> Result<(), SdmError> {
    if el.empty {
        return Ok(());
    }
    while let Some(content) = x.next_child()? {
        if !content.is(Ns::Digest, "Content") || content.empty {
            x.skip(&content)?;
            continue;
        }
        while let Some(c) = x.next_child()? {
            if c.is(Ns::Digest, "Location") {
                dt.content_locations.push(x.text(&c)?);
            } else if c.is(Ns::Digest, "File") {
                let (mut name, mut size) = (String::new(), 0);
                c.attrs(x.pos(), |k, v| match k {
                    "Name" => name = v.into_owned(),
                    "Size" => size = v.trim().parse().unwrap_or(0),
                    _ => {}
                })?;
                dt.content_files.push(ContentFile { name, size });
                x.skip(&c)?;
            } else {
                x.skip(&c)?;
            }
        }
    }
    Ok(())
}

/// Iterates `Args/Arg`, calling `f(x, name, arg)`; `f` must consume the `Arg` element.
fn args(
    x: &mut Xml<'_>,
    el: &Elem<'_>,
    mut f: impl FnMut(&mut Xml<'_>, &str, &Elem<'_>) -> Result<(), SdmError>,
) -> Result<(), SdmError> {
    if el.empty {
        return Ok(());
    }
    while let Some(arg) = x.next_child()? {
        if arg.is(Ns::Digest, "Arg") {
            let name = arg.attr(x.pos(), "Name")?;
            f(x, &name, &arg)?;
        } else {
            x.skip(&arg)?;
        }
    }
    Ok(())
}

fn provider_and_args(
    x: &mut Xml<'_>,
    el: &Elem<'_>,
    mut f: impl FnMut(&mut Xml<'_>, &str, &Elem<'_>) -> Result<(), SdmError>,
) -> Result<String, SdmError> {
    let mut provider = String::new();
    if el.empty {
        return Ok(provider);
    }
    while let Some(c) = x.next_child()? {
        if c.is(Ns::Digest, "Provider") {
            provider = x.text(&c)?;
        } else if c.is(Ns::Digest, "Args") {
            args(x, &c, &mut f)?;
        } else {
            x.skip(&c)?;
        }
    }
    Ok(provider)
}

fn detect_action(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<DetectArgs, SdmError> {
    let mut d = DetectArgs::default();
    d.provider = provider_and_args(x, el, |x, name, arg| {
        match name {
            "ProductCode" => d.product_code = x.text(arg)?,
            "ScriptType" => d.script_type = x.text(arg)?,
            "ScriptBody" => d.script_body = Some(x.text(arg)?),
            "RunAs32Bit" => d.run_as_32bit = truthy(&x.text(arg)?),
            "MethodBody" => d.method_body = Some(x.text(arg)?),
            _ => x.skip(arg)?,
        }
        Ok(())
    })?;
    Ok(d)
}

fn items(
    x: &mut Xml<'_>,
    el: &Elem<'_>,
    class: &str,
    out: &mut Vec<ExitCode>,
) -> Result<(), SdmError> {
    if el.empty {
        return Ok(());
    }
    while let Some(item) = x.next_child()? {
        if item.is(Ns::Digest, "Item") {
            let text = x.text(&item)?;
            if let Ok(code) = text.trim().parse::<i64>() {
                out.push(ExitCode {
                    code,
                    class: class.to_owned(),
                });
            }
        } else {
            x.skip(&item)?;
        }
    }
    Ok(())
}

fn action(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<ActionArgs, SdmError> {
    let mut a = ActionArgs::default();
    provider_and_args(x, el, |x, name, arg| {
        match name {
            "InstallCommandLine" => a.command_line = Some(x.text(arg)?),
            "WorkingDirectory" => a.working_directory = Some(x.text(arg)?),
            "ExecutionContext" => a.execution_context = Some(x.text(arg)?),
            "RequiresLogOn" => a.requires_log_on = Some(x.text(arg)?),
            "RequiresUserInteraction" => a.requires_user_interaction = Some(truthy(&x.text(arg)?)),
            "UserInteractionMode" => a.user_interaction_mode = Some(x.text(arg)?),
            "PostInstallBehavior" => a.post_install_behavior = Some(x.text(arg)?),
            "ExecuteTime" => a.execute_time = Some(x.text(arg)?),
            "MaxExecuteTime" => a.max_execute_time = Some(x.text(arg)?),
            "RunAs32Bit" => a.run_as_32bit = Some(truthy(&x.text(arg)?)),
            "SuccessExitCodes" => items(x, arg, "Success", &mut a.exit_codes)?,
            "RebootExitCodes" => items(x, arg, "SoftReboot", &mut a.exit_codes)?,
            "HardRebootExitCodes" => items(x, arg, "HardReboot", &mut a.exit_codes)?,
            "FastRetryExitCodes" => items(x, arg, "FastRetry", &mut a.exit_codes)?,
            "FailureExitCodes" => items(x, arg, "Failure", &mut a.exit_codes)?,
            // Written with a fixed value by the generator: not kept, or it would appear twice.
            "RequiresElevatedRights" | "RequiresReboot" => x.skip(arg)?,
            _ => {
                let arg_type = arg.attr(x.pos(), "Type")?;
                if arg_type.ends_with("[]") {
                    x.skip(arg)?;
                } else {
                    let value = x.text(arg)?;
                    a.other.push(ActionArg {
                        name: name.to_owned(),
                        arg_type,
                        value,
                    });
                }
            }
        }
        Ok(())
    })?;
    Ok(a)
}

fn custom_data(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Custom, SdmError> {
    let mut cd = Custom::default();
    if el.empty {
        return Ok(cd);
    }
    while let Some(c) = x.next_child()? {
        if c.ns != Ns::Digest {
            x.skip(&c)?;
            continue;
        }
        match c.name() {
            "DetectionMethod" => cd.detection_method = x.text(&c)?.trim().to_owned(),
            "ProductCode" => cd.product_code = x.text(&c)?,
            "EnhancedDetectionMethod" => cd.enhanced = Some(enhanced(x, &c)?),
            "DetectionScript" => {
                let language = c.attr(x.pos(), "Language")?;
                cd.script = Some((language, x.text(&c)?));
            }
            "InstallCommandLine" => cd.install_command_line = Some(x.text(&c)?),
            "UninstallCommandLine" => cd.uninstall_command_line = Some(x.text(&c)?),
            "RequiresUserInteraction" => cd.requires_user_interaction = Some(truthy(&x.text(&c)?)),
            "UserInteractionMode" => cd.user_interaction_mode = Some(x.text(&c)?),
            "ExecuteTime" => cd.execute_time = Some(x.text(&c)?),
            "MaxExecuteTime" => cd.max_execute_time = Some(x.text(&c)?),
            "ExitCodes" => {
                let mut codes = Vec::new();
                if !c.empty {
                    while let Some(ec) = x.next_child()? {
                        if ec.is(Ns::Digest, "ExitCode") {
                            let (mut code, mut class) = (String::new(), String::new());
                            ec.attrs(x.pos(), |k, v| match k {
                                "Code" => code = v.into_owned(),
                                "Class" => class = v.into_owned(),
                                _ => {}
                            })?;
                            if let Ok(code) = code.trim().parse::<i64>() {
                                codes.push(ExitCode { code, class });
                            }
                        }
                        x.skip(&ec)?;
                    }
                }
                cd.exit_codes = Some(codes);
            }
            _ => x.skip(&c)?,
        }
    }
    Ok(cd)
}

/// Parses the escaped `MethodBody` string: a whole document whose root is
/// `EnhancedDetectionMethod`.
fn enhanced_document(body: &str) -> Result<Detection, SdmError> {
    let mut x = Xml::new(body);
    let root = x
        .root()?
        .ok_or_else(|| SdmError::NotAppMgmtDigest("empty MethodBody".into()))?;
    if root.name() != "EnhancedDetectionMethod" {
        return Err(SdmError::NotAppMgmtDigest(format!(
            "MethodBody root is <{}>, expected <EnhancedDetectionMethod>",
            root.name()
        )));
    }
    let d = enhanced(&mut x, &root)?;
    x.finish()?;
    Ok(d)
}

/// Reads the children of an `EnhancedDetectionMethod` element.
fn enhanced(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Detection, SdmError> {
    let mut settings = Vec::new();
    let mut rule_out = None;
    if !el.empty {
        while let Some(c) = x.next_child()? {
            match (c.ns, c.name()) {
                (Ns::Digest, "Settings") if !c.empty => {
                    while let Some(s) = x.next_child()? {
                        settings.push(setting(x, &s)?);
                    }
                }
                (Ns::Rules, "Rule") if rule_out.is_none() => rule_out = Some(rule(x, &c)?),
                _ => x.skip(&c)?,
            }
        }
    }
    Ok(Detection::Enhanced {
        settings,
        rule: rule_out,
    })
}

/// Reads one setting of `EnhancedDetectionMethod/Settings` (registry, file, folder, MSI).
fn setting(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<DetectionSetting, SdmError> {
    let (mut logical_name, mut data_type, mut is_64bit) =
        (String::new(), String::new(), String::new());
    el.attrs(x.pos(), |k, v| match k {
        "LogicalName" => logical_name = v.into_owned(),
        "DataType" => data_type = v.into_owned(),
        "Is64Bit" => is_64bit = v.into_owned(),
        _ => {}
    })?;
    let element = el.name().to_owned();
    if el.ns != Ns::Dc {
        x.skip(el)?;
        return Ok(DetectionSetting::Other {
            element,
            logical_name,
        });
    }
    let (mut path, mut filter, mut product_code) = (String::new(), String::new(), String::new());
    let mut registry: Option<(String, String, String, bool)> = None;
    if !el.empty {
        while let Some(c) = x.next_child()? {
            match (c.ns, c.name()) {
                (Ns::Dc, "Path") => path = x.text(&c)?,
                (Ns::Dc, "Filter") => filter = x.text(&c)?,
                (Ns::Dc, "ProductCode") => product_code = x.text(&c)?,
                (Ns::Dc, "RegistryDiscoverySource") => {
                    let (mut hive, mut is64) = (String::new(), String::new());
                    c.attrs(x.pos(), |k, v| match k {
                        "Hive" => hive = v.into_owned(),
                        "Is64Bit" => is64 = v.into_owned(),
                        _ => {}
                    })?;
                    let (mut key, mut value_name) = (String::new(), String::new());
                    if !c.empty {
                        while let Some(r) = x.next_child()? {
                            match (r.ns, r.name()) {
                                (Ns::Dc, "Key") => key = x.text(&r)?,
                                (Ns::Dc, "ValueName") => value_name = x.text(&r)?,
                                _ => x.skip(&r)?,
                            }
                        }
                    }
                    registry = Some((hive, key, value_name, truthy(&is64)));
                }
                _ => x.skip(&c)?,
            }
        }
    }
    Ok(match element.as_str() {
        "SimpleSetting" => match registry {
            Some((hive, key, value_name, is_64bit)) => DetectionSetting::Registry {
                logical_name,
                data_type,
                hive,
                key,
                value_name,
                is_64bit,
            },
            None => DetectionSetting::Other {
                element,
                logical_name,
            },
        },
        "File" => DetectionSetting::File {
            logical_name,
            path,
            filter,
            is_64bit: truthy(&is_64bit),
        },
        "Folder" => DetectionSetting::Folder {
            logical_name,
            path,
            filter,
            is_64bit: truthy(&is_64bit),
        },
        "MSI" => DetectionSetting::Msi {
            logical_name,
            product_code,
        },
        _ => DetectionSetting::Other {
            element,
            logical_name,
        },
    })
}

/// Reads `Annotation/DisplayName/@Text`.
fn annotation(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<String, SdmError> {
    let mut name = String::new();
    if el.empty {
        return Ok(name);
    }
    while let Some(c) = x.next_child()? {
        if c.is(Ns::Rules, "DisplayName") {
            name = c.attr(x.pos(), "Text")?;
        }
        x.skip(&c)?;
    }
    Ok(name)
}

fn rules(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Vec<Rule>, SdmError> {
    let mut out = Vec::new();
    if el.empty {
        return Ok(out);
    }
    while let Some(c) = x.next_child()? {
        if c.is(Ns::Rules, "Rule") {
            out.push(rule(x, &c)?);
        } else {
            x.skip(&c)?;
        }
    }
    Ok(out)
}

fn rule(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Rule, SdmError> {
    let mut r = Rule::default();
    el.attrs(x.pos(), |k, v| match k {
        "id" => r.id = v.into_owned(),
        "Severity" => r.severity = v.into_owned(),
        "NonCompliantWhenSettingIsNotFound" => r.non_compliant_when_setting_not_found = truthy(&v),
        _ => {}
    })?;
    if el.empty {
        return Ok(r);
    }
    while let Some(c) = x.next_child()? {
        match (c.ns, c.name()) {
            (Ns::Rules, "Annotation") => r.display_name = annotation(x, &c)?,
            // Real rules hold an `Expression` or `OperatingSystemExpression`; any other
            // operand element is accepted too (kept as its typed node or `Unknown`).
            (Ns::Rules, _) if r.expression.is_none() => {
                r.expression = Some(operand(x, &c)?);
            }
            _ => x.skip(&c)?,
        }
    }
    Ok(r)
}

/// One node of an expression tree (recursive; bounded by the reader's depth limit).
/// Every element of the tree is in the Rules namespace; anything else is `Unknown`.
fn operand(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Expression, SdmError> {
    let name = if el.ns == Ns::Rules { el.name() } else { "" };
    match name {
        "Expression" | "OperatingSystemExpression" => {
            let os = name == "OperatingSystemExpression";
            let mut operator = String::new();
            let mut operands = Vec::new();
            if !el.empty {
                while let Some(c) = x.next_child()? {
                    match (c.ns, c.name()) {
                        (Ns::Rules, "Operator") => operator = x.text(&c)?.trim().to_owned(),
                        (Ns::Rules, "Operands") if !c.empty => {
                            while let Some(o) = x.next_child()? {
                                operands.push(operand(x, &o)?);
                            }
                        }
                        _ => x.skip(&c)?,
                    }
                }
            }
            Ok(if os {
                Expression::OperatingSystem { operator, operands }
            } else {
                Expression::Operation { operator, operands }
            })
        }
        "SettingReference" | "GlobalSettingReference" => {
            let mut s = SettingReference {
                global: name == "GlobalSettingReference",
                ..SettingReference::default()
            };
            el.attrs(x.pos(), |k, v| {
                let slot = match k {
                    "AuthoringScopeId" => &mut s.authoring_scope_id,
                    "LogicalName" => &mut s.logical_name,
                    "Version" => &mut s.version,
                    "DataType" => &mut s.data_type,
                    "SettingLogicalName" => &mut s.setting_logical_name,
                    "SettingSourceType" => &mut s.setting_source_type,
                    "Method" => &mut s.method,
                    "PropertyPath" => &mut s.property_path,
                    "Changeable" => &mut s.changeable,
                    _ => return,
                };
                *slot = v.into_owned();
            })?;
            x.skip(el)?;
            Ok(Expression::Setting(s))
        }
        "ConstantValue" => {
            let (mut value, mut data_type) = (String::new(), String::new());
            el.attrs(x.pos(), |k, v| match k {
                "Value" => value = v.into_owned(),
                "DataType" => data_type = v.into_owned(),
                _ => {}
            })?;
            x.skip(el)?;
            Ok(Expression::Constant { value, data_type })
        }
        "RuleExpression" => {
            let rule_id = el.attr(x.pos(), "RuleId")?;
            x.skip(el)?;
            Ok(Expression::RuleReference { rule_id })
        }
        _ => {
            let element = el.name().to_owned();
            x.skip(el)?;
            Ok(Expression::Unknown { element })
        }
    }
}

fn dt_rules(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<Vec<DependencyGroup>, SdmError> {
    let mut out = Vec::new();
    if el.empty {
        return Ok(out);
    }
    while let Some(c) = x.next_child()? {
        if !c.is(Ns::Rules, "DeploymentTypeRule") {
            x.skip(&c)?;
            continue;
        }
        let mut g = DependencyGroup::default();
        c.attrs(x.pos(), |k, v| match k {
            "id" => g.id = v.into_owned(),
            "Severity" => g.severity = v.into_owned(),
            _ => {}
        })?;
        if !c.empty {
            while let Some(e) = x.next_child()? {
                match (e.ns, e.name()) {
                    (Ns::Rules, "Annotation") => g.name = annotation(x, &e)?,
                    (Ns::Rules, "DeploymentTypeIntentExpression") => g.items.push(intent(x, &e)?),
                    (Ns::Rules, "DeploymentTypeExpression") if !e.empty => {
                        while let Some(p) = x.next_child()? {
                            match (p.ns, p.name()) {
                                (Ns::Rules, "Operator") => {
                                    g.operator = x.text(&p)?.trim().to_owned()
                                }
                                (Ns::Rules, "Operands") if !p.empty => {
                                    while let Some(i) = x.next_child()? {
                                        if i.is(Ns::Rules, "DeploymentTypeIntentExpression") {
                                            g.items.push(intent(x, &i)?);
                                        } else {
                                            x.skip(&i)?;
                                        }
                                    }
                                }
                                _ => x.skip(&p)?,
                            }
                        }
                    }
                    _ => x.skip(&e)?,
                }
            }
        }
        out.push(g);
    }
    Ok(out)
}

fn intent(x: &mut Xml<'_>, el: &Elem<'_>) -> Result<DependencyItem, SdmError> {
    let mut item = DependencyItem {
        desired_state: el.attr(x.pos(), "DesiredState")?,
        ..DependencyItem::default()
    };
    if el.empty {
        return Ok(item);
    }
    while let Some(c) = x.next_child()? {
        match (c.ns, c.name()) {
            (Ns::Rules, "DeploymentTypeApplicationReference") => {
                c.attrs(x.pos(), |k, v| match k {
                    "AuthoringScopeId" => item.application_scope_id = v.into_owned(),
                    "LogicalName" => item.application_logical_name = v.into_owned(),
                    "Version" => item.application_version = v.into_owned(),
                    _ => {}
                })?
            }
            (Ns::Rules, "DeploymentTypeReference") => c.attrs(x.pos(), |k, v| match k {
                "AuthoringScopeId" => item.dt_scope_id = v.into_owned(),
                "LogicalName" => item.dt_logical_name = v.into_owned(),
                "Version" => item.dt_version = v.into_owned(),
                "Changeable" => item.changeable = truthy(&v),
                _ => {}
            })?,
            _ => {}
        }
        x.skip(&c)?;
    }
    Ok(item)
}
