//! Packages as packaging teams really make them: PSADT v3 and v4 wrappers whose scripts name
//! the application, EXE installers, several MSIs, transforms and patches, and hostile inputs.
//! Every proposed value says where it came from.

mod common;

use std::io::Cursor;

use common::packaging::{
    Change, VersionInfo, loop_resource_directory, mingw_exe, own_msi, transform, v3, v4, wixl_msi,
};
use ferry_package::{
    DetectionSpec, FieldSource, Installer, Limits, MetadataField as F, PackageError, Proposal,
    derive, examine, inspect, open_in_memory, read_exe_version,
};
use ferry_proto::package::PackageMetadata;

const CODE_A: &str = "{11111111-2222-4333-8444-555555555555}";
const CODE_B: &str = "{22222222-3333-4444-8555-666666666666}";

fn metadata(zip: &[u8], choice: Option<&str>) -> Result<PackageMetadata, PackageError> {
    let inv = inspect(Cursor::new(zip), &Limits::default()).unwrap();
    examine(&inv, &mut open_in_memory(zip), choice)
}

/// A package of files at its root, no wrapper.
fn bare(files: &[(&str, &[u8])]) -> Vec<u8> {
    let entries: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(n, d)| ((*n).to_owned(), d.to_vec()))
        .collect();
    common::packaging::zip(&entries)
}

fn proposal(zip: &[u8]) -> Proposal {
    metadata(zip, None).unwrap().proposal
}

fn source(p: &Proposal, field: F) -> Option<&'static str> {
    p.source(field).map(FieldSource::as_str)
}

fn has_note(p: &Proposal, needle: &str) -> bool {
    p.notes.iter().any(|n| n.contains(needle))
}

/// A PSADT 3.10 `Deploy-Application.ps1` variable block, as the release template writes it.
fn v3_script(vendor: &str, name: &str, version: &str, lang: &str) -> String {
    format!(
        r#"[CmdletBinding()]
Param (
    [Parameter(Mandatory = $false)]
    [ValidateSet('Install', 'Uninstall', 'Repair')]
    [String]$DeploymentType = 'Install'
)
Try {{
    ##*===============================================
    ##* VARIABLE DECLARATION
    ##*===============================================
    ## Variables: Application
    [String]$appVendor = '{vendor}'
    [String]$appName = '{name}'
    [String]$appVersion = '{version}'
    [String]$appArch = 'x64'
    [String]$appLang = '{lang}'
    [String]$appRevision = '01'
    [String]$appScriptVersion = '1.0.0'
    [String]$appScriptDate = 'XX/XX/20XX'
    [String]$appScriptAuthor = '<author name>'
    ## Variables: Install Titles (Only set here to override defaults set by the toolkit)
    [String]$installName = ''
    [String]$installTitle = ''
    If ($deploymentType -ine 'Uninstall') {{
        Execute-Process -Path "$dirFiles\7z2301-x64.exe" -Parameters '/S'
    }}
}}
Catch {{
    Exit-Script -ExitCode 60001
}}
"#
    )
}

/// A PSADT 4.1 `Invoke-AppDeployToolkit.ps1` session table, as the release template writes it.
fn v4_script(vendor: &str, name: &str, version: &str, lang: &str, install: &str) -> String {
    format!(
        r#"[CmdletBinding()]
param (
    [System.String]$DeploymentType = 'Install'
)
$adtSession = @{{
    # App variables.
    AppVendor = '{vendor}'
    AppName = '{name}'
    AppVersion = '{version}'
    AppArch = 'x64'
    AppLang = '{lang}'
    AppRevision = '01'
    AppSuccessExitCodes = @(0)
    AppRebootExitCodes = @(1641, 3010)
    AppProcessesToClose = @('notepad')
    AppScriptVersion = '1.0.0'
    AppScriptDate = '2025-01-01'
    AppScriptAuthor = '<author name>'
    # Install Titles (Only set here to override defaults set by the toolkit).
    InstallName = ''
    InstallTitle = ''
    # Script variables.
    DeployAppScriptFriendlyName = $MyInvocation.MyCommand.Name
    DeployAppScriptVersion = '4.1.0'
    DeployAppScriptParameters = $PSBoundParameters
}}
function Install-ADTDeployment
{{
    [CmdletBinding()]
    param()
    {install}
}}
"#
    )
}

