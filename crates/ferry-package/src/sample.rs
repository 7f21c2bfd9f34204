//! Sample packages for the demo and the tests, built in memory.
//!
//! Why: the demo and the tests need a realistic package without shipping third-party binaries.
//! [`filezilla_like`] builds a PSADT v3-style zip whose scripts this project wrote itself (a few
//! lines each, not copies of PSADT) and whose MSI is a small but valid Windows Installer database
//! written with the `msi` crate, with FileZilla-like properties. The `.exe` launcher is a
//! placeholder text file: it is never meant to run.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::error::PackageError;
use crate::msifile::MsiProperties;

/// The fixed product code of the sample MSI.
pub const SAMPLE_PRODUCT_CODE: &str = "{5A8B2C11-3D4E-4F60-9A7B-1C2D3E4F5A61}";
/// The fixed upgrade code of the sample MSI.
pub const SAMPLE_UPGRADE_CODE: &str = "{9E0D1C2B-4A5F-4B6C-8D7E-0F1A2B3C4D5E}";
/// The MSI's path inside the sample zip.
pub const SAMPLE_MSI_PATH: &str = "Files/FileZilla_3.46.3_win64.msi";

/// The properties of the sample MSI: FileZilla 3.46.3 by Tim Kosse, language 1033.
pub fn filezilla_properties() -> MsiProperties {
    MsiProperties {
        product_name: Some("FileZilla".to_string()),
        product_version: Some("3.46.3".to_string()),
        manufacturer: Some("Tim Kosse".to_string()),
        product_code: Some(SAMPLE_PRODUCT_CODE.to_string()),
        upgrade_code: Some(SAMPLE_UPGRADE_CODE.to_string()),
        product_language: Some("1033".to_string()),
    }
}

const DEPLOY_APPLICATION_PS1: &str = r#"# Deploy-Application.ps1: Ferry sample wrapper (written for Ferry's demo, not part of PSADT).
param(
    [ValidateSet('Install', 'Uninstall', 'Repair')]
    [string]$DeploymentType = 'Install'
)
. "$PSScriptRoot\AppDeployToolkit\AppDeployToolkitMain.ps1"
$msi = Join-Path $PSScriptRoot 'Files\FileZilla_3.46.3_win64.msi'
if ($DeploymentType -eq 'Uninstall') { Invoke-FerrySampleMsi -Action '/x' -Path $msi }
else { Invoke-FerrySampleMsi -Action '/i' -Path $msi }
"#;

const DEPLOY_APPLICATION_EXE: &str =
    "Ferry sample placeholder for Deploy-Application.exe (not an executable).\r\n";

const TOOLKIT_MAIN_PS1: &str = r#"# AppDeployToolkitMain.ps1: Ferry sample toolkit stand-in (written for Ferry's demo).
function Invoke-FerrySampleMsi {
    param([string]$Action, [string]$Path)
    $p = Start-Process -FilePath 'msiexec.exe' -ArgumentList @($Action, "`"$Path`"", '/qn', '/norestart') -Wait -PassThru
    exit $p.ExitCode
}
"#;

/// A small valid MSI whose Property table holds the given properties (missing ones are left
/// out). Database and summary code page: Windows-1252.
pub fn msi(props: &MsiProperties) -> Result<Vec<u8>, PackageError> {
    let err = |e: std::io::Error| PackageError::Sample(e.to_string());
    let mut package =
        msi::Package::create(msi::PackageType::Installer, Cursor::new(Vec::new())).map_err(err)?;
    package.set_database_codepage(msi::CodePage::Windows1252);
    {
        let summary = package.summary_info_mut();
        summary.set_codepage(msi::CodePage::Windows1252);
        summary.set_title("Installation Database");
        if let Some(name) = &props.product_name {
            summary.set_subject(name.clone());
        }
        if let Some(m) = &props.manufacturer {
            summary.set_author(m.clone());
        }
        summary.set_arch("x64");
        let lang = props
            .product_language
            .as_deref()
            .and_then(|l| l.split(',').next())
            .and_then(|l| l.trim().parse::<u16>().ok())
            .unwrap_or(0);
        summary.set_languages(&[msi::LanguageId::from(lang)]);
        summary.set_uuid(uuid::Uuid::from_u128(
            0x6c1f_0e2a_9b3d_4c5e_8f70_a1b2_c3d4_e5f6,
        ));
        summary.set_creating_application("Ferry sample builder");
    }
    let columns = vec![
        msi::Column::build("Property").primary_key().id_string(72),
        msi::Column::build("Value").localizable().text_string(0),
    ];
    package.create_table("Property", columns).map_err(err)?;
    let pairs = [
        ("ProductName", &props.product_name),
        ("ProductVersion", &props.product_version),
        ("Manufacturer", &props.manufacturer),
        ("ProductCode", &props.product_code),
        ("UpgradeCode", &props.upgrade_code),
        ("ProductLanguage", &props.product_language),
    ];
    let rows: Vec<Vec<msi::Value>> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| vec![msi::Value::from(*k), msi::Value::Str(v.clone())])
        })
        .collect();
    if !rows.is_empty() {
        package
            .insert_rows(msi::Insert::into("Property").rows(rows))
            .map_err(err)?;
    }
    package.flush().map_err(err)?;
    let cursor = package.into_inner().map_err(err)?;
    Ok(cursor.into_inner())
}

/// A FileZilla-like PSADT v3 package (zip bytes):
/// `Deploy-Application.ps1`, `Deploy-Application.exe` (placeholder),
/// `AppDeployToolkit/AppDeployToolkitMain.ps1` and `Files/FileZilla_3.46.3_win64.msi`.
pub fn filezilla_like() -> Result<Vec<u8>, PackageError> {
    let msi_bytes = msi(&filezilla_properties())?;
    let files: [(&str, &[u8]); 4] = [
        ("Deploy-Application.ps1", DEPLOY_APPLICATION_PS1.as_bytes()),
        ("Deploy-Application.exe", DEPLOY_APPLICATION_EXE.as_bytes()),
        (
            "AppDeployToolkit/AppDeployToolkitMain.ps1",
            TOOLKIT_MAIN_PS1.as_bytes(),
        ),
        (SAMPLE_MSI_PATH, &msi_bytes),
    ];
    zip_of(&files)
}

/// A zip (deflate) of the given `(name, content)` pairs, in order, with folder entries for
/// `AppDeployToolkit/` and `Files/` when such paths are present. Names are written as given.
pub fn zip_of(files: &[(&str, &[u8])]) -> Result<Vec<u8>, PackageError> {
    let err = |e: zip::result::ZipError| PackageError::Sample(e.to_string());
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let mut dirs_done: Vec<String> = Vec::new();
    for (name, data) in files {
        if let Some((dir, _)) = name.rsplit_once('/') {
            let dir = format!("{dir}/");
            if !dirs_done.contains(&dir) {
                w.add_directory(dir.as_str(), opts.unix_permissions(0o755))
                    .map_err(err)?;
                dirs_done.push(dir);
            }
        }
        w.start_file(*name, opts).map_err(err)?;
        w.write_all(data)
            .map_err(|e| PackageError::Sample(e.to_string()))?;
    }
    let cursor = w.finish().map_err(err)?;
    Ok(cursor.into_inner())
}
