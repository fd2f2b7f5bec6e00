//! `spec.advanced.scalingModifiers.formula`: a compiler and evaluator for the part of
//! [expr-lang](https://github.com/expr-lang/expr) that KEDA formulas use.
//!
//! KEDA (pkg/scaling/modifiers/formula.go, apis/keda/v1alpha1/scaledobject_webhook.go) compiles
//! the formula with the named non-resource triggers as its only (float64) variables, wraps it in
//! `float(...)` (or, when it contains `??`, in `let r = (...); r == nil ? nil : float(r)`), and
//! runs it with each trigger's value, or nil for a trigger past its fallback failure threshold.
//! [`compile`] and [`Formula::eval`] do the same.
//!
//! Supported: number literals (ints, floats, exponents, `_`, `0x`/`0o`/`0b`), strings, `true`,
//! `false`, `nil`, `+ - * / % ** ^`, unary `- + ! not`, `== != < <= > >=` (chained `a < b < c`),
//! `&& || and or`, `in`/`not in` over arrays, `?:` and `??`, `if {} else {}`, `let x = ...;`,
//! `;` sequences, parentheses, arrays and indexing, the pipe `|`, comments, and the builtins in
//! [`BUILTINS`] with `#`/`#index` closures. Refused with a position (KEDA formulas over numbers
//! do not need them): maps, member access, slices, ranges, `matches`/`contains`/`startsWith`/
//! `endsWith`, bytes literals and the other builtins.
//!
//! Types are checked as far as they are certain when compiling (triggers are floats, as in
//! KEDA's typed environment), fully when running; KEDA's webhook also runs the formula once with
//! every trigger at -1, which [`Formula::eval`] with `Some(-1.0)` mirrors.
//!
//! Differences from expr-lang, all on inputs KEDA formulas do not meet: the static check is
//! conservative (what it cannot type, e.g. `max` results, shows only when the formula runs on it);
//! a formula starting with `float(` whose result is an int is converted, where KEDA returns an
//! error at every evaluation; `int()` of NaN or of a float out of range is Go's on amd64 (the
//! minimum int) on every platform; a broken formula that KEDA's textual wrapper happens to mend,
//! such as `a + b) // 2`, is refused. The ignored test `differential` runs Swell against
//! expr-lang 1.17.8 with KEDA's wrapper (hack/formula-oracle): 39,999 of 40,000 generated and
//! mutated formulas agree, the other being that last case.

mod check;
mod eval;
mod lexer;
mod parser;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

pub use eval::{EvalError, EvalErrorKind};
use parser::Expr;

/// The functions a formula may call.
pub const BUILTINS: [&str; 19] = [
    "abs", "all", "any", "ceil", "count", "filter", "float", "floor", "int", "len", "map", "max",
    "mean", "median", "min", "none", "one", "round", "sum",
];

/// Bounds on the work [`compile`] and [`Formula::eval`] do for one formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of formula text. KEDA has no such limit, but its 10,000-node limit keeps a real
    /// formula far below this (5,000 terms `trigger_name + ...` are about 80 KiB); it bounds the
    /// tokens lexed before parsing (48 bytes each, one per byte at worst).
    pub max_len: usize,
    /// Nesting of brackets, calls, closures, unary operators, `**`, ternaries and `let`s.
    pub max_depth: usize,
    /// AST nodes, counted as expr-lang counts them: KEDA refuses a formula over 10,000
    /// (`conf.DefaultMaxNodes`, "expression exceeds maximum allowed nodes"), including the
    /// nodes of its `float(...)` wrapper.
    pub max_nodes: usize,
    /// Evaluation steps (nodes visited, closure iterations, array elements built).
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 256 << 10,
            max_depth: 64,
            max_nodes: 10_000,
            max_steps: 1_000_000,
        }
    }
}

/// A byte range of the formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    fn to(self, other: Span) -> Span {
        Span::new(self.start, other.end.max(self.start))
    }
}