// ----- PSADT variables ---------------------------------------------------------------------

#[test]
fn a_v3_wrapper_names_its_exe_application_in_its_variables() {
    let zip = v3(
        &v3_script("Igor Pavlov", "7-Zip", "23.01", "EN"),
        &[("7z2301-x64.exe", b"MZ placeholder".as_slice())],
    );
    let p = proposal(&zip);
    assert_eq!(p.vendor.as_deref(), Some("Igor Pavlov"));
    assert_eq!(p.product.as_deref(), Some("7-Zip"));
    assert_eq!(p.version.as_deref(), Some("23.01"));
    assert_eq!(p.language.as_deref(), Some("English(United States)"));
    assert_eq!(p.language_id, Some(1033));
    assert_eq!(p.architecture.as_deref(), Some("x64"));
    assert_eq!(p.revision.as_deref(), Some("01"));
    assert_eq!(
        p.package_name.as_deref(),
        Some("IgorPavlov_7-Zip_23.01_English(United States)")
    );
    for field in [
        F::Vendor,
        F::Product,
        F::Version,
        F::Language,
        F::Architecture,
        F::Revision,
    ] {
        assert_eq!(source(&p, field), Some("psadt_script"), "{field:?}");
    }
    assert_eq!(source(&p, F::PackageName), Some("derived"));
    assert_eq!(p.installer, Some(Installer::Script));
    assert_eq!(source(&p, F::InstallCommand), Some("layout"));
    // Values in the script: the installer's version resource is not needed.
    assert_eq!(p.exe_file, None);
}

#[test]
fn a_v3_exe_package_is_detected_by_the_wrappers_registry_marker() {
    let zip = v3(&v3_script("Igor Pavlov", "7-Zip", "23.01", "EN"), &[]);
    let p = proposal(&zip);
    let Some(DetectionSpec::Script { text, .. }) = &p.detection else {
        panic!("expected the registry-marker script, got {:?}", p.detection);
    };
    assert!(text.contains(
        "@('IgorPavlov_7-Zip_23.01_English(United States)', 'IgorPavlov', '7-Zip', '23.01')"
    ));
    assert!(text.contains("$_.IsInstalled -eq 1"));
    assert_eq!(source(&p, F::Detection), Some("derived"));
    assert_eq!(p.detection_note, None);
}

#[test]
fn a_v4_session_table_names_its_application() {
    let zip = v4(
        &v4_script(
            "Microsoft",
            "Visual C++ 2022 Redistributable",
            "14.40.33810",
            "DE",
            "",
        ),
        &[("VC_redist.x64.exe", b"MZ placeholder".as_slice())],
    );
    let p = proposal(&zip);
    assert_eq!(p.vendor.as_deref(), Some("Microsoft"));
    assert_eq!(
        p.product.as_deref(),
        Some("Visual C++ 2022 Redistributable")
    );
    assert_eq!(p.version.as_deref(), Some("14.40.33810"));
    assert_eq!(p.language.as_deref(), Some("German(Germany)"));
    assert_eq!(p.architecture.as_deref(), Some("x64"));
    assert_eq!(source(&p, F::Vendor), Some("psadt_script"));
    assert_eq!(
        p.package_name.as_deref(),
        Some("Microsoft_VisualC++2022Redistributable_14.40.33810_German(Germany)")
    );
    assert_eq!(
        p.install_command.as_deref(),
        Some("Invoke-AppDeployToolkit.exe -DeploymentType Install")
    );
}

#[test]
fn a_v4_zero_config_wrapper_takes_its_values_from_the_msi() {
    let msi = own_msi("Notepad Plus", "8.6.2", "Don Ho", "1033", CODE_A);
    // The template's values stay in the table, but an empty AppName means "Zero-Config".
    let script = v4_script(
        "",
        "",
        "",
        "EN",
        "Start-ADTMsiProcess -Action Install -FilePath 'npp.msi'",
    );
    let p = proposal(&v4(&script, &[("npp.msi", &msi)]));
    assert_eq!(p.vendor.as_deref(), Some("Don Ho"));
    assert_eq!(p.product.as_deref(), Some("Notepad Plus"));
    assert_eq!(p.language.as_deref(), Some("English(United States)"));
    assert_eq!(source(&p, F::Vendor), Some("msi"));
    assert_eq!(
        source(&p, F::Language),
        Some("msi"),
        "the template's EN is not the packager's"
    );
    assert_eq!(
        p.detection,
        Some(DetectionSpec::MsiProductCode(CODE_A.into()))
    );
    assert!(has_note(&p, "Zero-Config"), "{:?}", p.notes);
}

