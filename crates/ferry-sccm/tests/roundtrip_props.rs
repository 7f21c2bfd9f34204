//! Property tests: any text in any string field survives generate → read unchanged and the
//! parse tree has no ERROR node; hand-made injections are refused.
//!
//! `FERRY_LONG_FUZZ=1` runs 100 000 cases per property instead of 256 (cargo-fuzz needs a
//! nightly toolchain this project does not use).

use ferry_sccm::script::{Script, Statement, Value};
use ferry_sccm::scripts::push_script;
use ferry_sccm::spec::{DetectionSpec, ScriptLanguage, filezilla_example};
use ferry_sccm::{Site, generate, read};
use proptest::prelude::*;

fn cases() -> u32 {
    if std::env::var("FERRY_LONG_FUZZ").is_ok_and(|v| v == "1") {
        100_000
    } else {
        256
    }
}

const QUOTES: [&str; 5] = ["'", "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}"];

/// Text built from the fragments that break naive quoting, plus arbitrary characters.
fn nasty(any_char: BoxedStrategy<char>) -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        3 => prop::sample::select(QUOTES.to_vec()).prop_map(str::to_owned),
        1 => prop::sample::select(vec![
            "$(Remove-Item C:\\)", "`", "`n", ";", "|", "#", "<#", "#>", "\"", "\u{201C}", "\u{201D}",
            "@'", "'@", "${x}", "$env:PATH", "\u{2013}Name", " ", "\\",
        ]).prop_map(str::to_owned),
        4 => any_char.prop_map(String::from),
    ];
    let short = prop::collection::vec(fragment, 0..40).prop_map(|v| v.concat());
    prop_oneof![
        9 => short.clone(),
        1 => (short, 200usize..2000).prop_map(|(s, n)| s.repeat(n / s.len().max(1) + 1)),
    ]
}

fn one_line_char() -> BoxedStrategy<char> {
    // Mapped rather than filtered, so long runs do not stop on too many rejects.
    any::<char>()
        .prop_map(|c| {
            if c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}') {
                '\u{2019}'
            } else {
                c
            }
        })
        .boxed()
}

/// A valid name: non-blank, short enough (253) that the default `<name>_DT` fits in 256, and
/// usable as a folder name (the characters Windows refuses in one become `_`; it ends in `n`).
fn name_sized(s: String) -> String {
    let folder_safe: String = s
        .chars()
        .take(251)
        .map(|c| if "\\/:*?\"<>|".contains(c) { '_' } else { c })
        .collect();
    format!("n{folder_safe}n")
}

/// Every string value of the FileZilla push script replaced by generated text.
fn with_strings(values: &[String]) -> Script {
    let mut script = push_script(&filezilla_example()).unwrap();
    let mut next = values.iter().cycle();
    let mut replace = |v: &mut Value| {
        if let Value::Str(s) = v {
            *s = next.next().cloned().unwrap_or_default();
        }
    };
    for st in &mut script.statements {
        match st {
            Statement::Call { call, .. } | Statement::IfNull { call, .. } => call
                .args
                .iter_mut()
                .filter_map(|a| a.value.as_mut())
                .for_each(&mut replace),
            Statement::Emit(e) | Statement::Foreach { emit: e, .. } => {
                e.fields.iter_mut().skip(1).for_each(|(_, v)| replace(v))
            }
            Statement::Preference { .. } | Statement::Utf8Output => {}
        }
    }
    script
}

