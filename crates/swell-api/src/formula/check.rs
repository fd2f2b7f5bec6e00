//! A conservative version of expr-lang's type checker (checker/checker.go): KEDA compiles the
//! formula with every trigger typed float64, so an operation that cannot work for any trigger
//! values (`a && b`, `a % 2`, `a ? 1 : 0`, a bool result) is refused at admission even on a
//! branch the webhook's run at -1 does not take. Only definite errors are reported: whatever
//! this cannot type (closure elements, `??`, `max`, indexing) is unknown and passes, as an
//! interface does in expr-lang. A literal `nil` is no type at all there: only `==`, `!=`, `??`
//! and the left of `in` take it.

use super::Span;
use super::eval::{EvalErrorKind, op_str};
use super::parser::{BinOp, Builtin, Expr, Node, UnOp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Unknown,
    Nil,
    Bool,
    Int,
    Float,
    Str,
    Array,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Unknown => "unknown",
            Ty::Nil => "nil",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Str => "string",
            Ty::Array => "array",
        }
    }

    fn number(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }

    /// Unknown, or one of `allowed`; never nil.
    fn maybe(self, allowed: &[Ty]) -> bool {
        self == Ty::Unknown || allowed.contains(&self)
    }

    /// What `==` compares alike: ints with floats, otherwise the same type.
    fn kind(self) -> Option<Ty> {
        match self {
            Ty::Unknown | Ty::Nil => None,
            Ty::Int => Some(Ty::Float),
            t => Some(t),
        }
    }
}

const NUMBERS: [Ty; 2] = [Ty::Int, Ty::Float];

type Fail = (Span, EvalErrorKind);

/// Checks `root` as KEDA's `float(root)` wrapper would see it; `nil_allowed` is its `??` form.
pub(super) fn check(root: &Expr, nil_allowed: bool) -> Result<(), Fail> {
    let mut checker = Checker { locals: Vec::new() };
    match checker.ty(root)? {
        Ty::Nil if !nil_allowed => Err((root.span, EvalErrorKind::NilResult)),
        ty @ (Ty::Bool | Ty::Array) => {
            let found = ty.name();
            Err((root.span, EvalErrorKind::NotANumber { found }))
        }
        _ => Ok(()),
    }
}

struct Checker {
    locals: Vec<Ty>,
}

fn invalid(op: &'static str, l: Ty, r: Ty, span: Span) -> Fail {
    let kind = EvalErrorKind::InvalidOperation {
        op,
        left: l.name(),
        right: r.name(),
    };
    (span, kind)
}

fn argument(builtin: Builtin, found: Ty, span: Span) -> Fail {
    let kind = EvalErrorKind::InvalidArgument {
        function: builtin.name(),
        found: found.name(),
    };
    (span, kind)
}

fn need_bool(context: &'static str, found: Ty, span: Span) -> Result<(), Fail> {
    if found.maybe(&[Ty::Bool]) {
        return Ok(());
    }
    let kind = EvalErrorKind::NotBool {
        context,
        found: found.name(),
    };
    Err((span, kind))
}

impl Checker {
    fn ty(&mut self, e: &Expr) -> Result<Ty, Fail> {
        Ok(match &e.node {
            Node::Nil => Ty::Nil,
            Node::Element => Ty::Unknown,
            Node::Bool(_) => Ty::Bool,
            Node::Int(_) | Node::ElementIndex => Ty::Int,
            Node::Float(_) | Node::Var(_) => Ty::Float,
            Node::Str(_) => Ty::Str,
            Node::Local(slot) => self.locals.get(*slot).copied().unwrap_or(Ty::Unknown),
            Node::Array(items) => {
                for item in items {
                    self.ty(item)?;
                }
                Ty::Array
            }
            Node::Unary(op, operand) => {
                let t = self.ty(operand)?;
                let ok = match op {
                    UnOp::Not => t.maybe(&[Ty::Bool]),
                    UnOp::Neg | UnOp::Plus => t.maybe(&NUMBERS),
                };
                if !ok {
                    let op = match op {
                        UnOp::Not => "!",
                        UnOp::Neg => "-",
                        UnOp::Plus => "+",
                    };
                    let kind = EvalErrorKind::InvalidUnary {
                        op,
                        operand: t.name(),
                    };
                    return Err((e.span, kind));
                }
                if *op == UnOp::Not { Ty::Bool } else { t }
            }
            Node::Chain(first, rest) => self.chain(first, rest)?,
            Node::Pow(base, exp) => {
                let (b, x) = (self.ty(base)?, self.ty(exp)?);
                if !b.maybe(&NUMBERS) || !x.maybe(&NUMBERS) {
                    return Err(invalid("**", b, x, e.span));
                }
                Ty::Float
            }
            Node::Cond(cond, then, other) => {
                let c = self.ty(cond)?;
                need_bool("the condition of `?:` or `if`", c, cond.span)?;
                let (a, b) = (self.ty(then)?, self.ty(other)?);
                if a == b { a } else { Ty::Unknown }
            }
            Node::Elvis(value, other) => {
                self.ty(value)?;
                self.ty(other)?;
                Ty::Unknown
            }
            Node::Let(value, body) => {
                let t = self.ty(value)?;
                self.locals.push(t);
                let out = self.ty(body);
                self.locals.pop();
                out?
            }
            Node::Seq(items) => {
                let mut last = Ty::Unknown;
                for item in items {
                    last = self.ty(item)?;
                }
                last
            }
            Node::Call(builtin, args) => self.call(*builtin, args, e.span)?,
            Node::Closure(body) => self.ty(body)?,
            Node::Subscript(array, index) => {
                let (a, i) = (self.ty(array)?, self.ty(index)?);
                if !a.maybe(&[Ty::Array, Ty::Str]) || !i.maybe(&[Ty::Int]) {
                    return Err(invalid("[]", a, i, e.span));
                }
                Ty::Unknown
            }
        })
    }

