//! ConfigMgr (SCCM) knowledge, as a library that does no network or process I/O (the emulator
//! reads and writes its own site folder, nothing else).
//!
//! * [`sdm`] — the SDMPackageXML (AppMgmtDigest) codec.
//! * [`spec`] — the push specification and its validation (errors name the field).
//! * [`cmdlets`] — the one table of cmdlet parameters and parameter sets.
//! * [`script`] — the typed command model; [`scripts`] builds the push, inventory and
//!   content-location scripts from it and parses their result lines.
//! * [`mod@generate`] — typed script → PowerShell text; [`mod@read`] — PowerShell text → typed
//!   script; [`quote`] — PowerShell's single-quote rule for both.
//! * [`bind`] — PowerShell-style parameter binding against the table.
//! * [`emulator`] — an emulated ConfigMgr site that runs scripts obtained through [`read()`].
//! * [`perf`] — baseline and generated input for `ferry bench sccm`.
//!
//! # Data flow
//!
//! `PushSpec` → [`scripts::push_script`] → [`Script`] →
//! [`generate::generate`] → text → (`powershell.exe` on Windows, or [`read::read`] →
//! [`emulator::Site::run`]) → stdout → [`scripts::result_lines`].
//!
//! # The PowerShell subset
//!
//! The generator writes, and the reader accepts, only these statements, one per line, with
//! single spaces between elements and no comments:
//!
//! ```text
//! $ErrorActionPreference = 'Stop'
//! [Console]::OutputEncoding = [System.Text.UTF8Encoding]::new($false)   (exactly this text)
//! $CMPSSuppressFastNotUsedCheck = $true
//! <Cmdlet> -Param <value> -Switch …                 (only cmdlets that write no output)
//! $null = <Cmdlet> …
//! $var = <Cmdlet> …
//! if ($null -eq $var) { $var = <Cmdlet> … }
//! foreach ($item in $collection) { <result line> }
//! Write-Output ('FERRY-RESULT ' + (ConvertTo-Json -Compress -InputObject ([ordered]@{ key = <value>; … })))
//! ```
//!
//! where `<Cmdlet>` is a name from [`cmdlets::CMDLETS`] spelt as in the table, arguments are
//! named (no positional arguments, no splatting, no pipelines), and `<value>` is one of
//! `'single-quoted literal'` (every U+0027, U+2018, U+2019, U+201A, U+201B doubled), a decimal
//! integer, `$true`, `$false`, `$var` or `$var.Property`. Variables are ASCII identifiers.
//! Everything else — double-quoted and here-strings, subexpressions, script blocks, pipelines,
//! other commands, comments, backtick continuations, typographic quotes outside a literal,
//! Unicode spaces between tokens — is refused with its line and construct. The reader also
//! re-scans every literal with PowerShell's quote rule and requires the text to be exactly what
//! the generator would write for what it read.
//!
//! # Fuzzing
//!
//! cargo-fuzz needs a nightly toolchain; the property tests in `tests/roundtrip_props.rs` (and the codec's `tests/sdm_*.rs`) run long
//! instead when `FERRY_LONG_FUZZ=1` is set (100 000 cases instead of 256).

pub mod bind;
pub mod cmdlets;
pub mod emulator;
pub mod generate;
pub mod perf;
pub mod quote;
pub mod read;
pub mod script;
pub mod scripts;
pub mod sdm;
pub mod spec;

pub use emulator::{EmulatorError, Site};
pub use generate::generate;
pub use quote::{is_single_quote, quote as quote_literal};
pub use read::{ReadError, read};
pub use script::Script;
pub use spec::{PushSpec, SpecError};
