//! The wildcard patterns of collection rules, and of ConfigMgr's `-Name` parameters as the
//! emulated site reads them: case-insensitive, `*` any run of characters, `?` exactly one,
//! matched against the whole text.
//!
//! Why a hand-written matcher: it keeps one backtrack point (the last `*`), so it takes at
//! most pattern × text steps whatever the pattern. A recursive matcher is exponential on
//! patterns like `*a*a*a*…b`, which anyone who can name a pattern could send.

/// Case-insensitive wildcard match of the whole `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Two pointers: on a mismatch, retry from the last `*` one character further on.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `pattern` has wildcards at all (without, a match is plain case-insensitive
/// equality).
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark_match_runs_and_single_characters() {
        assert!(matches("PC-*", "pc-0042"));
        assert!(matches("pc-00?2", "PC-0042"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("pc-*", "laptop-1"));
        assert!(!matches("pc-?", "pc-12"));
        assert!(!matches("", "x"));
    }

    #[test]
    fn a_pathological_pattern_is_answered_in_linear_time() {
        // Exponential for a recursive matcher: 2^30 paths.
        let pattern = format!("{}b", "*a".repeat(30));
        let text = "a".repeat(5000);
        // No timing assertion: 61 × 5,000 steps end at once, while an exponential matcher
        // would not end at all (the test would hit nextest's deadline).
        assert!(!matches(&pattern, &text));
    }
}