#[test]
fn the_packagers_script_values_win_over_the_msis() {
    let msi = own_msi("npp", "8.6.2.0", "Notepad++ Team", "1033", CODE_A);
    let script = v3_script("Don Ho", "Notepad++", "8.6.2", "") + "Execute-MSI -Path 'npp.msi'\n";
    let p = proposal(&v3(&script, &[("npp.msi", &msi)]));
    assert_eq!(p.vendor.as_deref(), Some("Don Ho"));
    assert_eq!(p.product.as_deref(), Some("Notepad++"));
    assert_eq!(p.version.as_deref(), Some("8.6.2"));
    assert_eq!(source(&p, F::Version), Some("psadt_script"));
    // What the script leaves empty still comes from the MSI.
    assert_eq!(p.language.as_deref(), Some("English(United States)"));
    assert_eq!(source(&p, F::Language), Some("msi"));
    assert_eq!(source(&p, F::ProductCode), Some("msi"));
}

#[test]
fn values_that_are_not_literals_are_reported_and_never_evaluated() {
    let script = r#"
        [String]$appVendor = $vendorFromSomewhere
        [String]$appName = "App for $env:USERNAME"
        [String]$appVersion = $(Get-Date -Format 'yyyy.MM'; Remove-Item -Recurse C:\)
        [String]$appLang = 'EN'
    "#;
    let p = proposal(&v3(script, &[]));
    assert_eq!(p.vendor, None);
    assert_eq!(p.product, None);
    assert_eq!(p.version, None);
    assert_eq!(p.language.as_deref(), Some("English(United States)"));
    for var in ["$appVendor", "$appName", "$appVersion"] {
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains(var) && n.contains("not a literal")),
            "{var}: {:?}",
            p.notes
        );
    }
    assert_eq!(p.detection, None);
    let note = p.detection_note.as_deref().unwrap();
    assert!(note.starts_with("no detection proposed"), "{note}");
    assert!(note.contains("vendor, product, version"), "{note}");
}

#[test]
fn an_unknown_psadt_language_code_is_noted_not_guessed() {
    let p = proposal(&v3(&v3_script("V", "N", "1.0", "Klingon"), &[]));
    assert_eq!(p.language, None);
    assert!(has_note(&p, "\"Klingon\""), "{:?}", p.notes);
}

// ----- EXE installers ----------------------------------------------------------------------

fn seven_zip_exe() -> Option<Vec<u8>> {
    mingw_exe(&VersionInfo {
        company: "Igor Pavlov",
        product: "7-Zip",
        product_version: "23.01",
        file_version: "23.01",
        language: 0x409,
    })
}

#[test]
fn an_exe_installer_is_read_when_the_wrapper_names_nothing() {
    let Some(exe) = seven_zip_exe() else { return };
    let p = proposal(&v3(&v3_script("", "", "", ""), &[("7z2301-x64.exe", &exe)]));
    assert_eq!(p.exe_file.as_deref(), Some("Files/7z2301-x64.exe"));
    assert_eq!(p.vendor.as_deref(), Some("Igor Pavlov"));
    assert_eq!(p.product.as_deref(), Some("7-Zip"));
    assert_eq!(p.version.as_deref(), Some("23.01"));
    assert_eq!(p.language.as_deref(), Some("English(United States)"));
    for field in [F::Vendor, F::Product, F::Version, F::Language] {
        assert_eq!(source(&p, field), Some("exe_version"), "{field:?}");
    }
    assert_eq!(
        p.package_name.as_deref(),
        Some("IgorPavlov_7-Zip_23.01_English(United States)")
    );
    assert!(matches!(p.detection, Some(DetectionSpec::Script { .. })));
}

