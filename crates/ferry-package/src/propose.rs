//! The metadata Ferry proposes for a package, from what was read in it.
//!
//! Why: an administrator should not have to type what the package already says. Every field is
//! a proposal the user may override; a field stays `None` when the package does not say, and
//! every value carries its source ([`FieldSource`]), so that the administrator knows what to
//! check before pushing.
//!
//! Precedence, field by field: a literal in the PSADT wrapper script (the packager's intent)
//! wins over the chosen MSI's Property table (as its applied transforms leave it), which wins
//! over the EXE installer's version resource (read only when there is neither).
//!
//! What it refuses to do: it never builds PowerShell by pasting text. Detection scripts put
//! each value into an escaped single-quoted literal ([`ps_single_quote`]: `'` and the
//! typographic quotes U+2018–U+201B are doubled). Values are cleaned first (control characters
//! removed, whitespace trimmed); a product code that is not a GUID in braces is ignored, so it
//! never reaches a command line. It never proposes an empty detection rule that always
//! matches: with nothing to detect by, [`Proposal::detection`] stays `None` and
//! [`Proposal::detection_note`] says why.

use std::collections::BTreeSet;

use ferry_proto::package::{
    DetectionSpec, FieldSource, Installer, MetadataField as F, MsiProperties, Proposal,
    ScriptLanguage,
};

use crate::exe::ExeVersion;
use crate::lcid;
use crate::psadt::PackageLayout;
use crate::script::ScriptFacts;

/// What was read from a package, for [`propose`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// The wrapper script's declarations, when there is a wrapper script.
    pub script: Option<ScriptFacts>,
    /// The chosen MSI's Property table, when it could be read.
    pub msi: Option<MsiFinding>,
    /// The EXE installer's version resource, when it was read.
    pub exe: Option<(String, ExeVersion)>,
    /// What could not be read or decided, for people.
    pub notes: Vec<String>,
}

/// The chosen MSI as the proposal sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsiFinding {
    /// Its path inside the package.
    pub path: String,
    /// Its Property table after the applied transforms.
    pub properties: MsiProperties,
    /// The transforms applied, in order.
    pub transforms_applied: Vec<String>,
    /// The properties the transforms changed (`ProductName`, …).
    pub changed: BTreeSet<&'static str>,
}

impl MsiFinding {
    fn source(&self, property: &str) -> FieldSource {
        if self.changed.contains(property) {
            FieldSource::MsiTransform
        } else {
            FieldSource::Msi
        }
    }
}

/// A value and where it came from.
type Sourced = Option<(String, FieldSource)>;

/// The first present value, in the order given.
fn first(candidates: [Sourced; 3]) -> Sourced {
    candidates.into_iter().flatten().next()
}

