//! A tree-walking evaluator with expr-lang's runtime semantics (vm/runtime, builtin/lib.go):
//! ints and floats are distinct, `/` and `**` give floats, `%` takes ints, `+ - *` on two
//! ints wrap as Go's int does. Recursion follows the AST, whose depth the parser bounds; every
//! node visited, closure iteration and flattened element costs a step against `max_steps`.

use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use super::parser::{BinOp, Builtin, Expr, Node, UnOp};
use super::{Formula, Position, Span};

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Array(Rc<[Value]>),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// What went wrong while running a formula.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalErrorKind {
    #[error("invalid operation: {left} {op} {right}{}", operation_hint(.op))]
    InvalidOperation {
        op: &'static str,
        left: &'static str,
        right: &'static str,
    },
    #[error("invalid operation: {op}{operand}")]
    InvalidUnary {
        op: &'static str,
        operand: &'static str,
    },
    #[error("{context} needs a bool, not {found}")]
    NotBool {
        context: &'static str,
        found: &'static str,
    },
    #[error("integer divide by zero")]
    DivideByZero,
    #[error("invalid argument for {function} (type {found})")]
    InvalidArgument {
        function: &'static str,
        found: &'static str,
    },
    #[error("invalid operation: {function}({text:?})")]
    NotANumberString {
        function: &'static str,
        text: String,
    },
    #[error("index {index} out of range (array length is {len})")]
    IndexOutOfRange { index: i64, len: usize },
    #[error(
        "the formula evaluated to nil (a trigger without a value); give a default with `??`, e.g. `a ?? 0`"
    )]
    NilResult,
    #[error("the formula evaluated to a {found}, not a number; e.g. write `cond ? 1 : 0`")]
    NotANumber { found: &'static str },
    #[error("the formula needs more than {max} evaluation steps; simplify it")]
    TooManySteps { max: u64 },
}

fn operation_hint(op: &str) -> &'static str {
    match op {
        "%" => "; `%` takes ints, e.g. int(a) % 2",
        _ => "",
    }
}

/// An [`EvalErrorKind`] and where in the formula it happened (`None`: the result itself).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub at: Option<Position>,
    pub kind: EvalErrorKind,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "{at}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for EvalError {}

/// An error kind and the span it points at, positioned once at the end.
type Fail = (Span, EvalErrorKind);
type VResult = Result<Value, Fail>;

struct Machine<'f> {
    vars: &'f [Option<f64>],
    locals: Vec<Value>,
    /// `#` and `#index` of the closures being run, innermost last.
    elements: Vec<(Value, i64)>,
    steps: u64,
    max_steps: u64,
}

pub(super) fn run(formula: &Formula, values: &[Option<f64>]) -> Result<Option<f64>, EvalError> {
    let mut machine = Machine {
        vars: values,
        locals: Vec::new(),
        elements: Vec::new(),
        steps: 0,
        max_steps: formula.max_steps,
    };
    let value = machine
        .eval(&formula.root)
        .map_err(|(span, kind)| EvalError {
            at: Some(Position::of(&formula.source, span.start)),
            kind,
        })?;
    result(value, formula.nil_allowed).map_err(|kind| EvalError { at: None, kind })
}

/// KEDA's wrapper: `float(F)`, or with `??`, `F == nil ? nil : float(F)`.
fn result(value: Value, nil_allowed: bool) -> Result<Option<f64>, EvalErrorKind> {
    match value {
        Value::Nil if nil_allowed => Ok(None),
        Value::Nil => Err(EvalErrorKind::NilResult),
        Value::Int(i) => Ok(Some(i as f64)),
        Value::Float(f) => Ok(Some(f)),
        Value::Str(s) => parse_float(&s).map(Some),
        other => Err(EvalErrorKind::NotANumber {
            found: other.type_name(),
        }),
    }
}

fn parse_float(s: &str) -> Result<f64, EvalErrorKind> {
    s.parse::<f64>()
        .map_err(|_| EvalErrorKind::NotANumberString {
            function: "float",
            text: s.to_owned(),
        })
}