/// A 1-based line and column (in characters) of the formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Where byte `offset` of `src` is; computed only for an error, so one pass is fine.
    pub fn of(src: &str, offset: usize) -> Position {
        let before = src.get(..offset).unwrap_or(src);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// What is wrong at a position of the formula, with the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyntaxError {
    #[error("unrecognized character {0:?}; remove it")]
    UnknownCharacter(char),
    #[error("bad number `{0}`; write e.g. 10, 2.5, 1e3 or 0x1F")]
    BadNumber(String),
    #[error("string not terminated; close it with {0}")]
    UnterminatedString(char),
    #[error("unknown escape sequence in string; use \\\\ for a backslash")]
    BadEscape,
    #[error("comment not closed; end it with */")]
    UnclosedComment,
    #[error("unexpected {found}; expected {expected}")]
    Unexpected { found: String, expected: String },
    #[error("`{open}` at {opened} is not closed; add `{close}`")]
    Unclosed {
        open: &'static str,
        close: &'static str,
        opened: Position,
    },
    #[error("nesting deeper than {max} levels; flatten the formula")]
    TooDeep { max: usize },
    #[error(
        "the formula has more than {max} nodes, KEDA's limit (expr-lang's MaxNodes); shorten it"
    )]
    TooManyNodes { max: usize },
    #[error("operator `{0}` and `??` cannot be mixed; wrap either in parentheses")]
    MixedCoalesce(String),
    #[error("`#{0}` is only valid inside a closure, e.g. count([a, b], # > 1)")]
    PointerOutsideClosure(String),
    #[error(
        "`{0}` is already a name here (a trigger, a builtin or an outer `let`); choose another"
    )]
    Redeclared(String),
    #[error("`#{0}` is not available here; use `#` (the element), or `#index` in map's closure")]
    UnknownPointer(String),
    #[error("unknown function `{name}`; the functions are {}", BUILTINS.join(", "))]
    UnknownFunction { name: String },
    #[error("{name} takes {expected} argument(s), not {got}")]
    Arity {
        name: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error(
        "{0} is not supported in a Swell formula; a formula computes a number from trigger values"
    )]
    Unsupported(String),
    #[error("wrap the closure in {{ and }} to use `;` in it")]
    ClosureSequence,
    #[error(
        "a top-level `;` is refused by KEDA, which wraps the formula in float(...); wrap the sequence in parentheses"
    )]
    TopLevelSequence,
    #[error(
        "a trailing `;` is refused by KEDA, whose float(...) wrapper then does not parse; remove it"
    )]
    TrailingSemicolon,
    #[error(
        "a `//` comment at the end is refused by KEDA: it comments out the `)` of KEDA's float(...) wrapper; end it with a newline or use /* */"
    )]
    TrailingLineComment,
}

/// Why a formula does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormulaError {
    #[error("the formula is {len} bytes, over the limit of {max} bytes; shorten it")]
    TooLong { len: usize, max: usize },
    #[error("{at}: {error}")]
    Syntax {
        at: Position,
        span: Span,
        error: SyntaxError,
    },
    /// Identifiers that are neither a variable, a builtin nor a local; `names` in order of first
    /// use, `at` the first.
    #[error(
        "{at}: unknown name{} {}; the known names are: {}",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        if known.is_empty() { "(none)".to_owned() } else { known.join(", ") }
    )]
    UnknownNames {
        at: Position,
        names: Vec<String>,
        known: Vec<String>,
    },
    /// An operation that fails for any trigger values, which KEDA's type checker refuses.
    #[error("{at}: {error} (whatever the trigger values)")]
    Type {
        at: Position,
        span: Span,
        error: EvalErrorKind,
    },
}

/// How KEDA's `castToFloatIfNecessary` wraps a formula before compiling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrap {
    /// Left alone: it starts with `float(` (and has no `??`).
    None,
    /// `float(F)`.
    Float,
    /// `let _kedaCompositeResult = (F); _kedaCompositeResult == nil ? nil : float(...)`.
    Coalesce,
}