/// Proposes metadata from a package's layout and what was read in it.
pub fn propose(layout: &PackageLayout, found: &Findings) -> Proposal {
    let script = found.script.as_ref();
    let msi = found.msi.as_ref();
    let exe = found.exe.as_ref().map(|(_, v)| v);
    let from_script = |f: fn(&ScriptFacts) -> &Option<String>| {
        script
            .and_then(|s| clean(f(s).as_deref()))
            .map(|v| (v, FieldSource::PsadtScript))
    };
    let from_msi = |f: fn(&MsiProperties) -> &Option<String>, property: &str| {
        msi.and_then(|m| clean(f(&m.properties).as_deref()).map(|v| (v, m.source(property))))
    };
    let from_exe = |f: fn(&ExeVersion) -> &Option<String>| {
        exe.and_then(|e| clean(f(e).as_deref()))
            .map(|v| (v, FieldSource::ExeVersion))
    };

    let mut p = Proposal::default();
    let mut sources = Vec::new();
    let mut put = |slot: &mut Option<String>, field: F, value: Sourced| {
        if let Some((v, source)) = value {
            *slot = Some(v);
            sources.push((field, source));
        }
    };
    put(
        &mut p.vendor,
        F::Vendor,
        first([
            from_script(|s| &s.vendor),
            from_msi(|m| &m.manufacturer, "Manufacturer"),
            from_exe(|e| &e.company_name),
        ]),
    );
    put(
        &mut p.product,
        F::Product,
        first([
            from_script(|s| &s.name),
            from_msi(|m| &m.product_name, "ProductName"),
            from_exe(|e| &e.product_name),
        ]),
    );
    put(
        &mut p.version,
        F::Version,
        first([
            from_script(|s| &s.version),
            from_msi(|m| &m.product_version, "ProductVersion"),
            from_exe(|e| &e.product_version)
                .or_else(|| from_exe(|e| &e.file_version))
                .map(|(v, s)| (pe_version(&v), s)),
        ]),
    );
    put(
        &mut p.architecture,
        F::Architecture,
        from_script(|s| &s.arch),
    );
    put(&mut p.revision, F::Revision, from_script(|s| &s.revision));
    let mut notes = found.notes.clone();
    let language = match from_script(|s| &s.lang) {
        Some((code, source)) => match lcid::language_from_code(&code) {
            Some((id, name)) => Some((id, name, source)),
            None => {
                notes.push(format!(
                    "the wrapper's language code {code:?} is not one Ferry knows; set `language`"
                ));
                None
            }
        },
        None => None,
    }
    .or_else(|| {
        let (value, source) = from_msi(|m| &m.product_language, "ProductLanguage")?;
        let (id, name) = lcid::language_from_product_language(&value)?;
        Some((id, name, source))
    })
    .or_else(|| {
        let id = exe?.language_id?;
        Some((
            id,
            lcid::language_name(id)?.to_owned(),
            FieldSource::ExeVersion,
        ))
    });
    if let Some((id, name, source)) = language {
        p.language = Some(name);
        p.language_id = Some(id);
        sources.push((F::Language, source));
    }
    if let Some((code, source)) =
        from_msi(|m| &m.product_code, "ProductCode").and_then(|(c, s)| Some((guid(&c)?, s)))
    {
        p.product_code = Some(code);
        sources.push((F::ProductCode, source));
    }
    if let Some((code, source)) =
        from_msi(|m| &m.upgrade_code, "UpgradeCode").and_then(|(c, s)| Some((guid(&c)?, s)))
    {
        p.upgrade_code = Some(code);
        sources.push((F::UpgradeCode, source));
    }

    p.msi_file = msi.map(|m| m.path.clone());
    p.msi_files.clone_from(&layout.msi_files);
    p.transforms.clone_from(&layout.transforms);
    p.transforms_applied = msi
        .map(|m| m.transforms_applied.clone())
        .unwrap_or_default();
    p.patches.clone_from(&layout.patches);
    p.exe_file = found.exe.as_ref().map(|(path, _)| path.clone());
    p.wrapper = layout.wrapper.as_ref().map(|w| w.kind);
    p.wrapper_path = layout.wrapper.as_ref().map(|w| w.path.clone());

    match &layout.wrapper {
        Some(w) => {
            let launcher = windows_path(&w.path);
            let prefix = if w.has_exe {
                quote_if_needed(&launcher)
            } else {
                format!(
                    "powershell.exe -ExecutionPolicy Bypass -NoProfile -NonInteractive -File {}",
                    quote_if_needed(&launcher)
                )
            };
            p.installer = Some(Installer::Script);
            p.install_command = Some(format!("{prefix} -DeploymentType Install"));
            p.uninstall_command = Some(format!("{prefix} -DeploymentType Uninstall"));
            sources.extend([
                (F::Installer, FieldSource::Layout),
                (F::InstallCommand, FieldSource::Layout),
                (F::UninstallCommand, FieldSource::Layout),
            ]);
        }
        None => {
            if let Some(m) = msi {
                let transforms = if m.transforms_applied.is_empty() {
                    String::new()
                } else {
                    let list: Vec<String> = m
                        .transforms_applied
                        .iter()
                        .map(|t| relative_to(&m.path, t))
                        .collect();
                    format!(" TRANSFORMS=\"{}\"", list.join(";"))
                };
                p.installer = Some(Installer::Msi);
                p.install_command = Some(format!(
                    "msiexec /i \"{}\"{transforms} /qn /norestart",
                    windows_path(&m.path)
                ));
                sources.extend([
                    (F::Installer, FieldSource::Layout),
                    (F::InstallCommand, FieldSource::Layout),
                ]);
                if let Some(code) = &p.product_code {
                    p.uninstall_command = Some(format!("msiexec /x {code} /qn /norestart"));
                    let source = p.source(F::ProductCode).unwrap_or(FieldSource::Msi);
                    sources.push((F::UninstallCommand, source));
                }
            } else if found.exe.is_some() {
                notes.push(
                    "a bare EXE installer's silent switches vary by vendor: set `install_command` and `uninstall_command`"
                        .to_owned(),
                );
            }
        }
    }
    p.sources.extend(sources);
    p.notes = notes;
    derive(&mut p);
    p
}

