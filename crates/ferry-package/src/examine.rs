//! Reading a validated package for its metadata: the wrapper script, the chosen MSI with its
//! transforms, or the EXE installer, then [`propose`].
//!
//! Why here and not in the hub: which file to read and which value wins is knowledge of
//! packages, and the hub, the CLI and the tests must all decide it the same way. This module
//! does no I/O itself: the caller hands it a function that opens one entry of the package
//! ([`Open`]); the hub copies the entry to a temporary file, the tests to memory.
//!
//! Decisions, in order:
//! 1. **Wrapper script** (`Deploy-Application.ps1`, `Invoke-AppDeployToolkit.ps1`): read as
//!    data ([`crate::script`]), at most [`MAX_SCRIPT_BYTES`].
//! 2. **MSI**: the one the caller chose; else the one the script installs (matched by file
//!    name); else the only one; else none, with a note listing them ("choose one").
//! 3. **Transforms**: those the script names for that MSI; else the only `.mst` in the MSI's
//!    folder; several there and none named: listed, not applied (they are often
//!    alternatives, such as one per language). Their Property changes are applied in order.
//! 4. **EXE**: only with no MSI read and no application named by the script: the one the
//!    script starts, else the only one in `Files/` (or at the root without a wrapper).
//!
//! Nothing read here can refuse the package (the archive was validated before): an
//! unreadable file becomes a note, and the proposal simply has less in it.

use std::io::{Read, Seek};

use ferry_proto::package::PackageMetadata;

use crate::archive::ZipInventory;
use crate::error::PackageError;
use crate::exe::read_exe_version;
use crate::msifile::read_msi;
use crate::propose::{Findings, MsiFinding, propose};
use crate::script::{MAX_SCRIPT_BYTES, ScriptFacts, read_script};
use crate::transform::read_transform;

/// A file opened for reading, from any source.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Opens one file entry of the package by its name (as the inventory spells it).
pub type Open<'a> = dyn FnMut(&str) -> Result<Box<dyn ReadSeek>, PackageError> + 'a;

/// The package's metadata: what [`propose`] makes of its files, the chosen MSI's Property table
/// as read (before transforms), and the inventory's counts. `msi_choice`, when given, must be
/// one of the package's MSIs.
pub fn examine(
    inventory: &ZipInventory,
    open: &mut Open<'_>,
    msi_choice: Option<&str>,
) -> Result<PackageMetadata, PackageError> {
    let layout = &inventory.layout;
    if let Some(choice) = msi_choice
        && !layout.msi_files.iter().any(|m| m == choice)
    {
        return Err(PackageError::EntryNotFound {
            name: choice.to_owned(),
        });
    }
    let mut found = Findings::default();
    let script = layout
        .wrapper
        .as_ref()
        .and_then(|w| Some((w.kind, w.script.clone()?)));
    if let Some((kind, path)) = script {
        found.script = Some(read_wrapper_script(
            inventory,
            &path,
            kind,
            open,
            &mut found.notes,
        ));
    }
    let facts = found.script.clone().unwrap_or_default();
    for note in &facts.notes {
        found.notes.push(note.clone());
    }

    let msi_path = match msi_choice {
        Some(choice) => Some(choice.to_owned()),
        None => choose(&layout.msi_files, &facts.msi_paths, "MSI", &mut found.notes),
    };
    let mut raw_msi = None;
    if let Some(path) = &msi_path {
        match open(path).and_then(read_msi) {
            Ok(props) => {
                let mut finding = MsiFinding {
                    path: path.clone(),
                    properties: props.clone(),
                    ..Default::default()
                };
                for transform in transforms_for(layout, path, &facts, &mut found.notes) {
                    match open(&transform).and_then(read_transform) {
                        Ok(t) => {
                            finding.changed.extend(t.apply(&mut finding.properties));
                            finding.transforms_applied.push(transform);
                        }
                        Err(e) => found
                            .notes
                            .push(format!("transform {transform} could not be read: {e}")),
                    }
                }
                raw_msi = Some(props);
                found.msi = Some(finding);
            }
            Err(e) => found.notes.push(format!(
                "MSI {path} could not be read (metadata unknown): {e}"
            )),
        }
    }
    if facts.zero_config && found.msi.is_some() {
        found.notes.push(
            "Zero-Config MSI: the wrapper names no application, so the MSI's values are used"
                .to_owned(),
        );
    }

    if found.msi.is_none() && !facts.declares_application() {
        let exe = choose(&layout.exe_files, &facts.exe_paths, "EXE", &mut found.notes);
        if let Some(path) = exe {
            match open(&path).and_then(read_exe_version) {
                Ok(Some(version)) => found.exe = Some((path, version)),
                Ok(None) => found.notes.push(format!(
                    "{path} has no version resource; nothing to read from it"
                )),
                Err(e) => found.notes.push(format!("{path}: {e}")),
            }
        }
    }

    let mut proposal = propose(layout, &found);
    // The chosen MSI is reported even when unreadable: it is the one the user picked.
    if proposal.msi_file.is_none() {
        proposal.msi_file = msi_path;
    }
    Ok(PackageMetadata {
        proposal,
        msi_properties: raw_msi,
        file_count: inventory.file_count as u64,
        total_size: inventory.total_size,
        imported_from: None,
    })
}

