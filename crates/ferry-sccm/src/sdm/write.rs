//! Generator: [`Application`] → AppMgmtDigest text.
//!
//! Writes the shape ConfigMgr itself writes (reference §2.3–2.7), keeping `DetectAction`
//! (what clients run) and `CustomData` (what the console edits) consistent. Identifiers the
//! model does not keep (`Res_<int>` resource ids, `Content_<guid>` ids) are derived
//! deterministically from the logical names, so the same value always gives the same text.

use std::fmt::Write as _;

use super::model::*;
use super::xml::{NS_DC, NS_DIGEST, NS_RULES, NS_XSI, is_xml_char};

/// Generates an SDMPackageXML document (UTF-8 text with ConfigMgr's `utf-16` declaration).
///
/// Characters XML 1.0 cannot carry (most C0 controls, U+FFFE, U+FFFF) are replaced by
/// U+FFFD; CR is written as `&#xD;` (and tab/LF in attributes as references) so that it
/// survives XML line-end and attribute normalisation.
pub fn to_xml(app: &Application) -> String {
    let mut w = W {
        out: String::with_capacity(4096),
    };
    w.raw("<?xml version=\"1.0\" encoding=\"utf-16\"?>\n");
    w.raw("<AppMgmtDigest xmlns=\"");
    w.raw(NS_DIGEST);
    w.raw("\" xmlns:xsi=\"");
    w.raw(NS_XSI);
    w.raw("\">\n");
    application(&mut w, app);
    for dt in &app.deployment_types {
        deployment_type(&mut w, dt);
    }
    w.raw("</AppMgmtDigest>");
    w.out
}

struct W {
    out: String,
}

impl W {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn text(&mut self, s: &str) {
        for c in s.chars() {
            match c {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '\r' => self.out.push_str("&#xD;"),
                c if is_xml_char(c) => self.out.push(c),
                _ => self.out.push('\u{FFFD}'),
            }
        }
    }

    fn attr_value(&mut self, s: &str) {
        for c in s.chars() {
            match c {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '"' => self.out.push_str("&quot;"),
                '\'' => self.out.push_str("&apos;"),
                '\t' => self.out.push_str("&#x9;"),
                '\n' => self.out.push_str("&#xA;"),
                '\r' => self.out.push_str("&#xD;"),
                c if is_xml_char(c) => self.out.push(c),
                _ => self.out.push('\u{FFFD}'),
            }
        }
    }

    /// ` name="value"`.
    fn attr(&mut self, name: &str, value: &str) {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        self.attr_value(value);
        self.out.push('"');
    }

    /// ` name="value"` only when value is not empty.
    fn attr_opt(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            self.attr(name, value);
        }
    }

    /// `<name>text</name>` (or `<name />` when empty).
    fn elem(&mut self, name: &str, text: &str) {
        self.out.push('<');
        self.out.push_str(name);
        if text.is_empty() {
            self.out.push_str(" />");
        } else {
            self.out.push('>');
            self.text(text);
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
    }

    /// `<name ResourceId="Res_n">text</name>`.
    fn res_elem(&mut self, name: &str, owner: &str, text: &str) {
        self.out.push('<');
        self.out.push_str(name);
        let _ = write!(self.out, " ResourceId=\"Res_{}\"", resource_id(owner, name));
        if text.is_empty() {
            self.out.push_str(" />");
        } else {
            self.out.push('>');
            self.text(text);
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
    }

    /// `<Arg Name="name" Type="ty">value</Arg>`.
    fn arg(&mut self, name: &str, ty: &str, value: &str) {
        self.raw("<Arg");
        self.attr("Name", name);
        self.attr("Type", ty);
        if value.is_empty() {
            self.raw(" />");
        } else {
            self.raw(">");
            self.text(value);
            self.raw("</Arg>");
        }
    }
}

/// FNV-1a, for deterministic derived identifiers (not security relevant).
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xFF]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A positive Int32 for `Res_<n>`.
fn resource_id(owner: &str, field: &str) -> u64 {
    fnv(&[owner, field]) % 2_147_483_646 + 1
}

