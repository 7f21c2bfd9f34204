//! Snapshots of the generated scripts for the seed's FileZilla push (source document 000,
//! case 1 and 2). A change to any script shows up here as a reviewable diff.

use ferry_sccm::scripts::{content_location_script, inventory_script, push_script};
use ferry_sccm::spec::{DetectionSpec, Installer, filezilla_example};
use ferry_sccm::{generate, read};

const CONSOLE: &str = "C:\\Program Files (x86)\\Microsoft Configuration Manager\\AdminConsole\\bin";

#[test]
fn push_script_for_the_filezilla_example() {
    let text = generate(&push_script(&filezilla_example()).unwrap());
    insta::assert_snapshot!(text);
}

#[test]
fn push_script_for_an_msi_installer_with_product_code_detection() {
    let mut spec = filezilla_example();
    spec.deployment_type.installer = Installer::Msi;
    spec.deployment_type
        .content_location
        .push_str("\\FileZilla_3.46.3_x64.msi");
    spec.deployment_type.detection =
        DetectionSpec::MsiProductCode("{23170F69-40C1-2702-1900-000001000000}".into());
    spec.application.folder = Some("Applications/Vendors/Tim Kosse".into());
    let text = generate(&push_script(&spec).unwrap());
    insta::assert_snapshot!(text);
}

#[test]
fn inventory_script_for_the_demo_site() {
    let text = generate(&inventory_script("DEM", CONSOLE).unwrap());
    insta::assert_snapshot!(text);
}

#[test]
fn content_location_script_for_two_applications() {
    let models = vec![
        "ScopeId_FAA1136B-8C9D-41AC-98A5-926609F05C60/Application_1142d387-45ff-4d7e-b4af-8a460818d7e7".to_owned(),
        "ScopeId_FAA1136B-8C9D-41AC-98A5-926609F05C60/Application_9a8b7c6d-45ff-4d7e-b4af-8a460818d7e7".to_owned(),
    ];
    let text = generate(&content_location_script("DEM", CONSOLE, &models).unwrap());
    insta::assert_snapshot!(text);
}

#[test]
fn every_generated_script_reads_back_to_the_same_commands() {
    let mut msi = filezilla_example();
    msi.deployment_type.installer = Installer::Msi;
    let scripts = [
        push_script(&filezilla_example()).unwrap(),
        push_script(&msi).unwrap(),
        inventory_script("DEM", CONSOLE).unwrap(),
        content_location_script("DEM", CONSOLE, &[]).unwrap(),
    ];
    for script in scripts {
        assert_eq!(read(&generate(&script)).unwrap(), script);
    }
}

#[test]
fn content_location_script_refuses_a_model_name_that_is_not_one() {
    let err =
        content_location_script("DEM", CONSOLE, &["x'; Remove-Item C:\\".to_owned()]).unwrap_err();
    assert_eq!(err.field, "model_names[0]");
}