/// Reads the wrapper script into memory (bounded) and its declarations.
fn read_wrapper_script(
    inventory: &ZipInventory,
    path: &str,
    kind: ferry_proto::package::WrapperKind,
    open: &mut Open<'_>,
    notes: &mut Vec<String>,
) -> ScriptFacts {
    let size = inventory
        .entries
        .iter()
        .find(|e| e.name == path)
        .map_or(0, |e| e.size);
    if size > MAX_SCRIPT_BYTES as u64 {
        notes.push(format!(
            "{path} is {size} bytes, more than the {MAX_SCRIPT_BYTES} read; its variables were not read"
        ));
        return ScriptFacts::default();
    }
    let mut bytes = Vec::new();
    let read = open(path).and_then(|file| {
        file.take(MAX_SCRIPT_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(PackageError::Read)
    });
    if let Err(e) = read {
        notes.push(format!("{path} could not be read: {e}"));
        return ScriptFacts::default();
    }
    read_script(kind, &script_text(&bytes))
}

/// A script file's text: UTF-8 (with or without BOM), UTF-16 with BOM (PowerShell ISE's
/// "Unicode"), else Windows-1252 (Windows PowerShell 5.1's default for files without a BOM).
pub fn script_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    let utf16 = |rest: &[u8], le: bool| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| crate::transform::cp1252(b)).collect(),
    }
}

/// The file name of a package path or a script path (`Files/a.msi`, `$dirFiles\a.msi`).
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Picks one of `files`: the first the script names (by file name, without case) that
/// matches exactly one file; else the only file; else none, noting why.
fn choose(
    files: &[String],
    named: &[String],
    what: &str,
    notes: &mut Vec<String>,
) -> Option<String> {
    for name in named {
        let matches: Vec<&String> = files
            .iter()
            .filter(|f| file_name(f).eq_ignore_ascii_case(file_name(name)))
            .collect();
        match matches.as_slice() {
            [one] => return Some((*one).clone()),
            [] => {}
            several => {
                let list: Vec<&str> = several.iter().map(|s| s.as_str()).collect();
                notes.push(format!(
                    "the wrapper installs {name}, which matches several files ({}); choose one",
                    list.join(", ")
                ));
                return None;
            }
        }
    }
    match files {
        [] => None,
        [one] => Some(one.clone()),
        several => {
            notes.push(format!(
                "{} {what} files found ({}) and the wrapper script names none of them: choose the one to read{}",
                several.len(),
                several.join(", "),
                if what == "MSI" { " (`msi_file`)" } else { "" }
            ));
            None
        }
    }
}

/// The transforms to apply to the MSI at `msi`: those the script names (matched by file
/// name), else the only one in the MSI's folder.
fn transforms_for(
    layout: &crate::psadt::PackageLayout,
    msi: &str,
    facts: &ScriptFacts,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut chosen = Vec::new();
    for name in &facts.transform_paths {
        if let Some(t) = layout
            .transforms
            .iter()
            .find(|t| file_name(t).eq_ignore_ascii_case(file_name(name)))
            && !chosen.contains(t)
        {
            chosen.push(t.clone());
        }
    }
    if !chosen.is_empty() {
        return chosen;
    }
    let folder = msi.rsplit_once('/').map_or("", |(f, _)| f);
    let beside: Vec<&String> = layout
        .transforms
        .iter()
        .filter(|t| t.rsplit_once('/').map_or("", |(f, _)| f) == folder)
        .collect();
    match beside.as_slice() {
        [one] => vec![(*one).clone()],
        [] => Vec::new(),
        several => {
            let list: Vec<&str> = several.iter().map(|s| s.as_str()).collect();
            notes.push(format!(
                "several transforms beside {msi} ({}) and the wrapper names none: none applied",
                list.join(", ")
            ));
            Vec::new()
        }
    }
}

/// An [`Open`] over a zip held in memory (the demo, the CLI's `package inspect`, tests).
pub fn open_in_memory(
    zip: &[u8],
) -> impl FnMut(&str) -> Result<Box<dyn ReadSeek>, PackageError> + '_ {
    move |name: &str| {
        let mut out = Vec::new();
        crate::archive::copy_entry(
            std::io::Cursor::new(zip),
            name,
            &crate::archive::Limits::default(),
            &mut out,
        )?;
        Ok(Box::new(std::io::Cursor::new(out)) as Box<dyn ReadSeek>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_decode_from_their_usual_encodings() {
        assert_eq!(script_text(b"\xEF\xBB\xBF$a = 'x'"), "$a = 'x'");
        assert_eq!(script_text(&[0xFF, 0xFE, b'a', 0, b'=', 0]), "a=");
        assert_eq!(script_text(b"'Caf\xe9'"), "'Café'");
        assert_eq!(script_text("'Café'".as_bytes()), "'Café'");
    }

    #[test]
    fn the_named_file_wins_then_the_only_one() {
        let files = vec!["Files/a.msi".to_owned(), "Files/b.msi".to_owned()];
        let mut notes = Vec::new();
        assert_eq!(
            choose(&files, &["$dirFiles\\B.MSI".to_owned()], "MSI", &mut notes).as_deref(),
            Some("Files/b.msi")
        );
        assert_eq!(choose(&files, &[], "MSI", &mut notes), None);
        assert!(notes[0].contains("2 MSI files found"), "{notes:?}");
        assert_eq!(
            choose(&files[..1], &[], "MSI", &mut notes).as_deref(),
            Some("Files/a.msi")
        );
    }
}