#[test]
fn the_exe_the_script_starts_is_the_one_read() {
    let Some(exe) = seven_zip_exe() else { return };
    let files = [
        ("helper.exe", b"MZ not the installer".as_slice()),
        ("7z2301-x64.exe", exe.as_slice()),
    ];
    let p = proposal(&v3(&v3_script("", "", "", ""), &files));
    assert_eq!(p.exe_file.as_deref(), Some("Files/7z2301-x64.exe"));
    assert_eq!(p.product.as_deref(), Some("7-Zip"));
}

#[test]
fn a_bare_exe_is_read_but_gets_no_guessed_command_line() {
    let Some(exe) = seven_zip_exe() else { return };
    let zip = common::packaging::zip(&[("setup.exe".into(), exe)]);
    let p = proposal(&zip);
    assert_eq!(p.product.as_deref(), Some("7-Zip"));
    assert_eq!(p.install_command, None);
    assert!(has_note(&p, "silent switches"), "{:?}", p.notes);
}

#[test]
fn an_exe_with_a_looping_resource_directory_is_unreadable_not_a_hang() {
    let Some(mut exe) = seven_zip_exe() else {
        return;
    };
    loop_resource_directory(&mut exe);
    let r = read_exe_version(Cursor::new(exe.clone()));
    assert!(matches!(r, Err(PackageError::Unreadable { .. })), "{r:?}");
    let p = proposal(&v3(&v3_script("", "", "", ""), &[("setup.exe", &exe)]));
    assert_eq!(p.vendor, None);
    assert!(has_note(&p, "setup.exe"), "{:?}", p.notes);
}

#[test]
fn a_file_that_is_not_an_executable_gets_a_note() {
    let p = proposal(&v3(
        &v3_script("", "", "", ""),
        &[("setup.exe", b"not a PE".as_slice())],
    ));
    assert_eq!(p.vendor, None);
    assert!(has_note(&p, "Files/setup.exe"), "{:?}", p.notes);
}

#[test]
fn detection_checks_the_main_binarys_file_version_once_it_is_known() {
    let mut p = proposal(&v3(&v3_script("Igor Pavlov", "7-Zip", "23.01", "EN"), &[]));
    p.main_binary = Some("%ProgramFiles%\\7-Zip\\7zFM.exe".into());
    derive(&mut p);
    let Some(DetectionSpec::Script { text, .. }) = &p.detection else {
        panic!("{:?}", p.detection);
    };
    assert!(text.contains("ExpandEnvironmentVariables('%ProgramFiles%\\7-Zip\\7zFM.exe')"));
    assert!(text.contains("-ge [version]'23.01'"));
    // The registry marker stays on offer.
    assert!(p.registry_marker_script.is_some());
}

// ----- several MSIs, transforms, patches -------------------------------------------------

#[test]
fn of_several_msis_the_one_the_script_installs_is_read() {
    let Some(b) = wixl_msi("Beta Tool", "2.0.1", "Contoso", 1031, CODE_B) else {
        return;
    };
    let a = own_msi("Alpha Tool", "1.0.0", "Contoso", "1033", CODE_A);
    let script = "Execute-MSI -Action 'Install' -Path \"$dirFiles\\beta.msi\" -Parameters '/qn'";
    let p = proposal(&v3(script, &[("alpha.msi", &a), ("beta.msi", &b)]));
    assert_eq!(p.msi_file.as_deref(), Some("Files/beta.msi"));
    assert_eq!(p.msi_files, ["Files/alpha.msi", "Files/beta.msi"]);
    assert_eq!(p.product.as_deref(), Some("Beta Tool"));
    assert_eq!(p.language.as_deref(), Some("German(Germany)"));
    assert_eq!(
        p.detection,
        Some(DetectionSpec::MsiProductCode(CODE_B.into()))
    );
}

