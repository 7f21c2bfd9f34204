//! The FileZilla-like sample: recognised as PSADT v3, MSI read back, the proposal of the source
//! document (`TimKosse_FileZilla_3.46.3_English(United States)`), and other layouts.

mod common;

use std::io::Cursor;

use ferry_package::sample::{self, SAMPLE_MSI_PATH, SAMPLE_PRODUCT_CODE};
use ferry_package::{
    DetectionSpec, Findings, Installer, Limits, MsiFinding, MsiProperties, PackageLayout, Proposal,
    WrapperKind, copy_entry, examine, extract, inspect, open_in_memory, propose, read_msi,
};

fn sample_msi_props(zip: &[u8], path: &str) -> MsiProperties {
    let mut bytes = Vec::new();
    copy_entry(Cursor::new(zip), path, &Limits::default(), &mut bytes).unwrap();
    read_msi(Cursor::new(bytes)).unwrap()
}

/// The proposal for a zip in memory, read as the hub reads it.
fn examined(zip: &[u8]) -> Proposal {
    let inv = inspect(Cursor::new(zip), &Limits::default()).unwrap();
    examine(&inv, &mut open_in_memory(zip), None)
        .unwrap()
        .proposal
}

/// The proposal for a layout whose first MSI has `props`.
fn with_msi(layout: &PackageLayout, props: &MsiProperties) -> Proposal {
    let found = Findings {
        msi: Some(MsiFinding {
            path: layout.msi_files[0].clone(),
            properties: props.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    propose(layout, &found)
}

#[test]
fn sample_inspects_as_psadt_v3_with_its_msi() {
    let zip = sample::filezilla_like().unwrap();
    let inv = inspect(Cursor::new(&zip), &Limits::default()).unwrap();
    let w = inv.layout.wrapper.as_ref().expect("wrapper");
    assert_eq!(w.kind, WrapperKind::PsadtV3);
    assert_eq!(w.path, "Deploy-Application.exe");
    assert_eq!(w.root, "");
    assert!(w.has_exe);
    assert_eq!(inv.layout.msi_files, vec![SAMPLE_MSI_PATH.to_string()]);
    assert_eq!(inv.file_count, 4);
}

#[test]
fn sample_msi_reads_back_its_properties() {
    let zip = sample::filezilla_like().unwrap();
    let props = sample_msi_props(&zip, SAMPLE_MSI_PATH);
    assert_eq!(props, sample::filezilla_properties());
}

#[test]
fn sample_proposes_the_source_document_package() {
    let zip = sample::filezilla_like().unwrap();
    let p = examined(&zip);
    assert_eq!(
        p.package_name.as_deref(),
        Some("TimKosse_FileZilla_3.46.3_English(United States)")
    );
    assert_eq!(p.vendor.as_deref(), Some("Tim Kosse"));
    assert_eq!(p.product.as_deref(), Some("FileZilla"));
    assert_eq!(p.version.as_deref(), Some("3.46.3"));
    assert_eq!(p.language.as_deref(), Some("English(United States)"));
    assert_eq!(p.installer, Some(Installer::Script));
    assert_eq!(
        p.install_command.as_deref(),
        Some("Deploy-Application.exe -DeploymentType Install")
    );
    assert_eq!(
        p.uninstall_command.as_deref(),
        Some("Deploy-Application.exe -DeploymentType Uninstall")
    );
    assert_eq!(
        p.detection,
        Some(DetectionSpec::MsiProductCode(
            SAMPLE_PRODUCT_CODE.to_string()
        ))
    );
    let script = p.registry_marker_script.as_deref().unwrap();
    assert!(script.contains(
        "'TimKosse_FileZilla_3.46.3_English(United States)', 'TimKosse', 'FileZilla', '3.46.3'"
    ));
}

#[test]
fn sample_proposal_snapshot() {
    let zip = sample::filezilla_like().unwrap();
    insta::assert_json_snapshot!(examined(&zip));
}

#[test]
fn sample_extracts_byte_for_byte() {
    let zip = sample::filezilla_like().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp
        .path()
        .join("TimKosse_FileZilla_3.46.3_English(United States)");
    let report = extract(Cursor::new(&zip), &out, &Limits::default()).unwrap();
    assert_eq!(report.files_written, 4);
    let msi = std::fs::read(out.join("Files/FileZilla_3.46.3_win64.msi")).unwrap();
    assert_eq!(
        read_msi(Cursor::new(msi)).unwrap(),
        sample::filezilla_properties()
    );
    assert!(
        out.join("AppDeployToolkit/AppDeployToolkitMain.ps1")
            .is_file()
    );
    let mut copied = Vec::new();
    copy_entry(
        Cursor::new(&zip),
        "deploy-application.ps1",
        &Limits::default(),
        &mut copied,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(out.join("Deploy-Application.ps1")).unwrap(),
        copied
    );
}

#[test]
fn psadt_v4_inside_a_top_level_folder_is_detected() {
    let zip = common::stored(&[
        ("MyApp/Invoke-AppDeployToolkit.exe", b"x"),
        ("MyApp/Invoke-AppDeployToolkit.ps1", b"x"),
        ("MyApp/PSAppDeployToolkit/PSAppDeployToolkit.psd1", b"x"),
        ("MyApp/Files/app.msi", b"x"),
        ("MyApp/SupportFiles/other.msi", b"x"),
    ]);
    let inv = inspect(Cursor::new(&zip), &Limits::default()).unwrap();
    let w = inv.layout.wrapper.clone().unwrap();
    assert_eq!(w.kind, WrapperKind::PsadtV4);
    assert_eq!(w.path, "MyApp/Invoke-AppDeployToolkit.exe");
    assert_eq!(w.root, "MyApp");
    assert_eq!(inv.layout.msi_files[0], "MyApp/Files/app.msi");
    let p = propose(&inv.layout, &Findings::default());
    assert_eq!(
        p.install_command.as_deref(),
        Some("\"MyApp\\Invoke-AppDeployToolkit.exe\" -DeploymentType Install")
    );
    assert_eq!(p.package_name, None);
    assert_eq!(p.detection, None);
}

#[test]
fn psadt_v4_at_root_uses_invoke_appdeploytoolkit() {
    let zip = common::stored(&[
        ("Invoke-AppDeployToolkit.exe", b"x"),
        ("PSAppDeployToolkit/PSAppDeployToolkit.psm1", b"x"),
    ]);
    let p = examined(&zip);
    assert_eq!(
        p.install_command.as_deref(),
        Some("Invoke-AppDeployToolkit.exe -DeploymentType Install")
    );
    assert_eq!(
        p.uninstall_command.as_deref(),
        Some("Invoke-AppDeployToolkit.exe -DeploymentType Uninstall")
    );
}

#[test]
fn script_without_its_toolkit_folder_is_not_a_wrapper() {
    let layout = ferry_package::detect(["Deploy-Application.ps1", "Files/a.msi"]);
    assert_eq!(layout.wrapper, None);
}

#[test]
fn v3_with_only_the_script_runs_it_through_powershell() {
    let layout = ferry_package::detect([
        "Deploy-Application.ps1",
        "AppDeployToolkit/AppDeployToolkitMain.ps1",
    ]);
    let p = propose(&layout, &Findings::default());
    assert_eq!(
        p.install_command.as_deref(),
        Some(
            "powershell.exe -ExecutionPolicy Bypass -NoProfile -NonInteractive -File Deploy-Application.ps1 -DeploymentType Install"
        )
    );
}

#[test]
fn bare_msi_proposes_msiexec_commands() {
    let props = sample::filezilla_properties();
    let msi = sample::msi(&props).unwrap();
    let zip = common::stored(&[("FileZilla 3.46.3.msi", &msi)]);
    let inv = inspect(Cursor::new(&zip), &Limits::default()).unwrap();
    assert_eq!(inv.layout.wrapper, None);
    let p = examined(&zip);
    assert_eq!(p.installer, Some(Installer::Msi));
    assert_eq!(
        p.install_command.as_deref(),
        Some("msiexec /i \"FileZilla 3.46.3.msi\" /qn /norestart")
    );
    assert_eq!(
        p.uninstall_command.as_deref(),
        Some(format!("msiexec /x {SAMPLE_PRODUCT_CODE} /qn /norestart").as_str())
    );
}

#[test]
fn unknown_language_is_the_number_and_german_is_named() {
    let layout = ferry_package::detect(["a.msi"]);
    let mut props = sample::filezilla_properties();
    props.product_language = Some("4242".to_string());
    let p = with_msi(&layout, &props);
    assert_eq!(p.language.as_deref(), Some("4242"));
    assert_eq!(
        p.package_name.as_deref(),
        Some("TimKosse_FileZilla_3.46.3_4242")
    );
    props.product_language = Some("1031".to_string());
    let p = with_msi(&layout, &props);
    assert_eq!(p.language.as_deref(), Some("German(Germany)"));
}

#[test]
fn without_a_valid_product_code_a_wrapped_msi_is_detected_by_the_registry_marker_script() {
    let layout = ferry_package::detect([
        "Deploy-Application.ps1",
        "AppDeployToolkit/AppDeployToolkitMain.ps1",
        "Files/a.msi",
    ]);
    let mut props = sample::filezilla_properties();
    props.product_code = Some("{not-a-guid}'; Remove-Item C:\\ -Recurse; '".to_string());
    let p = with_msi(&layout, &props);
    assert_eq!(p.product_code, None);
    match p.detection {
        Some(DetectionSpec::Script { text, .. }) => {
            assert!(text.contains("Get-ItemProperty -LiteralPath $key"));
            assert!(!text.contains("Remove-Item"));
        }
        other => panic!("expected a script, got {other:?}"),
    }
}

#[test]
fn a_bare_msi_without_a_valid_product_code_gets_no_detection_and_the_reason() {
    // Without a wrapper nothing writes the registry marker, so it would never match.
    let layout = ferry_package::detect(["a.msi"]);
    let mut props = sample::filezilla_properties();
    props.product_code = Some("{not-a-guid}".to_string());
    let p = with_msi(&layout, &props);
    assert_eq!(p.detection, None);
    assert!(
        p.detection_note
            .as_deref()
            .is_some_and(|n| n.contains("no wrapper")),
        "{:?}",
        p.detection_note
    );
}

#[test]
fn proposal_serialises_with_snake_case_names() {
    let layout = ferry_package::detect(["a.msi"]);
    let p = with_msi(&layout, &sample::filezilla_properties());
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["installer"], "msi");
    assert_eq!(v["detection"]["msi_product_code"], SAMPLE_PRODUCT_CODE);
    assert!(v.get("package_name").is_some());
}

#[test]
fn package_name_leaves_out_characters_windows_folders_cannot_hold() {
    let layout = ferry_package::detect(["a.msi"]);
    let mut props = sample::filezilla_properties();
    props.manufacturer = Some("ACME / Widgets: \"Inc\"".to_string());
    props.product_name = Some("Tool*?<>|".to_string());
    let p = with_msi(&layout, &props);
    assert_eq!(
        p.package_name.as_deref(),
        Some("ACMEWidgetsInc_Tool_3.46.3_English(United States)")
    );
    // The vendor itself is kept as the MSI says.
    assert_eq!(p.vendor.as_deref(), Some("ACME / Widgets: \"Inc\""));
}

#[test]
fn copy_entry_of_a_missing_file_names_it() {
    let zip = sample::filezilla_like().unwrap();
    let err = copy_entry(
        Cursor::new(&zip),
        "Files/other.msi",
        &Limits::default(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ferry_package::PackageError::EntryNotFound { ref name } if name == "Files/other.msi"),
        "{err:?}"
    );
}
