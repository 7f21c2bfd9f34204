//! The typed command model: a script as the generator writes it and the reader returns it.
//!
//! Why it exists: PowerShell text is never assembled from strings anywhere in Ferry. Code builds
//! a [`Script`] of typed statements; [`crate::generate()`] is the only place that turns it into
//! text and [`crate::read()`] the only place that turns text back into it. The model is small on
//! purpose: it can express exactly the statements the push, inventory and content-location
//! scripts need (see the crate docs for the subset) and nothing else, so a value can only ever
//! be data.

use crate::cmdlets::Cmdlet;

/// The fixed marker in front of every result line on stdout.
pub const RESULT_MARKER: &str = "FERRY-RESULT ";

/// The text of [`Statement::Utf8Output`]: UTF-8 without a byte-order mark, so the first result
/// line does not start with one.
pub const UTF8_OUTPUT: &str = "[Console]::OutputEncoding = [System.Text.UTF8Encoding]::new($false)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `$ErrorActionPreference = 'Stop'` or `$CMPSSuppressFastNotUsedCheck = $true`: a
    /// preference variable set to a literal.
    Preference {
        variable: Preference,
        value: Literal,
    },
    /// [`UTF8_OUTPUT`]: result lines leave the script as UTF-8. Windows PowerShell 5.1 would
    /// otherwise encode redirected stdout in the console's OEM code page and garble every
    /// non-ASCII name. A constant line: it carries no data.
    Utf8Output,
    /// A cmdlet call, its output discarded (`$null = …`), kept in a variable, or (only for
    /// cmdlets that write nothing) a bare call.
    Call { target: Target, call: Call },
    /// `if ($null -eq $var) { $var = <call> }` — the one branch: create what a lookup did not
    /// find. Idempotency needs nothing more.
    IfNull { variable: Var, call: Call },
    /// `foreach ($item in $collection) { <emit> }` — one result line per object.
    Foreach {
        item: Var,
        collection: Var,
        emit: Emit,
    },
    /// A result line on stdout (see [`Emit`]).
    Emit(Emit),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    ErrorActionPreference,
    CMPSSuppressFastNotUsedCheck,
}

impl Preference {
    pub fn name(self) -> &'static str {
        match self {
            Preference::ErrorActionPreference => "ErrorActionPreference",
            Preference::CMPSSuppressFastNotUsedCheck => "CMPSSuppressFastNotUsedCheck",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Preference::ErrorActionPreference,
            Preference::CMPSSuppressFastNotUsedCheck,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A bare call: allowed only for cmdlets that write nothing.
    None,
    /// `$null = …`
    Discard,
    /// `$name = …`
    Var(Var),
}

/// A script variable name, without `$`: ASCII letters, digits and `_`, starting with a letter,
/// and none of PowerShell's automatic names (`true`, `false`, `null`, preferences).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Var(String);

impl Var {
    pub fn new(name: &str) -> Option<Var> {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !["true", "false", "null", "_", "args", "input", "this"]
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            && Preference::from_name(name).is_none();
        ok.then(|| Var(name.to_owned()))
    }

    /// A name written in Ferry's own code (not data); checked by tests, not at run time.
    pub(crate) fn fixed(name: &'static str) -> Var {
        debug_assert!(Var::new(name).is_some(), "{name}");
        Var(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A cmdlet call with named arguments only, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub cmdlet: Cmdlet,
    pub args: Vec<Arg>,
}

impl Call {
    pub fn new(cmdlet: Cmdlet) -> Self {
        Call {
            cmdlet,
            args: Vec::new(),
        }
    }

    /// Adds `-name value`. Names are `&'static str` so that they can only come from Ferry's
    /// code, never from data; values are always quoted or typed.
    pub fn arg(mut self, name: &'static str, value: Value) -> Self {
        self.args.push(Arg {
            name: name.to_owned(),
            value: Some(value),
        });
        self
    }

    pub fn string(self, name: &'static str, value: &str) -> Self {
        self.arg(name, Value::Str(value.to_owned()))
    }

    /// Adds `-name` (a switch).
    pub fn switch(mut self, name: &'static str) -> Self {
        self.args.push(Arg {
            name: name.to_owned(),
            value: None,
        });
        self
    }

    /// Adds the string argument only when there is a value.
    pub fn opt_string(self, name: &'static str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.string(name, v),
            None => self,
        }
    }
}

/// `-Name value`, or `-Name` alone for a switch. The name is as written (without `-`); the
/// emulator resolves it against the table the way PowerShell's binder does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub value: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A single-quoted literal.
    Str(String),
    /// A decimal integer literal (never negative: nothing Ferry passes is).
    Int(u32),
    Bool(bool),
    Var(Var),
    /// `$var.Property`
    Member(Var, String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Str(String),
    Bool(bool),
}

/// `Write-Output ('FERRY-RESULT ' + (ConvertTo-Json -Compress -InputObject ([ordered]@{ k = v; … })))`
///
/// One JSON object per line behind [`RESULT_MARKER`], keys in the written order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emit {
    pub fields: Vec<(String, Value)>,
}

impl Emit {
    /// Starts a result line with its `step` field.
    pub fn step(step: &str) -> Self {
        Emit {
            fields: vec![("step".to_owned(), Value::Str(step.to_owned()))],
        }
    }

    pub fn field(mut self, key: &'static str, value: Value) -> Self {
        self.fields.push((key.to_owned(), value));
        self
    }

    pub fn member(self, key: &'static str, var: &Var, property: &'static str) -> Self {
        self.field(key, Value::Member(var.clone(), property.to_owned()))
    }
}

/// Whether `key` may be a hashtable key / property name in our subset: an ASCII identifier.
pub fn is_identifier(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
