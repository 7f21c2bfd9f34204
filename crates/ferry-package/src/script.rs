//! What a PSADT wrapper script says about its application, read as data.
//!
//! Why: most PSADT packages wrap an EXE installer, and for those the packager states vendor,
//! name, version, architecture and language in the wrapper itself:
//! - v3 (`Deploy-Application.ps1`): `[String]$appVendor = 'Igor Pavlov'`, `$appName`,
//!   `$appVersion`, `$appArch`, `$appLang`, `$appRevision`;
//! - v4 (`Invoke-AppDeployToolkit.ps1`): `$adtSession = @{ AppVendor = …; AppName = …; … }`,
//!   where an empty `AppName` means "Zero-Config MSI" (the MSI in `Files\` drives).
//!
//! The script is parsed with the tree-sitter PowerShell grammar and never executed. Only
//! literals count: a single-quoted string (read with PowerShell's own quote rule, all five
//! quote characters), a double-quoted string with nothing to expand, a number. Anything else
//! (`$(Get-Date)`, `"$var"`, a variable, a command) is reported as "not a literal" and ignored.
//! Work is bounded: scripts above [`MAX_SCRIPT_BYTES`] are not read, parsing stops after
//! [`PARSE_BUDGET`], and the tree is walked without recursion.
//!
//! The script also names the MSI it installs (v3 `Execute-MSI -Path 'x.msi'`, v4
//! `Start-ADTMsiProcess -FilePath 'x.msi'`), its transforms (`-Transform`/`-Transforms`) and
//! the processes it starts (v3 `Execute-Process -Path`, v4 `Start-ADTProcess -FilePath`): with
//! several MSIs or EXEs in a package, that is the one the proposal comes from. A path written
//! `"$dirFiles\setup.msi"` names `setup.msi`: the literal file name after the last separator
//! is taken (to match against the package's files, never as a value), the rest is not read.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use ferry_proto::package::WrapperKind;
use ferry_sccm::quote::{Scan, scan_verbatim};
use serde::{Deserialize, Serialize};
use tree_sitter::{Node, Parser};

/// Largest wrapper script read (real ones are tens of kilobytes).
pub const MAX_SCRIPT_BYTES: usize = 1024 * 1024;
/// Longest the parser may work on one script.
pub const PARSE_BUDGET: Duration = Duration::from_secs(2);
/// Longest value kept; a longer "version" is not a version.
const MAX_VALUE_CHARS: usize = 256;

/// What a wrapper script declares about its application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptFacts {
    pub vendor: Option<String>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub arch: Option<String>,
    pub lang: Option<String>,
    pub revision: Option<String>,
    /// The application name is literally empty (v3 `$appName = ''`, v4 `AppName = ''`):
    /// PSADT's Zero-Config MSI, where the MSI in `Files\` drives and the template's other
    /// values are not the packager's.
    pub zero_config: bool,
    /// The MSIs the script installs (`-Path`/`-FilePath` of an install call), in order, each
    /// with the transforms that call names.
    pub msi_installs: Vec<MsiInstall>,
    /// Files the script starts as processes (`Execute-Process -Path`, `Start-ADTProcess
    /// -FilePath`), in order: the EXE installer among them.
    pub exe_paths: Vec<String>,
    /// What could not be read, for people (`$appRevision is not a literal: $(Get-Date)`).
    pub notes: Vec<String>,
}

/// One MSI install call of a wrapper script.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsiInstall {
    /// The MSI as the script names it (`setup.msi`, or the file name after
    /// `"$dirFiles\"`).
    pub path: String,
    /// The transforms the call applies (`-Transform 'a.mst;b.mst'`), in order.
    pub transforms: Vec<String>,
}

impl ScriptFacts {
    /// Whether the script names the application (vendor, name or version).
    pub fn declares_application(&self) -> bool {
        self.vendor.is_some() || self.name.is_some() || self.version.is_some()
    }
}

/// Most notes one script adds; a hostile script could otherwise add one per line.
const MAX_NOTES: usize = 16;
/// Most install calls and started processes remembered.
const MAX_CALLS: usize = 64;

/// A value read from the script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    Literal(String),
    /// Not a literal: the source text, shortened, for the note.
    NotLiteral(String),
}

/// Reads the facts of a wrapper script of the given generation. Never panics: a parser
/// failure is a note.
pub fn read_script(kind: WrapperKind, text: &str) -> ScriptFacts {
    match std::panic::catch_unwind(|| read_unguarded(kind, text)) {
        Ok(facts) => facts,
        Err(_) => ScriptFacts {
            notes: vec!["the wrapper script could not be read (parser failure)".to_owned()],
            ..ScriptFacts::default()
        },
    }
}