impl Wrap {
    fn of(src: &str) -> Wrap {
        if src.contains("??") {
            if src.starts_with("let _kedaCompositeResult = ") {
                return Wrap::None;
            }
            return Wrap::Coalesce;
        }
        if src.starts_with("float(") {
            return Wrap::None;
        }
        Wrap::Float
    }

    /// The wrapper's AST nodes, which count against expr-lang's limit.
    fn nodes(self) -> usize {
        match self {
            Wrap::None => 0,
            Wrap::Float => 1,
            Wrap::Coalesce => 8,
        }
    }
}

/// A compiled formula over the variables given to [`compile`].
#[derive(Debug, Clone)]
pub struct Formula {
    root: Expr,
    source: String,
    variables: Vec<String>,
    used: Vec<usize>,
    /// KEDA's `??` wrapper lets a nil result through (it then uses fallback.replicas × target).
    nil_allowed: bool,
    max_steps: u64,
}

/// Compiles `src` with `variables` (KEDA: the names of the non-resource triggers) as the only
/// names it may read, under the default [`Limits`].
pub fn compile(src: &str, variables: &[&str]) -> Result<Formula, FormulaError> {
    compile_with(src, variables, &Limits::default())
}

/// [`compile`] under `limits`.
pub fn compile_with(
    src: &str,
    variables: &[&str],
    limits: &Limits,
) -> Result<Formula, FormulaError> {
    if src.len() > limits.max_len {
        return Err(FormulaError::TooLong {
            len: src.len(),
            max: limits.max_len,
        });
    }
    let syntax = |(span, error): (Span, SyntaxError)| FormulaError::Syntax {
        at: Position::of(src, span.start),
        span,
        error,
    };
    let wrap = Wrap::of(src);
    let tokens = lexer::tokenize(src, wrap != Wrap::None).map_err(syntax)?;
    let nil_allowed = src.contains("??");
    let parsed = parser::parse(src, &tokens, variables, limits, wrap).map_err(syntax)?;
    if let Some(first) = parsed.unknown.first() {
        return Err(FormulaError::UnknownNames {
            at: Position::of(src, first.1.start),
            names: parsed
                .unknown
                .iter()
                .map(|(n, _)| (*n).to_owned())
                .collect(),
            known: variables.iter().map(|v| (*v).to_owned()).collect(),
        });
    }
    check::check(&parsed.root, nil_allowed).map_err(|(span, error)| FormulaError::Type {
        at: Position::of(src, span.start),
        span,
        error,
    })?;
    Ok(Formula {
        root: parsed.root,
        source: src.to_owned(),
        variables: variables.iter().map(|v| (*v).to_owned()).collect(),
        used: parsed.used,
        nil_allowed,
        max_steps: limits.max_steps,
    })
}

impl Formula {
    /// The variables the formula reads, in order of first use.
    pub fn free_variables(&self) -> impl Iterator<Item = &str> {
        self.used.iter().map(|i| self.variables[*i].as_str())
    }

    /// The variables given to [`compile`], in the order [`Formula::eval`] takes their values.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Runs the formula with `values[i]` for `variables()[i]`; `None` is KEDA's nil (a trigger
    /// past its fallback failure threshold, or absent). `Ok(None)` is a nil result, possible
    /// only with `??`, for which KEDA uses fallback.replicas × target.
    pub fn eval(&self, values: &[Option<f64>]) -> Result<Option<f64>, EvalError> {
        eval::run(self, values)
    }

    /// [`Formula::eval`] with values by name; a missing name is nil.
    pub fn eval_map(&self, values: &HashMap<&str, f64>) -> Result<Option<f64>, EvalError> {
        let by_index: Vec<Option<f64>> = self
            .variables
            .iter()
            .map(|v| values.get(v.as_str()).copied())
            .collect();
        self.eval(&by_index)
    }
}
