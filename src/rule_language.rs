//! The rule language: what a rule's `when = "..."` says, and its parser.
//!
//! A rule is a boolean expression over *terms*, each of which names something
//! vigil can observe:
//!
//! ```text
//! sound(glass) and object(person, zone=door)
//! not time("08:00-18:00") and loud(min_db=-20)
//! line(entrance, direction=in) then speech(contains="help")
//! ```
//!
//! # Operators
//!
//! | operator  | meaning                            | precedence  |
//! |-----------|------------------------------------|-------------|
//! | `not A`   | A does not hold                    | 4 (tightest)|
//! | `A then B`| A happens, and afterwards B        | 3           |
//! | `A and B` | both hold                          | 2           |
//! | `A or B`  | either holds                       | 1 (loosest) |
//!
//! So `a or b and c` is `a or (b and c)`, `not a and b` is `(not a) and b`,
//! `a then b and c` is `(a then b) and c`, and `a or b then c` is
//! `a or (b then c)`. The binary operators are left-associative:
//! `a then b then c` is `(a then b) then c`. Parentheses group.
//! Keywords and term names are case-insensitive (`AND`, `Sound(...)`), and
//! whitespace (spaces, tabs, newlines) is free between tokens.
//!
//! # Terms
//!
//! A term is `name(arguments)`. Arguments are an optional positional value
//! first, then `key=value` pairs, separated by commas. Argument keys are
//! case-insensitive; each may be given once.
//!
//! | term | positional | keys | meaning |
//! |------|------------|------|---------|
//! | `object(label?, ...)` | optional label | `zone`, `min_count` (integer ≥ 1, default 1), `min_score` (0–1), `dwell` (duration) | at least `min_count` objects (of `label`, if given) are seen (in `zone`, if given), each for at least `dwell` |
//! | `sound(label, ...)` | required label | `min_score` (0–1) | a sound of that class is heard |
//! | `speech(...)` | none | `contains` | speech is heard (containing that text, if given) |
//! | `loud(...)` | none | `min_db` (dBFS, ≤ 0) | the audio is loud (at least `min_db`, if given) |
//! | `motion(...)` | none | `zone` | there is motion (in `zone`, if given) |
//! | `line(name, ...)` | required line name | `direction` (`in` or `out`) | something crosses the named line |
//! | `face(who?, ...)` | optional `known` or `unknown` | `name` | a face is seen (with face identity: anyone enrolled, anyone not, or that person) |
//! | `time(range)` | required `"HH:MM-HH:MM"` | none | the wall-clock time is in the range |
//!
//! # Values
//!
//! - A bare word is made of ASCII letters, digits, `_`, `-` and `.`:
//!   `person`, `door_1`, `-20`, `0.5`, `10s`.
//! - A double-quoted string may hold anything, with `\"` for a quote and
//!   `\\` for a backslash (no other escapes): `"sports ball"`,
//!   `"22:00-06:00"`, `"say \"help\""`. Quoting never changes what a value
//!   means; it only lets it hold spaces and other characters.
//! - Numbers are decimal: `3`, `-20`, `0.5`.
//! - Durations are a decimal number and a unit, `ms`, `s`, `m` or `h`:
//!   `500ms`, `10s`, `1.5s`, `2m`, `1h`. They are converted to whole
//!   nanoseconds exactly (no floating point); a duration finer than a
//!   nanosecond is an error.
//! - Time ranges are `"HH:MM-HH:MM"` (quoted, since `:` is not part of a
//!   bare word), each time `00:00` to `23:59`; the end may also be `24:00`,
//!   meaning midnight at the end of the day. A range is half-open (it
//!   includes its start, not its end) and wraps past midnight when its start
//!   is later than its end (`"22:00-06:00"`); equal start and end is an error.
//!
//! Object and sound labels are stored lower-cased (labels match
//! case-insensitively); zone names, line names and speech text are stored as
//! written.
//!
//! # Errors
//!
//! Every error carries the 1-based column of the offending token, counted in
//! characters (not bytes) from the start of the whole rule text. Rules are
//! meant to be one line; if the text does span lines, the message also names
//! the line and the column within it. A rule may be at most
//! [`MAX_RULE_CHARS`] characters long and nest parentheses at most
//! [`MAX_NESTING`] deep (a term's own parentheses count as a level).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use pest::Parser as _;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
/// The longest rule text accepted, in characters.
pub const MAX_RULE_CHARS: usize = 4096;

/// The deepest nesting of parentheses accepted, a term's own included.
pub const MAX_NESTING: usize = 64;

/// A parsed rule: a boolean expression over terms.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A single observation.
    Term(Term),
    /// `not A`: A does not hold.
    Not(Box<Expr>),
    /// `A and B`: both hold.
    And(Box<Expr>, Box<Expr>),
    /// `A or B`: either holds.
    Or(Box<Expr>, Box<Expr>),
    /// `A then B`: A happens, and afterwards B.
    Then(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// The terms of the expression, in source order.
    pub fn terms(&self) -> Vec<&Term> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(expr) = stack.pop() {
            match expr {
                Expr::Term(term) => out.push(term),
                Expr::Not(inner) => stack.push(inner),
                Expr::And(a, b) | Expr::Or(a, b) | Expr::Then(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
            }
        }
        out
    }
}

/// One term of a rule, such as `object(person, zone=door)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// What the term observes, with its arguments.
    pub kind: TermKind,
    /// The 1-based column (in characters) of the term's name.
    pub column: usize,
    /// The term's source text, e.g. `object(person, zone=door)`, for
    /// evidence in records.
    pub text: String,
}

/// What a term observes, with its arguments checked and converted.
#[derive(Clone, Debug, PartialEq)]
pub enum TermKind {
    /// `object(label?, zone=, min_count=, min_score=, dwell=)`.
    Object {
        /// The object class, lower-cased; `None` means any object.
        label: Option<String>,
        /// The zone the objects must be in, as written.
        zone: Option<String>,
        /// How many objects must be seen at once; at least 1 (default 1).
        min_count: u32,
        /// The lowest detection score that counts, in 0..=1.
        min_score: Option<f32>,
        /// How long, in nanoseconds, the objects must stay.
        dwell: Option<u64>,
    },
    /// `sound(label, min_score=)`.
    Sound {
        /// The sound class, lower-cased.
        label: String,
        /// The lowest classifier score that counts, in 0..=1.
        min_score: Option<f32>,
    },
    /// `speech(contains=)`.
    Speech {
        /// Text the speech must contain, as written.
        contains: Option<String>,
    },
    /// `loud(min_db=)`.
    Loud {
        /// The lowest level that counts, in dBFS (at most 0).
        min_db: Option<f32>,
    },
    /// `motion(zone=)`.
    Motion {
        /// The zone the motion must be in, as written.
        zone: Option<String>,
    },
    /// `line(name, direction=)`.
    Line {
        /// The line's name, as written.
        name: String,
        /// The direction of the crossing; `None` means either.
        direction: Option<Direction>,
    },
    /// `face()`, `face(known)`, `face(unknown)`, `face(name=…)`.
    Face {
        /// Whose face; `None` means anyone's.
        who: Option<FaceWho>,
    },
    /// `time("HH:MM-HH:MM")`: a half-open range of wall-clock time.
    Time {
        /// Start, in minutes since midnight, 0..=1439.
        from: u32,
        /// End, in minutes since midnight, 0..=1440 (1440 is `24:00`,
        /// midnight at the end of the day). `from > to` means the range
        /// wraps past midnight; `from == to` never occurs.
        to: u32,
    },
}