impl Machine<'_> {
    fn tick(&mut self, span: Span, n: u64) -> Result<(), Fail> {
        self.steps += n;
        if self.steps > self.max_steps {
            let max = self.max_steps;
            return Err((span, EvalErrorKind::TooManySteps { max }));
        }
        Ok(())
    }

    fn eval(&mut self, e: &Expr) -> VResult {
        self.tick(e.span, 1)?;
        Ok(match &e.node {
            Node::Nil => Value::Nil,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::Float(f) => Value::Float(*f),
            Node::Str(s) => Value::Str(Arc::clone(s)),
            Node::Var(i) => self
                .vars
                .get(*i)
                .copied()
                .flatten()
                .map_or(Value::Nil, Value::Float),
            Node::Local(slot) => self.locals.get(*slot).cloned().unwrap_or(Value::Nil),
            Node::Element => self.elements.last().map_or(Value::Nil, |e| e.0.clone()),
            Node::ElementIndex => self.elements.last().map_or(Value::Nil, |e| Value::Int(e.1)),
            Node::Array(items) => {
                let values: Result<Vec<Value>, Fail> = items.iter().map(|i| self.eval(i)).collect();
                Value::Array(Rc::from(values?))
            }
            Node::Unary(op, operand) => {
                let value = self.eval(operand)?;
                unary(*op, value).map_err(|k| (e.span, k))?
            }
            Node::Chain(first, rest) => self.chain(first, rest)?,
            Node::Pow(base, exp) => {
                let (b, x) = (self.eval(base)?, self.eval(exp)?);
                match (b.number(), x.number()) {
                    (Some(b), Some(x)) => Value::Float(b.powf(x)),
                    _ => return Err((e.span, invalid("**", &b, &x))),
                }
            }
            Node::Cond(cond, then, other) => {
                if self.condition(cond, "the condition of `?:` or `if`")? {
                    self.eval(then)?
                } else {
                    self.eval(other)?
                }
            }
            Node::Elvis(value, other) => {
                if self.condition(value, "the left of `?:`")? {
                    Value::Bool(true)
                } else {
                    self.eval(other)?
                }
            }
            Node::Let(value, body) => {
                let value = self.eval(value)?;
                self.locals.push(value);
                let out = self.eval(body);
                self.locals.pop();
                out?
            }
            Node::Seq(items) => {
                let mut last = Value::Nil;
                for item in items {
                    last = self.eval(item)?;
                }
                last
            }
            Node::Call(builtin, args) => self.call(*builtin, args, e.span)?,
            Node::Closure(body) => self.eval(body)?,
            Node::Subscript(array, index) => {
                let (array, index) = (self.eval(array)?, self.eval(index)?);
                subscript(&array, &index).map_err(|k| (e.span, k))?
            }
        })
    }

    fn condition(&mut self, e: &Expr, context: &'static str) -> Result<bool, Fail> {
        match self.eval(e)? {
            Value::Bool(b) => Ok(b),
            other => Err((
                e.span,
                EvalErrorKind::NotBool {
                    context,
                    found: other.type_name(),
                },
            )),
        }
    }

    fn chain(&mut self, first: &Expr, rest: &[(BinOp, Span, Expr)]) -> VResult {
        if let Some(decided) = decided_bool(first, rest) {
            return Ok(Value::Bool(decided));
        }
        let mut acc = self.eval(first)?;
        for (op, span, right) in rest {
            acc = match op {
                BinOp::And | BinOp::Or => {
                    let Value::Bool(left) = acc else {
                        return Err((*span, not_bool(op_str(*op), &acc)));
                    };
                    if left == (*op == BinOp::Or) {
                        return Ok(Value::Bool(left));
                    }
                    let value = self.eval(right)?;
                    if !matches!(value, Value::Bool(_)) {
                        return Err((*span, not_bool(op_str(*op), &value)));
                    }
                    value
                }
                BinOp::Coalesce if acc != Value::Nil => return Ok(acc),
                BinOp::Coalesce => self.eval(right)?,
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    // A comparison chain: `acc` is the last operand, not a running result.
                    let value = self.eval(right)?;
                    self.tick(*span, text_cost(&acc) + text_cost(&value))?;
                    if !compare(*op, &acc, &value).map_err(|k| (*span, k))? {
                        return Ok(Value::Bool(false));
                    }
                    value
                }
                _ => {
                    let value = self.eval(right)?;
                    self.binary(*op, acc, value, *span)?
                }
            };
        }
        if rest.first().is_some_and(|(op, _, _)| is_comparison(*op)) {
            return Ok(Value::Bool(true));
        }
        Ok(acc)
    }

    fn binary(&mut self, op: BinOp, l: Value, r: Value, span: Span) -> VResult {
        use Value::{Float, Int, Str};
        self.tick(span, text_cost(&l) + text_cost(&r))?;
        let fail = |l: &Value, r: &Value| (span, invalid(op_str(op), l, r));
        Ok(match (op, &l, &r) {
            (BinOp::Add, Int(a), Int(b)) => Int(a.wrapping_add(*b)),
            (BinOp::Sub, Int(a), Int(b)) => Int(a.wrapping_sub(*b)),
            (BinOp::Mul, Int(a), Int(b)) => Int(a.wrapping_mul(*b)),
            (BinOp::Mod, Int(_), Int(0)) => return Err((span, EvalErrorKind::DivideByZero)),
            (BinOp::Mod, Int(a), Int(b)) => Int(a.wrapping_rem(*b)),
            (BinOp::Add, Str(a), Str(b)) => {
                self.tick(span, (a.len() + b.len()) as u64)?;
                Str(Arc::from(format!("{a}{b}")))
            }
            (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, _, _) => {
                let (Some(a), Some(b)) = (l.number(), r.number()) else {
                    return Err(fail(&l, &r));
                };
                Float(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    _ => a / b,
                })
            }
            (BinOp::Eq, _, _) => Value::Bool(self.equal(&l, &r, span)?),
            (BinOp::Ne, _, _) => Value::Bool(!self.equal(&l, &r, span)?),
            (BinOp::In | BinOp::NotIn, _, Value::Array(items)) => {
                let mut found = false;
                for item in items.iter() {
                    if self.equal(item, &l, span)? {
                        found = true;
                        break;
                    }
                }
                Value::Bool(found == (op == BinOp::In))
            }
            (BinOp::In | BinOp::NotIn, _, Value::Nil) => Value::Bool(op == BinOp::NotIn),
            _ => return Err(fail(&l, &r)),
        })
    }

    /// expr-lang's `runtime.Equal`: numbers by value across int and float, arrays element-wise,
    /// different types unequal.
    fn equal(&mut self, l: &Value, r: &Value, span: Span) -> Result<bool, Fail> {
        self.tick(span, 1 + text_cost(l) + text_cost(r))?;
        Ok(match (l, r) {
            (Value::Array(a), Value::Array(b)) => {
                if a.len() != b.len() {
                    return Ok(false);
                }
                for (x, y) in a.iter().zip(b.iter()) {
                    if !self.equal(x, y, span)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => match (l.number(), r.number()) {
                (Some(a), Some(b)) => a == b,
                _ => l == r,
            },
        })
    }

    fn call(&mut self, builtin: Builtin, args: &[Expr], span: Span) -> VResult {
        if matches!(
            builtin,
            Builtin::All
                | Builtin::Any
                | Builtin::None
                | Builtin::One
                | Builtin::Filter
                | Builtin::Map
                | Builtin::Count
                | Builtin::Sum
        ) {
            return self.closure_call(builtin, args, span);
        }
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            values.push(self.eval(arg)?);
        }
        match builtin {
            Builtin::Max | Builtin::Min => self.min_max(builtin, values, span),
            Builtin::Mean | Builtin::Median => self.average(builtin, values, span),
            _ => {
                let value = values.into_iter().next().unwrap_or(Value::Nil);
                self.tick(span, text_cost(&value))?;
                scalar(builtin, value).map_err(|k| (span, k))
            }
        }
    }

    /// The closure builtins (expr-lang's predicates): `#` is each element in turn.
    fn closure_call(&mut self, builtin: Builtin, args: &[Expr], span: Span) -> VResult {
        let items = match args.first().map(|a| self.eval(a)).transpose()? {
            Some(Value::Array(items)) => items,
            other => {
                let found = other.as_ref().map_or("nil", Value::type_name);
                let function = builtin.name();
                return Err((span, EvalErrorKind::InvalidArgument { function, found }));
            }
        };
        let body = args.get(1);
        let mut matched = 0usize;
        let mut out = Vec::new();
        let mut sum = Value::Int(0);
        for (index, item) in items.iter().enumerate() {
            let value = match body {
                Some(body) => {
                    self.elements.push((item.clone(), index as i64));
                    let value = self.eval(body);
                    self.elements.pop();
                    value?
                }
                None => item.clone(),
            };
            match builtin {
                Builtin::Map => out.push(value),
                Builtin::Sum => sum = self.binary(BinOp::Add, value, sum, span)?,
                _ => {
                    let Value::Bool(hit) = value else {
                        let found = value.type_name();
                        let context = "the closure of a predicate builtin";
                        return Err((span, EvalErrorKind::NotBool { context, found }));
                    };
                    if hit {
                        matched += 1;
                        if builtin == Builtin::Filter {
                            out.push(item.clone());
                        }
                    }
                    let decided = match builtin {
                        Builtin::All => !hit,
                        Builtin::Any | Builtin::None => hit,
                        Builtin::One => matched > 1,
                        _ => false,
                    };
                    if decided {
                        break;
                    }
                }
            }
        }
        Ok(match builtin {
            Builtin::All => Value::Bool(matched == items.len()),
            Builtin::Any => Value::Bool(matched > 0),
            Builtin::None => Value::Bool(matched == 0),
            Builtin::One => Value::Bool(matched == 1),
            Builtin::Count => Value::Int(matched as i64),
            Builtin::Sum => sum,
            _ => Value::Array(Rc::from(out)),
        })
    }

    /// The numbers of `values`, arrays flattened, as expr-lang's `minMax`/`mean`/`median` read.
    fn flatten(
        &mut self,
        builtin: Builtin,
        values: &[Value],
        out: &mut Vec<Value>,
        span: Span,
    ) -> Result<(), Fail> {
        for value in values {
            self.tick(span, 1)?;
            match value {
                Value::Int(_) | Value::Float(_) => out.push(value.clone()),
                Value::Array(items) => self.flatten(builtin, items, out, span)?,
                other => {
                    let function = builtin.name();
                    let found = other.type_name();
                    return Err((span, EvalErrorKind::InvalidArgument { function, found }));
                }
            }
        }
        Ok(())
    }

    fn min_max(&mut self, builtin: Builtin, values: Vec<Value>, span: Span) -> VResult {
        // expr-lang returns a lone argument that is neither a number nor an array as it is.
        if let [single] = values.as_slice()
            && !matches!(single, Value::Int(_) | Value::Float(_) | Value::Array(_))
        {
            return Ok(single.clone());
        }
        let mut numbers = Vec::new();
        self.flatten(builtin, &values, &mut numbers, span)?;
        let better = if builtin == Builtin::Max {
            Ordering::Greater
        } else {
            Ordering::Less
        };
        let mut best: Option<Value> = None;
        for n in numbers {
            let replace = match &best {
                None => true,
                Some(b) => order(&n, b) == Some(better),
            };
            if replace {
                best = Some(n);
            }
        }
        Ok(best.unwrap_or(Value::Nil))
    }

    fn average(&mut self, builtin: Builtin, values: Vec<Value>, span: Span) -> VResult {
        let mut numbers = Vec::new();
        self.flatten(builtin, &values, &mut numbers, span)?;
        let mut floats: Vec<f64> = numbers.iter().filter_map(Value::number).collect();
        let n = floats.len();
        if n == 0 {
            return Ok(Value::Float(0.0));
        }
        if builtin == Builtin::Mean {
            return Ok(Value::Float(floats.iter().sum::<f64>() / n as f64));
        }
        floats.sort_by(f64::total_cmp);
        Ok(Value::Float(if n % 2 == 1 {
            floats[n / 2]
        } else {
            (floats[n / 2 - 1] + floats[n / 2]) / 2.0
        }))
    }
}