/// A GUID-shaped id derived from the inputs (`Content_<guid>`).
fn derived_guid(parts: &[&str]) -> String {
    let a = fnv(parts);
    let b = fnv(&[&a.to_string(), "b"]);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFF,
        (b >> 48) & 0xFFF,
        b & 0xFFFF_FFFF_FFFF
    )
}

fn application(w: &mut W, app: &Application) {
    w.raw("  <Application");
    w.attr("AuthoringScopeId", &app.scope_id);
    w.attr("LogicalName", &app.logical_name);
    w.attr("Version", &app.revision.to_string());
    w.raw(">\n    <DisplayInfo");
    w.attr("DefaultLanguage", &app.default_language);
    w.raw(">\n");
    for li in &app.localized {
        w.raw("      <Info");
        w.attr("Language", &li.language);
        w.raw(">");
        w.elem("Title", &li.title);
        let optional = [
            ("Description", &li.description),
            ("Publisher", &li.publisher),
            ("Version", &li.version),
            ("ReleaseDate", &li.release_date),
            ("InfoUrl", &li.info_url),
            ("InfoUrlText", &li.info_url_text),
            ("PrivacyUrl", &li.privacy_url),
        ];
        for (name, value) in optional {
            if !value.is_empty() {
                w.elem(name, value);
            }
        }
        for (name, tags) in [
            ("Tags", &li.keywords),
            ("UserCategories", &li.user_categories),
        ] {
            if !tags.is_empty() {
                w.raw("<");
                w.raw(name);
                w.raw(">");
                for t in tags {
                    w.elem("Tag", t);
                }
                w.raw("</");
                w.raw(name);
                w.raw(">");
            }
        }
        w.raw("</Info>\n");
    }
    w.raw("    </DisplayInfo>\n");
    if !app.deployment_types.is_empty() {
        w.raw("    <DeploymentTypes>\n");
        for dt in &app.deployment_types {
            w.raw("      <DeploymentType");
            w.attr("AuthoringScopeId", &dt.scope_id);
            w.attr("LogicalName", &dt.logical_name);
            w.attr("Version", &dt.revision.to_string());
            w.raw(" />\n");
        }
        w.raw("    </DeploymentTypes>\n");
    }
    let owner = app.logical_name.as_str();
    w.raw("    ");
    w.res_elem("Title", owner, &app.title);
    w.res_elem("Description", owner, &app.description);
    w.res_elem("Publisher", owner, &app.publisher);
    w.res_elem("SoftwareVersion", owner, &app.version);
    w.res_elem("CustomId", owner, &app.custom_id);
    if !app.release_date.is_empty() {
        w.res_elem("ReleaseDate", owner, &app.release_date);
    }
    if app.auto_install {
        w.raw("<AutoInstall>true</AutoInstall>");
    }
    w.raw("\n");
    for (name, users) in [("Owners", &app.owners), ("Contacts", &app.contacts)] {
        if users.is_empty() {
            continue;
        }
        w.raw("    <");
        w.raw(name);
        w.raw(">");
        for u in users {
            w.raw("<User Qualifier=\"LogonName\"");
            w.attr("Id", u);
            w.raw(" />");
        }
        w.raw("</");
        w.raw(name);
        w.raw(">\n");
    }
    w.raw("  </Application>\n");
}

/// `ScriptType` of a script detection.
fn script_type(language: &str) -> &'static str {
    match language {
        "VBScript" => "1",
        "JavaScript" | "JScript" => "2",
        _ => "0",
    }
}

fn deployment_type(w: &mut W, dt: &DeploymentType) {
    w.raw("  <DeploymentType");
    w.attr("AuthoringScopeId", &dt.scope_id);
    w.attr("LogicalName", &dt.logical_name);
    w.attr("Version", &dt.revision.to_string());
    w.raw(">\n    ");
    let owner = dt.logical_name.as_str();
    w.res_elem("Title", owner, &dt.title);
    w.res_elem("Description", owner, &dt.admin_comment);
    w.raw("\n");
    if !dt.requirements.is_empty() {
        w.raw("    <Requirements>");
        for r in &dt.requirements {
            rule(w, r);
        }
        w.raw("</Requirements>\n");
    }
    for (name, groups) in [
        ("Dependencies", &dt.dependencies),
        ("Supersedes", &dt.supersedes),
    ] {
        if groups.is_empty() {
            continue;
        }
        w.raw("    <");
        w.raw(name);
        w.raw(">");
        for g in groups {
            dependency_group(w, g);
        }
        w.raw("</");
        w.raw(name);
        w.raw(">\n");
    }
    let tech = dt.technology.as_str();
    w.raw("    ");
    w.elem(
        "DeploymentTechnology",
        &format!("GLOBAL/{tech}DeploymentTechnology"),
    );
    w.elem("Technology", tech);
    w.elem(
        "Hosting",
        if tech == "WebApp" { "WebApp" } else { "Native" },
    );
    w.raw("\n    <Installer");
    w.attr("Technology", tech);
    w.raw(">\n");
    installer(w, dt);
    w.raw("    </Installer>\n  </DeploymentType>\n");
}