#[test]
fn several_msis_the_script_does_not_name_are_listed_for_a_choice() {
    let a = own_msi("Alpha Tool", "1.0.0", "Contoso", "1033", CODE_A);
    let b = own_msi("Beta Tool", "2.0.1", "Contoso", "1033", CODE_B);
    let zip = v3(
        "# installs through a helper",
        &[("alpha.msi", &a), ("beta.msi", &b)],
    );
    let p = proposal(&zip);
    assert_eq!(p.msi_file, None);
    assert_eq!(p.product, None);
    assert_eq!(p.msi_files.len(), 2);
    assert!(has_note(&p, "2 MSI files found"), "{:?}", p.notes);
    // The administrator chooses; the package is read again from that MSI.
    let chosen = metadata(&zip, Some("Files/beta.msi")).unwrap().proposal;
    assert_eq!(chosen.msi_file.as_deref(), Some("Files/beta.msi"));
    assert_eq!(chosen.product.as_deref(), Some("Beta Tool"));
    assert!(matches!(
        metadata(&zip, Some("Files/gamma.msi")),
        Err(PackageError::EntryNotFound { .. })
    ));
}

#[test]
fn a_transform_beside_a_bare_msi_changes_the_proposal_and_the_command_line() {
    let msi = own_msi("FileZilla", "3.46.3", "Tim Kosse", "1033", CODE_A);
    let mst = transform(&[
        Change::Update("ProductName", "FileZilla (Contoso build)"),
        Change::Update("ProductLanguage", "1031"),
        Change::Insert("CONTOSO_SETTINGS", "1"),
    ]);
    let zip =
        common::packaging::zip(&[("FileZilla.msi".into(), msi), ("FileZilla.mst".into(), mst)]);
    let p = proposal(&zip);
    assert_eq!(p.product.as_deref(), Some("FileZilla (Contoso build)"));
    assert_eq!(source(&p, F::Product), Some("msi+transform"));
    assert_eq!(p.language.as_deref(), Some("German(Germany)"));
    assert_eq!(source(&p, F::Language), Some("msi+transform"));
    assert_eq!(
        source(&p, F::Vendor),
        Some("msi"),
        "untouched by the transform"
    );
    assert_eq!(p.transforms, ["FileZilla.mst"]);
    assert_eq!(p.transforms_applied, ["FileZilla.mst"]);
    assert_eq!(
        p.install_command.as_deref(),
        Some("msiexec /i \"FileZilla.msi\" TRANSFORMS=\"FileZilla.mst\" /qn /norestart")
    );
    // The Property table as read is kept as it is in the MSI.
    let m = metadata(&zip, None).unwrap();
    assert_eq!(
        m.msi_properties.unwrap().product_name.as_deref(),
        Some("FileZilla")
    );
}

#[test]
fn a_transform_applies_to_an_msi_written_by_a_third_party_writer() {
    let Some(msi) = wixl_msi("Notepad Plus", "8.6.2", "Don Ho", 1033, CODE_A) else {
        return;
    };
    let mst = transform(&[Change::Update("ProductVersion", "8.6.2.1")]);
    let script = "Execute-MSI -Action Install -Path 'npp.msi' -Transform 'npp-contoso.mst'";
    let p = proposal(&v3(script, &[("npp.msi", &msi), ("npp-contoso.mst", &mst)]));
    assert_eq!(p.version.as_deref(), Some("8.6.2.1"));
    assert_eq!(source(&p, F::Version), Some("msi+transform"));
    assert_eq!(p.vendor.as_deref(), Some("Don Ho"));
    assert_eq!(p.transforms_applied, ["Files/npp-contoso.mst"]);
}

#[test]
fn the_transforms_a_v4_script_names_are_applied_in_order() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let de = transform(&[Change::Update("ProductLanguage", "1031")]);
    let rename = transform(&[Change::Update("ProductName", "Tool DE")]);
    let fr = transform(&[Change::Update("ProductLanguage", "1036")]);
    let script = v4_script(
        "",
        "",
        "",
        "",
        "Start-ADTMsiProcess -Action Install -FilePath 'tool.msi' -Transforms 'de.mst;rename.mst'",
    );
    let files = [
        ("tool.msi", msi.as_slice()),
        ("de.mst", &de),
        ("rename.mst", &rename),
        ("fr.mst", &fr),
    ];
    let p = proposal(&v4(&script, &files));
    assert_eq!(p.transforms_applied, ["Files/de.mst", "Files/rename.mst"]);
    assert_eq!(p.language.as_deref(), Some("German(Germany)"));
    assert_eq!(p.product.as_deref(), Some("Tool DE"));
    assert_eq!(p.transforms.len(), 3);
}