/// Whose face a `face()` term asks for (face identity).
#[derive(Clone, Debug, PartialEq)]
pub enum FaceWho {
    /// `face(known)`: anyone enrolled.
    Known,
    /// `face(unknown)`: anyone not enrolled.
    Unknown,
    /// `face(name=ann)`: that person (matched case-insensitively).
    Named(String),
}

/// The direction of a line crossing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `in`.
    In,
    /// `out`.
    Out,
}

/// Why a rule could not be parsed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// The 1-based column, in characters from the start of the rule text,
    /// of the offending token.
    pub column: usize,
    /// What is wrong, in plain words.
    pub message: String,
}

/// The grammar, kept in its own module so that pest's generated `Rule` enum
/// stays private.
mod grammar {
    use pest_derive::Parser;

    #[derive(Parser)]
    #[grammar_inline = r#"
WHITESPACE = _{ " " | "\t" | "\r" | "\n" }
word_char  = _{ ASCII_ALPHANUMERIC | "_" | "-" | "." }

rule    = { SOI ~ expr ~ EOI }
expr    = { not_op* ~ primary ~ (infix ~ not_op* ~ primary)* }
infix   = _{ or_op | and_op | then_op }
primary = _{ group | term }
group   = { open ~ expr ~ close }

not_op  = @{ ^"not" ~ !word_char }
and_op  = @{ ^"and" ~ !word_char }
or_op   = @{ ^"or" ~ !word_char }
then_op = @{ ^"then" ~ !word_char }

term   = { name ~ open ~ (arg ~ (comma ~ arg)*)? ~ close }
name   = @{ !keyword ~ ASCII_ALPHA ~ (ASCII_ALPHANUMERIC | "_")* }
keyword = _{ (^"and" | ^"or" | ^"then" | ^"not") ~ !word_char }
arg    = { (key ~ equals)? ~ (quoted | bare) }
key    = @{ ASCII_ALPHA ~ (ASCII_ALPHANUMERIC | "_")* }
quoted = ${ "\"" ~ body ~ quote }
body   = @{ ("\\" ~ ANY | !("\"" | "\\") ~ ANY)* }
quote  = { "\"" }
bare   = @{ word_char+ }

open   = { "(" }
close  = { ")" }
comma  = { "," }
equals = { "=" }
"#]
    pub(super) struct RuleParser;
}

use grammar::{Rule, RuleParser};

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::or_op, Assoc::Left))
        .op(Op::infix(Rule::and_op, Assoc::Left))
        .op(Op::infix(Rule::then_op, Assoc::Left))
        .op(Op::prefix(Rule::not_op))
});

const KNOWN_TERMS: &str = "object, sound, speech, loud, motion, line, face, time";
const TERM_EXAMPLE: &str = "a term such as object(person) or sound(siren)";

/// Parses a rule's `when` text into an expression.
///
/// Never panics; every problem is a [`ParseError`] naming the column of the
/// offending token.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let src = Source(source);
    if source.trim().is_empty() {
        return Err(src.error(0, format!("the rule is empty; expected {TERM_EXAMPLE}")));
    }
    if let Some((byte, _)) = source.char_indices().nth(MAX_RULE_CHARS) {
        return Err(src.error(
            byte,
            format!("the rule is too long (more than {MAX_RULE_CHARS} characters)"),
        ));
    }
    check_nesting(src)?;
    let mut pairs = RuleParser::parse(Rule::rule, source).map_err(|err| src.syntax_error(&err))?;
    // The grammar makes `rule` the only top-level pair and `expr` its first child.
    let expr = pairs
        .next()
        .and_then(|rule| rule.into_inner().next())
        .ok_or_else(|| src.error(0, "internal error: the grammar produced no expression"))?;
    build_expr(src, expr.into_inner())
}

/// Rejects parentheses nested deeper than [`MAX_NESTING`], before the
/// recursive grammar sees them.
fn check_nesting(src: Source<'_>) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (byte, c) in src.0.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(src.error(
                        byte,
                        format!(
                            "parentheses are nested too deeply (more than {MAX_NESTING} levels)"
                        ),
                    ));
                }
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The rule text, for turning byte offsets into columns.
#[derive(Clone, Copy)]
struct Source<'a>(&'a str);