fn installer(w: &mut W, dt: &DeploymentType) {
    let ctx = dt.execution_context.as_deref().unwrap_or("");
    if !ctx.is_empty() {
        w.raw("      ");
        w.elem("ExecutionContext", ctx);
        w.raw("\n");
    }
    if let Some(log_on) = dt.requires_log_on {
        w.raw("      ");
        w.elem("RequiresLogOn", if log_on { "true" } else { "false" });
        w.raw("\n");
    }
    let content_ids: Vec<String> = (0..dt.content_locations.len())
        .map(|i| {
            format!(
                "Content_{}",
                derived_guid(&[&dt.logical_name, &i.to_string()])
            )
        })
        .collect();
    if !dt.content_locations.is_empty() {
        w.raw("      <Contents>");
        for (i, (id, location)) in content_ids.iter().zip(&dt.content_locations).enumerate() {
            w.raw("<Content");
            w.attr("ContentId", id);
            w.raw(" Version=\"1\">");
            if i == 0 {
                for f in &dt.content_files {
                    w.raw("<File");
                    w.attr("Name", &f.name);
                    w.attr("Size", &f.size.to_string());
                    w.raw(" />");
                }
            }
            w.elem("Location", location);
            w.raw("<PeerCache>true</PeerCache><OnFastNetwork>Download</OnFastNetwork><OnSlowNetwork>DoNothing</OnSlowNetwork></Content>");
        }
        w.raw("</Contents>\n");
    }
    let detect_ctx = if ctx.is_empty() { "System" } else { ctx };
    let edm = match &dt.detection {
        Detection::Enhanced { settings, rule } => Some(enhanced_inner(settings, rule.as_ref())),
        _ => None,
    };
    // DetectAction: what the client runs.
    match &dt.detection {
        Detection::None => {}
        Detection::MsiProductCode { product_code } => {
            w.raw("      <DetectAction><Provider>MSI</Provider><Args>");
            w.arg("ExecutionContext", "String", detect_ctx);
            w.arg("ProductCode", "String", product_code);
            w.arg("PackageCode", "String", "");
            w.arg("PatchCodes", "String[]", "");
            w.raw("</Args></DetectAction>\n");
        }
        Detection::Script {
            language,
            body,
            run_as_32bit,
        } => {
            w.raw("      <DetectAction><Provider>Script</Provider><Args>");
            w.arg("ExecutionContext", "String", detect_ctx);
            w.arg("ScriptType", "Int32", script_type(language));
            w.arg("ScriptBody", "String", body);
            w.arg("RunAs32Bit", "Boolean", bool_str(*run_as_32bit));
            w.raw("</Args></DetectAction>\n");
        }
        Detection::Enhanced { .. } => {
            w.raw("      <DetectAction><Provider>Local</Provider><Args>");
            w.arg("ExecutionContext", "String", detect_ctx);
            let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-16\"?>\n");
            body.push_str("<EnhancedDetectionMethod xmlns=\"");
            body.push_str(NS_DIGEST);
            body.push_str("\">");
            body.push_str(edm.as_deref().unwrap_or(""));
            body.push_str("</EnhancedDetectionMethod>");
            w.arg("MethodBody", "String", &body);
            w.raw("</Args></DetectAction>\n");
        }
    }
    let provider = match dt.technology.as_str() {
        "" => "Script",
        t => t,
    };
    action(
        w,
        "InstallAction",
        provider,
        dt,
        dt.install_command.as_deref(),
        dt.install_working_directory.as_deref(),
        content_ids.first(),
    );
    if dt.uninstall_command.is_some() || dt.uninstall_working_directory.is_some() {
        action(
            w,
            "UninstallAction",
            provider,
            dt,
            dt.uninstall_command.as_deref(),
            dt.uninstall_working_directory.as_deref(),
            content_ids.first(),
        );
    }
    // CustomData: the console's copy.
    w.raw("      <CustomData>");
    match &dt.detection {
        Detection::None => {}
        Detection::MsiProductCode { product_code } => {
            w.elem("DetectionMethod", "ProductCode");
            w.elem("ProductCode", product_code);
        }
        Detection::Script { language, body, .. } => {
            w.elem("DetectionMethod", "Script");
            w.raw("<DetectionScript");
            w.attr("Language", language);
            w.raw(">");
            w.text(body);
            w.raw("</DetectionScript>");
        }
        Detection::Enhanced { .. } => {
            w.elem("DetectionMethod", "Enhanced");
            w.raw("<EnhancedDetectionMethod>");
            w.raw(edm.as_deref().unwrap_or(""));
            w.raw("</EnhancedDetectionMethod>");
        }
    }
    w.elem(
        "InstallCommandLine",
        dt.install_command.as_deref().unwrap_or(""),
    );
    if let Some(id) = content_ids.first() {
        w.raw("<InstallContent");
        w.attr("ContentId", id);
        w.raw(" Version=\"1\" />");
    }
    w.elem("UninstallSetting", "SameAsInstall");
    w.elem(
        "UninstallCommandLine",
        dt.uninstall_command.as_deref().unwrap_or(""),
    );
    w.elem(
        "RequiresUserInteraction",
        bool_str(dt.requires_user_interaction),
    );
    if let Some(t) = dt.estimated_run_time_mins {
        w.elem("ExecuteTime", &t.to_string());
    }
    if let Some(t) = dt.max_run_time_mins {
        w.elem("MaxExecuteTime", &t.to_string());
    }
    w.raw("<ExitCodes>");
    for ec in &dt.exit_codes {
        w.raw("<ExitCode");
        w.attr("Code", &ec.code.to_string());
        w.attr("Class", &ec.class);
        w.raw(" />");
    }
    w.raw("</ExitCodes>");
    if let Some(mode) = &dt.user_interaction_mode {
        w.elem("UserInteractionMode", mode);
    }
    w.raw("<AllowUninstall>true</AllowUninstall></CustomData>\n");
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn action(
    w: &mut W,
    element: &str,
    provider: &str,
    dt: &DeploymentType,
    command: Option<&str>,
    working_directory: Option<&str>,
    content_id: Option<&String>,
) {
    w.raw("      <");
    w.raw(element);
    w.raw(">");
    w.elem("Provider", provider);
    w.raw("<Args>");
    w.arg("InstallCommandLine", "String", command.unwrap_or(""));
    w.arg(
        "WorkingDirectory",
        "String",
        working_directory.unwrap_or(""),
    );
    w.arg(
        "ExecutionContext",
        "String",
        dt.execution_context.as_deref().unwrap_or(""),
    );
    w.arg(
        "RequiresLogOn",
        "String",
        match dt.requires_log_on {
            Some(true) => "True",
            Some(false) => "False",
            None => "",
        },
    );
    w.arg("RequiresElevatedRights", "Boolean", "false");
    w.arg(
        "RequiresUserInteraction",
        "Boolean",
        bool_str(dt.requires_user_interaction),
    );
    w.arg("RequiresReboot", "Boolean", "false");
    if let Some(mode) = &dt.user_interaction_mode {
        w.arg("UserInteractionMode", "String", mode);
    }
    if let Some(b) = &dt.post_install_behavior {
        w.arg("PostInstallBehavior", "String", b);
    }
    if let Some(t) = dt.estimated_run_time_mins {
        w.arg("ExecuteTime", "Int32", &t.to_string());
    }
    if let Some(t) = dt.max_run_time_mins {
        w.arg("MaxExecuteTime", "Int32", &t.to_string());
    }
    w.arg("RunAs32Bit", "Boolean", bool_str(dt.run_as_32bit));
    for (name, class) in [
        ("SuccessExitCodes", "Success"),
        ("RebootExitCodes", "SoftReboot"),
        ("HardRebootExitCodes", "HardReboot"),
        ("FastRetryExitCodes", "FastRetry"),
        ("FailureExitCodes", "Failure"),
    ] {
        let codes: Vec<i64> = dt
            .exit_codes
            .iter()
            .filter(|e| e.class == class)
            .map(|e| e.code)
            .collect();
        if codes.is_empty() {
            continue;
        }
        w.raw("<Arg");
        w.attr("Name", name);
        w.raw(" Type=\"Int32[]\">");
        for c in codes {
            let _ = write!(w.out, "<Item>{c}</Item>");
        }
        w.raw("</Arg>");
    }
    if element == "InstallAction" {
        for a in &dt.other_install_args {
            w.arg(&a.name, &a.arg_type, &a.value);
        }
    }
    w.raw("</Args>");
    if let Some(id) = content_id {
        w.raw("<Contents><Content");
        w.attr("ContentId", id);
        w.raw(" Version=\"1\" /></Contents>");
    }
    w.raw("</");
    w.raw(element);
    w.raw(">\n");
}

