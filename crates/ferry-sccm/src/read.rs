//! The reader: PowerShell text → typed [`Script`], accepting exactly the generator's subset.
//!
//! Why it exists: the emulator must run the very text the connector would hand to
//! `powershell.exe`, and a script that reaches a real site must be provably data-only. The text
//! is parsed with the tree-sitter PowerShell grammar and walked strictly; anything outside the
//! subset (see the crate docs) is refused with its line and the construct.
//!
//! Three independent checks, because tree-sitter is not PowerShell:
//! 1. every string literal is re-scanned with PowerShell's own quote rule
//!    ([`crate::quote::scan_verbatim`]): the grammar does not know U+2018–U+201B are quotes, so a
//!    literal it sees as one string may be two strings and a command to PowerShell;
//! 2. the text between tokens may only be ASCII blanks and line ends (no comments, no
//!    continuation backticks, no Unicode spaces that PowerShell reads and tree-sitter may not);
//! 3. the script, generated again from what was read, must equal the text line for line, so
//!    nothing can hide in a form the walker did not model.

use crate::cmdlets::{Cmdlet, Kind};
use crate::generate::generate;
use crate::quote::{Scan, scan_verbatim};
use crate::script::{
    Arg, Call, Emit, Literal, Preference, RESULT_MARKER, Script, Statement, Target, Value, Var,
    is_identifier,
};
use tree_sitter::{Node, Parser};

/// A refused script: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: refused {construct}")]
pub struct ReadError {
    /// 1-based line of the refused construct.
    pub line: usize,
    /// What was refused, with the offending text.
    pub construct: String,
}

/// Reads a script. Lines end with `\n` as the generator writes them; a CR outside a literal
/// is refused (inside one it is data, and converting line ends would change the data).
pub fn read(text: &str) -> Result<Script, ReadError> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .map_err(|e| ReadError {
            line: 1,
            construct: format!("script (grammar unavailable: {e})"),
        })?;
    let tree = parser.parse(text, None).ok_or(ReadError {
        line: 1,
        construct: "script (the parser gave up)".into(),
    })?;
    let root = tree.root_node();
    let r = Reader { src: text };
    if root.has_error() {
        let bad = first_error(root).unwrap_or(root);
        return Err(r.refuse(bad, "syntax error at"));
    }
    r.check_gaps(root)?;
    let mut statements = Vec::new();
    let mut cursor = root.walk();
    for child in root.children(&mut cursor) {
        if child.kind() != "statement_list" {
            return Err(r.refuse(child, "construct"));
        }
        let mut c2 = child.walk();
        for st in child.children(&mut c2) {
            statements.push(r.statement(st)?);
        }
    }
    let script = Script { statements };
    r.check_canonical(&script)?;
    Ok(script)
}

fn first_error(node: Node) -> Option<Node> {
    if node.is_error() || node.is_missing() {
        return Some(node);
    }
    let mut cursor = node.walk();
    node.children(&mut cursor).find_map(first_error)
}

/// Expression wrappers the grammar nests around every operand; with one child they mean
/// nothing and are looked through.
const WRAPPERS: &[&str] = &[
    "left_assignment_expression",
    "pipeline",
    "pipeline_chain",
    "logical_expression",
    "bitwise_expression",
    "comparison_expression",
    "additive_expression",
    "multiplicative_expression",
    "format_expression",
    "range_expression",
    "array_literal_expression",
    "unary_expression",
];

struct Reader<'a> {
    src: &'a str,
}