#[test]
fn several_unnamed_transforms_are_listed_not_applied() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let de = transform(&[Change::Update("ProductLanguage", "1031")]);
    let fr = transform(&[Change::Update("ProductLanguage", "1036")]);
    let p = proposal(&bare(&[
        ("tool.msi", &msi),
        ("de.mst", &de),
        ("fr.mst", &fr),
    ]));
    assert!(p.transforms_applied.is_empty());
    assert_eq!(p.language.as_deref(), Some("English(United States)"));
    assert!(has_note(&p, "several transforms"), "{:?}", p.notes);
}

#[test]
fn a_transform_that_deletes_a_property_removes_it_from_the_proposal() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let mst = transform(&[Change::Delete("Manufacturer")]);
    let p = proposal(&bare(&[("tool.msi", &msi), ("tool.mst", &mst)]));
    assert_eq!(p.vendor, None);
}

#[test]
fn a_damaged_transform_is_a_note_and_the_msi_still_counts() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let p = proposal(&bare(&[
        ("tool.msi", &msi),
        ("tool.mst", b"not a compound file".as_slice()),
    ]));
    assert_eq!(p.product.as_deref(), Some("Tool"));
    assert!(p.transforms_applied.is_empty());
    assert!(
        has_note(&p, "transform tool.mst could not be read"),
        "{:?}",
        p.notes
    );
}

#[test]
fn an_msi_is_not_a_transform() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let r = ferry_package::read_transform(Cursor::new(msi));
    assert!(matches!(r, Err(PackageError::Unreadable { .. })), "{r:?}");
}

#[test]
fn patches_are_listed() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let p = proposal(&v3(
        "",
        &[("tool.msi", &msi), ("tool-1.0.1.msp", b"patch".as_slice())],
    ));
    assert_eq!(p.patches, ["Files/tool-1.0.1.msp"]);
}

#[test]
fn an_msi_written_by_wixl_reads_back_its_properties() {
    let Some(msi) = wixl_msi("Notepad Plus", "8.6.2", "Don Ho", 1031, CODE_A) else {
        return;
    };
    let props = ferry_package::read_msi(Cursor::new(msi)).unwrap();
    assert_eq!(props.product_name.as_deref(), Some("Notepad Plus"));
    assert_eq!(props.product_version.as_deref(), Some("8.6.2"));
    assert_eq!(props.manufacturer.as_deref(), Some("Don Ho"));
    assert_eq!(props.product_language.as_deref(), Some("1031"));
    assert_eq!(props.product_code.as_deref(), Some(CODE_A));
}

// ----- hostile scripts -----------------------------------------------------------------

