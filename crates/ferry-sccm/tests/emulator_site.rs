//! The emulated site: the connector's scripts run end to end, re-pushes are idempotent, and
//! cmdlet failures carry ConfigMgr's and PowerShell's messages.

use ferry_sccm::cmdlets::Cmdlet;
use ferry_sccm::emulator::{EmulatorError, SITE_FILE};
use ferry_sccm::script::{Call, Script, Statement, Target, Value, Var};
use ferry_sccm::scripts::{content_location_script, inventory_script, push_script, result_lines};
use ferry_sccm::spec::filezilla_example;
use ferry_sccm::{Site, generate, sdm};
use serde_json::json;

const CONSOLE: &str = "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin";
const PREAMBLE: &str = "$ErrorActionPreference = 'Stop'\nImport-Module -Name 'C:\\CM\\bin\\ConfigurationManager.psd1'\nSet-Location -Path 'DEM:'\n";

fn push_text() -> String {
    generate(&push_script(&filezilla_example()).unwrap())
}

fn inventory_text() -> String {
    generate(&inventory_script("DEM", CONSOLE).unwrap())
}

fn assign(var: &str, call: Call) -> Statement {
    Statement::Call {
        target: Target::Var(Var::new(var).unwrap()),
        call,
    }
}

/// The preamble followed by the given statements.
fn script(statements: Vec<Statement>) -> String {
    format!("{PREAMBLE}{}", generate(&Script { statements }))
}

/// The message of the cmdlet error a script ends with.
fn cmdlet_error(site: &mut Site, text: &str) -> (String, String) {
    match site.run(text) {
        Err(EmulatorError::Cmdlet {
            cmdlet, message, ..
        }) => (cmdlet, message),
        other => panic!("expected a cmdlet error, got {other:?}"),
    }
}

fn new_app(name: &str) -> Statement {
    assign(
        "app",
        Call::new(Cmdlet::NewCMApplication).string("Name", name),
    )
}

#[test]
fn push_reports_each_step_with_the_created_ids() {
    let mut site = Site::demo();
    let lines = result_lines(&site.run(&push_text()).unwrap()).unwrap();
    let steps: Vec<&str> = lines.iter().map(|l| l["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "connected",
            "application",
            "deployment_type",
            "content",
            "deployment",
            "folder",
            "done"
        ]
    );
    let app = &site.state().applications[0];
    assert_eq!(lines[1]["ci_id"], json!(app.ci_id));
    let model = lines[1]["model_name"].as_str().unwrap();
    let (scope, logical) = model.split_once('/').unwrap();
    assert!(
        scope.starts_with("ScopeId_") && uuid::Uuid::parse_str(&scope[8..]).is_ok(),
        "{model}"
    );
    assert!(
        logical.starts_with("Application_") && uuid::Uuid::parse_str(&logical[12..]).is_ok(),
        "{model}"
    );
    assert_eq!(
        lines[5],
        json!({"step": "folder", "path": "/Test 1", "container_node_id": 16777217})
            .as_object()
            .unwrap()
            .clone()
    );
}

#[test]
fn push_distributes_content_deploys_and_files_the_application() {
    let mut site = Site::demo();
    site.run(&push_text()).unwrap();
    let s = site.state();
    let app = &s.applications[0];
    assert_eq!(
        app.content[0].distribution_point_group,
        "Demo Distribution Group"
    );
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].collection_name, "Demo devices");
    assert_eq!(
        s.deployments[0].deadline.as_deref(),
        Some("2020-02-02T18:00:00")
    );
    assert_eq!(s.deployments[0].time_base, "LocalTime");
    assert_eq!(s.folder_items.len(), 1);
    assert_eq!(s.folder_items[0].instance_key, app.model_name);
    assert_eq!(
        s.folder_items[0].container_node_id,
        s.folders[0].container_node_id
    );
}

#[test]
fn repush_updates_the_same_application_and_bumps_its_revision() {
    let mut site = Site::demo();
    site.run(&push_text()).unwrap();
    let first = site.state().applications[0].clone();
    site.run(&push_text()).unwrap();
    let s = site.state();
    assert_eq!(s.applications.len(), 1);
    assert_eq!(s.applications[0].ci_id, first.ci_id);
    assert_eq!(s.applications[0].model_name, first.model_name);
    assert!(s.applications[0].revision > first.revision);
    assert_eq!(s.applications[0].deployment_types.len(), 1);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.folder_items.len(), 1);
    assert_eq!(s.folders.len(), 1);
}

