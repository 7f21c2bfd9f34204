//! PowerShell's single-quote rule, in one place for the generator and the reader.
//!
//! Why it exists: PowerShell treats five characters as single quotes (U+0027 and the
//! typographic U+2018, U+2019, U+201A, U+201B — `CharExtensions.IsSingleQuote`), and any of
//! them can open, close or (doubled) escape a verbatim string. The tree-sitter grammar only
//! knows U+0027. Quoting by doubling only `'` lets `Don’t` end a string early; reading with
//! tree-sitter alone certifies exactly such injections. Both directions use this module.

/// `CharExtensions.IsSingleQuote` from PowerShell's tokenizer.
pub fn is_single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}')
}

/// `'…'` with every single-quote character doubled with itself, as
/// `CodeGeneration.EscapeSingleQuotedStringContent` does.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if is_single_quote(c) {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Where PowerShell's tokenizer would end a verbatim string that opens at the start of `text`,
/// and the value it holds. `None` if `text` does not start with a single quote or the string
/// never ends.
///
/// Pairs of quote characters are escapes; the first quote not followed by another ends the
/// string. A mixed pair (`'’`) is an escape to PowerShell too, but Ferry never writes one, so it
/// is reported as [`Scan::MixedPair`] for the reader to refuse.
pub fn scan_verbatim(text: &str) -> Scan {
    let mut chars = text.char_indices();
    match chars.next() {
        Some((_, c)) if is_single_quote(c) => {}
        _ => return Scan::NotAString,
    }
    let mut value = String::new();
    let mut rest = chars.peekable();
    while let Some((i, c)) = rest.next() {
        if !is_single_quote(c) {
            value.push(c);
            continue;
        }
        match rest.peek() {
            Some(&(j, next)) if is_single_quote(next) => {
                if next != c {
                    return Scan::MixedPair { offset: j };
                }
                value.push(c);
                rest.next();
            }
            _ => {
                return Scan::Ends {
                    end: i + c.len_utf8(),
                    value,
                };
            }
        }
    }
    Scan::Unterminated
}

#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    NotAString,
    Unterminated,
    MixedPair {
        offset: usize,
    },
    /// `end` is the byte offset just after the closing quote.
    Ends {
        end: usize,
        value: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_all_five_quotes_with_themselves() {
        assert_eq!(quote("a'b‘c’d‚e‛f"), "'a''b‘‘c’’d‚‚e‛‛f'");
    }

    #[test]
    fn typographic_quote_ends_the_string_early() {
        let text = "'Tim’; Remove-Item C:\\ ; ‘'";
        assert_eq!(
            scan_verbatim(text),
            Scan::Ends {
                end: 7,
                value: "Tim".into()
            }
        );
    }

    #[test]
    fn scan_inverts_quote() {
        let v = "x''‘’y$(z)`";
        let q = quote(v);
        assert_eq!(
            scan_verbatim(&q),
            Scan::Ends {
                end: q.len(),
                value: v.into()
            }
        );
    }
}