/// Steps for reading a string: comparing, concatenating or parsing it is linear in its length.
fn text_cost(value: &Value) -> u64 {
    match value {
        Value::Str(s) => s.len() as u64 / 16,
        _ => 0,
    }
}

/// expr-lang's optimizer folds `x or true` to `true` and `x and false` to `false` (fold.go),
/// so `x` is never run: the same chains are decided here without running any operand.
fn decided_bool(first: &Expr, rest: &[(BinOp, Span, Expr)]) -> Option<bool> {
    let op = rest.first()?.0;
    if !matches!(op, BinOp::And | BinOp::Or) {
        return None;
    }
    let decisive = op == BinOp::Or;
    let mut operands = std::iter::once(first).chain(rest.iter().map(|(_, _, e)| e));
    operands
        .any(|e| constant_bool(e) == Some(decisive))
        .then_some(decisive)
}

/// A bool the optimizer knows before running: a literal, its negation, or a decided chain.
fn constant_bool(e: &Expr) -> Option<bool> {
    match &e.node {
        Node::Bool(b) => Some(*b),
        Node::Unary(UnOp::Not, operand) => constant_bool(operand).map(|b| !b),
        Node::Chain(first, rest) => decided_bool(first, rest),
        _ => None,
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
}

pub(super) fn op_str(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::In => "in",
        BinOp::NotIn => "not in",
        BinOp::And => "&&",
        BinOp::Or => "||",
        BinOp::Coalesce => "??",
    }
}