impl Source<'_> {
    /// The 1-based character column of a byte offset.
    fn column(self, byte: usize) -> usize {
        self.0.char_indices().take_while(|&(i, _)| i < byte).count() + 1
    }

    fn error(self, byte: usize, message: impl Into<String>) -> ParseError {
        let mut message = message.into();
        if self.0.contains('\n') {
            let before = self.0.get(..byte).unwrap_or(self.0);
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line_column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
            message.push_str(&format!(" (line {line}, column {line_column})"));
        }
        ParseError {
            column: self.column(byte),
            message,
        }
    }

    /// The token at a byte offset, for "found ..." in messages.
    fn found(self, byte: usize) -> String {
        let rest = self.0.get(byte..).unwrap_or("");
        let word: String = rest
            .chars()
            .take_while(|&c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(20)
            .collect();
        if !word.is_empty() {
            return format!("`{word}`");
        }
        match rest.chars().next() {
            None => "the end of the rule".to_owned(),
            Some('`') => "a backquote".to_owned(),
            Some(c) => format!("`{c}`"),
        }
    }

    /// Turns pest's error into plain words.
    fn syntax_error(self, err: &pest::error::Error<Rule>) -> ParseError {
        let byte = match err.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((start, _)) => start,
        };
        let found = self.found(byte);
        let positives: BTreeSet<Rule> = match &err.variant {
            pest::error::ErrorVariant::ParsingError { positives, .. } => {
                positives.iter().copied().collect()
            }
            pest::error::ErrorVariant::CustomError { .. } => BTreeSet::new(),
        };
        let has = |r: Rule| positives.contains(&r);
        let at_end = self.0.get(byte..).is_some_and(|r| r.is_empty());

        if has(Rule::body) || has(Rule::quote) {
            let open = self
                .0
                .get(..byte)
                .and_then(|s| s.rfind('"'))
                .unwrap_or(byte);
            return self.error(open, "this string is never closed; add a closing `\"`");
        }
        if has(Rule::EOI) && found == "`)`" {
            return self.error(byte, "unmatched `)`: there is no `(` for it to close");
        }
        if has(Rule::EOI) && !at_end {
            return self.error(
                byte,
                format!(
                    "unexpected {found} after a complete rule; \
                     join terms with `and`, `or` or `then`"
                ),
            );
        }

        let mut expected: Vec<&str> = Vec::new();
        let mut push = |s: &'static str| {
            if !expected.contains(&s) {
                expected.push(s);
            }
        };
        let term_start = has(Rule::expr) || has(Rule::term) || has(Rule::name);
        if term_start {
            push(TERM_EXAMPLE);
        }
        if has(Rule::not_op) && !term_start {
            push("`not`");
        }
        if term_start || has(Rule::group) || has(Rule::open) {
            push("`(`");
        }
        if has(Rule::arg) || has(Rule::key) || has(Rule::bare) || has(Rule::quoted) {
            push("an argument such as `person`, `zone=door` or `\"sports ball\"`");
        }
        if has(Rule::equals) {
            push("`=`");
        }
        if has(Rule::comma) {
            push("`,`");
        }
        if has(Rule::close) {
            push("`)`");
        }
        if has(Rule::and_op) || has(Rule::or_op) || has(Rule::then_op) {
            push("`and`");
            push("`or`");
            push("`then`");
        }
        if has(Rule::EOI) {
            push("the end of the rule");
        }
        let expected = match expected.split_last() {
            None => "something else".to_owned(),
            Some((last, [])) => (*last).to_owned(),
            // "a, b or c", with a comma before the last "or" when an item
            // already says "or".
            Some((last, rest)) if rest.iter().any(|s| s.contains(" or ")) => {
                format!("{}, or {last}", rest.join(", "))
            }
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        };
        let mut message = format!("expected {expected}, found {found}");
        if self.0.get(byte..).is_some_and(|r| r.starts_with(':')) {
            message.push_str(" (quote values that hold `:` or spaces, e.g. time(\"22:00-06:00\"))");
        } else if self.0.get(byte..).is_some_and(|r| r.starts_with('\'')) {
            message.push_str(" (strings use double quotes: \"like this\")");
        }
        self.error(byte, message)
    }
}

fn build_expr(src: Source<'_>, pairs: Pairs<'_, Rule>) -> Result<Expr, ParseError> {
    PRATT
        .map_primary(|primary| match primary.as_rule() {
            Rule::term => build_term(src, primary).map(Expr::Term),
            Rule::group => {
                // group = open ~ expr ~ close
                let start = primary.as_span().start();
                let inner = primary
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::expr)
                    .ok_or_else(|| src.error(start, "internal error: empty group"))?;
                build_expr(src, inner.into_inner())
            }
            _ => Err(src.error(
                primary.as_span().start(),
                "internal error: unexpected token in expression",
            )),
        })
        .map_prefix(|_not, operand| Ok(Expr::Not(Box::new(operand?))))
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (Box::new(lhs?), Box::new(rhs?));
            Ok(match op.as_rule() {
                Rule::and_op => Expr::And(lhs, rhs),
                Rule::or_op => Expr::Or(lhs, rhs),
                _ => Expr::Then(lhs, rhs),
            })
        })
        .parse(pairs)
}

/// An argument value, unescaped, with where it starts.
struct Value {
    text: String,
    byte: usize,
}

/// A `key=value` argument.
struct Keyed {
    key: String,
    value: Value,
}

/// The terms of the language.
#[derive(Clone, Copy)]
enum Name {
    Object,
    Sound,
    Speech,
    Loud,
    Motion,
    Line,
    Face,
    Time,
}

impl Name {
    /// The term named `name` (already lower-cased), if there is one.
    fn lookup(name: &str) -> Option<Name> {
        Some(match name {
            "object" => Name::Object,
            "sound" => Name::Sound,
            "speech" => Name::Speech,
            "loud" => Name::Loud,
            "motion" => Name::Motion,
            "line" => Name::Line,
            "face" => Name::Face,
            "time" => Name::Time,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Name::Object => "object",
            Name::Sound => "sound",
            Name::Speech => "speech",
            Name::Loud => "loud",
            Name::Motion => "motion",
            Name::Line => "line",
            Name::Face => "face",
            Name::Time => "time",
        }
    }

    /// `None` if the term takes a positional value (optional or required);
    /// otherwise what to write instead of one.
    fn no_positional_hint(self) -> Option<&'static str> {
        match self {
            Name::Object | Name::Sound | Name::Line | Name::Time | Name::Face => None,
            Name::Speech => Some("write speech(contains=\"...\")"),
            Name::Loud => Some("write loud(min_db=-20)"),
            Name::Motion => Some("write motion(zone=door)"),
        }
    }

    /// The keys the term takes.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Name::Object => &["zone", "min_count", "min_score", "dwell"],
            Name::Sound => &["min_score"],
            Name::Speech => &["contains"],
            Name::Loud => &["min_db"],
            Name::Motion => &["zone"],
            Name::Line => &["direction"],
            Name::Face => &["name"],
            Name::Time => &[],
        }
    }
}

/// The arguments of one term, checked against what the term takes.
struct Args {
    positional: Option<Value>,
    keyed: Vec<Keyed>,
}