/// Recomputes what is built from other fields, after a proposal or an administrator's
/// correction: the package name (unless set by hand), the registry-marker script, and the
/// detection method (unless set by hand) with the reason when there is none.
pub fn derive(p: &mut Proposal) {
    if !p.is_user_set(F::PackageName) {
        p.package_name = match (&p.vendor, &p.product, &p.version, &p.language) {
            (Some(v), Some(pr), Some(ver), Some(lang)) => Some(format!(
                "{}_{}_{}_{}",
                name_part(&strip_spaces(v)),
                name_part(&strip_spaces(pr)),
                name_part(ver),
                name_part(lang)
            )),
            _ => None,
        };
        set_source(
            p,
            F::PackageName,
            p.package_name.is_some(),
            FieldSource::Derived,
        );
    }
    // The marker is what the seed's PSADT wrappers write; without a wrapper nothing writes it.
    p.registry_marker_script = match (&p.package_name, &p.vendor, &p.product, &p.version) {
        (Some(name), Some(v), Some(pr), Some(ver)) if p.wrapper.is_some() => Some(
            registry_marker_script(name, &strip_spaces(v), &strip_spaces(pr), ver),
        ),
        _ => None,
    };
    if p.is_user_set(F::Detection) {
        p.detection_note = None;
        return;
    }
    let file_rule = match (&p.main_binary, &p.version) {
        (Some(path), Some(version)) => file_version_script(path, version),
        _ => None,
    };
    let unusable_binary = (p.main_binary.is_some() && file_rule.is_none()).then(|| {
        format!(
            "`main_binary` is set but the version {:?} is not numeric (1.2, 1.2.3 or 1.2.3.4), so its file version cannot be compared",
            p.version.as_deref().unwrap_or("")
        )
    });
    let (detection, source, note) = if let Some(code) = &p.product_code {
        let source = p.source(F::ProductCode).unwrap_or(FieldSource::Msi);
        (
            Some(DetectionSpec::MsiProductCode(code.clone())),
            source,
            None,
        )
    } else if let Some(text) = file_rule {
        (Some(powershell(text)), FieldSource::Derived, None)
    } else if let Some(text) = &p.registry_marker_script {
        (
            Some(powershell(text.clone())),
            FieldSource::Derived,
            unusable_binary,
        )
    } else {
        (None, FieldSource::Derived, Some(no_detection_reason(p)))
    };
    set_source(p, F::Detection, detection.is_some(), source);
    p.detection = detection;
    p.detection_note = note;
}

fn set_source(p: &mut Proposal, field: F, present: bool, source: FieldSource) {
    if present {
        p.sources.insert(field, source);
    } else {
        p.sources.remove(&field);
    }
}

fn powershell(text: String) -> DetectionSpec {
    DetectionSpec::Script {
        language: ScriptLanguage::Powershell,
        text,
    }
}

