//! Real SDMPackageXML documents (shared/reference/sdmpackagexml) parse, and the facts
//! INDEX.md lists for them hold.
//!
//! Snapshots hold a *summary* of each parsed application (our output, not the third-party
//! text): no file lists, no script bodies beyond their length.

use std::path::PathBuf;

use ferry_sccm::sdm::{self, Application, Detection, DetectionSetting, Expression};
use serde_json::{Value, json};

fn vectors_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/sdmpackagexml");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: {} not found", dir.display());
        None
    }
}

fn read(name: &str) -> Option<Vec<u8>> {
    let dir = vectors_dir()?;
    Some(std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn parsed(name: &str) -> Option<Application> {
    let bytes = read(name)?;
    Some(sdm::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn expr_summary(e: &Expression) -> Value {
    match e {
        Expression::Operation { operator, operands } => {
            json!({ "op": operator, "operands": operands.iter().map(expr_summary).collect::<Vec<_>>() })
        }
        Expression::OperatingSystem { operator, operands } => {
            json!({ "os_op": operator, "operands": operands.iter().map(expr_summary).collect::<Vec<_>>() })
        }
        Expression::Setting(s) => json!({
            "setting": s.setting_logical_name, "source": s.setting_source_type,
            "data_type": s.data_type, "global": s.global, "property_path": s.property_path,
        }),
        Expression::Constant { value, data_type } => {
            json!({ "const": value, "data_type": data_type })
        }
        Expression::RuleReference { rule_id } => json!({ "rule": rule_id }),
        Expression::Unknown { element } => json!({ "unknown": element }),
    }
}

fn detection_summary(d: &Detection) -> Value {
    match d {
        Detection::MsiProductCode { product_code } => {
            json!({ "kind": "msi_product_code", "product_code": product_code })
        }
        Detection::Script {
            language,
            body,
            run_as_32bit,
        } => {
            json!({ "kind": "script", "language": language, "body_len": body.len(), "run_as_32bit": run_as_32bit })
        }
        Detection::Enhanced { settings, rule } => json!({
            "kind": "enhanced",
            "settings": settings.iter().map(|s| match s {
                DetectionSetting::Registry { hive, key, value_name, data_type, is_64bit, .. } =>
                    json!({ "registry": format!("{hive}\\{key}\\{value_name}"), "data_type": data_type, "is_64bit": is_64bit }),
                DetectionSetting::File { path, filter, .. } => json!({ "file": format!("{path}\\{filter}") }),
                DetectionSetting::Folder { path, filter, .. } => json!({ "folder": format!("{path}\\{filter}") }),
                DetectionSetting::Msi { product_code, .. } => json!({ "msi": product_code }),
                DetectionSetting::Other { element, .. } => json!({ "other": element }),
            }).collect::<Vec<_>>(),
            "rule": rule.as_ref().and_then(|r| r.expression.as_ref()).map(expr_summary),
        }),
        Detection::None => json!({ "kind": "none" }),
    }
}

fn summary(app: &Application) -> Value {
    json!({
        "scope_id": app.scope_id,
        "logical_name": app.logical_name,
        "revision": app.revision,
        "title": app.title,
        "publisher": app.publisher,
        "version": app.version,
        "description_len": app.description.len(),
        "custom_id": app.custom_id,
        "release_date": app.release_date,
        "default_language": app.default_language,
        "localized": app.localized.iter().map(|l| json!({
            "language": l.language, "title": l.title, "publisher": l.publisher, "version": l.version,
            "description_len": l.description.len(), "release_date": l.release_date,
        })).collect::<Vec<_>>(),
        "auto_install": app.auto_install,
        "owners": app.owners,
        "contacts": app.contacts,
        "icon_present": app.icon_present,
        "deployment_types": app.deployment_types.iter().map(|dt| json!({
            "logical_name": dt.logical_name,
            "revision": dt.revision,
            "title": dt.title,
            "admin_comment_len": dt.admin_comment.len(),
            "technology": dt.technology,
            "content_locations": dt.content_locations.len(),
            "content_files": dt.content_files.len(),
            "install_command": dt.install_command,
            "uninstall_command": dt.uninstall_command,
            "execution_context": dt.execution_context,
            "requires_log_on": dt.requires_log_on,
            "requires_user_interaction": dt.requires_user_interaction,
            "user_interaction_mode": dt.user_interaction_mode,
            "post_install_behavior": dt.post_install_behavior,
            "max_run_time_mins": dt.max_run_time_mins,
            "estimated_run_time_mins": dt.estimated_run_time_mins,
            "run_as_32bit": dt.run_as_32bit,
            "detection": detection_summary(&dt.detection),
            "exit_codes": dt.exit_codes.iter().map(|e| format!("{}:{}", e.code, e.class)).collect::<Vec<_>>(),
            "requirements": dt.requirements.iter().map(|r| json!({
                "id": r.id, "display_name": r.display_name,
                "expression": r.expression.as_ref().map(expr_summary),
            })).collect::<Vec<_>>(),
            "dependencies": dt.dependencies.len(),
            "other_install_args": dt.other_install_args.iter().map(|a| format!("{}: {}", a.name, a.value.len())).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Every `.xml` file of the folder parses, and its summary matches the committed snapshot.
#[test]
fn every_vector_parses_and_matches_its_snapshot() {
    let Some(dir) = vectors_dir() else { return };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read vectors dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 15,
        "expected the 15 vectors, found {names:?}"
    );
    for name in names {
        let app = parsed(&name).expect("vector present");
        let snap = name.trim_end_matches(".xml").to_owned();
        insta::assert_json_snapshot!(snap, summary(&app));
    }
}

#[test]
fn utf16le_bom_vector_22_parses() {
    let Some(bytes) = read("22-vmware-storyline-utf16le-bom.xml") else {
        return;
    };
    assert_eq!(
        &bytes[..2],
        &[0xFF, 0xFE],
        "vector 22 is UTF-16LE with a BOM"
    );
    let app = sdm::parse(&bytes).expect("parse 22");
    assert_eq!(app.title, "Storyline 3.0.10762.0");
    assert_eq!(app.publisher, "Articulate");
    assert_eq!(app.revision, 19);
    assert_eq!(app.deployment_types.len(), 2);
    assert!(
        app.deployment_types[0]
            .title
            .ends_with("OnlyWhenUserLoggedOn")
    );
    assert!(app.icon_present);
}

#[test]
fn vector_06_without_xml_declaration_parses() {
    let Some(bytes) = read("06-ggg-no-xml-declaration.xml") else {
        return;
    };
    assert!(bytes.starts_with(b"<AppMgmtDigest"));
    let app = sdm::parse(&bytes).expect("parse 06");
    assert_eq!(app.title, "ggg");
    assert_eq!(app.deployment_types.len(), 2);
    assert!(
        app.deployment_types
            .iter()
            .all(|dt| dt.technology == "Script")
    );
}

#[test]
fn vector_15_has_no_deployment_types_and_fr_fr() {
    let Some(app) = parsed("15-fr-fr-no-dt.xml") else {
        return;
    };
    assert!(app.deployment_types.is_empty());
    assert_eq!(app.default_language, "fr-FR");
    assert_eq!(app.localized.len(), 1);
    assert_eq!(app.localized[0].language, "fr-FR");
    assert_eq!(app.publisher, "");
    assert_eq!(app.version, "");
}

#[test]
fn vector_09_script_detection_is_powershell() {
    let Some(app) = parsed("09-android-plus-script-dt.xml") else {
        return;
    };
    assert_eq!(app.deployment_types.len(), 2);
    assert_eq!(app.deployment_types[0].technology, "Android");
    let dt = &app.deployment_types[1];
    assert_eq!(dt.technology, "Script");
    assert_eq!(dt.execution_context.as_deref(), Some("User"));
    assert_eq!(dt.requires_log_on, Some(true));
    assert_eq!(dt.user_interaction_mode.as_deref(), Some("Normal"));
    assert_eq!(
        dt.detection,
        Detection::Script {
            language: "PowerShell".into(),
            body: "Write-Host \"This is fake\"".into(),
            run_as_32bit: false,
        }
    );
}

#[test]
fn vector_04_msi_product_code_and_exit_codes() {
    let Some(app) = parsed("04-orca-msi-productcode.xml") else {
        return;
    };
    let dt = &app.deployment_types[0];
    assert_eq!(dt.technology, "MSI");
    assert_eq!(
        dt.detection,
        Detection::MsiProductCode {
            product_code: "{6F7CB29F-1319-4816-B345-0856916EB801}".into()
        }
    );
    assert_eq!(
        dt.install_command.as_deref(),
        Some("msiexec /i \"Orca.Msi\" /q")
    );
    assert_eq!(dt.max_run_time_mins, Some(120));
    let codes: Vec<(i64, &str)> = dt
        .exit_codes
        .iter()
        .map(|e| (e.code, e.class.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            (0, "Success"),
            (1707, "Success"),
            (3010, "SoftReboot"),
            (1641, "HardReboot"),
            (1618, "FastRetry")
        ]
    );
    assert_eq!(dt.content_locations, ["\\\\R61338362\\tools\\CCMTools\\"]);
    assert_eq!(dt.content_files.len(), 9);
}

#[test]
fn vector_12_webapp_has_no_content_and_no_detection() {
    let Some(app) = parsed("12-webapp-dt.xml") else {
        return;
    };
    let dt = &app.deployment_types[0];
    assert_eq!(dt.technology, "WebApp");
    let url = dt
        .other_install_args
        .iter()
        .find(|a| a.name == "TargetUrl")
        .expect("TargetUrl");
    assert_eq!(url.value, "HTTP://ADMIN.MANAGE.CONTOSO.COM");
    assert!(dt.content_locations.is_empty());
    assert_eq!(dt.detection, Detection::None);
}

#[test]
fn vector_13_unknown_technology_is_kept() {
    let Some(app) = parsed("13-winphone8-dt.xml") else {
        return;
    };
    assert_eq!(app.deployment_types[0].technology, "WinPhone8");
    assert_eq!(app.deployment_types[0].detection, Detection::None);
}

#[test]
fn vector_16_amp_entity_is_decoded() {
    let Some(app) = parsed("16-app01setup-msi.xml") else {
        return;
    };
    let files = &app.deployment_types[0].content_files;
    assert!(
        files.iter().any(|f| f.name.contains('&')),
        "an `&amp;` file name decodes to `&`"
    );
    assert!(files.iter().all(|f| !f.name.contains("&amp;")));
}

#[test]
fn vector_01_enhanced_detection_is_two_registry_settings_and_an_and_rule() {
    let Some(app) = parsed("01-project-o365-script-enhanced.xml") else {
        return;
    };
    assert_eq!(app.revision, 2);
    let Detection::Enhanced { settings, rule } = &app.deployment_types[0].detection else {
        panic!("expected enhanced detection");
    };
    assert_eq!(settings.len(), 2);
    assert!(
        matches!(&settings[0], DetectionSetting::Registry { value_name, .. } if value_name == "VersionToReport")
    );
    let rule = rule.as_ref().expect("rule");
    assert_eq!(
        rule.expression.as_ref().expect("expression").to_string(),
        "(Registry:RegSetting_451b5cb5-68b8-4bc3-b756-5da0a791511f GreaterEquals '16.0.13801.21050') And (Registry:RegSetting_f825eb7d-056a-4f1d-bf49-27fa3928f183 Equals 'ProjectProRetail')"
    );
    assert_eq!(app.deployment_types[0].detection.kind(), "enhanced");
    assert!(
        matches!(&rule.expression, Some(Expression::Operation { operator, operands }) if operator == "And" && operands.len() == 2)
    );
}

#[test]
fn vector_19_two_script_dts_with_requirements_and_msi_enhanced_detection() {
    let Some(app) = parsed("19-vmware-adobe-standard-two-script-dts.xml") else {
        return;
    };
    assert!(app.auto_install);
    assert_eq!(app.deployment_types.len(), 2);
    let dt = &app.deployment_types[0];
    assert_eq!(dt.requires_log_on, Some(true));
    assert_eq!(app.deployment_types[1].requires_log_on, Some(false));
    assert_eq!(dt.requirements.len(), 2);
    assert!(matches!(
        &dt.detection,
        Detection::Enhanced { settings, .. } if matches!(&settings[..], [DetectionSetting::Msi { product_code, .. }] if product_code == "{AC76BA86-1033-FFFF-BA7E-000000000006}")
    ));
}

/// The escaped `MethodBody` copy of enhanced detection gives the same result as the real XML
/// under CustomData (checked by removing the CustomData copy).
#[test]
fn escaped_method_body_matches_custom_data_enhanced_detection() {
    let Some(dir) = vectors_dir() else { return };
    let mut checked = 0;
    for name in [
        "01-project-o365-script-enhanced.xml",
        "02-feature-update-script-enhanced.xml",
        "06-ggg-no-xml-declaration.xml",
        "19-vmware-adobe-standard-two-script-dts.xml",
    ] {
        let bytes = std::fs::read(dir.join(name)).expect("read");
        let text = String::from_utf8(bytes).expect("utf-8 vector");
        let app = sdm::parse_str(&text).expect("parse");
        // Cut every CustomData/EnhancedDetectionMethod element out of the text.
        let mut stripped = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<EnhancedDetectionMethod>") {
            let end_tag = "</EnhancedDetectionMethod>";
            let end = rest[start..].find(end_tag).expect("end tag") + start + end_tag.len();
            stripped.push_str(&rest[..start]);
            rest = &rest[end..];
        }
        stripped.push_str(rest);
        assert!(!stripped.contains("<EnhancedDetectionMethod>"));
        let from_body = sdm::parse_str(&stripped).expect("parse stripped");
        for (a, b) in app.deployment_types.iter().zip(&from_body.deployment_types) {
            if let Detection::Enhanced { .. } = a.detection {
                assert_eq!(a.detection, b.detection, "{name}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 4);
}

/// Every vector re-encoded as UTF-16LE/BE (with BOM) and UTF-8 with BOM parses to the same value.
#[test]
fn vectors_parse_identically_in_every_encoding() {
    let Some(dir) = vectors_dir() else { return };
    for name in [
        "04-orca-msi-productcode.xml",
        "09-android-plus-script-dt.xml",
        "19-vmware-adobe-standard-two-script-dts.xml",
    ] {
        let text = String::from_utf8(std::fs::read(dir.join(name)).expect("read")).expect("utf-8");
        let expected = sdm::parse_str(&text).expect("parse");
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for u in text.encode_utf16() {
            le.extend(u.to_le_bytes());
            be.extend(u.to_be_bytes());
        }
        let mut bom8 = vec![0xEF, 0xBB, 0xBF];
        bom8.extend(text.as_bytes());
        for bytes in [le, be, bom8] {
            assert_eq!(
                sdm::parse(&bytes).expect("parse re-encoded"),
                expected,
                "{name}"
            );
        }
        // Whitespace between elements is insignificant: a one-line version parses the same.
        let one_line: String = text.lines().map(str::trim).collect();
        let a = sdm::parse_str(&one_line).expect("one line");
        assert_eq!(a.title, expected.title);
        assert_eq!(a.deployment_types.len(), expected.deployment_types.len());
    }
}

/// Re-generating a parsed vector and parsing again gives the same value (minus the icon).
#[test]
fn vectors_survive_to_xml_round_trip() {
    let Some(dir) = vectors_dir() else { return };
    for entry in std::fs::read_dir(&dir).expect("dir").filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let mut app = sdm::parse(&std::fs::read(&path).expect("read")).expect("parse");
        app.icon_present = false;
        let xml = sdm::to_xml(&app);
        let back =
            sdm::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}\n{xml}", path.display()));
        assert_eq!(back, app, "{}", path.display());
    }
}