#[test]
fn push_then_inventory_round_trips_through_sdmpackagexml() {
    let spec = filezilla_example();
    let mut site = Site::demo();
    site.run(&push_text()).unwrap();
    let lines = result_lines(&site.run(&inventory_text()).unwrap()).unwrap();
    let folder = lines.iter().find(|l| l["step"] == "folder").unwrap();
    assert_eq!(folder["name"], "Test 1");
    let item = lines.iter().find(|l| l["step"] == "folder_item").unwrap();
    assert_eq!(item["container_node_id"], folder["container_node_id"]);
    let app_line = lines.iter().find(|l| l["step"] == "application").unwrap();
    assert_eq!(item["instance_key"], app_line["model_name"]);
    assert_eq!(app_line["name"], spec.application.name.as_str());

    let app = sdm::parse(app_line["sdm_package_xml"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(app.title, spec.application.name);
    assert_eq!(app.publisher, "Tim Kosse");
    assert_eq!(app.version, "3.46.3");
    assert_eq!(app.default_language, "en-US");
    assert_eq!(
        format!("{}/{}", app.scope_id, app.logical_name),
        app_line["model_name"].as_str().unwrap()
    );
    let dt = &app.deployment_types[0];
    assert_eq!(dt.title, spec.deployment_type_name());
    assert_eq!(dt.technology, "Script");
    assert_eq!(
        dt.install_command.as_deref(),
        Some("Deploy-Application.exe -DeploymentType Install")
    );
    assert_eq!(
        dt.uninstall_command.as_deref(),
        Some("Deploy-Application.exe -DeploymentType Uninstall")
    );
    assert_eq!(dt.content_locations.len(), 1);
    assert!(
        dt.content_locations[0]
            .trim_end_matches('\\')
            .ends_with("TimKosse_FileZilla_3.46.3_English(United States)")
    );
    let ferry_sccm::spec::DetectionSpec::Script { text, .. } = &spec.deployment_type.detection
    else {
        unreachable!()
    };
    assert_eq!(
        dt.detection,
        sdm::Detection::Script {
            language: "PowerShell".into(),
            body: text.clone(),
            run_as_32bit: false
        }
    );
}

#[test]
fn content_location_lookup_returns_the_digest_or_null() {
    let mut site = Site::demo();
    site.run(&push_text()).unwrap();
    let model = site.state().applications[0].model_name.clone();
    let missing = format!(
        "{}/Application_00000000-0000-0000-0000-000000000000",
        site.state().scope_id
    );
    let text =
        generate(&content_location_script("DEM", CONSOLE, &[model.clone(), missing]).unwrap());
    let lines = result_lines(&site.run(&text).unwrap()).unwrap();
    let app = sdm::parse(lines[1]["sdm_package_xml"].as_str().unwrap().as_bytes()).unwrap();
    assert!(app.deployment_types[0].content_locations[0].contains("WIN-2HDJCBHRRVB"));
    assert_eq!(lines[1]["model_name"], model.as_str());
    assert_eq!(lines[2]["sdm_package_xml"], serde_json::Value::Null);
}

#[test]
fn result_json_is_escaped_as_windows_powershell_writes_it() {
    let mut spec = filezilla_example();
    spec.deployment_type.distribution_point_group = "Demo Distribution Group".into();
    spec.deployment.collection = "Demo devices".into();
    let mut site = Site::demo();
    let out = site
        .run(&generate(&inventory_script("DEM", CONSOLE).unwrap()))
        .unwrap();
    assert!(out.starts_with("FERRY-RESULT {\"step\":\"connected\",\"site_code\":\"DEM\"}\n"));
    site.run(&push_text()).unwrap();
    let out = site.run(&inventory_text()).unwrap();
    // ConvertTo-Json in Windows PowerShell 5.1 writes < > & ' as \u escapes.
    assert!(out.contains("\\u003cAppMgmtDigest"), "{out}");
}

#[test]
fn site_is_saved_atomically_and_reloaded_from_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::open(dir.path()).unwrap();
    site.run(&push_text()).unwrap();
    let reloaded = Site::open(dir.path()).unwrap();
    assert_eq!(reloaded.state(), site.state());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [SITE_FILE]);
}

#[test]
fn demo_site_has_the_demo_objects() {
    let site = Site::demo();
    let s = site.state();
    assert_eq!(s.site_code, "DEM");
    assert_eq!(s.distribution_point_groups, ["Demo Distribution Group"]);
    assert!(s.collections.iter().any(|c| c.name == "Demo devices"));
    assert_eq!(s.folders[0].name, "Test 1");
    assert_eq!(s.folders[0].parent_container_node_id, 0);
}

#[test]
fn refused_script_changes_nothing() {
    let mut site = Site::demo();
    let before = site.state().clone();
    let text = format!("{PREAMBLE}$app = New-CMApplication -Name 'x'\nRemove-Item -Path 'C:\\'\n");
    assert!(matches!(site.run(&text), Err(EmulatorError::Refused(_))));
    assert_eq!(site.state(), &before);
}