fn has_error_node(text: &str) -> bool {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .unwrap();
    parser.parse(text, None).unwrap().root_node().has_error()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Every character but NUL: tree-sitter takes NUL for the end of input (the reader then
    /// refuses the script), and validation refuses NUL long before a script exists.
    #[test]
    fn any_text_in_any_string_field_reads_back_unchanged(
        values in prop::collection::vec(nasty(any::<char>().prop_map(|c| if c == '\0' { '\u{2018}' } else { c }).boxed()), 1..12)
    ) {
        let script = with_strings(&values);
        let text = generate(&script);
        prop_assert!(!has_error_node(&text));
        prop_assert_eq!(read(&text), Ok(script));
    }

    #[test]
    fn any_valid_spec_pushes_its_exact_values_to_the_emulated_site(
        name in nasty(one_line_char()).prop_map(name_sized),
        publisher in nasty(one_line_char()).prop_map(name_sized),
        detection in nasty(any::<char>().prop_map(|c| if (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}') { '\r' } else { c }).boxed())
            .prop_map(|s| format!("x{s}")),
    ) {
        let mut spec = filezilla_example();
        spec.application.name = name.clone();
        spec.application.publisher = publisher.clone();
        spec.deployment_type.name = None;
        spec.deployment_type.detection = DetectionSpec::Script { language: ScriptLanguage::Powershell, text: detection.clone() };
        let script = push_script(&spec).unwrap();
        let text = generate(&script);
        prop_assert!(!has_error_node(&text));
        let mut site = Site::demo();
        site.run(&text).unwrap();
        let apps = &site.state().applications;
        prop_assert_eq!(apps.len(), 1);
        prop_assert_eq!(&apps[0].name, &name);
        prop_assert_eq!(&apps[0].publisher, &publisher);
        prop_assert_eq!(&apps[0].deployment_types[0].name, &format!("{name}_DT"));
        match &apps[0].deployment_types[0].detection {
            ferry_sccm::emulator::DtDetection::Script { text, .. } => prop_assert_eq!(text, &detection),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn an_undoubled_quote_inside_a_literal_is_refused(
        before in "[a-zA-Z0-9 ]{0,10}",
        quote in prop::sample::select(QUOTES.to_vec()),
        after in "[a-zA-Z0-9;\\\\ ]{1,10}",
        tail in prop::sample::select(vec!["; Remove-Item C:\\ ; ", " ", "", "; Set-Location -Path 'C:' ; "]),
        closing in prop::sample::select(QUOTES.to_vec()),
    ) {
        // Pasted, not escaped: what a naive generator would produce from `before’after…`.
        let line = format!("$app = Get-CMApplication -Name '{before}{quote}{after}{tail}{closing}'\n");
        prop_assert!(read(&line).is_err(), "accepted: {line}");
    }
}

#[test]
fn hand_written_injections_are_refused() {
    let attempts = [
        "$app = Get-CMApplication -Name 'Tim’; Remove-Item C:\\ ; ‘'\n",
        "$app = Get-CMApplication -Name 'Tim‘; Remove-Item C:\\ ; ’'\n",
        "$app = Get-CMApplication -Name 'Tim‚; Remove-Item C:\\ ; ‛'\n",
        "$app = Get-CMApplication -Name 'Tim'; Remove-Item C:\\ ; ''\n",
        "$app = Get-CMApplication -Name 'Tim’’’; Remove-Item C:\\ ; '\n",
        "$app = Get-CMApplication -Name ‘Tim’\n",
        "$app = Get-CMApplication -Name 'x' ; Remove-Item C:\\\n",
        "$app = Get-CMApplication -Name 'x'\nRemove-Item C:\\\n",
        "$app = Get-CMApplication -Name \"$(Remove-Item C:\\)\"\n",
        "$app = Get-CMApplication -Name 'x' | Remove-Item\n",
        "$app = Get-CMApplication -Name ('x' + (Remove-Item C:\\))\n",
        "$app = Get-CMApplication -Name 'x' `\n; Remove-Item C:\\\n",
        "Write-Output ('FERRY-RESULT ' + (ConvertTo-Json -Compress -InputObject ([ordered]@{ step = $(Remove-Item C:\\) })))\n",
        "Write-Output ('FERRY-RESULT ' + (ConvertTo-Json -Compress -InputObject ([ordered]@{ step = 'x'; y = (Remove-Item C:\\) })))\n",
        "if ($null -eq $app) { $app = New-CMApplication -Name 'x'; Remove-Item C:\\ }\n",
        "foreach ($a in $apps) { Remove-Item C:\\ }\n",
    ];
    for attempt in attempts {
        assert!(read(attempt).is_err(), "accepted: {attempt}");
    }
}