#[test]
fn a_ten_megabyte_single_line_script_is_not_read() {
    // Letters that do not compress (a run of one letter would be refused as a zip bomb).
    let mut seed = 0x2545_f491_u32;
    let noise: String = (0..10 * 1024 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect();
    let script = format!("$appVendor = '{noise}'");
    let p = proposal(&v3(&script, &[]));
    assert_eq!(p.vendor, None);
    assert!(has_note(&p, "more than the"), "{:?}", p.notes);
}

#[test]
fn a_long_single_line_script_under_the_cap_is_read_in_bounded_time() {
    let mut script = String::from("[String]$appVendor = 'Contoso'; ");
    while script.len() < 1000 * 1024 {
        script.push_str("$x = 'a' + 'b' + (1 + 2) * 3; ");
    }
    let p = proposal(&v3(&script, &[]));
    // Either read, or given up within the parse budget with a note: never unbounded.
    assert!(
        p.vendor.as_deref() == Some("Contoso") || has_note(&p, "could not be parsed in time"),
        "{:?}",
        p.notes
    );
}

#[test]
fn deeply_nested_hashtables_do_not_exhaust_the_stack() {
    let depth = 20_000;
    let script = format!(
        "$adtSession = @{{ AppVendor = 'Contoso'; AppName = 'Deep'; Nested = {}1{} }}",
        "@{ a = ".repeat(depth),
        " }".repeat(depth)
    );
    let p = proposal(&v4(&script, &[]));
    assert!(
        p.vendor.as_deref() == Some("Contoso") || has_note(&p, "could not be parsed in time"),
        "{:?}",
        p.notes
    );
}

#[test]
fn a_script_in_utf16_with_a_bom_is_read() {
    let text = v3_script("Contoso", "Tool", "1.0", "EN");
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let zip = common::packaging::zip(&[
        ("Deploy-Application.ps1".into(), bytes),
        (
            "AppDeployToolkit/AppDeployToolkitMain.ps1".into(),
            b"#".to_vec(),
        ),
    ]);
    assert_eq!(proposal(&zip).vendor.as_deref(), Some("Contoso"));
}

#[test]
fn typographic_quotes_end_a_string_as_powershell_reads_it() {
    // PowerShell ends '…' at U+2019 too: the value is "Con", and what follows is code.
    let script = "[String]$appVendor = 'Con\u{2019}; Remove-Item C:\\ -Recurse; \u{2018}'";
    let p = proposal(&v3(script, &[]));
    assert!(
        matches!(p.vendor.as_deref(), None | Some("Con")),
        "{:?}",
        p.vendor
    );
}

// ----- what the review of the first version found ----------------------------------------

#[test]
fn a_prerequisite_msi_beside_a_named_exe_application_does_not_detect_it() {
    let runtime = own_msi("VC++ Runtime", "14.0", "Microsoft", "1033", CODE_B);
    let p = proposal(&v3(
        &v3_script("Igor Pavlov", "7-Zip", "23.01", "EN"),
        &[
            ("vcredist.msi", &runtime),
            ("7z2301-x64.exe", b"MZ".as_slice()),
        ],
    ));
    assert_eq!(p.product.as_deref(), Some("7-Zip"));
    assert_eq!(
        p.product_code, None,
        "the runtime's code would detect the wrong product"
    );
    assert!(matches!(p.detection, Some(DetectionSpec::Script { .. })));
    assert!(
        has_note(&p, "vcredist.msi is not installed by the wrapper"),
        "{:?}",
        p.notes
    );
}

#[test]
fn an_uninstall_call_does_not_name_the_applications_msi() {
    let old = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let new = own_msi("Tool", "2.0", "Contoso", "1033", CODE_B);
    let script = "Execute-MSI -Action 'Uninstall' -Path 'tool-1.0.msi'\n\
                  Execute-MSI -Action:'Install' -Path:'tool-2.0.msi'\n";
    let p = proposal(&v3(
        script,
        &[("tool-1.0.msi", &old), ("tool-2.0.msi", &new)],
    ));
    assert_eq!(p.msi_file.as_deref(), Some("Files/tool-2.0.msi"));
    assert_eq!(p.version.as_deref(), Some("2.0"));
}

#[test]
fn a_bare_word_path_names_the_msi_too() {
    let a = own_msi("Alpha", "1.0", "Contoso", "1033", CODE_A);
    let b = own_msi("Beta", "1.0", "Contoso", "1033", CODE_B);
    let p = proposal(&v3(
        "Execute-MSI -Path beta.msi",
        &[("alpha.msi", &a), ("beta.msi", &b)],
    ));
    assert_eq!(p.product.as_deref(), Some("Beta"));
}

#[test]
fn transforms_named_for_another_msi_are_not_applied() {
    let a = own_msi("Alpha", "1.0", "Contoso", "1033", CODE_A);
    let b = own_msi("Beta", "1.0", "Contoso", "1033", CODE_B);
    let for_b = transform(&[Change::Update("ProductName", "Beta (Contoso)")]);
    let script = "Execute-MSI -Path 'alpha.msi'\nExecute-MSI -Path 'beta.msi' -Transform 'b.mst'\n";
    let files = [
        ("alpha.msi", a.as_slice()),
        ("beta.msi", &b),
        ("b.mst", &for_b),
    ];
    let p = proposal(&v3(script, &files));
    assert_eq!(p.msi_file.as_deref(), Some("Files/alpha.msi"));
    assert_eq!(p.product.as_deref(), Some("Alpha"));
    assert!(p.transforms_applied.is_empty());
    // Chosen by hand, beta comes with its own transform.
    let m = metadata(&v3(script, &files), Some("Files/beta.msi")).unwrap();
    assert_eq!(m.proposal.product.as_deref(), Some("Beta (Contoso)"));
}

#[test]
fn a_lone_transform_the_wrapper_does_not_pass_is_not_applied() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let mst = transform(&[Change::Update("ProductName", "Tool (customised)")]);
    let script = "Execute-MSI -Action Install -Path 'tool.msi'";
    let p = proposal(&v3(script, &[("tool.msi", &msi), ("tool.mst", &mst)]));
    assert_eq!(p.product.as_deref(), Some("Tool"));
    assert_eq!(p.transforms, ["Files/tool.mst"]);
    assert!(p.transforms_applied.is_empty());
}

