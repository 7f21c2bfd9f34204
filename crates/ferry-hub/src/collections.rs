//! Rule collections: which devices a rule matches. Pure functions, no I/O.
//!
//! A rule is a set of case-insensitive globs on inventory fields, all of which must match
//! (`*` any run of characters, `?` exactly one). Globs instead of regular expressions: an
//! administrator can read them, and a hostile pattern cannot make matching slow (the matcher,
//! [`ferry_proto::glob`], takes at most pattern × text steps; patterns are capped at
//! [`MAX_PATTERN`] characters).

use ferry_proto::agent::Inventory;
use ferry_proto::ops::CollectionRule;

/// Longest glob accepted in a rule.
pub const MAX_PATTERN: usize = 256;

/// Why a rule was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("rule field `{0}` is longer than {MAX_PATTERN} characters")]
    TooLong(&'static str),
    #[error("rule field `{0}` contains a control character")]
    Control(&'static str),
}

pub fn validate(rule: &CollectionRule) -> Result<(), RuleError> {
    for (field, pattern) in fields(rule) {
        if let Some(p) = pattern {
            if p.chars().count() > MAX_PATTERN {
                return Err(RuleError::TooLong(field));
            }
            if p.chars().any(char::is_control) {
                return Err(RuleError::Control(field));
            }
        }
    }
    Ok(())
}

fn fields(rule: &CollectionRule) -> [(&'static str, Option<&str>); 5] {
    [
        ("hostname", rule.hostname.as_deref()),
        ("os_name", rule.os_name.as_deref()),
        ("os_version", rule.os_version.as_deref()),
        ("domain", rule.domain.as_deref()),
        ("arch", rule.arch.as_deref()),
    ]
}

/// Does the device with this inventory belong to the rule's collection?
pub fn matches(rule: &CollectionRule, inv: &Inventory) -> bool {
    let values = [
        inv.hostname.as_str(),
        inv.os_name.as_str(),
        inv.os_version.as_str(),
        inv.domain.as_deref().unwrap_or(""),
        inv.arch.as_str(),
    ];
    fields(rule)
        .iter()
        .zip(values)
        .all(|((_, pattern), value)| pattern.is_none_or(|p| glob_match(p, value)))
}

/// Case-insensitive glob match of the whole `text` (see [`ferry_proto::glob`]).
pub use ferry_proto::glob::matches as glob_match;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn inv(hostname: &str, os: &str, domain: Option<&str>) -> Inventory {
        Inventory {
            hostname: hostname.into(),
            os_name: os.into(),
            os_version: "10.0.19045".into(),
            domain: domain.map(Into::into),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            ips: vec![],
            users: vec![],
        }
    }

    #[test]
    fn glob_star_and_question_mark_match_runs_and_single_characters() {
        assert!(glob_match("PC-*", "pc-0042"));
        assert!(glob_match("pc-00?2", "PC-0042"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("pc-*", "laptop-1"));
        assert!(!glob_match("pc-?", "pc-12"));
        assert!(!glob_match("", "x"));
    }

    #[test]
    fn an_empty_rule_matches_every_device() {
        assert!(matches(
            &CollectionRule::default(),
            &inv("a", "Windows", None)
        ));
    }

    #[test]
    fn every_field_of_a_rule_must_match() {
        let rule = CollectionRule {
            os_name: Some("windows*".into()),
            domain: Some("CORP".into()),
            ..Default::default()
        };
        assert!(matches(&rule, &inv("pc1", "Windows", Some("corp"))));
        assert!(!matches(&rule, &inv("pc1", "Windows", Some("lab"))));
        assert!(!matches(
            &rule,
            &inv("pc1", "Debian GNU/Linux", Some("corp"))
        ));
    }

    #[test]
    fn a_device_without_a_domain_matches_only_an_empty_or_star_domain() {
        let any = CollectionRule {
            domain: Some("*".into()),
            ..Default::default()
        };
        let corp = CollectionRule {
            domain: Some("corp".into()),
            ..Default::default()
        };
        assert!(matches(&any, &inv("pc1", "Windows", None)));
        assert!(!matches(&corp, &inv("pc1", "Windows", None)));
    }

    #[test]
    fn rules_with_control_characters_or_huge_patterns_are_refused() {
        let bad = CollectionRule {
            hostname: Some("a\u{0}".into()),
            ..Default::default()
        };
        assert_eq!(validate(&bad), Err(RuleError::Control("hostname")));
        let long = CollectionRule {
            arch: Some("*".repeat(MAX_PATTERN + 1)),
            ..Default::default()
        };
        assert_eq!(validate(&long), Err(RuleError::TooLong("arch")));
    }

    proptest! {
        #[test]
        fn a_text_always_matches_itself_and_star(text in "[a-zA-Z0-9.-]{0,40}") {
            prop_assert!(glob_match(&text, &text));
            prop_assert!(glob_match("*", &text));
            let star_wrapped = format!("*{text}*");
            let padded = format!("xx{text}yy");
            prop_assert!(glob_match(&star_wrapped, &padded));
        }

        #[test]
        fn glob_matching_never_panics(p in "[*?a-c]{0,30}", t in "[a-c]{0,60}") {
            let _ = glob_match(&p, &t);
        }
    }
}