/// `Settings` + `Rule` of an EnhancedDetectionMethod (shared by CustomData and MethodBody).
fn enhanced_inner(settings: &[DetectionSetting], rule_opt: Option<&Rule>) -> String {
    let mut w = W { out: String::new() };
    w.raw("<Settings xmlns=\"");
    w.raw(NS_DIGEST);
    w.raw("\">");
    for s in settings {
        setting(&mut w, s);
    }
    w.raw("</Settings>");
    if let Some(r) = rule_opt {
        rule(&mut w, r);
    }
    w.out
}

const EMPTY_ANNOTATION: &str = "<DisplayName Text=\"\" /><Description Text=\"\" /></Annotation>";

fn annotation_rules_ns(w: &mut W) {
    w.raw("<Annotation xmlns=\"");
    w.raw(NS_RULES);
    w.raw("\">");
    w.raw(EMPTY_ANNOTATION);
}

/// True for names we can safely write as an element name.
fn simple_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn setting(w: &mut W, s: &DetectionSetting) {
    match s {
        DetectionSetting::Registry {
            logical_name,
            data_type,
            hive,
            key,
            value_name,
            is_64bit,
        } => {
            w.raw("<SimpleSetting xmlns=\"");
            w.raw(NS_DC);
            w.raw("\"");
            w.attr("LogicalName", logical_name);
            w.attr("DataType", data_type);
            w.raw(">");
            annotation_rules_ns(w);
            w.raw("<RegistryDiscoverySource");
            w.attr("Hive", hive);
            w.raw(" Depth=\"Base\"");
            w.attr("Is64Bit", bool_str(*is_64bit));
            w.raw(" CreateMissingPath=\"true\">");
            w.elem("Key", key);
            w.elem("ValueName", value_name);
            w.raw("</RegistryDiscoverySource></SimpleSetting>");
        }
        DetectionSetting::File {
            logical_name,
            path,
            filter,
            is_64bit,
        }
        | DetectionSetting::Folder {
            logical_name,
            path,
            filter,
            is_64bit,
        } => {
            let element = if matches!(s, DetectionSetting::File { .. }) {
                "File"
            } else {
                "Folder"
            };
            w.raw("<");
            w.raw(element);
            w.raw(" xmlns=\"");
            w.raw(NS_DC);
            w.raw("\"");
            w.attr("Is64Bit", bool_str(*is_64bit));
            w.attr("LogicalName", logical_name);
            w.raw(">");
            annotation_rules_ns(w);
            w.elem("Path", path);
            w.elem("Filter", filter);
            w.raw("</");
            w.raw(element);
            w.raw(">");
        }
        DetectionSetting::Msi {
            logical_name,
            product_code,
        } => {
            w.raw("<MSI xmlns=\"");
            w.raw(NS_DC);
            w.raw("\"");
            w.attr("LogicalName", logical_name);
            w.raw(" IsPerUser=\"false\">");
            annotation_rules_ns(w);
            w.elem("ProductCode", product_code);
            w.raw("</MSI>");
        }
        DetectionSetting::Other {
            element,
            logical_name,
        } => {
            let element = if simple_name(element) {
                element.as_str()
            } else {
                "SimpleSetting"
            };
            w.raw("<");
            w.raw(element);
            w.raw(" xmlns=\"");
            w.raw(NS_DC);
            w.raw("\"");
            w.attr("LogicalName", logical_name);
            w.raw(" />");
        }
    }
}

