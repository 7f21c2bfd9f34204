//! The reader refuses everything outside the generator's subset, naming the line and the
//! construct. Each test pins one refusal.

use ferry_sccm::read;

const HEAD: &str = "$ErrorActionPreference = 'Stop'\n";

fn refusal(script: &str) -> (usize, String) {
    let err = read(script).expect_err("the reader accepted it");
    (err.line, err.construct)
}

#[test]
fn typographic_quote_that_ends_a_literal_early_is_refused() {
    let (line, construct) =
        refusal("$app = Get-CMApplication -Name 'Tim’; Remove-Item C:\\ ; ‘'\n");
    assert_eq!(line, 1);
    assert!(construct.contains("PowerShell ends early"), "{construct}");
}

#[test]
fn ascii_quote_followed_by_a_typographic_one_is_refused() {
    // tree-sitter ends the literal at `'`; PowerShell reads `'’` as an escaped quote and goes on.
    let (line, _) = refusal("$app = Get-CMApplication -Name 'a'’; Remove-Item C:\\ #'\n");
    assert_eq!(line, 1);
}

#[test]
fn unknown_command_is_refused_with_its_line() {
    let (line, construct) = refusal(&format!("{HEAD}Remove-Item -Path 'C:\\'\n"));
    assert_eq!(line, 2);
    assert_eq!(construct, "command `Remove-Item`");
}

#[test]
fn pipeline_is_refused() {
    let (line, construct) = refusal(&format!(
        "{HEAD}$apps = Get-CMApplication | Where-Object {{ $_.Name -eq 'x' }}\n"
    ));
    assert_eq!(line, 2);
    assert!(construct.starts_with("assigned expression"), "{construct}");
}

#[test]
fn double_quoted_string_is_refused() {
    let (_, construct) = refusal("$app = Get-CMApplication -Name \"x$(Remove-Item C:\\)\"\n");
    assert!(
        construct.starts_with("string form (only '…')"),
        "{construct}"
    );
}

#[test]
fn subexpression_argument_is_refused() {
    let (_, construct) = refusal("$app = Get-CMApplication -Name $(Remove-Item C:\\)\n");
    assert!(construct.starts_with("value `$(Remove-Item"), "{construct}");
}

#[test]
fn comment_is_refused() {
    let (line, construct) = refusal(&format!("{HEAD}# Remove-Item C:\\\n"));
    assert_eq!(line, 2);
    assert!(construct.starts_with("comment"), "{construct}");
}

#[test]
fn block_comment_is_refused() {
    let (_, construct) = refusal(&format!("{HEAD}<# x #>\n"));
    assert!(construct.starts_with("comment"), "{construct}");
}

#[test]
fn positional_argument_is_refused() {
    let (_, construct) = refusal("Set-Location 'DEM:'\n");
    assert_eq!(construct, "positional argument `\\'DEM:\\'`");
}

#[test]
fn unassigned_output_is_refused() {
    let (_, construct) = refusal("Get-CMApplication -Name 'x'\n");
    assert!(
        construct.starts_with("call whose output is not assigned"),
        "{construct}"
    );
}

#[test]
fn if_with_else_is_refused() {
    let (_, construct) = refusal(
        "if ($null -eq $app) { $app = New-CMApplication -Name 'x' } else { $app = Get-CMApplication }\n",
    );
    assert!(construct.starts_with("if statement form"), "{construct}");
}

#[test]
fn backtick_line_continuation_is_refused() {
    let (line, construct) = refusal("Set-Location `\n -Path 'DEM:'\n");
    assert_eq!(line, 1);
    assert!(!construct.is_empty());
}

#[test]
fn non_breaking_space_between_tokens_is_refused() {
    let (_, construct) = refusal("Set-Location\u{a0}-Path 'DEM:'\n");
    assert!(!construct.is_empty());
}

#[test]
fn en_dash_parameter_is_refused() {
    // PowerShell reads U+2013 as a parameter dash; the subset only knows `-`.
    assert!(read("Set-Location \u{2013}Path 'DEM:'\n").is_err());
}

#[test]
fn non_canonical_spacing_is_refused() {
    let (line, construct) = refusal("Set-Location  -Path 'DEM:'\n");
    assert_eq!(line, 1);
    assert!(construct.starts_with("non-canonical form"), "{construct}");
}

#[test]
fn splatting_is_refused() {
    assert!(read("$p = Get-CMApplication @args\n").is_err());
}

#[test]
fn script_block_argument_is_refused() {
    let (_, construct) = refusal("$x = Get-CMApplication -Name { Remove-Item C:\\ }\n");
    assert!(construct.starts_with("value"), "{construct}");
}

#[test]
fn here_string_is_refused() {
    assert!(read("$app = Get-CMApplication -Name @'\nx\n'@\n").is_err());
}

#[test]
fn result_line_with_another_marker_is_refused() {
    let line = "Write-Output ('OTHER ' + (ConvertTo-Json -Compress -InputObject ([ordered]@{ step = 'x' })))\n";
    let (_, construct) = refusal(line);
    assert!(construct.starts_with("result line form"), "{construct}");
}

#[test]
fn crlf_between_statements_is_refused() {
    // Line ends are the generator's `\n`; converting them would also change CRs inside literals.
    let (line, construct) =
        refusal("$ErrorActionPreference = 'Stop'\r\nSet-Location -Path 'DEM:'\n");
    assert_eq!(line, 1);
    assert!(construct.contains("'\\r'"), "{construct}");
}

#[test]
fn nul_character_is_refused() {
    assert!(read("$app = Get-CMApplication -Name 'a\0b'\n").is_err());
}

#[test]
fn only_the_exact_utf8_output_line_is_accepted() {
    assert!(read("[Console]::OutputEncoding = [System.Text.UTF8Encoding]::new($false)\n").is_ok());
    for variant in [
        "[Console]::OutputEncoding = [System.Text.Encoding]::Unicode\n",
        "[Console]::OutputEncoding = [System.Text.UTF8Encoding]::new($true)\n",
        "[Console]::Title = [System.Text.UTF8Encoding]::new($false)\n",
    ] {
        let (line, _) = refusal(variant);
        assert_eq!(line, 1, "{variant}");
    }
}
