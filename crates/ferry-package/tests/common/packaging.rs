//! Packages as packagers make them, built at test time: PSADT v3 and v4 wrapper layouts, MSIs
//! from Debian's `wixl` (a third-party writer), EXEs with version resources from mingw's
//! `windres` and `gcc`, and transforms from our own writer (no third-party transform writer
//! runs on Linux). Nothing third-party is committed.
//!
//! The external tools are installed by `scripts/test.sh`; when one is missing the helper
//! returns `None` and the test prints why and skips, except under `CI=true`, where a missing
//! tool fails the test (CI must prove what it claims).

use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use ferry_package::MsiProperties;
use ferry_package::transform::{TRANSFORM_CLSID, encode_stream_name};

/// `None` (and a printed reason) when `tool` is not installed; a panic under `CI=true`.
fn tool(tool: &str) -> Option<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(());
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{tool} is not installed; scripts/test.sh installs it");
    }
    eprintln!("skipped: {tool} is not installed (scripts/test.sh installs it)");
    None
}

/// A PSADT v3 package: `Deploy-Application.exe`/`.ps1` with `script`, the toolkit folder, and
/// `files` under `Files/`.
pub fn v3(script: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (
            "Deploy-Application.exe".into(),
            b"launcher placeholder".to_vec(),
        ),
        ("Deploy-Application.ps1".into(), script.as_bytes().to_vec()),
        (
            "AppDeployToolkit/AppDeployToolkitMain.ps1".into(),
            b"# toolkit placeholder".to_vec(),
        ),
    ];
    entries.extend(
        files
            .iter()
            .map(|(n, d)| (format!("Files/{n}"), d.to_vec())),
    );
    zip(&entries)
}

/// A PSADT v4 package: `Invoke-AppDeployToolkit.exe`/`.ps1` with `script`, the module folder,
/// and `files` under `Files/`.
pub fn v4(script: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        (
            "Invoke-AppDeployToolkit.exe".into(),
            b"launcher placeholder".to_vec(),
        ),
        (
            "Invoke-AppDeployToolkit.ps1".into(),
            script.as_bytes().to_vec(),
        ),
        (
            "PSAppDeployToolkit/PSAppDeployToolkit.psd1".into(),
            b"@{ ModuleVersion = '4.1.0' }".to_vec(),
        ),
    ];
    entries.extend(
        files
            .iter()
            .map(|(n, d)| (format!("Files/{n}"), d.to_vec())),
    );
    zip(&entries)
}

/// A zip of the given entries.
pub fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    ferry_package::sample::zip_of(&refs).unwrap()
}

/// An MSI written by Debian's `wixl` (msitools), with these properties.
pub fn wixl_msi(
    name: &str,
    version: &str,
    manufacturer: &str,
    language: u32,
    product_code: &str,
) -> Option<Vec<u8>> {
    tool("wixl")?;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme.txt"), b"hello").unwrap();
    let wxs = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="{product_code}" Name="{name}" Language="{language}" Version="{version}" Manufacturer="{manufacturer}" UpgradeCode="{{7C4F1C2A-1111-4222-8333-944455556666}}">
    <Package InstallerVersion="200" Compressed="yes" InstallScope="perMachine"/>
    <Media Id="1" Cabinet="app.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="App">
          <Component Id="Main" Guid="{{8D4F1C2A-1111-4222-8333-944455556666}}">
            <File Id="readme" Source="readme.txt"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Complete" Level="1"><ComponentRef Id="Main"/></Feature>
  </Product>
</Wix>
"#
    );
    std::fs::write(dir.path().join("app.wxs"), wxs).unwrap();
    let out = Command::new("wixl")
        .current_dir(dir.path())
        .args(["-o", "app.msi", "app.wxs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wixl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(std::fs::read(dir.path().join("app.msi")).unwrap())
}

/// What a test EXE's version resource says.
pub struct VersionInfo<'a> {
    pub company: &'a str,
    pub product: &'a str,
    pub product_version: &'a str,
    pub file_version: &'a str,
    /// `0x409` for English (United States).
    pub language: u16,
}