fn read_unguarded(kind: WrapperKind, text: &str) -> ScriptFacts {
    let mut facts = ScriptFacts::default();
    // The cap is on bytes read from the package; decoded text (UTF-16 becomes up to 1.5x
    // longer as UTF-8) gets room for that.
    if text.len() > MAX_SCRIPT_BYTES * 3 / 2 {
        facts.notes.push(format!(
            "the wrapper script is {} bytes, more than the {MAX_SCRIPT_BYTES} read; its variables were not read",
            text.len()
        ));
        return facts;
    }
    let Some(tree) = parse(text) else {
        facts.notes.push(
            "the wrapper script could not be parsed in time; its variables were not read".into(),
        );
        return facts;
    };
    let reader = Reader { src: text };
    let mut v3: Vec<(String, Node)> = Vec::new();
    let mut v4 = None;
    // Depth-first, without recursion: a hostile script may nest deeply.
    let mut cursor = tree.walk();
    'walk: loop {
        let node = cursor.node();
        match node.kind() {
            "assignment_expression" => {
                if let Some((name, value)) = reader.assignment(node) {
                    match kind {
                        WrapperKind::PsadtV3 => {
                            if VARIABLES.iter().any(|v| v.eq_ignore_ascii_case(&name)) {
                                v3.push((name, value));
                            }
                        }
                        WrapperKind::PsadtV4 => {
                            if name.eq_ignore_ascii_case("adtSession")
                                && v4.is_none()
                                && let Some(table) = reader.hash_literal(value)
                            {
                                v4 = Some(table);
                            }
                        }
                    }
                }
            }
            "command" => reader.install_call(node, &mut facts),
            _ => {}
        }
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                continue 'walk;
            }
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
    let (prefix, entries) = match kind {
        WrapperKind::PsadtV3 => ("$", v3),
        WrapperKind::PsadtV4 => ("$adtSession.", v4.unwrap_or_default()),
    };
    let mut app_name_empty = false;
    let mut noted: Vec<String> = Vec::new();
    for (key, value) in entries {
        let lower = key.to_ascii_lowercase();
        let slot = match lower.trim_start_matches("app") {
            "vendor" => &mut facts.vendor,
            "name" => &mut facts.name,
            "version" => &mut facts.version,
            "arch" => &mut facts.arch,
            "lang" => &mut facts.lang,
            "revision" => &mut facts.revision,
            _ => continue,
        };
        if slot.is_some() || noted.contains(&lower) {
            continue;
        }
        let read = reader.value(value);
        if lower == "appname" && read == Read::Literal(String::new()) && slot.is_none() {
            app_name_empty = true;
        }
        let what = format!("{prefix}{key}");
        if take(slot, &what, read, &mut facts.notes) {
            noted.push(lower);
        }
    }
    facts.zero_config = app_name_empty && facts.name.is_none();
    if facts.zero_config {
        // Zero-Config: the other values are the template's, not the packager's.
        facts.vendor = None;
        facts.version = None;
        facts.arch = None;
        facts.lang = None;
        facts.revision = None;
    }
    if facts.notes.len() > MAX_NOTES {
        let more = facts.notes.len() - MAX_NOTES;
        facts.notes.truncate(MAX_NOTES);
        facts
            .notes
            .push(format!("… and {more} more notes about the wrapper script"));
    }
    facts
}

/// The PSADT v3 variables read (v4 reads the same names as `$adtSession` keys).
const VARIABLES: &[&str] = &[
    "appVendor",
    "appName",
    "appVersion",
    "appArch",
    "appLang",
    "appRevision",
];

/// Keeps the first literal, non-empty value of a variable; notes a non-literal one. Returns
/// whether it added a note (one per variable is enough).
fn take(slot: &mut Option<String>, what: &str, value: Read, notes: &mut Vec<String>) -> bool {
    match value {
        Read::Literal(v) => {
            let v = v.trim();
            if v.is_empty() {
                return false;
            }
            if v.chars().count() > MAX_VALUE_CHARS || v.chars().any(char::is_control) {
                notes.push(format!(
                    "{what} is longer than {MAX_VALUE_CHARS} characters or holds control characters; ignored"
                ));
                return true;
            }
            *slot = Some(v.to_owned());
            false
        }
        Read::NotLiteral(text) => {
            notes.push(format!(
                "{what} is not a literal ({text}); ignored, never evaluated"
            ));
            true
        }
    }
}

fn parse(text: &str) -> Option<tree_sitter::Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .ok()?;
    let deadline = Instant::now() + PARSE_BUDGET;
    let mut progress = |_: &tree_sitter::ParseState| {
        if Instant::now() > deadline {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let options = tree_sitter::ParseOptions::new().progress_callback(&mut progress);
    let bytes = text.as_bytes();
    parser.parse_with_options(
        &mut |offset, _| bytes.get(offset..).unwrap_or_default(),
        None,
        Some(options),
    )
}

struct Reader<'a> {
    src: &'a str,
}