/// Why nothing could be proposed, naming what is missing.
fn no_detection_reason(p: &Proposal) -> String {
    let missing: Vec<&str> = [
        ("vendor", p.vendor.is_none()),
        ("product", p.product.is_none()),
        ("version", p.version.is_none()),
        (
            "language (for the package name)",
            p.language.is_none() && p.package_name.is_none(),
        ),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    let marker = if p.wrapper.is_none() {
        "there is no wrapper to write the registry marker".to_owned()
    } else if missing.is_empty() {
        "the registry marker could not be built".to_owned()
    } else {
        format!(
            "the registry marker needs vendor, product, version and a package name (missing: {})",
            missing.join(", ")
        )
    };
    let file = match (&p.main_binary, &p.version) {
        (Some(_), Some(v)) => format!(
            "; the version {v:?} is not numeric (1.2, 1.2.3 or 1.2.3.4), so the main binary's file version cannot be compared"
        ),
        _ => String::new(),
    };
    format!(
        "no detection proposed: no MSI product code is known, {marker}{file}; set `detection`, or `main_binary` for a file-version rule"
    )
}

/// The registry-marker detection script: output (meaning "installed") when
/// `HKLM:\SOFTWARE\<package>\<vendor>\<product>\<version>` has `IsInstalled = 1`, the marker the
/// source document's PSADT scripts write. Every value is an escaped single-quoted literal;
/// slashes and backslashes inside values become `_` (a value cannot add registry levels) and
/// control characters are dropped (a key name cannot hold them).
pub fn registry_marker_script(
    package_name: &str,
    vendor: &str,
    product: &str,
    version: &str,
) -> String {
    let parts: Vec<String> = [package_name, vendor, product, version]
        .iter()
        .map(|p| ps_single_quote(&marker_component(p)))
        .collect();
    format!(
        "$parts = @({})\n\
         $key = 'HKLM:\\SOFTWARE\\' + ($parts -join '\\')\n\
         Get-ItemProperty -LiteralPath $key -ErrorAction SilentlyContinue | Where-Object {{ $_.IsInstalled -eq 1 }}\n",
        parts.join(", ")
    )
}

/// The file-version detection script: output (meaning "installed") when the installed main
/// binary exists and its file version is at least `version`. `path` may hold environment
/// variables (`%ProgramFiles%\7-Zip\7zFM.exe`), expanded on the device. `None` when `version`
/// is not 2–4 dot-separated numbers (PowerShell's `[version]` could not compare it).
pub fn file_version_script(path: &str, version: &str) -> Option<String> {
    let parts: Vec<&str> = version.trim().split('.').collect();
    let numeric = (2..=4).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric || path.trim().is_empty() || path.chars().any(char::is_control) {
        return None;
    }
    Some(format!(
        "$path = [Environment]::ExpandEnvironmentVariables({})\n\
         $file = Get-Item -LiteralPath $path -ErrorAction SilentlyContinue\n\
         if ($file) {{\n\
         \x20   $v = $file.VersionInfo\n\
         \x20   $found = [version]::new($v.FileMajorPart, $v.FileMinorPart, $v.FileBuildPart, $v.FilePrivatePart)\n\
         \x20   if ($found -ge [version]{}) {{ 'Installed' }}\n\
         }}\n",
        ps_single_quote(path.trim()),
        ps_single_quote(version.trim())
    ))
}

/// A value as a registry key name component in [`registry_marker_script`]: `\\` and `/` become
/// `_`, control characters are dropped, and `.` or `..` (which PowerShell's path handling
/// would read as "this key" or "the parent") become `_`.
pub fn marker_component(value: &str) -> String {
    let part: String = value
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '\\' || c == '/' { '_' } else { c })
        .collect();
    if part.trim_matches('.').is_empty() {
        "_".repeat(part.len().max(1))
    } else {
        part
    }
}