fn invalid(op: &'static str, l: &Value, r: &Value) -> EvalErrorKind {
    EvalErrorKind::InvalidOperation {
        op,
        left: l.type_name(),
        right: r.type_name(),
    }
}

fn not_bool(op: &'static str, found: &Value) -> EvalErrorKind {
    let context = match op {
        "&&" => "`&&`/`and`",
        _ => "`||`/`or`",
    };
    EvalErrorKind::NotBool {
        context,
        found: found.type_name(),
    }
}

/// Numbers by value, strings lexically; anything else has no order.
fn order(l: &Value, r: &Value) -> Option<Ordering> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        _ => l.number()?.partial_cmp(&r.number()?),
    }
}

fn compare(op: BinOp, l: &Value, r: &Value) -> Result<bool, EvalErrorKind> {
    let comparable = matches!(
        (l, r),
        (
            Value::Int(_) | Value::Float(_),
            Value::Int(_) | Value::Float(_)
        ) | (Value::Str(_), Value::Str(_))
    );
    if !comparable {
        return Err(invalid(op_str(op), l, r));
    }
    // NaN compares false every way, as in Go.
    Ok(match order(l, r) {
        None => false,
        Some(o) => match op {
            BinOp::Lt => o == Ordering::Less,
            BinOp::Le => o != Ordering::Greater,
            BinOp::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        },
    })
}

