//! Parameter binding against the cmdlet table, with PowerShell's own error messages.
//!
//! Why it exists: the reader only certifies that a script is data-only; whether the call would
//! bind (parameter known, right parameter set, mandatory parameters present, enum values valid,
//! types convertible) is what PowerShell decides when it runs the command. The emulator binds
//! every call here before executing it, so a script that would fail on a real site fails in the
//! emulator with the same message.

use crate::cmdlets::{COMMON_PARAMETERS, CmdletInfo, Kind, ParamInfo, ParamSet};
use crate::script::{Call, Value};
use std::collections::BTreeMap;

/// A call whose arguments bound: canonical parameter name → value (`None` for a switch).
#[derive(Debug, Clone)]
pub struct Bound {
    pub set: &'static str,
    pub values: BTreeMap<&'static str, Option<Value>>,
}

impl Bound {
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name).and_then(|v| v.as_ref())
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.value(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// Binds `call`; `Err` carries PowerShell's message.
pub fn bind(call: &Call) -> Result<Bound, String> {
    let info = call.cmdlet.info();
    let mut values: BTreeMap<&'static str, Option<Value>> = BTreeMap::new();
    for arg in &call.args {
        let param = match resolve(info, &arg.name)? {
            Some(p) => p,
            None => continue, // a common parameter: accepted, no effect here
        };
        if values.contains_key(param.name) {
            return Err(format!(
                "Cannot bind parameter because parameter '{}' is specified more than once. To provide multiple values to parameters that can accept multiple values, use the array syntax. For example, \"-parameter value1,value2,value3\".",
                param.name
            ));
        }
        let value = convert(param, arg.value.as_ref())?;
        values.insert(param.name, value);
    }
    let set = choose_set(info, &values)?;
    Ok(Bound {
        set: set.name,
        values,
    })
}

/// PowerShell's name resolution: exact name or alias, else a unique prefix.
fn resolve(info: &CmdletInfo, name: &str) -> Result<Option<&'static ParamInfo>, String> {
    let exact = info.params.iter().find(|p| {
        p.name.eq_ignore_ascii_case(name) || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    });
    if let Some(p) = exact {
        return Ok(Some(p));
    }
    if COMMON_PARAMETERS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name))
    {
        return Ok(None);
    }
    let lower = name.to_ascii_lowercase();
    let matches: Vec<&'static ParamInfo> = info
        .params
        .iter()
        .filter(|p| {
            p.name.to_ascii_lowercase().starts_with(&lower)
                || p.aliases
                    .iter()
                    .any(|a| a.to_ascii_lowercase().starts_with(&lower))
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(Some(one)),
        [] => Err(format!(
            "A parameter cannot be found that matches parameter name '{name}'."
        )),
        many => Err(format!(
            "Parameter cannot be processed because the parameter name '{name}' is ambiguous. Possible matches include: {}.",
            many.iter()
                .map(|p| format!("-{}", p.name))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

fn convert(param: &ParamInfo, value: Option<&Value>) -> Result<Option<Value>, String> {
    let name = param.name;
    let Some(value) = value else {
        return match param.kind {
            Kind::Switch => Ok(None),
            _ => Err(format!(
                "Missing an argument for parameter '{name}'. Specify a parameter of type '{}' and try again.",
                type_name(param.kind)
            )),
        };
    };
    // Values that come from variables are objects; their type is checked when used.
    if matches!(value, Value::Var(_) | Value::Member(..)) {
        return Ok(Some(value.clone()));
    }
    let shown = match value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        Value::Var(_) | Value::Member(..) => String::new(),
    };
    let cannot = |detail: &str| {
        format!(
            "Cannot bind parameter '{name}'. Cannot convert value \"{shown}\" to type \"{}\". Error: \"{detail}\"",
            type_name(param.kind)
        )
    };
    match (param.kind, value) {
        (Kind::Str | Kind::StrArray, Value::Str(_)) => Ok(Some(value.clone())),
        (Kind::Str | Kind::StrArray, Value::Int(i)) => Ok(Some(Value::Str(i.to_string()))),
        (Kind::Str | Kind::StrArray, Value::Bool(_)) => Ok(Some(Value::Str(shown))),
        (Kind::Int, Value::Int(_)) => Ok(Some(value.clone())),
        (Kind::Int, Value::Str(s)) => s
            .trim()
            .parse::<u32>()
            .map(|i| Some(Value::Int(i)))
            .map_err(|_| cannot("Input string was not in a correct format.")),
        (Kind::Bool, Value::Bool(_)) => Ok(Some(value.clone())),
        (Kind::Bool, Value::Int(i)) => Ok(Some(Value::Bool(*i != 0))),
        (Kind::Bool, _) => Err(format!(
            "Cannot process argument transformation on parameter '{name}'. Cannot convert value \"System.String\" to type \"System.Boolean\". Boolean parameters accept only Boolean values and numbers, such as $True, $False, 1 or 0."
        )),
        (Kind::DateTime, Value::Str(s)) => match parse_datetime(s) {
            Some(_) => Ok(Some(value.clone())),
            None => Err(cannot("String was not recognized as a valid DateTime.")),
        },
        (Kind::Enum(ty, names), Value::Str(s)) => {
            match names.iter().find(|n| n.eq_ignore_ascii_case(s.trim())) {
                Some(n) => Ok(Some(Value::Str((*n).to_owned()))),
                None => Err(format!(
                    "Cannot bind parameter '{name}'. Cannot convert value \"{s}\" to type \"{ty}\". Error: \"Unable to match the identifier name {s} to a valid enumerator name. Specify one of the following enumerator names and try again:\n{}\"",
                    names.join(", ")
                )),
            }
        }
        (Kind::Switch, _) => Err(format!(
            "A positional parameter cannot be found that accepts argument '{shown}'."
        )),
        _ => Err(cannot("Invalid cast.")),
    }
}

fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "System.String",
        Kind::StrArray => "System.String[]",
        Kind::Int => "System.Int32",
        Kind::Bool => "System.Boolean",
        Kind::Switch => "System.Management.Automation.SwitchParameter",
        Kind::DateTime => "System.DateTime",
        Kind::Enum(ty, _) => ty,
        Kind::Object => "Microsoft.ConfigurationManagement.ManagementProvider.IResultObject",
        Kind::Other(ty) => ty,
    }
}

/// The parameter set PowerShell would pick: the sets holding every given parameter, then the
/// first whose mandatory parameters are all given.
fn choose_set(
    info: &CmdletInfo,
    values: &BTreeMap<&'static str, Option<Value>>,
) -> Result<&'static ParamSet, String> {
    let candidates: Vec<&'static ParamSet> = info
        .sets
        .iter()
        .filter(|s| values.keys().all(|p| info.in_set(s, p)))
        .collect();
    if candidates.is_empty() {
        return Err(
            "Parameter set cannot be resolved using the specified named parameters.".into(),
        );
    }
    if let Some(set) = candidates
        .iter()
        .find(|s| s.mandatory.iter().all(|m| values.contains_key(m)))
    {
        return Ok(set);
    }
    // PowerShell without a console to prompt on reports the missing mandatory parameters of
    // the closest set.
    let closest = candidates
        .iter()
        .min_by_key(|s| {
            s.mandatory
                .iter()
                .filter(|m| !values.contains_key(*m))
                .count()
        })
        .copied();
    let missing: Vec<&str> = closest
        .map(|s| {
            s.mandatory
                .iter()
                .copied()
                .filter(|m| !values.contains_key(m))
                .collect()
        })
        .unwrap_or_default();
    Err(format!(
        "Cannot process command because of one or more missing mandatory parameters: {}.",
        missing.join(" ")
    ))
}

/// The date forms the generator writes (`yyyy-MM-ddTHH:mm:ss`, optionally with `Z`), which
/// PowerShell's invariant-culture conversion accepts.
pub fn parse_datetime(s: &str) -> Option<time::PrimitiveDateTime> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s.strip_suffix('Z').unwrap_or(s), &fmt).ok()
}
