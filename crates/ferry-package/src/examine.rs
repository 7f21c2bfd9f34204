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
//!    name); else the only one — unless the script names the application itself and never
//!    installs that MSI (a prerequisite such as a runtime: its product code would detect the
//!    wrong product); else none, with a note listing them ("choose one").
//! 3. **Transforms**: those the script's install call of that MSI names; without a wrapper,
//!    the only `.mst` beside the MSI (the proposed command line applies it). Their Property
//!    changes are applied in order.
//! 4. **EXE**: only when the package has no MSI and the script names nothing: the one the
//!    script starts, else the only one in `Files/` (or at the root without a wrapper).
//!
//! Nothing read here can refuse the package (the archive was validated before): an
//! unreadable or oversized file becomes a note, and the proposal simply has less in it. Each
//! file's size is checked against its reader's cap before it is opened (copied out).

use std::io::{Read, Seek};

use ferry_proto::package::PackageMetadata;

use crate::archive::ZipInventory;
use crate::error::PackageError;
use crate::exe::read_exe_version;
use crate::msifile::{MSI_MAX_BYTES, read_msi};
use crate::propose::{Findings, MsiFinding, propose};
use crate::script::{MAX_SCRIPT_BYTES, ScriptFacts, read_script};
use crate::transform::{MST_MAX_BYTES, read_transform};

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
    let size_of = |name: &str| {
        inventory
            .entries
            .iter()
            .find(|e| e.name == name)
            .map_or(0, |e| e.size)
    };
    let mut found = Findings::default();
    let script = layout
        .wrapper
        .as_ref()
        .and_then(|w| Some((w.kind, w.script.clone()?)));
    if let Some((kind, path)) = script {
        found.script = Some(read_wrapper_script(
            &path,
            size_of(&path),
            kind,
            open,
            &mut found.notes,
        ));
    }
    let facts = found.script.clone().unwrap_or_default();
    found.notes.extend(facts.notes.iter().cloned());

    let installed: Vec<String> = facts.msi_installs.iter().map(|i| i.path.clone()).collect();
    let msi_path = match msi_choice {
        Some(choice) => Some(choice.to_owned()),
        None => match choose(&layout.msi_files, &installed, "MSI", &mut found.notes) {
            Some(Chosen::Named(path)) => Some(path),
            Some(Chosen::Only(path)) if facts.declares_application() && !facts.zero_config => {
                found.notes.push(format!(
                    "{path} is not installed by the wrapper's script, which names the application \
                     itself: it was not read (a prerequisite's product code would detect the wrong \
                     product); choose it (`msi_file`) if it is the application"
                ));
                None
            }
            Some(Chosen::Only(path)) => Some(path),
            None => None,
        },
    };
    let mut raw_msi = None;
    if let Some(path) = &msi_path {
        let size = size_of(path);
        let read = if size > MSI_MAX_BYTES {
            Err(PackageError::MsiTooLarge {
                size,
                limit: MSI_MAX_BYTES,
            })
        } else {
            open(path).and_then(read_msi)
        };
        match read {
            Ok(props) => {
                let mut finding = MsiFinding {
                    path: path.clone(),
                    properties: props.clone(),
                    ..Default::default()
                };
                let transforms = transforms_for(layout, path, &facts, &mut found.notes);
                for transform in transforms {
                    let size = size_of(&transform);
                    let read = if size > MST_MAX_BYTES {
                        Err(PackageError::TooLargeToRead {
                            what: "transform",
                            size,
                            limit: MST_MAX_BYTES,
                        })
                    } else {
                        open(&transform).and_then(read_transform)
                    };
                    match read {
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

    if layout.msi_files.is_empty() && !facts.declares_application() {
        let exe = match choose(&layout.exe_files, &facts.exe_paths, "EXE", &mut found.notes) {
            Some(Chosen::Named(path) | Chosen::Only(path)) => Some(path),
            None => None,
        };
        if let Some(path) = exe {
            let size = size_of(&path);
            let read = if size > EXE_MAX_BYTES {
                Err(PackageError::TooLargeToRead {
                    what: "installer",
                    size,
                    limit: EXE_MAX_BYTES,
                })
            } else {
                open(&path).and_then(read_exe_version)
            };
            match read {
                Ok(Some(version)) => found.exe = Some((path, version)),
                Ok(None) => found.notes.push(format!(
                    "{path} has no version resource; nothing to read from it"
                )),
                Err(e) => found.notes.push(format!("{path}: {e}")),
            }
        }
    }

    let mut proposal = propose(layout, &found);
    // The MSI picked is reported even when unreadable: it is the one the proposal is about.
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

/// Largest EXE whose version resource is read: a PE image cannot address more than 4 GiB.
pub const EXE_MAX_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Reads the wrapper script into memory (bounded) and its declarations.
fn read_wrapper_script(
    path: &str,
    size: u64,
    kind: ferry_proto::package::WrapperKind,
    open: &mut Open<'_>,
    notes: &mut Vec<String>,
) -> ScriptFacts {
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

/// How [`choose`] picked a file.
enum Chosen {
    /// The script names it.
    Named(String),
    /// The only candidate.
    Only(String),
}

/// At most this many names in a note's list.
const LISTED: usize = 10;

/// `files` for a note: the first few, and how many more.
fn listed(files: &[&str]) -> String {
    let mut out = files
        .iter()
        .take(LISTED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > LISTED {
        out.push_str(&format!(" and {} more", files.len() - LISTED));
    }
    out
}

/// Picks one of `files`: the first the script names (by file name, without case) that
/// matches exactly one file; else the only file; else none, noting why.
fn choose(
    files: &[String],
    named: &[String],
    what: &str,
    notes: &mut Vec<String>,
) -> Option<Chosen> {
    for name in named {
        let matches: Vec<&str> = files
            .iter()
            .filter(|f| file_name(f).eq_ignore_ascii_case(file_name(name)))
            .map(String::as_str)
            .collect();
        match matches.as_slice() {
            [one] => return Some(Chosen::Named((*one).to_owned())),
            [] => {}
            several => {
                notes.push(format!(
                    "the wrapper uses {}, which matches several files ({}); choose one",
                    file_name(name),
                    listed(several)
                ));
                return None;
            }
        }
    }
    match files {
        [] => None,
        [one] => Some(Chosen::Only(one.clone())),
        several => {
            let names: Vec<&str> = several.iter().map(String::as_str).collect();
            notes.push(if what == "MSI" {
                format!(
                    "{} MSI files found ({}) and the wrapper script installs none of them: choose the one the proposal comes from (`msi_file`)",
                    several.len(),
                    listed(&names)
                )
            } else {
                format!(
                    "{} {what} files found ({}) and the wrapper script starts none of them: nothing was read; set the metadata by hand",
                    several.len(),
                    listed(&names)
                )
            });
            None
        }
    }
}

/// The transforms to apply to the MSI at `msi`: with a wrapper, those its install call of
/// that MSI names (matched by file name); without one, the only `.mst` beside the MSI.
fn transforms_for(
    layout: &crate::psadt::PackageLayout,
    msi: &str,
    facts: &ScriptFacts,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let find = |name: &str| {
        layout
            .transforms
            .iter()
            .find(|t| file_name(t).eq_ignore_ascii_case(file_name(name)))
    };
    let mut chosen: Vec<String> = Vec::new();
    if layout.wrapper.is_some() {
        let calls = facts
            .msi_installs
            .iter()
            .filter(|i| file_name(&i.path).eq_ignore_ascii_case(file_name(msi)));
        for name in calls.flat_map(|i| i.transforms.iter()) {
            match find(name) {
                Some(t) if !chosen.contains(t) => chosen.push(t.clone()),
                Some(_) => {}
                None => notes.push(format!(
                    "the wrapper applies transform {}, which the package does not hold",
                    file_name(name)
                )),
            }
        }
    } else {
        let folder = msi.rsplit_once('/').map_or("", |(f, _)| f);
        let beside: Vec<&str> = layout
            .transforms
            .iter()
            .filter(|t| t.rsplit_once('/').map_or("", |(f, _)| f) == folder)
            .map(String::as_str)
            .collect();
        match beside.as_slice() {
            [one] => chosen.push((*one).to_owned()),
            [] => {}
            several => notes.push(format!(
                "several transforms beside {msi} ({}): none applied; name them in the install command",
                listed(several)
            )),
        }
    }
    // msiexec's TRANSFORMS list is `;`-separated and reads a leading `@`, `|` or `:` as a
    // prefix: a name holding those cannot be passed on, so it is not applied either.
    chosen.retain(|t| {
        let name = file_name(t);
        let usable = !name.contains([';', '"']) && !name.starts_with(['@', '|', ':']);
        if !usable {
            notes.push(format!(
                "transform {t} has a name msiexec cannot be given (`;`, `\"` or a leading `@|:`): not applied"
            ));
        }
        usable
    });
    chosen
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
        assert!(matches!(
            choose(&files, &["$dirFiles\\B.MSI".to_owned()], "MSI", &mut notes),
            Some(Chosen::Named(p)) if p == "Files/b.msi"
        ));
        assert!(choose(&files, &[], "MSI", &mut notes).is_none());
        assert!(notes[0].contains("2 MSI files found"), "{notes:?}");
        assert!(matches!(
            choose(&files[..1], &[], "MSI", &mut notes),
            Some(Chosen::Only(p)) if p == "Files/a.msi"
        ));
    }
}
