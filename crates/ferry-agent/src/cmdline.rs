//! Command lines without a shell.
//!
//! A package's install command is a line of text, but the agent never hands it to a shell:
//! [`split`] turns it into argv with POSIX quoting and nothing else, so it can be run directly.
//! The rule it keeps: **a line `split` accepts gives exactly the words `sh` would pass**
//! (checked against `/bin/sh` in the tests), except that `*`, `?`, `[` and a leading `~` stay
//! literal (no globbing, no tilde expansion). Anything a shell would treat as code — `$`,
//! backquotes, `|`, `&`, `;`, `<`, `>`, `(`, `)`, a comment, an unquoted newline — is refused
//! rather than passed on as a surprising literal argument; quoting it passes it literally.
//!
//! [`split_windows_program`] does the Windows counterpart: a Windows program parses its own
//! command line, so only the program name is taken off (as `CreateProcess` does) and the rest
//! is passed on untouched.

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("unterminated single quote (opened at column {0})")]
    UnterminatedSingleQuote(usize),
    #[error("unterminated double quote (opened at column {0})")]
    UnterminatedDoubleQuote(usize),
    #[error("the line ends with a backslash")]
    TrailingBackslash,
    #[error(
        "`{ch}` at column {column} means something to a shell, and no shell runs this command; \
         quote it to pass it literally"
    )]
    ShellSyntax { ch: char, column: usize },
    #[error("the command line is empty")]
    Empty,
}

/// Characters that end a word.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Characters a shell treats as code when unquoted.
fn is_operator(c: char) -> bool {
    matches!(
        c,
        '|' | '&' | ';' | '<' | '>' | '(' | ')' | '`' | '$' | '\n'
    )
}

