//! Values reach PowerShell only as escaped single-quoted literals: all five single-quote kinds are
//! doubled, and undoing the doubling gives the input back.

use ferry_package::propose::{is_ps_single_quote, marker_component};
use ferry_package::{ps_single_quote, registry_marker_script};
use proptest::prelude::*;

/// Reads a PowerShell single-quoted literal back: strips the outer quotes and undoes the
/// doubling. Returns None if a quote is not doubled (the literal would end early).
fn read_back(lit: &str) -> Option<String> {
    let inner = lit.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if is_ps_single_quote(c) && chars.next()? != c {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

fn quote_heavy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just('\''),
            Just('\u{2018}'),
            Just('\u{2019}'),
            Just('\u{201A}'),
            Just('\u{201B}'),
            Just('"'),
            Just('$'),
            Just('('),
            Just(')'),
            Just('`'),
            Just('\\'),
            any::<char>(),
        ],
        0..40,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn literal_reads_back_to_the_input(s in quote_heavy()) {
        let lit = ps_single_quote(&s);
        prop_assert_eq!(read_back(&lit), Some(s));
    }

    #[test]
    fn marker_script_holds_every_value_as_a_literal(
        name in quote_heavy(), vendor in quote_heavy(), product in quote_heavy(), version in quote_heavy()
    ) {
        let script = registry_marker_script(&name, &vendor, &product, &version);
        let first = script.lines().next().unwrap();
        let list = first.strip_prefix("$parts = @(").unwrap().strip_suffix(')').unwrap();
        let expected: Vec<String> = [&name, &vendor, &product, &version]
            .iter()
            .map(|v| ps_single_quote(&marker_component(v)))
            .collect();
        prop_assert_eq!(list, expected.join(", "));
    }
}

#[test]
fn all_five_quote_kinds_and_subexpressions_are_inert() {
    let nasty = "Tim' K\u{2018}o\u{2019}s\u{201A}s\u{201B}e $(Remove-Item C:\\) \"x\"";
    let lit = ps_single_quote(nasty);
    assert_eq!(
        lit,
        "'Tim'' K\u{2018}\u{2018}o\u{2019}\u{2019}s\u{201A}\u{201A}s\u{201B}\u{201B}e $(Remove-Item C:\\) \"x\"'"
    );
    assert_eq!(read_back(&lit).as_deref(), Some(nasty));
}

/// Parses `script` with the tree-sitter PowerShell grammar; returns the texts of the verbatim
/// (single-quoted) string literals of the first line, or None on a syntax error.
fn first_line_literals(script: &str) -> Option<Vec<String>> {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .unwrap();
    let tree = parser.parse(script, None)?;
    if tree.root_node().has_error() {
        return None;
    }
    let first_line_end = script.find("\n$key").unwrap();
    let mut out = Vec::new();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.start_byte() >= first_line_end {
            continue;
        }
        if matches!(node.kind(), "expandable_string_literal" | "sub_expression") {
            panic!("expandable text in the first line: {}", node.kind());
        }
        if node.kind() == "verbatim_string_characters" {
            out.push(script[node.byte_range()].to_string());
        }
        let mut cursor = node.walk();
        let children: Vec<_> = node.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A real PowerShell grammar sees exactly four plain literals holding the values.
    #[test]
    fn marker_script_parses_as_powershell_with_four_literals(
        name in quote_heavy(), vendor in quote_heavy(), product in quote_heavy(), version in quote_heavy()
    ) {
        let script = registry_marker_script(&name, &vendor, &product, &version);
        let lits = first_line_literals(&script).expect("the script parses without errors");
        let values: Vec<String> = lits.iter().map(|l| read_back(l).unwrap()).collect();
        let expected: Vec<String> =
            [&name, &vendor, &product, &version].iter().map(|v| marker_component(v)).collect();
        prop_assert_eq!(values, expected);
    }
}
