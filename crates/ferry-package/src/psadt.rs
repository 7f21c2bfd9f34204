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
//! with those under the wrapper's `Files/` folder first.

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
}

/// What the file names say about the package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageLayout {
    /// The PSADT wrapper, if one was recognised.
    pub wrapper: Option<Wrapper>,
    /// Relative paths of the `.msi` files, best candidate first (under the wrapper's `Files/`).
    pub msi_files: Vec<String>,
}

impl PackageLayout {
    /// The MSI to read metadata from: the first of [`PackageLayout::msi_files`].
    pub fn primary_msi(&self) -> Option<&str> {
        self.msi_files.first().map(String::as_str)
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

    let mut msi_files: Vec<String> = names
        .iter()
        .filter(|n| n.to_lowercase().ends_with(".msi"))
        .map(|n| n.to_string())
        .collect();
    msi_files.sort();
    if let Some(w) = &wrapper {
        let files_prefix = join(&w.root, "files/");
        msi_files.sort_by_key(|n| !n.to_lowercase().starts_with(&files_prefix));
    }
    PackageLayout { wrapper, msi_files }
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
        let found = if lower.contains(&exe) {
            Some((exe, true))
        } else if lower.contains(&ps1) {
            Some((ps1, false))
        } else {
            None
        };
        if let Some((path_lower, has_exe)) = found {
            // Report the path as spelled in the archive.
            let path = names
                .iter()
                .find(|n| n.to_lowercase() == path_lower)
                .map_or(path_lower.clone(), |n| n.to_string());
            let root_spelled = match path.rsplit_once('/') {
                Some((r, _)) => r.to_string(),
                None => String::new(),
            };
            return Some(Wrapper {
                kind,
                path,
                root: root_spelled,
                has_exe,
            });
        }
    }
    None
}