impl<'a> Reader<'a> {
    fn text(&self, node: Node) -> &'a str {
        &self.src[node.byte_range()]
    }

    fn refuse(&self, node: Node, what: &str) -> ReadError {
        let text = self.text(node);
        let mut snippet: String = text.chars().take(60).collect();
        if snippet.len() < text.len() {
            snippet.push('…');
        }
        ReadError {
            line: node.start_position().row + 1,
            construct: format!("{what} `{}`", snippet.escape_debug()),
        }
    }

    /// Looks through single-child wrappers.
    fn single(&self, mut node: Node<'a>) -> Node<'a> {
        while WRAPPERS.contains(&node.kind()) && node.child_count() == 1 {
            match node.child(0) {
                Some(child) => node = child,
                None => break,
            }
        }
        node
    }

    fn children(&self, node: Node<'a>) -> Vec<Node<'a>> {
        let mut cursor = node.walk();
        node.children(&mut cursor).collect()
    }

    /// Check 2: only blanks and line ends between tokens, no comments.
    fn check_gaps(&self, root: Node) -> Result<(), ReadError> {
        let mut leaves = Vec::new();
        collect_leaves(root, &mut leaves);
        let mut pos = 0;
        for leaf in leaves {
            if leaf.kind() == "comment" {
                return Err(self.refuse(leaf, "comment"));
            }
            let gap = &self.src[pos..leaf.start_byte().max(pos)];
            if let Some(bad) = gap.chars().find(|c| !matches!(c, ' ' | '\t' | '\n')) {
                return Err(ReadError {
                    line: self.src[..pos].matches('\n').count() + 1,
                    construct: format!("character {:?} between tokens", bad),
                });
            }
            pos = pos.max(leaf.end_byte());
        }
        let tail = &self.src[pos..];
        if let Some(bad) = tail.chars().find(|c| !matches!(c, ' ' | '\t' | '\n')) {
            return Err(ReadError {
                line: self.src[..pos].matches('\n').count() + 1,
                construct: format!("character {:?} after the last token", bad),
            });
        }
        Ok(())
    }

    /// Check 3: the text is exactly what the generator writes for what was read.
    fn check_canonical(&self, script: &Script) -> Result<(), ReadError> {
        let canonical = generate(script);
        let mut theirs = self.src.split('\n');
        for (i, ours) in canonical.split('\n').enumerate() {
            let got = theirs.next().unwrap_or_default();
            if got != ours {
                let mut snippet: String = got.chars().take(60).collect();
                if snippet.len() < got.len() {
                    snippet.push('…');
                }
                return Err(ReadError {
                    line: i + 1,
                    construct: format!("non-canonical form `{}`", snippet.escape_debug()),
                });
            }
        }
        if theirs.any(|rest| !rest.is_empty()) {
            return Err(ReadError {
                line: canonical.split('\n').count(),
                construct: "text after the last statement".into(),
            });
        }
        Ok(())
    }

    fn statement(&self, node: Node<'a>) -> Result<Statement, ReadError> {
        match node.kind() {
            "pipeline" => {
                let inner = self.single(node);
                match inner.kind() {
                    "assignment_expression" => self.assignment(inner),
                    "command" => {
                        let name = inner.child(0).map(|n| self.text(n));
                        if name == Some(Cmdlet::WriteOutput.name()) {
                            return Ok(Statement::Emit(self.emit(inner)?));
                        }
                        let call = self.command(inner)?;
                        if call.cmdlet.writes_output() {
                            return Err(self.refuse(inner, "call whose output is not assigned"));
                        }
                        Ok(Statement::Call {
                            target: Target::None,
                            call,
                        })
                    }
                    _ => Err(self.refuse(inner, "statement")),
                }
            }
            "if_statement" => self.if_null(node),
            "foreach_statement" => self.foreach(node),
            _ => Err(self.refuse(node, "statement")),
        }
    }

    fn variable_name(&self, node: Node<'a>) -> Result<&'a str, ReadError> {
        let node = self.single(node);
        if node.kind() != "variable" || node.child_count() != 0 {
            return Err(self.refuse(node, "expression (expected a variable)"));
        }
        let text = self.text(node);
        match text.strip_prefix('$') {
            Some(name) if is_identifier(name) => Ok(name),
            _ => Err(self.refuse(node, "variable form")),
        }
    }

    fn var(&self, node: Node<'a>) -> Result<Var, ReadError> {
        let name = self.variable_name(node)?;
        Var::new(name).ok_or_else(|| self.refuse(node, "variable"))
    }

    fn assignment(&self, node: Node<'a>) -> Result<Statement, ReadError> {
        // The one assignment that is not to a variable, accepted only as this exact text.
        if self.text(node) == crate::script::UTF8_OUTPUT {
            return Ok(Statement::Utf8Output);
        }
        let parts = self.children(node);
        let [left, op, right] = parts.as_slice() else {
            return Err(self.refuse(node, "assignment"));
        };
        if self.text(*op) != "=" {
            return Err(self.refuse(*op, "assignment operator"));
        }
        let name = self.variable_name(*left)?;
        let right = self.single(*right);
        if let Some(pref) = Preference::from_name(name) {
            if name != pref.name() {
                return Err(self.refuse(*left, "preference spelling"));
            }
            let value = match self.value(right)? {
                Value::Str(s) => Literal::Str(s),
                Value::Bool(b) => Literal::Bool(b),
                _ => return Err(self.refuse(right, "preference value")),
            };
            return Ok(Statement::Preference {
                variable: pref,
                value,
            });
        }
        if right.kind() != "command" {
            return Err(self.refuse(right, "assigned expression (expected a cmdlet call)"));
        }
        let call = self.command(right)?;
        if matches!(call.cmdlet, Cmdlet::WriteOutput | Cmdlet::ConvertToJson) {
            return Err(self.refuse(right, "assigned result line"));
        }
        let target = if name == "null" {
            Target::Discard
        } else {
            Target::Var(self.var(*left)?)
        };
        Ok(Statement::Call { target, call })
    }

    fn if_null(&self, node: Node<'a>) -> Result<Statement, ReadError> {
        let parts = self.children(node);
        let kinds: Vec<&str> = parts.iter().map(|n| n.kind()).collect();
        if kinds != ["if", "(", "pipeline", ")", "statement_block"] {
            return Err(self.refuse(
                node,
                "if statement form (only `if ($null -eq $x) { $x = … }`)",
            ));
        }
        let cond = self.single(parts[2]);
        let cparts = self.children(cond);
        let variable = match cparts.as_slice() {
            [l, op, r]
                if cond.kind() == "comparison_expression"
                    && self.text(*op) == "-eq"
                    && self.variable_name(*l)? == "null" =>
            {
                self.var(*r)?
            }
            _ => return Err(self.refuse(cond, "condition (only `$null -eq $x`)")),
        };
        let body = self.block_single(parts[4])?;
        match self.statement(body)? {
            Statement::Call {
                target: Target::Var(v),
                call,
            } if v == variable => Ok(Statement::IfNull { variable, call }),
            _ => Err(self.refuse(body, "if body (only an assignment of the tested variable)")),
        }
    }

    /// The one statement of a `{ … }` block.
    fn block_single(&self, block: Node<'a>) -> Result<Node<'a>, ReadError> {
        let parts = self.children(block);
        let kinds: Vec<&str> = parts.iter().map(|n| n.kind()).collect();
        if kinds != ["{", "statement_list", "}"] {
            return Err(self.refuse(block, "block"));
        }
        let statements = self.children(parts[1]);
        match statements.as_slice() {
            [one] => Ok(*one),
            _ => Err(self.refuse(parts[1], "block with more than one statement")),
        }
    }

    fn foreach(&self, node: Node<'a>) -> Result<Statement, ReadError> {
        let parts = self.children(node);
        let kinds: Vec<&str> = parts.iter().map(|n| n.kind()).collect();
        if kinds
            != [
                "foreach",
                "(",
                "variable",
                "in",
                "pipeline",
                ")",
                "statement_block",
            ]
        {
            return Err(self.refuse(node, "foreach form"));
        }
        let item = self.var(parts[2])?;
        let collection = self.var(parts[4])?;
        let body = self.block_single(parts[6])?;
        match self.statement(body)? {
            Statement::Emit(emit) => Ok(Statement::Foreach {
                item,
                collection,
                emit,
            }),
            _ => Err(self.refuse(body, "foreach body (only a result line)")),
        }
    }

    fn command(&self, node: Node<'a>) -> Result<Call, ReadError> {
        let parts = self.children(node);
        let (name_node, elements) = match parts.as_slice() {
            [name] => (*name, None),
            [name, elements] if elements.kind() == "command_elements" => (*name, Some(*elements)),
            _ => return Err(self.refuse(node, "command form")),
        };
        if name_node.kind() != "command_name" || name_node.child_count() != 0 {
            return Err(self.refuse(name_node, "command name"));
        }
        let name = self.text(name_node);
        let cmdlet = Cmdlet::from_name(name)
            .filter(|c| c.name() == name)
            .ok_or_else(|| self.refuse(name_node, "command"))?;
        let info = cmdlet.info();
        let mut args: Vec<Arg> = Vec::new();
        let Some(elements) = elements else {
            return Ok(Call { cmdlet, args });
        };
        // PowerShell decides whether `-X v` is a parameter and its value or a switch and a
        // positional argument from the parameter's type; the table gives it here too.
        let mut expecting_value = false;
        for el in self.children(elements) {
            match el.kind() {
                "command_argument_sep" => continue,
                "command_parameter" => {
                    let text = self.text(el);
                    let pname = text
                        .strip_prefix('-')
                        .filter(|n| is_identifier(n) && !n.contains('_'))
                        .ok_or_else(|| self.refuse(el, "parameter form"))?;
                    if expecting_value {
                        return Err(self.refuse(el, "parameter without a value before"));
                    }
                    let is_switch = info
                        .params
                        .iter()
                        .find(|p| {
                            p.name.eq_ignore_ascii_case(pname)
                                || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(pname))
                        })
                        .is_some_and(|p| p.kind == Kind::Switch);
                    args.push(Arg {
                        name: pname.to_owned(),
                        value: None,
                    });
                    expecting_value = !is_switch;
                }
                _ => {
                    let value = self.value(self.single(el))?;
                    match args.last_mut() {
                        Some(arg) if expecting_value => arg.value = Some(value),
                        _ => return Err(self.refuse(el, "positional argument")),
                    }
                    expecting_value = false;
                }
            }
        }
        if expecting_value {
            return Err(self.refuse(elements, "parameter without a value"));
        }
        Ok(Call { cmdlet, args })
    }

    fn value(&self, node: Node<'a>) -> Result<Value, ReadError> {
        match node.kind() {
            "string_literal" => {
                let parts = self.children(node);
                match parts.as_slice() {
                    [v] if v.kind() == "verbatim_string_characters" => {}
                    _ => return Err(self.refuse(node, "string form (only '…')")),
                }
                self.verbatim(node).map(Value::Str)
            }
            "integer_literal" => {
                let text = self.text(node);
                let digits = text.bytes().all(|b| b.is_ascii_digit());
                let parsed = if digits && !(text.len() > 1 && text.starts_with('0')) {
                    text.parse::<u32>().ok()
                } else {
                    None
                };
                parsed
                    .map(Value::Int)
                    .ok_or_else(|| self.refuse(node, "number form"))
            }
            "variable" => match self.variable_name(node)? {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "null" => Err(self.refuse(node, "$null as a value")),
                _ => self.var(node).map(Value::Var),
            },
            "member_access" => {
                let parts = self.children(node);
                let kinds: Vec<&str> = parts.iter().map(|n| n.kind()).collect();
                if kinds != ["variable", ".", "member_name"] {
                    return Err(self.refuse(node, "member access form"));
                }
                let member = self.text(parts[2]);
                if !is_identifier(member) {
                    return Err(self.refuse(parts[2], "member name"));
                }
                Ok(Value::Member(self.var(parts[0])?, member.to_owned()))
            }
            _ => Err(self.refuse(node, "value")),
        }
    }

    /// Check 1: the literal as PowerShell tokenizes it must end exactly where tree-sitter's
    /// node ends, or PowerShell would read something else than what was certified.
    fn verbatim(&self, node: Node<'a>) -> Result<String, ReadError> {
        let from = &self.src[node.start_byte()..];
        if !from.starts_with('\'') {
            return Err(self.refuse(node, "string opened by a typographic quote"));
        }
        match scan_verbatim(from) {
            Scan::Ends { end, value } if end == node.end_byte() - node.start_byte() => Ok(value),
            Scan::Ends { end, .. } => Err(self.refuse(
                node,
                &format!(
                    "string literal that PowerShell ends early (at byte {} of the literal)",
                    end
                ),
            )),
            Scan::MixedPair { .. } => Err(self.refuse(node, "string with a mixed quote pair")),
            Scan::NotAString | Scan::Unterminated => Err(self.refuse(node, "string literal")),
        }
    }

    /// `Write-Output ('FERRY-RESULT ' + (ConvertTo-Json -Compress -InputObject ([ordered]@{…})))`
    fn emit(&self, command: Node<'a>) -> Result<Emit, ReadError> {
        let bad = |n: Node<'a>| self.refuse(n, "result line form");
        let elements = self.children(command);
        let args: Vec<Node> = elements
            .get(1)
            .map(|e| self.children(*e))
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.kind() != "command_argument_sep")
            .collect();
        let [arg] = args.as_slice() else {
            return Err(bad(command));
        };
        let sum = self.paren(self.single(*arg)).ok_or_else(|| bad(*arg))?;
        let sum_parts = self.children(sum);
        let [marker, plus, json] = sum_parts.as_slice() else {
            return Err(bad(sum));
        };
        if sum.kind() != "additive_expression" || self.text(*plus) != "+" {
            return Err(bad(sum));
        }
        match self.value(self.single(*marker))? {
            Value::Str(m) if m == RESULT_MARKER => {}
            _ => return Err(bad(*marker)),
        }
        let convert = self.paren(self.single(*json)).ok_or_else(|| bad(*json))?;
        if convert.kind() != "command" {
            return Err(bad(convert));
        }
        let call = self.command_head(convert)?;
        let conv_args: Vec<Node> = call
            .into_iter()
            .filter(|n| n.kind() != "command_argument_sep")
            .collect();
        let [compress, input, object] = conv_args.as_slice() else {
            return Err(bad(convert));
        };
        if self.text(*compress) != "-Compress" || self.text(*input) != "-InputObject" {
            return Err(bad(convert));
        }
        let cast = self
            .paren(self.single(*object))
            .ok_or_else(|| bad(*object))?;
        let cast = self.single(cast);
        let cast = if cast.kind() == "expression_with_unary_operator" && cast.child_count() == 1 {
            cast.child(0).unwrap_or(cast)
        } else {
            cast
        };
        let cast_parts = self.children(cast);
        let [ty, hash] = cast_parts.as_slice() else {
            return Err(bad(cast));
        };
        if cast.kind() != "cast_expression" || self.text(*ty) != "[ordered]" {
            return Err(bad(cast));
        }
        let hash = self.single(*hash);
        if hash.kind() != "hash_literal_expression" {
            return Err(bad(hash));
        }
        let mut fields = Vec::new();
        for part in self.children(hash) {
            match part.kind() {
                "@{" | "}" => {}
                "hash_literal_body" => {
                    for entry in self.children(part) {
                        fields.push(self.hash_entry(entry)?);
                    }
                }
                _ => return Err(bad(part)),
            }
        }
        Ok(Emit { fields })
    }

    /// The elements of `ConvertTo-Json …` after checking its name.
    fn command_head(&self, node: Node<'a>) -> Result<Vec<Node<'a>>, ReadError> {
        let parts = self.children(node);
        match parts.as_slice() {
            [name, elements]
                if name.kind() == "command_name"
                    && self.text(*name) == Cmdlet::ConvertToJson.name()
                    && elements.kind() == "command_elements" =>
            {
                Ok(self.children(*elements))
            }
            _ => Err(self.refuse(node, "result line form")),
        }
    }

    /// The inside of `( … )` with one pipeline.
    fn paren(&self, node: Node<'a>) -> Option<Node<'a>> {
        if node.kind() != "parenthesized_expression" {
            return None;
        }
        let parts = self.children(node);
        match parts.as_slice() {
            [open, inner, close]
                if open.kind() == "(" && close.kind() == ")" && inner.kind() == "pipeline" =>
            {
                Some(self.single(*inner))
            }
            _ => None,
        }
    }

    fn hash_entry(&self, entry: Node<'a>) -> Result<(String, Value), ReadError> {
        let parts = self.children(entry);
        let kinds: Vec<&str> = parts.iter().map(|n| n.kind()).collect();
        if entry.kind() != "hash_entry"
            || !(kinds == ["key_expression", "=", "pipeline"]
                || kinds == ["key_expression", "=", "pipeline", ";"])
        {
            return Err(self.refuse(entry, "hashtable entry"));
        }
        let key = self.text(parts[0]);
        if !is_identifier(key) || parts[0].child_count() != 1 {
            return Err(self.refuse(parts[0], "hashtable key"));
        }
        let value = self.value(self.single(parts[2]))?;
        Ok((key.to_owned(), value))
    }
}

fn collect_leaves<'t>(node: Node<'t>, out: &mut Vec<Node<'t>>) {
    // A string literal is one token to both languages; its inside is checked by `verbatim`.
    if node.child_count() == 0 || node.kind() == "string_literal" {
        out.push(node);
        return;
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect_leaves(child, out);
    }
}