#[test]
fn unknown_parameter_fails_like_powershell() {
    let mut site = Site::demo();
    let text = script(vec![assign(
        "app",
        Call::new(Cmdlet::NewCMApplication).string("Nme", "x"),
    )]);
    let (cmdlet, message) = cmdlet_error(&mut site, &text);
    assert_eq!(cmdlet, "New-CMApplication");
    assert_eq!(
        message,
        "A parameter cannot be found that matches parameter name 'Nme'."
    );
}

#[test]
fn missing_mandatory_parameter_fails_like_powershell() {
    let mut site = Site::demo();
    let text = script(vec![assign(
        "app",
        Call::new(Cmdlet::NewCMApplication).string("Description", "x"),
    )]);
    let (_, message) = cmdlet_error(&mut site, &text);
    assert_eq!(
        message,
        "Cannot process command because of one or more missing mandatory parameters: Name."
    );
}

#[test]
fn bad_enum_value_fails_like_powershell() {
    let mut site = Site::demo();
    site.run(&push_text()).unwrap();
    let text = script(vec![
        assign(
            "app",
            Call::new(Cmdlet::GetCMApplication)
                .string("Name", "TimKosse_FileZilla_3.46.3_English(United States)"),
        ),
        assign(
            "d",
            Call::new(Cmdlet::NewCMApplicationDeployment)
                .arg("InputObject", Value::Var(Var::new("app").unwrap()))
                .string("CollectionName", "All Systems")
                .string("DeployPurpose", "Sometimes"),
        ),
    ]);
    let (_, message) = cmdlet_error(&mut site, &text);
    assert!(message.starts_with("Cannot bind parameter 'DeployPurpose'. Cannot convert value \"Sometimes\" to type \"DeployPurposeType\"."), "{message}");
    assert!(message.ends_with("Available, Required\""), "{message}");
}

#[test]
fn duplicate_application_name_fails() {
    let mut site = Site::demo();
    let text = script(vec![
        new_app("x"),
        assign("b", Call::new(Cmdlet::NewCMApplication).string("Name", "X")),
    ]);
    let (_, message) = cmdlet_error(&mut site, &text);
    assert_eq!(message, "An object with the specified name already exists.");
}

#[test]
fn deployment_type_on_a_missing_application_fails() {
    let mut site = Site::demo();
    let text = script(vec![assign(
        "dt",
        Call::new(Cmdlet::AddCMScriptDeploymentType)
            .string("ApplicationName", "missing")
            .string("DeploymentTypeName", "d")
            .string("InstallCommand", "setup.exe")
            .string("ScriptLanguage", "PowerShell")
            .string("ScriptText", "$true"),
    )]);
    let (cmdlet, message) = cmdlet_error(&mut site, &text);
    assert_eq!(cmdlet, "Add-CMScriptDeploymentType");
    assert_eq!(
        message,
        "No object corresponds to the specified parameters."
    );
}

#[test]
fn unknown_distribution_point_group_fails() {
    let mut spec = filezilla_example();
    spec.deployment_type.distribution_point_group = "Nowhere".into();
    let mut site = Site::demo();
    let (cmdlet, message) = cmdlet_error(&mut site, &generate(&push_script(&spec).unwrap()));
    assert_eq!(cmdlet, "Start-CMContentDistribution");
    assert_eq!(
        message,
        "Distribution point group 'Nowhere' does not exist."
    );
}

#[test]
fn unknown_collection_fails() {
    let mut spec = filezilla_example();
    spec.deployment.collection = "Nobody".into();
    let mut site = Site::demo();
    let (cmdlet, message) = cmdlet_error(&mut site, &generate(&push_script(&spec).unwrap()));
    assert_eq!(cmdlet, "New-CMApplicationDeployment");
    assert_eq!(message, "Collection 'Nobody' does not exist.");
}

#[test]
fn move_to_an_unknown_folder_fails() {
    let mut site = Site::demo();
    let text = script(vec![
        new_app("x"),
        Statement::Call {
            target: Target::None,
            call: Call::new(Cmdlet::MoveCMObject)
                .string("FolderPath", "DEM:\\Application\\Missing")
                .arg("InputObject", Value::Var(Var::new("app").unwrap())),
        },
    ]);
    let (_, message) = cmdlet_error(&mut site, &text);
    assert_eq!(
        message,
        "Folder path 'DEM:\\Application\\Missing' does not exist."
    );
}

#[test]
fn configmgr_cmdlet_before_import_module_is_not_recognized() {
    let mut site = Site::demo();
    let text = generate(&Script {
        statements: vec![new_app("x")],
    });
    let (_, message) = cmdlet_error(&mut site, &text);
    assert!(
        message.starts_with("The term 'New-CMApplication' is not recognized"),
        "{message}"
    );
}