fn rule(w: &mut W, r: &Rule) {
    w.raw("<Rule xmlns=\"");
    w.raw(NS_RULES);
    w.raw("\"");
    w.attr("id", &r.id);
    w.attr("Severity", &r.severity);
    w.attr(
        "NonCompliantWhenSettingIsNotFound",
        bool_str(r.non_compliant_when_setting_not_found),
    );
    w.raw("><Annotation><DisplayName");
    w.attr("Text", &r.display_name);
    w.raw(" /><Description Text=\"\" /></Annotation>");
    if let Some(e) = &r.expression {
        expression(w, e);
    }
    w.raw("</Rule>");
}

fn expression(w: &mut W, e: &Expression) {
    match e {
        Expression::Operation { operator, operands }
        | Expression::OperatingSystem { operator, operands } => {
            let element = if matches!(e, Expression::Operation { .. }) {
                "Expression"
            } else {
                "OperatingSystemExpression"
            };
            w.raw("<");
            w.raw(element);
            w.raw(">");
            w.elem("Operator", operator);
            w.raw("<Operands>");
            for o in operands {
                expression(w, o);
            }
            w.raw("</Operands></");
            w.raw(element);
            w.raw(">");
        }
        Expression::Setting(s) => {
            w.raw(if s.global {
                "<GlobalSettingReference"
            } else {
                "<SettingReference"
            });
            w.attr_opt("AuthoringScopeId", &s.authoring_scope_id);
            w.attr_opt("LogicalName", &s.logical_name);
            w.attr_opt("Version", &s.version);
            w.attr_opt("DataType", &s.data_type);
            w.attr_opt("SettingLogicalName", &s.setting_logical_name);
            w.attr_opt("SettingSourceType", &s.setting_source_type);
            w.attr_opt("Method", &s.method);
            w.attr_opt("PropertyPath", &s.property_path);
            w.attr_opt("Changeable", &s.changeable);
            w.raw(" />");
        }
        Expression::Constant { value, data_type } => {
            w.raw("<ConstantValue");
            w.attr("Value", value);
            w.attr("DataType", data_type);
            w.raw(" />");
        }
        Expression::RuleReference { rule_id } => {
            w.raw("<RuleExpression");
            w.attr("RuleId", rule_id);
            w.raw(" />");
        }
        Expression::Unknown { element } => {
            if simple_name(element) {
                w.raw("<");
                w.raw(element);
                w.raw(" />");
            }
        }
    }
}