impl Args {
    /// Collects and checks the arguments in source order, so that the first
    /// problem in the text is the one reported.
    fn collect(
        src: Source<'_>,
        name: Name,
        pairs: Vec<Pair<'_, Rule>>,
    ) -> Result<Args, ParseError> {
        let term = name.as_str();
        let mut args = Args {
            positional: None,
            keyed: Vec::new(),
        };
        for arg in pairs {
            let mut key = None;
            let mut value = None;
            for part in arg.into_inner() {
                match part.as_rule() {
                    Rule::key => {
                        key = Some((part.as_str().to_ascii_lowercase(), part.as_span().start()))
                    }
                    Rule::bare => {
                        value = Some(Value {
                            text: part.as_str().to_owned(),
                            byte: part.as_span().start(),
                        })
                    }
                    Rule::quoted => value = Some(unquote(src, &part)?),
                    _ => {}
                }
            }
            // The grammar gives every `arg` a value.
            let Some(value) = value else { continue };
            let Some((key, byte)) = key else {
                let message = if let Some(hint) = name.no_positional_hint() {
                    format!("{term}() takes no positional value; {hint}")
                } else if !args.keyed.is_empty() {
                    format!(
                        "the positional value of {term}() must come before its key=value arguments"
                    )
                } else if args.positional.is_some() {
                    format!("{term}() takes one positional value; give the others as key=value")
                } else {
                    args.positional = Some(value);
                    continue;
                };
                return Err(src.error(value.byte, message));
            };
            let keys = name.keys();
            if !keys.contains(&key.as_str()) {
                let message = if keys.is_empty() {
                    format!("{term}() takes no key=value arguments, so not `{key}`")
                } else {
                    format!(
                        "{term}() has no argument `{key}`; it takes {}",
                        keys.join(", ")
                    )
                };
                return Err(src.error(byte, message));
            }
            if args.keyed.iter().any(|k| k.key == key) {
                return Err(src.error(
                    byte,
                    format!("{term}() has `{key}` twice; give each argument once"),
                ));
            }
            args.keyed.push(Keyed { key, value });
        }
        Ok(args)
    }

    /// Removes and returns the value of `key`, if given.
    fn take(&mut self, key: &str) -> Option<Value> {
        let i = self.keyed.iter().position(|k| k.key == key)?;
        Some(self.keyed.swap_remove(i).value)
    }
}

/// Unescapes a quoted string (`\"` and `\\` only).
fn unquote(src: Source<'_>, quoted: &Pair<'_, Rule>) -> Result<Value, ParseError> {
    let start = quoted.as_span().start();
    let raw = quoted.as_str();
    let body = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| src.error(start, "internal error: malformed string"))?;
    let mut text = String::with_capacity(body.len());
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some((_, e @ ('"' | '\\'))) => text.push(e),
            other => {
                let shown = other.map_or(String::new(), |(_, e)| e.to_string());
                return Err(src.error(
                    start + 1 + i,
                    format!(
                        "unknown escape `\\{shown}` in a string; only `\\\"` and `\\\\` are allowed"
                    ),
                ));
            }
        }
    }
    Ok(Value { text, byte: start })
}

fn build_term(src: Source<'_>, pair: Pair<'_, Rule>) -> Result<Term, ParseError> {
    let text = pair.as_str().to_owned();
    let term_byte = pair.as_span().start();
    let mut inner = pair.into_inner();
    let name_pair = inner
        .next()
        .ok_or_else(|| src.error(term_byte, "internal error: term without a name"))?;
    let name_byte = name_pair.as_span().start();
    let name = Name::lookup(&name_pair.as_str().to_ascii_lowercase()).ok_or_else(|| {
        src.error(
            name_byte,
            format!(
                "unknown term `{}`; the terms are {KNOWN_TERMS}",
                name_pair.as_str()
            ),
        )
    })?;
    let arg_pairs: Vec<_> = inner.filter(|p| p.as_rule() == Rule::arg).collect();
    let mut args = Args::collect(src, name, arg_pairs)?;

    let kind = match name {
        Name::Object => TermKind::Object {
            label: args.positional.take().map(|v| label(src, &v)).transpose()?,
            zone: args
                .take("zone")
                .map(|v| nonempty(src, v, "zone"))
                .transpose()?,
            min_count: args.take("min_count").map_or(Ok(1), |v| count(src, &v))?,
            min_score: args.take("min_score").map(|v| score(src, &v)).transpose()?,
            dwell: args.take("dwell").map(|v| duration(src, &v)).transpose()?,
        },
        Name::Sound => {
            let label = args
                .positional
                .take()
                .map(|v| label(src, &v))
                .transpose()?
                .ok_or_else(|| src.error(name_byte, "sound() needs a label, e.g. sound(siren)"))?;
            TermKind::Sound {
                label,
                min_score: args.take("min_score").map(|v| score(src, &v)).transpose()?,
            }
        }
        Name::Speech => TermKind::Speech {
            contains: args
                .take("contains")
                .map(|v| nonempty(src, v, "contains"))
                .transpose()?,
        },
        Name::Loud => TermKind::Loud {
            min_db: args.take("min_db").map(|v| decibels(src, &v)).transpose()?,
        },
        Name::Motion => TermKind::Motion {
            zone: args
                .take("zone")
                .map(|v| nonempty(src, v, "zone"))
                .transpose()?,
        },
        Name::Line => {
            let name = args
                .positional
                .take()
                .map(|v| nonempty(src, v, "line name"))
                .transpose()?
                .ok_or_else(|| {
                    src.error(name_byte, "line() needs a line name, e.g. line(entrance)")
                })?;
            TermKind::Line {
                name,
                direction: args
                    .take("direction")
                    .map(|v| direction(src, &v))
                    .transpose()?,
            }
        }
        Name::Face => {
            let named = args
                .take("name")
                .map(|v| nonempty(src, v, "name"))
                .transpose()?;
            let who = match (args.positional.take(), named) {
                (Some(v), Some(_)) => {
                    return Err(src.error(
                        v.byte,
                        "face() takes `known`, `unknown` or name=…, not two of them",
                    ));
                }
                (Some(v), None) => Some(match v.text.to_ascii_lowercase().as_str() {
                    "known" => FaceWho::Known,
                    "unknown" => FaceWho::Unknown,
                    _ => {
                        return Err(src.error(
                            v.byte,
                            format!(
                                "face({}): expected `known` or `unknown`; a person is face(name={})",
                                v.text, v.text
                            ),
                        ));
                    }
                }),
                (None, Some(n)) => Some(FaceWho::Named(n)),
                (None, None) => None,
            };
            TermKind::Face { who }
        }
        Name::Time => {
            let value = args.positional.take().ok_or_else(|| {
                src.error(
                    name_byte,
                    "time() needs a range, e.g. time(\"22:00-06:00\")",
                )
            })?;
            let (from, to) = time_range(src, &value)?;
            TermKind::Time { from, to }
        }
    };
    Ok(Term {
        kind,
        column: src.column(name_byte),
        text,
    })
}

fn nonempty(src: Source<'_>, value: Value, what: &str) -> Result<String, ParseError> {
    if value.text.trim().is_empty() {
        return Err(src.error(value.byte, format!("the {what} is empty")));
    }
    Ok(value.text)
}

fn label(src: Source<'_>, value: &Value) -> Result<String, ParseError> {
    if value.text.trim().is_empty() {
        return Err(src.error(value.byte, "the label is empty"));
    }
    Ok(value.text.to_lowercase())
}

