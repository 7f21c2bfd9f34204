//! Push specification parsing and validation: every error names the field.

use ferry_sccm::spec::filezilla_example;
use serde_json::{Value, json};

fn example_json() -> Value {
    serde_json::to_value(filezilla_example()).unwrap()
}

fn field_error(json: Value) -> (String, String) {
    let err = ferry_sccm::spec::parse(&json.to_string()).expect_err("the spec was accepted");
    (err.field, err.message)
}

#[test]
fn filezilla_example_is_valid_and_round_trips_through_json() {
    let text = example_json().to_string();
    assert_eq!(ferry_sccm::spec::parse(&text).unwrap(), filezilla_example());
}

#[test]
fn issue_field_names_are_accepted() {
    let spec = json!({
        "site": {"site_code": "DEM", "console_path": "C:\\CM\\bin", "share_path": "\\\\srv\\Sources$"},
        "application": {"name": "A", "version": "1", "publisher": "P", "product_name": "N", "language": "en-US",
            "auto_install": true, "owner": "John Doe", "description": "d", "optional_reference": "r", "folder": "Applications/Test 1"},
        "deployment_type": {"name": "A_DT", "content_location": "\\\\srv\\Sources$\\A", "distribution_point_group": "G",
            "installer": "msi", "detection": {"msi_product_code": "{23170F69-40C1-2702-1900-000001000000}"},
            "persist_in_cache": true, "install_command": "msiexec /i a.msi", "uninstall_command": "msiexec /x a.msi",
            "slow_network": "download_content_for_local", "max_runtime_mins": 60, "estimated_runtime_mins": 5,
            "force_32bit": false, "admin_comment": "c"},
        "deployment": {"collection": "C", "action": "uninstall", "purpose": "required",
            "available_at": "2020-02-02T00:00", "deadline": "2020-02-02T18:00:00", "time_base": "utc"}
    });
    ferry_sccm::spec::parse(&spec.to_string()).unwrap();
}

#[test]
fn unknown_field_is_refused_naming_it() {
    let mut spec = example_json();
    spec["application"]["colour"] = json!("red");
    let (field, message) = field_error(spec);
    assert_eq!(field, "application.colour");
    assert!(message.contains("unknown field `colour`"), "{message}");
}

#[test]
fn unknown_enum_value_is_refused_naming_the_field() {
    let mut spec = example_json();
    spec["deployment"]["purpose"] = json!("sometimes");
    assert_eq!(field_error(spec).0, "deployment.purpose");
}

#[test]
fn control_character_in_a_name_is_refused_naming_the_field() {
    let mut spec = example_json();
    spec["application"]["publisher"] = json!("Tim\u{7}Kosse");
    let (field, message) = field_error(spec);
    assert_eq!(field, "application.publisher");
    assert!(message.contains("U+0007"), "{message}");
}

#[test]
fn line_break_in_a_one_line_field_is_refused() {
    let mut spec = example_json();
    spec["application"]["name"] = json!("a\r\nb");
    assert_eq!(field_error(spec).0, "application.name");
}

#[test]
fn line_breaks_in_the_detection_script_are_allowed() {
    let mut spec = example_json();
    spec["deployment_type"]["detection"] =
        json!({"script": {"language": "powershell", "text": "if ($x) {\r\n  $true\r\n}"}});
    ferry_sccm::spec::parse(&spec.to_string()).unwrap();
}

#[test]
fn name_longer_than_256_characters_is_refused() {
    let mut spec = example_json();
    spec["application"]["name"] = json!("é".repeat(257));
    let (field, message) = field_error(spec);
    assert_eq!(field, "application.name");
    assert!(message.contains("limit is 256"), "{message}");
}

#[test]
fn deadline_before_available_time_is_refused() {
    let mut spec = example_json();
    spec["deployment"]["deadline"] = json!("2020-02-01T18:00");
    assert_eq!(
        field_error(spec),
        (
            "deployment.deadline".into(),
            "must be after available_at".into()
        )
    );
}

#[test]
fn impossible_date_is_refused() {
    let mut spec = example_json();
    spec["deployment"]["available_at"] = json!("2020-02-30T00:00");
    assert_eq!(field_error(spec).0, "deployment.available_at");
}

#[test]
fn site_code_must_be_three_letters_or_digits() {
    let mut spec = example_json();
    spec["site"]["site_code"] = json!("DEM:");
    assert_eq!(field_error(spec).0, "site.site_code");
}

#[test]
fn malformed_product_code_is_refused() {
    let mut spec = example_json();
    spec["deployment_type"]["detection"] = json!({"msi_product_code": "23170F69"});
    assert_eq!(
        field_error(spec).0,
        "deployment_type.detection.msi_product_code"
    );
}

#[test]
fn folder_name_with_a_backslash_is_refused() {
    let mut spec = example_json();
    spec["application"]["folder"] = json!("Applications/a\\b");
    assert_eq!(field_error(spec).0, "application.folder");
}

#[test]
fn max_runtime_outside_configmgr_range_is_refused() {
    let mut spec = example_json();
    spec["deployment_type"]["max_runtime_mins"] = json!(5);
    assert_eq!(field_error(spec).0, "deployment_type.max_runtime_mins");
}

#[test]
fn deployment_type_name_defaults_to_the_package_name_with_dt() {
    let mut spec = filezilla_example();
    spec.deployment_type.name = None;
    assert_eq!(
        spec.deployment_type_name(),
        "TimKosse_FileZilla_3.46.3_English(United States)_DT"
    );
}

#[test]
fn default_deployment_type_name_longer_than_256_characters_is_refused() {
    let mut spec = example_json();
    spec["application"]["name"] = json!("a".repeat(255));
    spec["deployment_type"]["name"] = Value::Null;
    assert_eq!(field_error(spec).0, "deployment_type.name");
}
