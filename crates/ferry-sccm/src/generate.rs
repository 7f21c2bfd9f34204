//! The generator: typed [`Script`] → Windows PowerShell 5.1 text.
//!
//! Why it exists: it is the only code that writes PowerShell. Every data value becomes a
//! single-quoted literal escaped by [`crate::quote::quote`]; integers, `$true`/`$false` and
//! variable names come from typed values, never from text. The layout is fixed (one statement
//! per line, one space between elements) so snapshots are stable and the reader can be strict.

use crate::quote::quote;
use crate::script::{Call, Emit, Literal, Script, Statement, Target, Value};
use std::fmt::Write as _;

/// The script as text, CRLF-free (`\n` line ends; PowerShell accepts both).
pub fn generate(script: &Script) -> String {
    let mut out = String::new();
    for statement in &script.statements {
        statement_text(&mut out, statement);
        out.push('\n');
    }
    out
}

fn statement_text(out: &mut String, statement: &Statement) {
    match statement {
        Statement::Preference { variable, value } => {
            let value = match value {
                Literal::Str(s) => quote(s),
                Literal::Bool(b) => bool_text(*b).to_owned(),
            };
            let _ = write!(out, "${} = {value}", variable.name());
        }
        Statement::Utf8Output => out.push_str(crate::script::UTF8_OUTPUT),
        Statement::Call { target, call } => {
            match target {
                Target::None => {}
                Target::Discard => out.push_str("$null = "),
                Target::Var(v) => {
                    let _ = write!(out, "${} = ", v.as_str());
                }
            }
            call_text(out, call);
        }
        Statement::IfNull { variable, call } => {
            let v = variable.as_str();
            let _ = write!(out, "if ($null -eq ${v}) {{ ${v} = ");
            call_text(out, call);
            out.push_str(" }");
        }
        Statement::Foreach {
            item,
            collection,
            emit,
        } => {
            let _ = write!(
                out,
                "foreach (${} in ${}) {{ ",
                item.as_str(),
                collection.as_str()
            );
            emit_text(out, emit);
            out.push_str(" }");
        }
        Statement::Emit(emit) => emit_text(out, emit),
    }
}

fn call_text(out: &mut String, call: &Call) {
    out.push_str(call.cmdlet.name());
    for arg in &call.args {
        // Names come from `&'static str` in Ferry's code (see `Call::arg`); the reader refuses
        // anything else, so a bad one fails the round-trip tests rather than reaching a site.
        debug_assert!(crate::script::is_identifier(&arg.name), "{}", arg.name);
        let _ = write!(out, " -{}", arg.name);
        if let Some(value) = &arg.value {
            out.push(' ');
            value_text(out, value);
        }
    }
}

fn value_text(out: &mut String, value: &Value) {
    match value {
        Value::Str(s) => out.push_str(&quote(s)),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Bool(b) => out.push_str(bool_text(*b)),
        Value::Var(v) => {
            let _ = write!(out, "${}", v.as_str());
        }
        Value::Member(v, property) => {
            let _ = write!(out, "${}.{property}", v.as_str());
        }
    }
}

fn emit_text(out: &mut String, emit: &Emit) {
    out.push_str("Write-Output (");
    out.push_str(&quote(crate::script::RESULT_MARKER));
    out.push_str(" + (ConvertTo-Json -Compress -InputObject ([ordered]@{ ");
    for (i, (key, value)) in emit.fields.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let _ = write!(out, "{key} = ");
        value_text(out, value);
    }
    out.push_str(" })))");
}

fn bool_text(b: bool) -> &'static str {
    if b { "$true" } else { "$false" }
}