    fn chain(&mut self, first: &Expr, rest: &[(BinOp, Span, Expr)]) -> Result<Ty, Fail> {
        let mut acc = self.ty(first)?;
        for (op, span, right) in rest {
            let r = self.ty(right)?;
            acc = binary(*op, acc, r, *span)?;
            if matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge) {
                // In a comparison chain the next comparison's left is this right.
                acc = r;
            }
        }
        if rest
            .first()
            .is_some_and(|(op, _, _)| matches!(op, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge))
        {
            return Ok(Ty::Bool);
        }
        Ok(acc)
    }

    fn call(&mut self, builtin: Builtin, args: &[Expr], span: Span) -> Result<Ty, Fail> {
        let mut types = Vec::with_capacity(args.len());
        for arg in args {
            types.push(self.ty(arg)?);
        }
        let first = types.first().copied().unwrap_or(Ty::Unknown);
        let check = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(argument(builtin, first, span))
            }
        };
        Ok(match builtin {
            Builtin::Abs => {
                check(first.maybe(&NUMBERS))?;
                first
            }
            Builtin::Ceil | Builtin::Floor | Builtin::Round => {
                check(first.maybe(&NUMBERS))?;
                Ty::Float
            }
            Builtin::Int | Builtin::Float => {
                check(first.maybe(&[Ty::Int, Ty::Float, Ty::Str]))?;
                if builtin == Builtin::Int {
                    Ty::Int
                } else {
                    Ty::Float
                }
            }
            Builtin::Len => {
                check(first.maybe(&[Ty::Array, Ty::Str]))?;
                Ty::Int
            }
            Builtin::Max | Builtin::Min | Builtin::Mean | Builtin::Median => {
                if let Some(bad) = types
                    .iter()
                    .find(|t| !t.maybe(&[Ty::Int, Ty::Float, Ty::Array]))
                {
                    return Err(argument(builtin, *bad, span));
                }
                // expr-lang types these as their first argument; unknown is the safe reading.
                Ty::Unknown
            }
            _ => {
                check(first.maybe(&[Ty::Array]))?;
                let body = types.get(1).copied();
                if !matches!(builtin, Builtin::Map | Builtin::Sum) || body == Some(Ty::Nil) {
                    let body = body.unwrap_or(Ty::Unknown);
                    need_bool("the closure of a predicate builtin", body, span)?;
                }
                match builtin {
                    Builtin::Map | Builtin::Filter => Ty::Array,
                    Builtin::Count => Ty::Int,
                    // expr-lang types a sum as its closure's result.
                    Builtin::Sum => body.unwrap_or(Ty::Unknown),
                    _ => Ty::Bool,
                }
            }
        })
    }
}

/// The type of `l op r`, or the error expr-lang's checker reports for it.
fn binary(op: BinOp, l: Ty, r: Ty, span: Span) -> Result<Ty, Fail> {
    let both = |allowed: &[Ty]| l.maybe(allowed) && r.maybe(allowed);
    let ok = match op {
        BinOp::Eq | BinOp::Ne => l.kind().zip(r.kind()).is_none_or(|(a, b)| a == b),
        BinOp::Coalesce => true,
        BinOp::And | BinOp::Or => {
            let context = if op == BinOp::And {
                "`&&`/`and`"
            } else {
                "`||`/`or`"
            };
            need_bool(context, l, span)?;
            need_bool(context, r, span)?;
            true
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => both(&NUMBERS) || both(&[Ty::Str]),
        BinOp::Add => both(&NUMBERS) || both(&[Ty::Str]),
        BinOp::Sub | BinOp::Mul | BinOp::Div => both(&NUMBERS),
        BinOp::Mod => both(&[Ty::Int]),
        BinOp::In | BinOp::NotIn => r.maybe(&[Ty::Array]),
    };
    if !ok {
        return Err(invalid(op_str(op), l, r, span));
    }
    Ok(match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul if l == Ty::Int && r == Ty::Int => Ty::Int,
        BinOp::Add if l == Ty::Str && r == Ty::Str => Ty::Str,
        BinOp::Add | BinOp::Sub | BinOp::Mul if l.number() && r.number() => Ty::Float,
        BinOp::Div => Ty::Float,
        BinOp::Mod => Ty::Int,
        BinOp::Coalesce if l == r => l,
        BinOp::Coalesce | BinOp::Add | BinOp::Sub | BinOp::Mul => Ty::Unknown,
        _ => Ty::Bool,
    })
}