fn dependency_group(w: &mut W, g: &DependencyGroup) {
    w.raw("<DeploymentTypeRule xmlns=\"");
    w.raw(NS_RULES);
    w.raw("\"");
    w.attr("id", &g.id);
    w.attr("Severity", &g.severity);
    w.raw("><Annotation><DisplayName");
    w.attr("Text", &g.name);
    w.raw(" /><Description Text=\"\" /></Annotation>");
    let bare = g.operator.is_empty() && g.items.len() == 1;
    if !bare {
        w.raw("<DeploymentTypeExpression>");
        w.elem("Operator", &g.operator);
        w.raw("<Operands>");
    }
    for item in &g.items {
        w.raw("<DeploymentTypeIntentExpression");
        w.attr("DesiredState", &item.desired_state);
        w.raw("><DeploymentTypeApplicationReference");
        w.attr("AuthoringScopeId", &item.application_scope_id);
        w.attr("LogicalName", &item.application_logical_name);
        w.attr_opt("Version", &item.application_version);
        w.raw(" /><DeploymentTypeReference");
        w.attr("AuthoringScopeId", &item.dt_scope_id);
        w.attr("LogicalName", &item.dt_logical_name);
        w.attr_opt("Version", &item.dt_version);
        w.attr("Changeable", bool_str(item.changeable));
        w.raw(" /></DeploymentTypeIntentExpression>");
    }
    if !bare {
        w.raw("</Operands></DeploymentTypeExpression>");
    }
    w.raw("</DeploymentTypeRule>");
}