/// A real Windows executable with a version resource, built with mingw's `windres` and `gcc`.
pub fn mingw_exe(v: &VersionInfo) -> Option<Vec<u8>> {
    tool("x86_64-w64-mingw32-windres")?;
    tool("x86_64-w64-mingw32-gcc")?;
    let dir = tempfile::tempdir().unwrap();
    let rc = format!(
        r#"#include <winver.h>
1 VERSIONINFO
FILEVERSION 1,0,0,0
PRODUCTVERSION 1,0,0,0
BEGIN
  BLOCK "StringFileInfo"
  BEGIN
    BLOCK "{lang:04x}04b0"
    BEGIN
      VALUE "CompanyName", "{company}"
      VALUE "ProductName", "{product}"
      VALUE "ProductVersion", "{product_version}"
      VALUE "FileVersion", "{file_version}"
      VALUE "FileDescription", "{product} Setup"
    END
  END
  BLOCK "VarFileInfo"
  BEGIN
    VALUE "Translation", 0x{lang:x}, 1200
  END
END
"#,
        lang = v.language,
        company = v.company,
        product = v.product,
        product_version = v.product_version,
        file_version = v.file_version,
    );
    std::fs::write(dir.path().join("ver.rc"), rc).unwrap();
    std::fs::write(dir.path().join("main.c"), "int main(void) { return 0; }\n").unwrap();
    run(
        dir.path(),
        "x86_64-w64-mingw32-windres",
        &["ver.rc", "-O", "coff", "-o", "ver.res"],
    );
    run(
        dir.path(),
        "x86_64-w64-mingw32-gcc",
        &["-Os", "-s", "main.c", "ver.res", "-o", "setup.exe"],
    );
    Some(std::fs::read(dir.path().join("setup.exe")).unwrap())
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Points the first entry of an executable's resource root back at the root itself: a
/// resource directory that loops.
pub fn loop_resource_directory(exe: &mut [u8]) {
    use object::read::pe::PeFile64;
    let file = PeFile64::parse(&*exe).unwrap();
    let sections = file.section_table();
    let dir = file
        .data_directory(object::pe::IMAGE_DIRECTORY_ENTRY_RESOURCE)
        .expect("a resource directory");
    let rva = dir.virtual_address.get(object::LittleEndian);
    let (offset, _) = sections
        .pe_file_range_at(rva)
        .expect("the resource directory is in a section");
    let first_entry = offset as usize + 16;
    // OffsetToData with the high bit set: "a subdirectory at offset 0" — the root.
    exe[first_entry + 4..first_entry + 8].copy_from_slice(&0x8000_0000u32.to_le_bytes());
}

/// One change a transform makes to the Property table.
pub enum Change<'a> {
    /// An existing property gets a new value.
    Update(&'a str, &'a str),
    /// A new property.
    Insert(&'a str, &'a str),
    Delete(&'a str),
}

/// An MSI transform (`.mst`) whose Property table changes are `changes`: a compound file with
/// the transform storage class, its own string pool, and the Property stream row by row (a
/// 16-bit mask, then the columns present).
pub fn transform(changes: &[Change]) -> Vec<u8> {
    transform_with(changes, 1252, false)
}

/// [`transform`] with the string pool in `codepage` and, with `long_refs`, three-byte string
/// references (the format's choice for pools of more than 65,535 strings). The pool starts
/// with an unused (null) entry, as pools with deleted strings do.
pub fn transform_with(changes: &[Change], codepage: u32, long_refs: bool) -> Vec<u8> {
    // Entry 1 is a hole (length 0, no references); real strings start at 2.
    let mut strings: Vec<String> = vec![String::new()];
    let mut id = |s: &str| -> u32 {
        let at = match strings.iter().skip(1).position(|x| x == s) {
            Some(i) => i + 1,
            None => {
                strings.push(s.to_owned());
                strings.len() - 1
            }
        };
        u32::try_from(at + 1).unwrap()
    };
    let width = if long_refs { 3 } else { 2 };
    let mut rows = Vec::new();
    for change in changes {
        let (mask, refs) = match change {
            Change::Update(k, v) => (0b10u16, vec![id(k), id(v)]),
            Change::Insert(k, v) => (0x0201u16, vec![id(k), id(v)]),
            Change::Delete(k) => (0u16, vec![id(k)]),
        };
        rows.extend(mask.to_le_bytes());
        for r in refs {
            rows.extend(&r.to_le_bytes()[..width]);
        }
    }
    let cp = msi::CodePage::from_id(codepage as i32).expect("a codepage msi knows");
    let header = codepage | if long_refs { 0x8000_0000 } else { 0 };
    let mut pool = header.to_le_bytes().to_vec();
    let mut data = Vec::new();
    for (i, s) in strings.iter().enumerate() {
        let bytes = cp.encode(s);
        pool.extend(u16::try_from(bytes.len()).unwrap().to_le_bytes());
        pool.extend(u16::from(i > 0).to_le_bytes());
        data.extend(bytes);
    }
    let mut cfb = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    cfb.set_storage_clsid("/", uuid::Uuid::parse_str(TRANSFORM_CLSID).unwrap())
        .unwrap();
    for (name, bytes) in [
        ("_StringPool", &pool),
        ("_StringData", &data),
        ("Property", &rows),
    ] {
        use std::io::Write;
        let mut stream = cfb
            .create_stream(format!("/{}", encode_stream_name(name, true)))
            .unwrap();
        stream.write_all(bytes).unwrap();
    }
    cfb.flush().unwrap();
    cfb.into_inner().into_inner()
}

/// An MSI from our own writer (the `msi` crate) with these properties.
pub fn own_msi(
    name: &str,
    version: &str,
    manufacturer: &str,
    language: &str,
    code: &str,
) -> Vec<u8> {
    ferry_package::sample::msi(&MsiProperties {
        product_name: Some(name.into()),
        product_version: Some(version.into()),
        manufacturer: Some(manufacturer.into()),
        product_code: Some(code.into()),
        upgrade_code: Some("{9E0D1C2B-4A5F-4B6C-8D7E-0F1A2B3C4D5E}".into()),
        product_language: Some(language.into()),
    })
    .unwrap()
}

/// Makes an executable's version resource declare `size` bytes (its data entry's Size).
pub fn inflate_version_resource(exe: &mut [u8], size: u32) {
    use object::read::pe::PeFile64;
    let file = PeFile64::parse(&*exe).unwrap();
    let sections = file.section_table();
    let dir = file
        .data_directory(object::pe::IMAGE_DIRECTORY_ENTRY_RESOURCE)
        .expect("a resource directory");
    let (base, _) = sections
        .pe_file_range_at(dir.virtual_address.get(object::LittleEndian))
        .unwrap();
    let base = base as usize;
    // root → first entry (RT_VERSION in a file with one resource) → first → first: a data entry.
    let mut table = base;
    for _ in 0..3 {
        let entry = table + 16;
        let target = u32::from_le_bytes(exe[entry + 4..entry + 8].try_into().unwrap());
        table = base + (target & 0x7fff_ffff) as usize;
    }
    exe[table + 4..table + 8].copy_from_slice(&size.to_le_bytes());
}