#[test]
fn a_v3_zero_config_wrapper_takes_the_msis_language_not_the_templates() {
    let msi = own_msi("Werkzeug", "1.0", "Contoso", "1031", CODE_A);
    let p = proposal(&v3(&v3_script("", "", "", "EN"), &[("werkzeug.msi", &msi)]));
    assert_eq!(p.language.as_deref(), Some("German(Germany)"));
    assert_eq!(
        p.revision, None,
        "the template's revision is not the packager's"
    );
    assert!(has_note(&p, "Zero-Config"), "{:?}", p.notes);
}

#[test]
fn a_non_literal_app_name_is_not_zero_config() {
    let script = v4_script("Contoso", "$name", "1.0", "EN", "");
    let p = proposal(&v4(&script.replace("'$name'", "\"$name\""), &[]));
    assert_eq!(
        p.vendor.as_deref(),
        Some("Contoso"),
        "the stated values stay"
    );
    assert_eq!(p.version.as_deref(), Some("1.0"));
}

#[test]
fn control_characters_in_notes_are_escaped() {
    let script = "[String]$appName = \"$x\u{1b}]52;c;aGk=\u{7}\"";
    let p = proposal(&v3(script, &[]));
    let note = p.notes.iter().find(|n| n.contains("$appName")).unwrap();
    assert!(!note.chars().any(char::is_control), "{note:?}");
    assert!(note.contains("\\u{1b}"), "{note:?}");
}

#[test]
fn an_environment_variable_is_not_the_wrappers_variable() {
    let p = proposal(&v3("$env:appName = 'Injected'", &[]));
    assert_eq!(p.product, None);
}

#[test]
fn no_exe_is_read_while_msis_wait_for_a_choice() {
    let Some(exe) = seven_zip_exe() else { return };
    let a = own_msi("Alpha", "1.0", "Contoso", "1033", CODE_A);
    let b = own_msi("Beta", "1.0", "Contoso", "1033", CODE_B);
    let files = [("a.msi", a.as_slice()), ("b.msi", &b), ("helper.exe", &exe)];
    let p = proposal(&v3(&v3_script("", "", "", ""), &files));
    assert_eq!(p.exe_file, None);
    assert_eq!(p.vendor, None);
}

#[test]
fn a_version_resource_declaring_gigabytes_is_unreadable_without_reading_them() {
    let Some(mut exe) = seven_zip_exe() else {
        return;
    };
    common::packaging::inflate_version_resource(&mut exe, 0x7fff_ffff);
    let r = read_exe_version(Cursor::new(exe));
    match r {
        Err(PackageError::Unreadable { reason, .. }) => {
            assert!(reason.contains("declares"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mutated_executables_never_panic_the_version_reader() {
    let Some(exe) = seven_zip_exe() else { return };
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for _ in 0..300 {
        let mut bytes = exe.clone();
        for _ in 0..rng.usize(1..16) {
            let at = rng.usize(..bytes.len());
            bytes[at] ^= rng.u8(1..);
        }
        if rng.bool() {
            bytes.truncate(rng.usize(..bytes.len()));
        }
        let _ = read_exe_version(Cursor::new(bytes));
    }
}

#[test]
fn a_transform_with_three_byte_string_references_and_another_codepage_reads() {
    let msi = own_msi("Tool", "1.0", "Contoso", "1033", CODE_A);
    let mst = common::packaging::transform_with(
        &[
            Change::Update("ProductName", "Инструмент"),
            Change::Update("ProductLanguage", "1049"),
        ],
        1251,
        true,
    );
    let p = proposal(&bare(&[("tool.msi", &msi), ("tool.mst", &mst)]));
    assert_eq!(p.product.as_deref(), Some("Инструмент"));
    assert_eq!(p.language_id, Some(1049));
}