/// Node kinds that wrap a single expression in the grammar's precedence ladder.
const WRAPPERS: &[&str] = &[
    "pipeline",
    "pipeline_chain",
    "logical_expression",
    "bitwise_expression",
    "comparison_expression",
    "additive_expression",
    "multiplicative_expression",
    "format_expression",
    "range_expression",
    "array_literal_expression",
    "unary_expression",
    "left_assignment_expression",
    "expression_with_unary_operator",
];

impl<'a> Reader<'a> {
    fn text(&self, node: Node) -> &'a str {
        self.src.get(node.byte_range()).unwrap_or("")
    }

    /// The start of a node's text for a note: at most 60 characters, control characters
    /// shown escaped (a note is printed to terminals).
    fn short(&self, node: Node) -> String {
        let text = self.text(node);
        let mut out: String = text
            .chars()
            .take(60)
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_unicode().collect::<Vec<char>>()
                } else {
                    vec![c]
                }
            })
            .collect();
        if text.chars().nth(60).is_some() {
            out.push('…');
        }
        out
    }

    /// Goes down single-child wrappers to the expression itself.
    fn single(&self, mut node: Node<'a>) -> Node<'a> {
        let mut steps = 0;
        while WRAPPERS.contains(&node.kind()) && node.named_child_count() == 1 && steps < 64 {
            match node.named_child(0) {
                Some(child) => node = child,
                None => break,
            }
            steps += 1;
        }
        node
    }

    /// `$name = value` (with an optional type cast): the variable's name and the value node.
    fn assignment(&self, node: Node<'a>) -> Option<(String, Node<'a>)> {
        let left = node.named_child(0)?;
        let value = node.child_by_field_name("value")?;
        let mut target = self.single(left);
        if target.kind() == "cast_expression" {
            target = self.single(target.named_child(1)?);
        }
        if target.kind() != "variable" {
            return None;
        }
        Some((variable_name(self.text(target))?, value))
    }

    /// A value as a literal, or why it is not one.
    fn value(&self, node: Node<'a>) -> Read {
        let inner = self.single(node);
        match inner.kind() {
            "string_literal" => self.string(inner),
            "integer_literal" | "real_literal" => Read::Literal(self.text(inner).to_owned()),
            _ => Read::NotLiteral(self.short(node)),
        }
    }

    fn string(&self, node: Node<'a>) -> Read {
        let text = self.text(node);
        let Some(first) = node.named_child(0) else {
            return Read::NotLiteral(self.short(node));
        };
        match first.kind() {
            "verbatim_string_characters" => match scan_verbatim(text) {
                // PowerShell's own rule must end the string exactly where the grammar does:
                // a typographic quote the grammar does not know could otherwise hide code.
                Scan::Ends { end, value } if end == text.len() => Read::Literal(value),
                _ => Read::NotLiteral(self.short(node)),
            },
            "expandable_string_literal" => {
                let inner = text
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or("");
                // Nothing to expand or escape: then the text is the value.
                let plain = !inner
                    .chars()
                    .any(|c| matches!(c, '$' | '`' | '"' | '\u{201C}' | '\u{201D}' | '\u{201E}'));
                if plain {
                    Read::Literal(inner.to_owned())
                } else {
                    Read::NotLiteral(self.short(node))
                }
            }
            _ => Read::NotLiteral(self.short(node)),
        }
    }

    /// The entries of `@{ Key = value; … }`, if `value` is one (nested tables are not read):
    /// keys and their value nodes, read later only for the keys that matter.
    fn hash_literal(&self, value: Node<'a>) -> Option<Vec<(String, Node<'a>)>> {
        let table = self.single(value);
        if table.kind() != "hash_literal_expression" {
            return None;
        }
        let mut entries = Vec::new();
        let mut c = table.walk();
        for body in table.named_children(&mut c) {
            if body.kind() != "hash_literal_body" {
                continue;
            }
            let mut c2 = body.walk();
            for entry in body.named_children(&mut c2) {
                if entry.kind() != "hash_entry" {
                    continue;
                }
                let (Some(key), Some(val)) = (entry.named_child(0), entry.named_child(1)) else {
                    continue;
                };
                let key = self.text(key).trim().trim_matches(['\'', '"']).to_owned();
                if VARIABLES.iter().any(|v| v.eq_ignore_ascii_case(&key)) {
                    entries.push((key, val));
                }
            }
        }
        Some(entries)
    }

    /// `Execute-MSI … -Path 'x.msi' [-Transform 'x.mst']` (v3), `Start-ADTMsiProcess …
    /// -FilePath 'x.msi' [-Transforms 'x.mst']` (v4), `Execute-Process -Path 'x.exe'` (v3) or
    /// `Start-ADTProcess -FilePath 'x.exe'` (v4): literal paths or literal file-name tails.
    fn install_call(&self, node: Node<'a>, facts: &mut ScriptFacts) {
        let Some(name) = node.child_by_field_name("command_name") else {
            return;
        };
        let name = self.text(name);
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        let msi = is("Execute-MSI") || is("Start-ADTMsiProcess");
        let process = is("Execute-Process") || is("Start-ADTProcess");
        if !msi && !process {
            return;
        }
        let Some(elements) = node.child_by_field_name("command_elements") else {
            return;
        };
        let mut c = elements.walk();
        let parts: Vec<Node> = elements
            .named_children(&mut c)
            .filter(|n| n.kind() != "command_argument_sep")
            .collect();
        let mut path = None;
        let mut transforms = Vec::new();
        let mut action = None;
        for pair in parts.windows(2) {
            if pair[0].kind() != "command_parameter" {
                continue;
            }
            // `-Path 'x'` and `-Path:'x'` alike.
            let parameter = self
                .text(pair[0])
                .trim_start_matches('-')
                .trim_end_matches(':')
                .to_ascii_lowercase();
            let value = match self.argument(pair[1]) {
                Read::Literal(v) => Some(v),
                Read::NotLiteral(_) => self.literal_tail(pair[1]),
            };
            let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            match parameter.as_str() {
                "path" | "filepath" => path = Some(value.trim().to_owned()),
                "transform" | "transforms" if msi => {
                    // `-Transform 'a.mst;b.mst'` names several, as msiexec's TRANSFORMS does.
                    transforms.extend(
                        value
                            .split(';')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    );
                }
                "action" => action = Some(value),
                _ => {}
            }
        }
        let Some(path) = path else {
            return;
        };
        if msi {
            // Only an install names the application's MSI (PSADT's default action); an
            // uninstall of an old version or a repair does not.
            let installs = action
                .as_deref()
                .is_none_or(|a| a.trim().eq_ignore_ascii_case("install"));
            if installs && facts.msi_installs.len() < MAX_CALLS {
                facts.msi_installs.push(MsiInstall { path, transforms });
            }
        } else if facts.exe_paths.len() < MAX_CALLS {
            facts.exe_paths.push(path);
        }
    }

    /// A command argument as a literal: a value, or a bare word (`-Path setup.msi`) with
    /// nothing in it PowerShell would expand.
    fn argument(&self, node: Node<'a>) -> Read {
        if node.kind() == "generic_token" {
            let text = self.text(node);
            let plain = !text.chars().any(|c| {
                matches!(c, '$' | '`' | '(' | ')' | '{' | '}' | '@' | '\'' | '"') || c.is_control()
            });
            return if plain {
                Read::Literal(text.to_owned())
            } else {
                Read::NotLiteral(self.short(node))
            };
        }
        self.value(node)
    }
}