#[test]
fn failing_cmdlet_keeps_the_stdout_printed_before_it() {
    let mut spec = filezilla_example();
    spec.deployment.collection = "Nobody".into();
    let mut site = Site::demo();
    let text = generate(&push_script(&spec).unwrap());
    let creating_line = text
        .lines()
        .position(|l| l.starts_with("if ($null -eq $deployment)"))
        .unwrap()
        + 1;
    match site.run(&text) {
        Err(EmulatorError::Cmdlet { stdout, line, .. }) => {
            let steps: Vec<String> = result_lines(&stdout)
                .unwrap()
                .iter()
                .map(|l| l["step"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(
                steps,
                ["connected", "application", "deployment_type", "content"]
            );
            assert_eq!(line, creating_line, "the `if` that creates the deployment");
        }
        other => panic!("{other:?}"),
    }
    // Work done before the failure stays, as on a real site.
    assert_eq!(site.state().applications.len(), 1);
}

#[test]
fn push_creates_a_missing_nested_folder_path() {
    let mut spec = filezilla_example();
    spec.application.folder = Some("Applications/Vendors/Tim Kosse".into());
    let mut site = Site::demo();
    let lines = result_lines(&site.run(&generate(&push_script(&spec).unwrap())).unwrap()).unwrap();
    let s = site.state();
    let vendors = s.folders.iter().find(|f| f.name == "Vendors").unwrap();
    let tim = s.folders.iter().find(|f| f.name == "Tim Kosse").unwrap();
    assert_eq!(vendors.parent_container_node_id, 0);
    assert_eq!(tim.parent_container_node_id, vendors.container_node_id);
    assert_eq!(s.folder_items[0].container_node_id, tim.container_node_id);
    let folder = lines.iter().find(|l| l["step"] == "folder").unwrap();
    assert_eq!(folder["path"], "/Vendors/Tim Kosse");
    assert_eq!(folder["container_node_id"], json!(tim.container_node_id));
}

#[test]
fn msi_push_records_product_code_detection() {
    let mut spec = filezilla_example();
    spec.deployment_type.installer = ferry_sccm::spec::Installer::Msi;
    spec.deployment_type.detection = ferry_sccm::spec::DetectionSpec::MsiProductCode(
        "{23170F69-40C1-2702-1900-000001000000}".into(),
    );
    let mut site = Site::demo();
    site.run(&generate(&push_script(&spec).unwrap())).unwrap();
    let app = &site.state().applications[0];
    let digest = sdm::parse(site.sdm_package_xml(app).as_bytes()).unwrap();
    assert_eq!(digest.deployment_types[0].technology, "MSI");
    assert_eq!(
        digest.deployment_types[0].detection,
        sdm::Detection::MsiProductCode {
            product_code: "{23170F69-40C1-2702-1900-000001000000}".into()
        }
    );
}

#[test]
fn generated_inventory_lists_every_application_once() {
    let stdout = ferry_sccm::perf::generated_inventory(50).unwrap();
    let lines = result_lines(&stdout).unwrap();
    let apps: Vec<_> = lines
        .iter()
        .filter(|l| l["step"] == "application")
        .collect();
    assert_eq!(apps.len(), 50);
    let models: std::collections::BTreeSet<&str> = apps
        .iter()
        .map(|l| l["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(models.len(), 50);
}

#[test]
fn unique_parameter_prefix_binds_like_powershell() {
    let mut site = Site::demo();
    let text = script(vec![assign(
        "app",
        Call::new(Cmdlet::NewCMApplication)
            .string("Name", "x")
            .string("Publ", "Tim Kosse"),
    )]);
    site.run(&text).unwrap();
    assert_eq!(site.state().applications[0].publisher, "Tim Kosse");
}

#[test]
fn ambiguous_parameter_prefix_fails_like_powershell() {
    // `-Name` matches through its alias LocalizedDisplayName; PowerShell also matches aliases.
    let mut site = Site::demo();
    let text = script(vec![assign(
        "app",
        Call::new(Cmdlet::NewCMApplication)
            .string("Name", "x")
            .string("Local", "y"),
    )]);
    let (_, message) = cmdlet_error(&mut site, &text);
    assert_eq!(
        message,
        "Parameter cannot be processed because the parameter name 'Local' is ambiguous. Possible matches include: -LocalizedDescription -LocalizedName -Name."
    );
}

#[test]
fn repush_with_a_new_deadline_updates_the_existing_deployment() {
    let mut site = Site::demo();
    site.run(&push_text()).unwrap();
    let mut spec = filezilla_example();
    spec.deployment.deadline = Some("2020-03-01T08:00".into());
    site.run(&generate(&push_script(&spec).unwrap())).unwrap();
    let s = site.state();
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(
        s.deployments[0].deadline.as_deref(),
        Some("2020-03-01T08:00:00")
    );
}
