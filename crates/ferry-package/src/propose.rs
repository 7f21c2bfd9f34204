//! The metadata Ferry proposes for a package, from its layout and its MSI.
//!
//! Why: an administrator should not have to type what the package already says. Every field is
//! a proposal the user may override; a field stays `None` when the package does not say.
//!
//! What it refuses to do: it never builds PowerShell by pasting text. The registry-marker
//! detection script puts each value into an escaped single-quoted literal
//! ([`ps_single_quote`]: `'` and the typographic quotes U+2018–U+201B are doubled). Values read
//! from the MSI are cleaned first (control characters removed, whitespace trimmed); a product code
//! that is not a GUID in braces is ignored, so it never reaches a command line.

use ferry_proto::package::{DetectionSpec, Installer, MsiProperties, Proposal, ScriptLanguage};

use crate::archive::ZipInventory;
use crate::lcid;
use crate::psadt::PackageLayout;

/// Proposes metadata for a validated package and (optionally) the properties of its primary MSI.
pub fn propose(inventory: &ZipInventory, msi: Option<&MsiProperties>) -> Proposal {
    propose_for_layout(&inventory.layout, msi)
}

/// Like [`propose`], from the layout alone.
pub fn propose_for_layout(layout: &PackageLayout, msi: Option<&MsiProperties>) -> Proposal {
    let get = |f: fn(&MsiProperties) -> &Option<String>| msi.and_then(|m| clean(f(m).as_deref()));
    let vendor = get(|m| &m.manufacturer);
    let product = get(|m| &m.product_name);
    let version = get(|m| &m.product_version);
    let (language_id, language) = match get(|m| &m.product_language)
        .as_deref()
        .and_then(lcid::language_from_product_language)
    {
        Some((id, name)) => (Some(id), Some(name)),
        None => (None, None),
    };
    let product_code = get(|m| &m.product_code).and_then(|c| guid(&c));
    let upgrade_code = get(|m| &m.upgrade_code).and_then(|c| guid(&c));

    let package_name = match (&vendor, &product, &version, &language) {
        (Some(v), Some(p), Some(ver), Some(lang)) => Some(format!(
            "{}_{}_{}_{}",
            name_part(&strip_spaces(v)),
            name_part(&strip_spaces(p)),
            name_part(ver),
            name_part(lang)
        )),
        _ => None,
    };

    let msi_file = layout.primary_msi().map(str::to_string);
    let (installer, install_command, uninstall_command) = match &layout.wrapper {
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
            (
                Some(Installer::Script),
                Some(format!("{prefix} -DeploymentType Install")),
                Some(format!("{prefix} -DeploymentType Uninstall")),
            )
        }
        None => match &msi_file {
            Some(file) => (
                Some(Installer::Msi),
                Some(format!(
                    "msiexec /i \"{}\" /qn /norestart",
                    windows_path(file)
                )),
                product_code
                    .as_ref()
                    .map(|c| format!("msiexec /x {c} /qn /norestart")),
            ),
            None => (None, None, None),
        },
    };

    let registry_marker_script = match (&package_name, &vendor, &product, &version) {
        (Some(name), Some(v), Some(p), Some(ver)) => Some(registry_marker_script(
            name,
            &strip_spaces(v),
            &strip_spaces(p),
            ver,
        )),
        _ => None,
    };
    let detection = match (&product_code, &registry_marker_script) {
        (Some(code), _) => Some(DetectionSpec::MsiProductCode(code.clone())),
        (None, Some(script)) => Some(DetectionSpec::Script {
            language: ScriptLanguage::Powershell,
            text: script.clone(),
        }),
        (None, None) => None,
    };

    Proposal {
        vendor,
        product,
        version,
        language,
        language_id,
        package_name,
        installer,
        install_command,
        uninstall_command,
        detection,
        registry_marker_script,
        product_code,
        upgrade_code,
        wrapper: layout.wrapper.as_ref().map(|w| w.kind),
        wrapper_path: layout.wrapper.as_ref().map(|w| w.path.clone()),
        msi_file,
    }
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

/// A value as a registry key name component in [`registry_marker_script`]: `\\` and `/` become
/// `_`, control characters are dropped.
pub fn marker_component(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '\\' || c == '/' { '_' } else { c })
        .collect()
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
}