impl<'a> Reader<'a> {
    /// The literal file name ending an expandable string (`"$dirFiles\\setup.msi"` →
    /// `setup.msi`), if what follows the last separator holds nothing to expand.
    fn literal_tail(&self, node: Node<'a>) -> Option<String> {
        let inner = self.single(node);
        if inner.kind() != "string_literal" {
            return None;
        }
        let text = self.text(inner).strip_prefix('"')?.strip_suffix('"')?;
        let (_, tail) = text.rsplit_once(['\\', '/'])?;
        let plain = !tail.is_empty()
            && !tail.chars().any(|c| {
                matches!(
                    c,
                    '$' | '`' | '"' | '\'' | '(' | ')' | '\u{201C}' | '\u{201D}' | '\u{201E}'
                ) || c.is_control()
            });
        plain.then(|| tail.to_owned())
    }
}

/// `$appVendor`, `${appVendor}`, `$script:appVendor` → `appVendor`. Other scopes
/// (`$env:appName`, `$function:…`) are not the wrapper's variables.
fn variable_name(text: &str) -> Option<String> {
    let name = text.strip_prefix('$')?;
    let name = name
        .strip_prefix('{')
        .and_then(|n| n.strip_suffix('}'))
        .unwrap_or(name);
    let name = match name.split_once(':') {
        Some((scope, rest)) => {
            let scope = scope.to_ascii_lowercase();
            if !matches!(scope.as_str(), "script" | "global" | "local" | "private") {
                return None;
            }
            rest
        }
        None => name,
    };
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_lose_sigil_braces_and_scope() {
        assert_eq!(variable_name("$appVendor").as_deref(), Some("appVendor"));
        assert_eq!(variable_name("${appName}").as_deref(), Some("appName"));
        assert_eq!(
            variable_name("$script:appVersion").as_deref(),
            Some("appVersion")
        );
        assert_eq!(variable_name("appVendor"), None);
        assert_eq!(variable_name("$env:appName"), None);
    }
}