// PowerShell's quote rule lives once, in ferry-sccm (the generator and the reader use it too).
pub use ferry_sccm::quote::{is_single_quote as is_ps_single_quote, quote as ps_single_quote};

fn clean(v: Option<&str>) -> Option<String> {
    let s: String = v?.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

/// Old PE version strings are often written `3, 46, 3, 0`; ConfigMgr and people use dots.
fn pe_version(v: &str) -> String {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    if parts.len() > 1 && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        parts.join(".")
    } else {
        v.to_owned()
    }
}

/// Drops the characters a Windows folder name cannot hold (the package name becomes the folder
/// `<share>\<package name>`).
fn name_part(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\\' | '/' | ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .collect()
}

fn strip_spaces(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A GUID in braces, upper-cased, or `None`.
fn guid(s: &str) -> Option<String> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    let groups: Vec<&str> = inner.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    if groups.len() != 5
        || groups
            .iter()
            .zip(lens)
            .any(|(g, l)| g.len() != l || !g.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(format!("{{{}}}", inner.to_ascii_uppercase()))
}

fn windows_path(p: &str) -> String {
    p.replace('/', "\\")
}

/// `other` relative to the folder of `base` when it is in the same folder (msiexec resolves
/// `TRANSFORMS` next to the MSI), else its package-relative Windows path.
fn relative_to(base: &str, other: &str) -> String {
    let folder = base.rsplit_once('/').map_or("", |(f, _)| f);
    match other.rsplit_once('/') {
        Some((f, name)) if f == folder => name.to_owned(),
        None if folder.is_empty() => other.to_owned(),
        _ => windows_path(other),
    }
}

fn quote_if_needed(p: &str) -> String {
    if p.contains(' ') || p.contains('\\') {
        format!("\"{p}\"")
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_validated() {
        assert_eq!(
            guid("{a1b2c3d4-1111-2222-3333-444455556666}"),
            Some("{A1B2C3D4-1111-2222-3333-444455556666}".to_string())
        );
        assert_eq!(guid("a1b2c3d4-1111-2222-3333-444455556666"), None);
        assert_eq!(guid("{a1b2c3d4-1111-2222-3333-44445555666}"), None);
        assert_eq!(guid("{x; Remove-Item C:\\ -Recurse}"), None);
    }

    #[test]
    fn quoting_doubles_all_quote_kinds() {
        assert_eq!(ps_single_quote("it's"), "'it''s'");
        assert_eq!(ps_single_quote("a\u{2019}b"), "'a\u{2019}\u{2019}b'");
        assert_eq!(ps_single_quote("$(x)"), "'$(x)'");
    }

    #[test]
    fn pe_versions_with_commas_read_with_dots() {
        assert_eq!(pe_version("3, 46, 3, 0"), "3.46.3.0");
        assert_eq!(pe_version("23.01"), "23.01");
        assert_eq!(pe_version("1,0 beta"), "1,0 beta");
    }

    #[test]
    fn a_file_version_rule_needs_a_numeric_version_and_quotes_the_path() {
        assert!(file_version_script("C:\\a.exe", "1.2.3-beta").is_none());
        assert!(file_version_script("C:\\a.exe", "7").is_none());
        assert!(file_version_script("", "1.2").is_none());
        let s = file_version_script("%ProgramFiles%\\O'Brien\\a.exe", "23.01").unwrap();
        assert!(s.contains("ExpandEnvironmentVariables('%ProgramFiles%\\O''Brien\\a.exe')"));
        assert!(s.contains("[version]'23.01'"));
    }

    #[test]
    fn transforms_beside_the_msi_are_named_by_file_name() {
        assert_eq!(relative_to("Files/a.msi", "Files/a.mst"), "a.mst");
        assert_eq!(relative_to("a.msi", "a.mst"), "a.mst");
        assert_eq!(relative_to("Files/a.msi", "Other/a.mst"), "Other\\a.mst");
    }
}
