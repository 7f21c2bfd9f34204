//! Recognising what a package is from its file names alone.
//!
//! Why: the install and uninstall command lines depend on the wrapper: a PSAppDeployToolkit
//! (PSADT) v3 package runs `Deploy-Application.exe`, a v4 package `Invoke-AppDeployToolkit.exe`,
//! and a bare MSI runs through `msiexec`. This module looks only at names (no file is opened).
//!
//! Rules (case-insensitive, at the zip root or inside exactly one top-level folder, the root
//! winning):
//! - v4: `Invoke-AppDeployToolkit.exe` or `.ps1`, plus a `PSAppDeployToolkit/` folder beside it;
//! - v3 (also v4's v3-compatibility layout): `Deploy-Application.exe` or `.ps1`, plus an
//!   `AppDeployToolkit/` folder beside it.
//!
//! A script alone, without its toolkit folder, is not taken for a wrapper. MSI files are listed
//! with those under the wrapper's `Files/` folder first; transforms (`.mst`), patches (`.msp`)
//! and EXE installers (in `Files/`, or at the root without a wrapper) are listed too.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use ferry_proto::package::WrapperKind;

/// The wrapper found in a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wrapper {
    /// v3 or v4.
    pub kind: WrapperKind,
    /// Relative path of the launcher inside the zip (the `.exe` if present, else the `.ps1`),
    /// e.g. `Deploy-Application.exe` or `MyApp/Deploy-Application.exe`.
    pub path: String,
    /// The folder holding the wrapper: `""` for the zip root, or the top-level folder name.
    pub root: String,
    /// True when the launcher is a `.exe`; false when only the `.ps1` is there.
    pub has_exe: bool,
    /// Relative path of the wrapper script (`Deploy-Application.ps1`,
    /// `Invoke-AppDeployToolkit.ps1`), when the package has it.
    #[serde(default)]
    pub script: Option<String>,
}

/// What the file names say about the package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageLayout {
    /// The PSADT wrapper, if one was recognised.
    pub wrapper: Option<Wrapper>,
    /// Relative paths of the `.msi` files, best candidate first (under the wrapper's `Files/`).
    pub msi_files: Vec<String>,
    /// Relative paths of the `.mst` transforms.
    #[serde(default)]
    pub transforms: Vec<String>,
    /// Relative paths of the `.msp` patches.
    #[serde(default)]
    pub patches: Vec<String>,
    /// EXE installers: with a wrapper, the `.exe` files in its `Files/` folder; without one,
    /// the `.exe` files at the package root.
    #[serde(default)]
    pub exe_files: Vec<String>,
}

impl PackageLayout {
    /// The only MSI, when there is exactly one.
    pub fn single_msi(&self) -> Option<&str> {
        match self.msi_files.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// Recognises the wrapper and finds the MSI files from normalised file names (`/` separators,
/// as [`crate::ZipInventory`] holds them). Folder entries need not be listed.
pub fn detect<'a>(file_names: impl IntoIterator<Item = &'a str>) -> PackageLayout {
    let names: Vec<&str> = file_names.into_iter().collect();
    let lower: BTreeSet<String> = names.iter().map(|n| n.to_lowercase()).collect();

    let mut roots: Vec<String> = vec![String::new()];
    let mut tops: BTreeSet<String> = BTreeSet::new();
    for n in &names {
        if let Some((top, _)) = n.split_once('/') {
            tops.insert(top.to_string());
        }
    }
    roots.extend(tops);

    let mut wrapper = None;
    for root in &roots {
        if let Some(w) = wrapper_at(root, &lower, &names) {
            wrapper = Some(w);
            break;
        }
    }

    let with_extension = |ext: &str| -> Vec<String> {
        let mut found: Vec<String> = names
            .iter()
            .filter(|n| n.to_lowercase().ends_with(ext))
            .map(|n| n.to_string())
            .collect();
        found.sort();
        found
    };
    let mut msi_files = with_extension(".msi");
    let files_prefix = wrapper.as_ref().map(|w| join(&w.root, "files/"));
    if let Some(prefix) = &files_prefix {
        msi_files.sort_by_key(|n| !n.to_lowercase().starts_with(prefix));
    }
    let exe_files = with_extension(".exe")
        .into_iter()
        .filter(|n| match &files_prefix {
            Some(prefix) => n.to_lowercase().starts_with(prefix),
            None => !n.contains('/'),
        })
        .collect();
    PackageLayout {
        wrapper,
        msi_files,
        transforms: with_extension(".mst"),
        patches: with_extension(".msp"),
        exe_files,
    }
}

fn join(root: &str, rest: &str) -> String {
    if root.is_empty() {
        rest.to_string()
    } else {
        format!("{}/{}", root.to_lowercase(), rest)
    }
}

fn wrapper_at(root: &str, lower: &BTreeSet<String>, names: &[&str]) -> Option<Wrapper> {
    let candidates = [
        (
            WrapperKind::PsadtV4,
            "invoke-appdeploytoolkit",
            "psappdeploytoolkit/",
        ),
        (
            WrapperKind::PsadtV3,
            "deploy-application",
            "appdeploytoolkit/",
        ),
    ];
    for (kind, stem, folder) in candidates {
        let folder_prefix = join(root, folder);
        let has_folder = lower
            .range(folder_prefix.clone()..)
            .next()
            .is_some_and(|n| n.starts_with(&folder_prefix));
        if !has_folder {
            continue;
        }
        let exe = join(root, &format!("{stem}.exe"));
        let ps1 = join(root, &format!("{stem}.ps1"));
        // Paths as spelled in the archive.
        let spelled = |lower_path: &str| {
            names
                .iter()
                .find(|n| n.to_lowercase() == lower_path)
                .map_or(lower_path.to_owned(), |n| n.to_string())
        };
        let script = lower.contains(&ps1).then(|| spelled(&ps1));
        let found = if lower.contains(&exe) {
            Some((exe, true))
        } else if lower.contains(&ps1) {
            Some((ps1, false))
        } else {
            None
        };
        if let Some((path_lower, has_exe)) = found {
            let path = spelled(&path_lower);
            let root_spelled = match path.rsplit_once('/') {
                Some((r, _)) => r.to_string(),
                None => String::new(),
            };
            return Some(Wrapper {
                kind,
                path,
                root: root_spelled,
                has_exe,
                script,
            });
        }
    }
    None
}