fn count(src: Source<'_>, value: &Value) -> Result<u32, ParseError> {
    match value.text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(src.error(
            value.byte,
            format!(
                "min_count must be a whole number of at least 1, not `{}`",
                value.text
            ),
        )),
    }
}

fn score(src: Source<'_>, value: &Value) -> Result<f32, ParseError> {
    match value.text.parse::<f32>() {
        Ok(s) if (0.0..=1.0).contains(&s) => Ok(s),
        _ => Err(src.error(
            value.byte,
            format!(
                "min_score must be a number from 0 to 1, such as 0.5, not `{}`",
                value.text
            ),
        )),
    }
}

fn decibels(src: Source<'_>, value: &Value) -> Result<f32, ParseError> {
    match value.text.parse::<f32>() {
        Ok(db) if db.is_finite() && db <= 0.0 => Ok(db),
        _ => Err(src.error(
            value.byte,
            format!(
                "min_db must be a level in dBFS, 0 or below, such as -20, not `{}`",
                value.text
            ),
        )),
    }
}

fn direction(src: Source<'_>, value: &Value) -> Result<Direction, ParseError> {
    match value.text.to_ascii_lowercase().as_str() {
        "in" => Ok(Direction::In),
        "out" => Ok(Direction::Out),
        _ => Err(src.error(
            value.byte,
            format!("direction must be `in` or `out`, not `{}`", value.text),
        )),
    }
}

/// Parses a duration such as `1.5s` into whole nanoseconds, exactly.
fn duration(src: Source<'_>, value: &Value) -> Result<u64, ParseError> {
    let bad = |why: &str| {
        src.error(
            value.byte,
            format!(
                "`{}` is not a duration{why}; write a number and a unit (ms, s, m or h), \
                 such as 500ms, 10s, 1.5s or 2m",
                value.text
            ),
        )
    };
    let text = value.text.as_str();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let unit_ns: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err(bad(" (it has no unit)")),
        _ => return Err(bad("")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(bad(""));
    }
    let too_long = || bad(" (it is too long)");
    let mut ns: u128 = 0;
    for d in whole.bytes() {
        ns = ns
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(d - b'0')))
            .filter(|&n| n <= u128::from(u64::MAX))
            .ok_or_else(too_long)?;
    }
    ns = ns.checked_mul(unit_ns).ok_or_else(too_long)?;
    let fraction = fraction.trim_end_matches('0');
    if !fraction.is_empty() {
        let too_fine = || bad(" (it is finer than a nanosecond)");
        let mut numerator: u128 = 0;
        let mut denominator: u128 = 1;
        for d in fraction.bytes() {
            numerator = numerator
                .checked_mul(10)
                .and_then(|n| n.checked_add(u128::from(d - b'0')))
                .ok_or_else(too_fine)?;
            denominator = denominator.checked_mul(10).ok_or_else(too_fine)?;
        }
        let scaled = numerator.checked_mul(unit_ns).ok_or_else(too_fine)?;
        if scaled % denominator != 0 {
            return Err(too_fine());
        }
        ns = ns.checked_add(scaled / denominator).ok_or_else(too_long)?;
    }
    u64::try_from(ns).map_err(|_| too_long())
}