fn unary(op: UnOp, value: Value) -> Result<Value, EvalErrorKind> {
    Ok(match (op, value) {
        (UnOp::Neg, Value::Int(i)) => Value::Int(i.wrapping_neg()),
        (UnOp::Neg, Value::Float(f)) => Value::Float(-f),
        // expr-lang's VM passes any value through a unary `+` (only its checker minds).
        (UnOp::Plus, v) => v,
        (UnOp::Not, Value::Bool(b)) => Value::Bool(!b),
        (op, v) => {
            let op = match op {
                UnOp::Neg => "-",
                UnOp::Plus => "+",
                UnOp::Not => "!",
            };
            return Err(EvalErrorKind::InvalidUnary {
                op,
                operand: v.type_name(),
            });
        }
    })
}

fn subscript(array: &Value, index: &Value) -> Result<Value, EvalErrorKind> {
    let (Value::Array(items), Value::Int(i)) = (array, index) else {
        return Err(invalid("[]", array, index));
    };
    let len = items.len();
    let at = if *i < 0 { len as i64 + i } else { *i };
    usize::try_from(at)
        .ok()
        .and_then(|at| items.get(at))
        .cloned()
        .ok_or(EvalErrorKind::IndexOutOfRange { index: *i, len })
}

/// Go's `int(f)` on amd64, where KEDA runs: NaN and out-of-range values give the minimum.
fn go_int(f: f64) -> i64 {
    // -2^63 and 2^63, both exact as f64.
    let (low, high) = (i64::MIN as f64, -(i64::MIN as f64));
    if f.is_nan() || !(low..high).contains(&f) {
        return i64::MIN;
    }
    f as i64
}

/// The one-argument builtins (builtin/lib.go).
fn scalar(builtin: Builtin, value: Value) -> Result<Value, EvalErrorKind> {
    let function = builtin.name();
    let found = value.type_name();
    let bad = || EvalErrorKind::InvalidArgument { function, found };
    Ok(match (builtin, value) {
        (Builtin::Abs, Value::Int(i)) => Value::Int(i.wrapping_abs()),
        (Builtin::Abs, Value::Float(f)) => Value::Float(f.abs()),
        (Builtin::Ceil | Builtin::Floor | Builtin::Round, Value::Int(i)) => Value::Float(i as f64),
        (Builtin::Ceil, Value::Float(f)) => Value::Float(f.ceil()),
        (Builtin::Floor, Value::Float(f)) => Value::Float(f.floor()),
        // Go's math.Round: half away from zero, as f64::round.
        (Builtin::Round, Value::Float(f)) => Value::Float(f.round()),
        (Builtin::Int, Value::Int(i)) => Value::Int(i),
        (Builtin::Int, Value::Float(f)) => Value::Int(go_int(f)),
        (Builtin::Int, Value::Str(s)) => {
            Value::Int(
                s.parse::<i64>()
                    .map_err(|_| EvalErrorKind::NotANumberString {
                        function,
                        text: s.to_string(),
                    })?,
            )
        }
        (Builtin::Float, Value::Int(i)) => Value::Float(i as f64),
        (Builtin::Float, Value::Float(f)) => Value::Float(f),
        (Builtin::Float, Value::Str(s)) => Value::Float(parse_float(&s)?),
        (Builtin::Len, Value::Array(items)) => Value::Int(items.len() as i64),
        (Builtin::Len, Value::Str(s)) => Value::Int(s.chars().count() as i64),
        _ => return Err(bad()),
    })
}