/// Splits `line` into words with POSIX quoting: `'…'` keeps everything literally, `"…"` keeps
/// everything but `\` before `$`, `` ` ``, `"`, `\` or a newline, and `\` outside quotes
/// escapes the next character (`\` + newline joins lines). Blanks (space, tab) separate words;
/// leading and trailing blanks and line breaks are ignored. No expansion of any kind happens;
/// shell syntax is refused (see the module docs). An empty line gives no words.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let line = line.trim_matches(|c| is_blank(c) || c == '\r' || c == '\n');
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let column = i + 1;
        match c {
            c if is_blank(c) => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                i += 1;
            }
            '\\' => match chars.get(i + 1) {
                // A line continuation: both characters vanish.
                Some('\n') => i += 2,
                Some(&next) => {
                    word.push(next);
                    in_word = true;
                    i += 2;
                }
                None => return Err(SplitError::TrailingBackslash),
            },
            '\'' => {
                let rest = chars.get(i + 1..).unwrap_or_default();
                let close = rest
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or(SplitError::UnterminatedSingleQuote(column))?;
                word.extend(&rest[..close]);
                in_word = true;
                i += close + 2;
            }
            '"' => {
                in_word = true;
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(SplitError::UnterminatedDoubleQuote(column)),
                        Some('"') => break,
                        Some('\\') => match chars.get(j + 1) {
                            Some('\n') => j += 2,
                            Some(&next @ ('$' | '`' | '"' | '\\')) => {
                                word.push(next);
                                j += 2;
                            }
                            _ => {
                                word.push('\\');
                                j += 1;
                            }
                        },
                        Some(&ch @ ('$' | '`')) => {
                            return Err(SplitError::ShellSyntax { ch, column: j + 1 });
                        }
                        Some(&other) => {
                            word.push(other);
                            j += 1;
                        }
                    }
                }
                i = j + 1;
            }
            '#' if !in_word => return Err(SplitError::ShellSyntax { ch: c, column }),
            c if is_operator(c) => return Err(SplitError::ShellSyntax { ch: c, column }),
            c => {
                word.push(c);
                in_word = true;
                i += 1;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Quotes `word` so that [`split`] (and `sh`) read it back as exactly one word, unchanged.
/// Words of safe characters stay bare; others are single-quoted, with `'` written as `'\''`.
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Joins words into a line that [`split`] splits back into the same words.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Takes the program off a Windows command line the way `CreateProcess` does: a quoted first
/// token is the text between the quotes, otherwise the text up to the first blank. Returns the
/// program and the rest of the line (leading blanks removed), which the program parses itself.
pub fn split_windows_program(line: &str) -> Result<(String, &str), SplitError> {
    let line = line.trim_matches(|c| is_blank(c) || c == '\r' || c == '\n');
    let (program, rest) = if let Some(quoted) = line.strip_prefix('"') {
        let close = quoted
            .find('"')
            .ok_or(SplitError::UnterminatedDoubleQuote(1))?;
        (&quoted[..close], &quoted[close + 1..])
    } else {
        match line.find(is_blank) {
            Some(end) => (&line[..end], &line[end..]),
            None => (line, ""),
        }
    };
    if program.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok((program.to_owned(), rest.trim_start_matches(is_blank)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(line: &str) -> Vec<String> {
        split(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn blanks_separate_words_and_quotes_group_them() {
        assert_eq!(
            words("  sh install.sh --flag 'a b'\t\"c d\"  "),
            ["sh", "install.sh", "--flag", "a b", "c d"]
        );
    }

    #[test]
    fn adjacent_quoted_and_bare_parts_make_one_word() {
        assert_eq!(words(r#"a'b c'"d e"f"#), ["ab cd ef"]);
    }

    #[test]
    fn empty_quotes_make_an_empty_word() {
        assert_eq!(words("x '' \"\""), ["x", "", ""]);
    }

    #[test]
    fn backslash_escapes_outside_quotes_and_only_some_inside_double_quotes() {
        assert_eq!(words(r"a\ b \'"), ["a b", "'"]);
        assert_eq!(words(r#""\$ \` \" \\ \n \a""#), [r#"$ ` " \ \n \a"#]);
        assert_eq!(words(r"'\n'"), [r"\n"]);
    }

    #[test]
    fn backslash_newline_joins_lines() {
        assert_eq!(words("a\\\nb \"c\\\nd\""), ["ab", "cd"]);
    }

    #[test]
    fn glob_and_tilde_characters_stay_literal() {
        assert_eq!(words("*.txt ~ a?[b]"), ["*.txt", "~", "a?[b]"]);
    }

    #[test]
    fn an_empty_line_has_no_words() {
        assert_eq!(words(" \r\n"), Vec::<String>::new());
    }

    #[test]
    fn shell_syntax_is_refused_naming_the_character_and_column() {
        for (line, ch, column) in [
            ("a | b", '|', 3),
            ("a; b", ';', 2),
            ("a && b", '&', 3),
            ("a > f", '>', 3),
            ("a < f", '<', 3),
            ("$(id)", '$', 1),
            ("a $HOME", '$', 3),
            ("a `id`", '`', 3),
            ("\"$HOME\"", '$', 2),
            ("\"`id`\"", '`', 2),
            ("a # note", '#', 3),
            ("(a)", '(', 1),
            ("a\nb", '\n', 2),
        ] {
            assert_eq!(
                split(line),
                Err(SplitError::ShellSyntax { ch, column }),
                "{line:?}"
            );
        }
    }

    #[test]
    fn quoted_shell_syntax_is_literal() {
        assert_eq!(
            words(r#"'a | b; $(id) `x` # c' "a|b;&<>()#" \$ \#"#),
            ["a | b; $(id) `x` # c", "a|b;&<>()#", "$", "#"]
        );
        assert_eq!(words("a#b"), ["a#b"]);
    }

    #[test]
    fn unterminated_quotes_and_trailing_backslashes_are_refused() {
        assert_eq!(split("a 'b"), Err(SplitError::UnterminatedSingleQuote(3)));
        assert_eq!(split("a \"b"), Err(SplitError::UnterminatedDoubleQuote(3)));
        assert_eq!(split(r"a \"), Err(SplitError::TrailingBackslash));
    }

    #[test]
    fn quote_leaves_safe_words_bare() {
        assert_eq!(quote("--prefix=/opt/x"), "--prefix=/opt/x");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn windows_program_is_the_first_token_or_the_quoted_one() {
        assert_eq!(
            split_windows_program(r#""Deploy Application.exe" -DeploymentType "Install""#),
            Ok((
                "Deploy Application.exe".to_owned(),
                r#"-DeploymentType "Install""#
            ))
        );
        assert_eq!(
            split_windows_program(r#"  msiexec  /i "a b.msi" /qn"#),
            Ok(("msiexec".to_owned(), r#"/i "a b.msi" /qn"#))
        );
        assert_eq!(
            split_windows_program("setup.exe"),
            Ok(("setup.exe".to_owned(), ""))
        );
        assert_eq!(split_windows_program("  "), Err(SplitError::Empty));
        assert_eq!(
            split_windows_program("\"a.exe"),
            Err(SplitError::UnterminatedDoubleQuote(1))
        );
    }

    /// The words `/bin/sh` produces from `line` (which `split` accepted, so it holds no code).
    fn sh_words(line: &str) -> Vec<String> {
        let script = format!("set -- {line}\nfor a do printf '%s\\0' \"$a\"; done");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("runs sh");
        assert!(out.status.success(), "sh failed on {line:?}: {out:?}");
        let mut words: Vec<String> = String::from_utf8(out.stdout)
            .expect("utf-8")
            .split('\0')
            .map(str::to_owned)
            .collect();
        words.pop(); // after the last NUL
        words
    }

    #[test]
    fn split_agrees_with_sh_on_hand_picked_lines() {
        for line in [
            r#"sh install.sh --flag 'a b'"#,
            r#"a"b"'c'\ d "" '' x"#,
            r#""\$ \` \" \\ \n \a" '\'"#,
            "a\\\nb \"c\\\nd\"",
            r#"--opt="value with spaces" x\"y"#,
        ] {
            assert_eq!(words(line), sh_words(line), "{line:?}");
        }
    }

    fn sh_line() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zé=.-]{1,3}",
            3 => Just(" ".to_owned()),
            1 => Just("\t".to_owned()),
            2 => "'[a-z \"\\\\$|;&#`]{0,4}'",
            2 => "\"([a-z '#|;&]|\\\\[a-z$`\"\\\\])*\"",
            1 => "\\\\[a-z '\"$#|;&\\\\]",
            1 => "[\\\\'\"$#|;&`]",
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn split_never_panics(line in any::<String>()) {
            let _ = split(&line);
            let _ = split_windows_program(&line);
        }

        #[test]
        fn joined_words_split_back_unchanged(ws in proptest::collection::vec(any::<String>(), 0..8)) {
            prop_assert_eq!(split(&join(&ws)), Ok(ws));
        }

        /// Lines built from words, blanks, quoted chunks, escapes and stray shell characters,
        /// so that both accepted and refused lines are common. No newlines: after one, `sh`
        /// would run the rest as a command.
        #[test]
        fn accepted_lines_split_as_sh_splits_them(line in sh_line()) {
            if let Ok(ws) = split(&line) {
                prop_assert_eq!(ws, sh_words(&line));
            }
        }
    }
}