/// Parses `"HH:MM-HH:MM"` into minutes since midnight.
fn time_range(src: Source<'_>, value: &Value) -> Result<(u32, u32), ParseError> {
    let bad = |why: &str| {
        src.error(
            value.byte,
            format!(
                "`{}` is not a time range{why}; write \"HH:MM-HH:MM\", such as \"22:00-06:00\"",
                value.text
            ),
        )
    };
    let (from, to) = value.text.split_once('-').ok_or_else(|| bad(""))?;
    let clock = |s: &str, end: bool| -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(h) || h.len() > 2 || m.len() != 2 || !all_digits(m) {
            return None;
        }
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        match (h, m) {
            (0..=23, 0..=59) => Some(h * 60 + m),
            (24, 0) if end => Some(24 * 60),
            _ => None,
        }
    };
    let from = clock(from, false)
        .ok_or_else(|| bad(" (times run from 00:00 to 23:59; 24:00 may only end a range)"))?;
    let to = clock(to, true)
        .ok_or_else(|| bad(" (times run from 00:00 to 23:59; 24:00 may only end a range)"))?;
    if from == to {
        return Err(bad(" (it starts and ends at the same time)"));
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(source: &str) -> Expr {
        match parse(source) {
            Ok(expr) => expr,
            Err(err) => panic!("{source:?} failed: {err}"),
        }
    }

    fn kind(source: &str) -> TermKind {
        match ok(source) {
            Expr::Term(term) => term.kind,
            other => panic!("{source:?} is not a single term: {other:?}"),
        }
    }

    fn err(source: &str) -> ParseError {
        match parse(source) {
            Ok(expr) => panic!("{source:?} parsed: {expr:?}"),
            Err(err) => err,
        }
    }

    /// Asserts the error's column and that its message contains `needle`.
    fn fails(source: &str, column: usize, needle: &str) {
        let e = err(source);
        assert_eq!(e.column, column, "{source:?}: {e}");
        assert!(e.message.contains(needle), "{source:?}: {e}");
    }

    /// A compact rendering of the tree: terms by their source text.
    fn shape(expr: &Expr) -> String {
        match expr {
            Expr::Term(t) => t.text.clone(),
            Expr::Not(a) => format!("(not {})", shape(a)),
            Expr::And(a, b) => format!("({} and {})", shape(a), shape(b)),
            Expr::Or(a, b) => format!("({} or {})", shape(a), shape(b)),
            Expr::Then(a, b) => format!("({} then {})", shape(a), shape(b)),
        }
    }

    fn object(
        label: Option<&str>,
        zone: Option<&str>,
        min_count: u32,
        min_score: Option<f32>,
        dwell: Option<u64>,
    ) -> TermKind {
        TermKind::Object {
            label: label.map(str::to_owned),
            zone: zone.map(str::to_owned),
            min_count,
            min_score,
            dwell,
        }
    }

    #[test]
    fn the_examples_parse() {
        assert_eq!(
            shape(&ok("sound(glass) and object(person, zone=door)")),
            "(sound(glass) and object(person, zone=door))"
        );
        assert_eq!(
            shape(&ok("not time(\"08:00-18:00\") and loud(min_db=-20)")),
            "((not time(\"08:00-18:00\")) and loud(min_db=-20))"
        );
        assert_eq!(
            shape(&ok(
                "line(entrance, direction=in) then speech(contains=\"help\")"
            )),
            "(line(entrance, direction=in) then speech(contains=\"help\"))"
        );
    }

    #[test]
    fn object_with_every_argument_and_defaults() {
        assert_eq!(kind("object()"), object(None, None, 1, None, None));
        assert_eq!(
            kind("object(person)"),
            object(Some("person"), None, 1, None, None)
        );
        assert_eq!(
            kind("object(Person, zone=Door_1, min_count=3, min_score=0.5, dwell=10s)"),
            object(
                Some("person"),
                Some("Door_1"),
                3,
                Some(0.5),
                Some(10_000_000_000)
            )
        );
        assert_eq!(
            kind("object(zone=yard)"),
            object(None, Some("yard"), 1, None, None)
        );
        assert_eq!(
            kind("object(\"Sports Ball\", min_score=1)"),
            object(Some("sports ball"), None, 1, Some(1.0), None)
        );
        assert_eq!(
            kind("object(car, min_score=0)"),
            object(Some("car"), None, 1, Some(0.0), None)
        );
    }

    #[test]
    fn sound_speech_loud_motion() {
        assert_eq!(
            kind("sound(Glass)"),
            TermKind::Sound {
                label: "glass".into(),
                min_score: None
            }
        );
        assert_eq!(
            kind("sound(siren, min_score=0.75)"),
            TermKind::Sound {
                label: "siren".into(),
                min_score: Some(0.75)
            }
        );
        assert_eq!(kind("speech()"), TermKind::Speech { contains: None });
        assert_eq!(
            kind("speech(contains=\"Help Me\")"),
            TermKind::Speech {
                contains: Some("Help Me".into())
            }
        );
        assert_eq!(kind("loud()"), TermKind::Loud { min_db: None });
        assert_eq!(
            kind("loud(min_db=-20)"),
            TermKind::Loud {
                min_db: Some(-20.0)
            }
        );
        assert_eq!(kind("loud(min_db=0)"), TermKind::Loud { min_db: Some(0.0) });
        assert_eq!(
            kind("loud(min_db=-3.5)"),
            TermKind::Loud { min_db: Some(-3.5) }
        );
        assert_eq!(kind("motion()"), TermKind::Motion { zone: None });
        assert_eq!(
            kind("motion(zone=Driveway)"),
            TermKind::Motion {
                zone: Some("Driveway".into())
            }
        );
    }

    #[test]
    fn line_face_time() {
        assert_eq!(
            kind("line(Entrance)"),
            TermKind::Line {
                name: "Entrance".into(),
                direction: None
            }
        );
        assert_eq!(
            kind("line(gate, direction=in)"),
            TermKind::Line {
                name: "gate".into(),
                direction: Some(Direction::In)
            }
        );
        assert_eq!(
            kind("line(gate, direction=OUT)"),
            TermKind::Line {
                name: "gate".into(),
                direction: Some(Direction::Out)
            }
        );
        assert_eq!(kind("face()"), TermKind::Face { who: None });
        assert_eq!(kind("face( )"), TermKind::Face { who: None });
        assert_eq!(
            kind("face(Unknown)"),
            TermKind::Face {
                who: Some(FaceWho::Unknown)
            }
        );
        assert_eq!(
            kind("face(known)"),
            TermKind::Face {
                who: Some(FaceWho::Known)
            }
        );
        assert_eq!(
            kind("face(name=\"Ann Lee\")"),
            TermKind::Face {
                who: Some(FaceWho::Named("Ann Lee".into()))
            }
        );
        fails("face(bob)", 6, "a person is face(name=bob)");
        fails("face(known, name=ann)", 6, "not two of them");
        assert_eq!(
            kind("time(\"08:00-18:00\")"),
            TermKind::Time {
                from: 480,
                to: 1080
            }
        );
    }

    #[test]
    fn time_ranges() {
        let range = |s: &str| match kind(&format!("time(\"{s}\")")) {
            TermKind::Time { from, to } => (from, to),
            other => panic!("{other:?}"),
        };
        assert_eq!(range("22:00-06:00"), (1320, 360));
        assert_eq!(range("00:00-23:59"), (0, 1439));
        assert_eq!(range("23:59-00:00"), (1439, 0));
        assert_eq!(range("22:00-24:00"), (1320, 1440));
        assert_eq!(range("00:00-24:00"), (0, 1440));
        assert_eq!(range("8:05-9:30"), (485, 570));
        assert_eq!(range("22:00 - 06:00"), (1320, 360));
        fails("time(\"25:00-06:00\")", 6, "not a time range");
        fails("time(\"24:00-06:00\")", 6, "24:00 may only end a range");
        fails("time(\"10:60-11:00\")", 6, "00:00 to 23:59");
        fails(
            "time(\"06:00-06:00\")",
            6,
            "starts and ends at the same time",
        );
        fails("time(\"00:00-00:00\")", 6, "same time");
        fails("time(\"06:00\")", 6, "HH:MM-HH:MM");
        fails("time(\"6-7\")", 6, "HH:MM-HH:MM");
        fails("time(\"06:0-07:00\")", 6, "not a time range");
        fails("time(\"+6:00-07:00\")", 6, "not a time range");
        fails("time(morning)", 6, "not a time range");
        fails(
            "time()",
            1,
            "time() needs a range, e.g. time(\"22:00-06:00\")",
        );
        fails(
            "time(\"08:00-09:00\", tz=utc)",
            21,
            "time() takes no key=value",
        );
    }

    #[test]
    fn durations_are_exact_nanoseconds() {
        let dwell = |s: &str| match kind(&format!("object(dwell={s})")) {
            TermKind::Object { dwell, .. } => dwell,
            other => panic!("{other:?}"),
        };
        assert_eq!(dwell("1.5s"), Some(1_500_000_000));
        assert_eq!(dwell("250ms"), Some(250_000_000));
        assert_eq!(dwell("500ms"), Some(500_000_000));
        assert_eq!(dwell("2m"), Some(120_000_000_000));
        assert_eq!(dwell("1h"), Some(3_600_000_000_000));
        assert_eq!(dwell("10s"), Some(10_000_000_000));
        assert_eq!(dwell("0.1s"), Some(100_000_000));
        assert_eq!(dwell("0.3s"), Some(300_000_000));
        assert_eq!(dwell("1.000000001s"), Some(1_000_000_001));
        assert_eq!(dwell("0.5ms"), Some(500_000));
        assert_eq!(
            dwell("1.50000000000000000000000000000000000000000s"),
            Some(1_500_000_000)
        );
        assert_eq!(dwell("0s"), Some(0));
        assert_eq!(dwell("\"2.25m\""), Some(135_000_000_000));
        fails("object(dwell=10)", 14, "has no unit");
        fails("object(dwell=10x)", 14, "not a duration");
        fails("object(dwell=-5s)", 14, "not a duration");
        fails("object(dwell=.5s)", 14, "not a duration");
        fails("object(dwell=5.s)", 14, "not a duration");
        fails("object(dwell=1.2.3s)", 14, "not a duration");
        fails("object(dwell=0.0000000001s)", 14, "finer than a nanosecond");
        fails(
            "object(dwell=0.1234567890123456789012345678901234567891s)",
            14,
            "finer than a nanosecond",
        );
        fails("object(dwell=99999999999999999999h)", 14, "too long");
        fails("object(dwell=6000000h)", 14, "too long");
    }

    #[test]
    fn names_keywords_and_keys_are_case_insensitive() {
        assert_eq!(
            shape(&ok(
                "SOUND(glass) AND Object(PERSON, ZONE=Door) Or NOT face()"
            )),
            "((SOUND(glass) and Object(PERSON, ZONE=Door)) or (not face()))"
        );
        assert_eq!(
            kind("Object(PERSON, ZONE=Door)"),
            object(Some("person"), Some("Door"), 1, None, None)
        );
        assert_eq!(shape(&ok("face() THEN face()")), "(face() then face())");
    }

    #[test]
    fn precedence() {
        let cases = [
            ("a() or b() and c()", "(a() or (b() and c()))"),
            ("a() and b() or c()", "((a() and b()) or c())"),
            ("not a() and b()", "((not a()) and b())"),
            ("a() then b() and c()", "((a() then b()) and c())"),
            ("a() and b() then c()", "(a() and (b() then c()))"),
            ("a() or b() then c()", "(a() or (b() then c()))"),
            ("not a() then b()", "((not a()) then b())"),
            ("not not a()", "(not (not a()))"),
            ("a() or not b() and c()", "(a() or ((not b()) and c()))"),
        ];
        for (source, want) in cases {
            // `a`, `b`, `c` stand for real terms.
            let source = source
                .replace("a()", "face()")
                .replace("b()", "motion()")
                .replace("c()", "loud()");
            let want = want
                .replace("a()", "face()")
                .replace("b()", "motion()")
                .replace("c()", "loud()");
            assert_eq!(shape(&ok(&source)), want, "{source}");
        }
    }

    #[test]
    fn parentheses_and_left_associativity() {
        assert_eq!(
            shape(&ok("(face() or motion()) and loud()")),
            "((face() or motion()) and loud())"
        );
        assert_eq!(
            shape(&ok("not (face() or motion())")),
            "(not (face() or motion()))"
        );
        assert_eq!(
            shape(&ok("face() then (motion() then loud())")),
            "(face() then (motion() then loud()))"
        );
        assert_eq!(shape(&ok("((face()))")), "face()");
        for op in ["and", "or", "then"] {
            assert_eq!(
                shape(&ok(&format!("face() {op} motion() {op} loud()"))),
                format!("((face() {op} motion()) {op} loud())")
            );
        }
        assert_eq!(
            shape(&ok("not(face())and(motion())")),
            "((not face()) and motion())"
        );
    }

    #[test]
    fn whitespace_is_free() {
        let spaced = ok("  object ( person ,zone = door , min_count=2 )\tand\n sound( glass )  ");
        let tight = ok("object(person,zone=door,min_count=2)and sound(glass)");
        let kinds =
            |e: &Expr| -> Vec<TermKind> { e.terms().iter().map(|t| t.kind.clone()).collect() };
        assert_eq!(kinds(&spaced), kinds(&tight));
        assert!(matches!(spaced, Expr::And(..)));
        assert_eq!(
            spaced.terms()[0].text,
            "object ( person ,zone = door , min_count=2 )"
        );
        assert_eq!(spaced.terms()[0].column, 3);
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(
            kind(r#"speech(contains="say \"help\" now")"#),
            TermKind::Speech {
                contains: Some("say \"help\" now".into())
            }
        );
        assert_eq!(
            kind(r#"speech(contains="back\\slash")"#),
            TermKind::Speech {
                contains: Some("back\\slash".into())
            }
        );
        assert_eq!(
            kind(r#"sound("Glass Breaking")"#),
            TermKind::Sound {
                label: "glass breaking".into(),
                min_score: None
            }
        );
        assert_eq!(
            kind(r#"speech(contains="héllo, wörld (and) or not")"#),
            TermKind::Speech {
                contains: Some("héllo, wörld (and) or not".into())
            }
        );
        assert_eq!(
            kind(r#"object(min_count="2")"#),
            object(None, None, 2, None, None)
        );
        fails(r#"speech(contains="a\nb")"#, 19, "unknown escape `\\n`");
        fails(r#"speech(contains="help)"#, 17, "never closed");
        fails(r#"speech(contains="")"#, 17, "contains is empty");
        fails(r#"sound("  ")"#, 7, "label is empty");
    }

    #[test]
    fn terms_and_columns_and_text() {
        let expr =
            ok("not time(\"08:00-18:00\") and (sound(glass) then object(person,  zone=door))");
        let terms = expr.terms();
        let got: Vec<(usize, &str)> = terms.iter().map(|t| (t.column, t.text.as_str())).collect();
        assert_eq!(
            got,
            [
                (5, "time(\"08:00-18:00\")"),
                (30, "sound(glass)"),
                (48, "object(person,  zone=door)")
            ]
        );
        // Columns count characters, not bytes.
        let expr = ok("speech(contains=\"ééé\") or face()");
        assert_eq!(expr.terms()[1].column, 27);
    }

    #[test]
    fn syntax_errors() {
        fails("", 1, "the rule is empty");
        fails("   ", 1, "the rule is empty");
        fails(
            "sound(glass) and",
            17,
            "expected a term such as object(person) or sound(siren), or `(`, found the end of the rule",
        );
        fails("sound(glass) and and face()", 18, "found `and`");
        fails("and face()", 1, "expected a term");
        fails("(face()", 8, "expected `)`, `and`, `or` or `then`");
        fails("face() )", 8, "unmatched `)`");
        fails("face", 5, "expected `(`");
        fails("sound(glass", 12, "expected `=`, `,` or `)`");
        fails("sound(glass,)", 13, "expected an argument");
        fails("sound(glass zone)", 13, "found `zone`");
        fails("object(zone=)", 13, "expected an argument");
        fails("time(22:00-06:00)", 8, "quote values that hold `:`");
        fails("sound('glass')", 7, "double quotes");
        fails("not", 4, "expected a term");
        fails("()", 2, "expected a term");
        fails("ß(x)", 1, "found `ß`");
    }

    #[test]
    fn trailing_input() {
        fails(
            "sound(glass) face()",
            14,
            "unexpected `face` after a complete rule; join terms with `and`, `or` or `then`",
        );
        fails("sound(glass) andface()", 14, "unexpected `andface`");
    }

    #[test]
    fn unknown_terms_and_arguments() {
        fails(
            "face() or smoke(dense)",
            11,
            "unknown term `smoke`; the terms are object, sound, speech, loud, motion, line, face, time",
        );
        fails(
            "object(person, colour=red)",
            16,
            "object() has no argument `colour`; it takes zone, min_count, min_score, dwell",
        );
        fails("sound(glass, zone=door)", 14, "it takes min_score");
        fails(
            "face(min_score=0.5)",
            6,
            "face() has no argument `min_score`; it takes name",
        );
        fails("line(gate, dir=in)", 12, "it takes direction");
    }

    #[test]
    fn argument_shape_errors() {
        fails(
            "object(person, zone=a, zone=b)",
            24,
            "object() has `zone` twice",
        );
        fails("object(person, ZONE=a, zone=b)", 24, "twice");
        fails(
            "object(zone=door, person)",
            19,
            "positional value of object() must come before its key=value arguments",
        );
        fails(
            "object(person, car)",
            16,
            "object() takes one positional value",
        );
        fails("sound()", 1, "sound() needs a label, e.g. sound(siren)");
        fails(
            "face() and sound(min_score=0.5)",
            12,
            "sound() needs a label",
        );
        fails("line()", 1, "line() needs a line name, e.g. line(entrance)");
        fails("line(\"\")", 6, "line name is empty");
        fails("speech(help)", 8, "speech() takes no positional value");
        fails(
            "loud(-20)",
            6,
            "loud() takes no positional value; write loud(min_db=-20)",
        );
        fails("motion(door)", 8, "motion() takes no positional value");
        fails("face(x)", 6, "expected `known` or `unknown`");
    }

    #[test]
    fn the_first_problem_in_the_text_is_reported() {
        fails("foo(x, a=1, a=1)", 1, "unknown term `foo`");
        fails(
            "speech(contains=\"x\", hi)",
            22,
            "speech() takes no positional value",
        );
        fails("object(\"\", min_count=0)", 8, "label is empty");
        fails(
            "object(min_score=2, colour=red)",
            21,
            "no argument `colour`",
        );
        fails("smoke() and sound()", 1, "unknown term `smoke`");
    }

    #[test]
    fn value_errors() {
        fails(
            "object(min_count=0)",
            18,
            "min_count must be a whole number of at least 1",
        );
        fails("object(min_count=-1)", 18, "not `-1`");
        fails("object(min_count=1.5)", 18, "min_count");
        fails("object(min_count=99999999999)", 18, "min_count");
        fails(
            "object(min_score=1.5)",
            18,
            "min_score must be a number from 0 to 1",
        );
        fails("object(min_score=-0.1)", 18, "min_score");
        fails("sound(x, min_score=high)", 20, "min_score");
        fails("sound(x, min_score=nan)", 20, "min_score");
        fails(
            "loud(min_db=3)",
            13,
            "min_db must be a level in dBFS, 0 or below",
        );
        fails("loud(min_db=-inf)", 13, "min_db");
        fails("loud(min_db=loud)", 13, "min_db");
        fails(
            "line(gate, direction=up)",
            22,
            "direction must be `in` or `out`",
        );
        fails("motion(zone=\"\")", 13, "zone is empty");
    }

    #[test]
    fn multi_line_errors_name_the_line() {
        let e = err("face()\n  and smoke()");
        assert_eq!(e.column, 14);
        assert!(e.message.ends_with("(line 2, column 7)"), "{e}");
        assert_eq!(e.to_string(), format!("column 14: {}", e.message));
    }

    #[test]
    fn limits() {
        // A term's own parentheses count as a level.
        let groups = MAX_NESTING - 1;
        let deep = format!("{}face(){}", "(".repeat(groups), ")".repeat(groups));
        assert_eq!(kind(&deep), TermKind::Face { who: None });
        let deeper = format!("{}face(){}", "(".repeat(100_000), ")".repeat(100_000));
        fails(
            &deeper[..MAX_RULE_CHARS],
            MAX_NESTING + 1,
            "nested too deeply",
        );
        fails(&deeper, MAX_RULE_CHARS + 1, "too long");
        // Parentheses inside strings do not count.
        let quoted = format!("speech(contains=\"{}\")", "(".repeat(200));
        assert!(parse(&quoted).is_ok());
        let many_nots = format!("{}face()", "not ".repeat(1000));
        assert!(parse(&many_nots).is_ok());
        let long_chain = vec!["face()"; 400].join(" or ");
        assert_eq!(ok(&long_chain).terms().len(), 400);
    }

    /// Parses a few thousand generated garbage strings: none may panic, and
    /// every error's column must lie within the text (or just after it).
    #[test]
    fn garbage_never_panics() {
        const PIECES: &[&str] = &[
            "object",
            "sound",
            "speech",
            "loud",
            "motion",
            "line",
            "face",
            "time",
            "(",
            ")",
            "(",
            ")",
            ",",
            "=",
            "\"",
            "\\",
            " ",
            " and ",
            " or ",
            " then ",
            "not ",
            "zone",
            "min_count",
            "min_score",
            "dwell",
            "contains",
            "min_db",
            "direction",
            "in",
            "out",
            "person",
            "-20",
            "0.5",
            "1.5s",
            "250ms",
            "22:00-06:00",
            "24:00",
            ":",
            "-",
            ".",
            "é",
            "ß",
            "日本",
            "🦀",
            "\u{0}",
            "\n",
            "\t",
            "\u{202e}",
            "'",
            "`",
            "x",
            "99999999999999999999",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let len = (next() % 24) as usize;
            let mut text = String::new();
            for _ in 0..len {
                let r = next();
                if round % 3 == 0 && r % 5 == 0 {
                    // Any character at all, valid Unicode.
                    text.push(char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('\u{fffd}'));
                } else {
                    text.push_str(PIECES[(r >> 8) as usize % PIECES.len()]);
                }
            }
            if let Err(e) = parse(&text) {
                let chars = text.chars().count();
                assert!(
                    (1..=chars + 1).contains(&e.column),
                    "{text:?}: column {} of {chars}: {}",
                    e.column,
                    e.message
                );
                assert!(!e.message.contains("internal error"), "{text:?}: {e}");
            }
        }
    }
}
