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
    /// An array; its elements' type when an array literal's elements all have one.
    Array(Elem),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Unknown,
    Bool,
    Int,
    Float,
    Str,
}

impl Elem {
    fn of(ty: Ty) -> Elem {
        match ty {
            Ty::Bool => Elem::Bool,
            Ty::Int => Elem::Int,
            Ty::Float => Elem::Float,
            Ty::Str => Elem::Str,
            _ => Elem::Unknown,
        }
    }

    fn ty(self) -> Ty {
        match self {
            Elem::Unknown => Ty::Unknown,
            Elem::Bool => Ty::Bool,
            Elem::Int => Ty::Int,
            Elem::Float => Ty::Float,
            Elem::Str => Ty::Str,
        }
    }
}

const ARRAY: Ty = Ty::Array(Elem::Unknown);

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Unknown => "unknown",
            Ty::Nil => "nil",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Str => "string",
            Ty::Array(_) => "array",
        }
    }

    fn number(self) -> bool {
        matches!(self, Ty::Int | Ty::Float)
    }

    /// Unknown, or one of `allowed` (arrays whatever their elements); never nil.
    fn maybe(self, allowed: &[Ty]) -> bool {
        let alike = |a: &Ty| *a == self || matches!((a, self), (Ty::Array(_), Ty::Array(_)));
        self == Ty::Unknown || allowed.iter().any(alike)
    }

    /// What `==` compares alike: ints with floats, otherwise the same type.
    fn kind(self) -> Option<Ty> {
        match self {
            Ty::Unknown | Ty::Nil => None,
            Ty::Int => Some(Ty::Float),
            Ty::Array(_) => Some(ARRAY),
            t => Some(t),
        }
    }
}

const NUMBERS: [Ty; 2] = [Ty::Int, Ty::Float];

type Fail = (Span, EvalErrorKind);

/// Checks `root` as KEDA's `float(root)` wrapper would see it; `nil_allowed` is its `??` form.
pub(super) fn check(root: &Expr, nil_allowed: bool) -> Result<(), Fail> {
    let mut checker = Checker {
        locals: Vec::new(),
        elements: Vec::new(),
    };
    match checker.ty(root)? {
        Ty::Nil if !nil_allowed => Err((root.span, EvalErrorKind::NilResult)),
        ty @ (Ty::Bool | Ty::Array(_)) => {
            let found = ty.name();
            Err((root.span, EvalErrorKind::NotANumber { found }))
        }
        _ => Ok(()),
    }
}

struct Checker {
    locals: Vec<Ty>,
    /// The element type of each closure being checked, innermost last.
    elements: Vec<Elem>,
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
            Node::Element => self.elements.last().map_or(Ty::Unknown, |e| e.ty()),
            Node::Bool(_) => Ty::Bool,
            Node::Int(_) | Node::ElementIndex => Ty::Int,
            Node::Float(_) | Node::Var(_) => Ty::Float,
            Node::Str(_) => Ty::Str,
            Node::Local(slot) => self.locals.get(*slot).copied().unwrap_or(Ty::Unknown),
            Node::Array(items) => {
                // expr-lang: an array of one type when every element has it.
                let mut elem = None;
                for item in items {
                    let e = Elem::of(self.ty(item)?);
                    elem = Some(if elem.is_none_or(|prev| prev == e) {
                        e
                    } else {
                        Elem::Unknown
                    });
                }
                Ty::Array(elem.unwrap_or(Elem::Unknown))
            }
            Node::Unary(op, operand) => {
                let t = self.ty(operand)?;
                unary(*op, t, e.span)?
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
                if !a.maybe(&[ARRAY, Ty::Str]) || !i.maybe(&[Ty::Int]) {
                    return Err(invalid("[]", a, i, e.span));
                }
                match a {
                    Ty::Array(elem) => elem.ty(),
                    _ => Ty::Unknown,
                }
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
            // A closure's `#` is an element of the first argument.
            let closure = matches!(arg.node, Node::Closure(_));
            if closure {
                let elem = match types.first() {
                    Some(Ty::Array(elem)) => *elem,
                    _ => Elem::Unknown,
                };
                self.elements.push(elem);
            }
            let ty = self.ty(arg);
            if closure {
                self.elements.pop();
            }
            types.push(ty?);
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
                check(first.maybe(&[ARRAY, Ty::Str]))?;
                Ty::Int
            }
            Builtin::Max | Builtin::Min | Builtin::Mean | Builtin::Median => {
                if let Some(bad) = types
                    .iter()
                    .find(|t| !t.maybe(&[Ty::Int, Ty::Float, ARRAY]))
                {
                    return Err(argument(builtin, *bad, span));
                }
                // expr-lang types these as their first argument; unknown is the safe reading.
                Ty::Unknown
            }
            _ => {
                check(first.maybe(&[ARRAY]))?;
                let body = types.get(1).copied();
                if !matches!(builtin, Builtin::Map | Builtin::Sum) || body == Some(Ty::Nil) {
                    let body = body.unwrap_or(Ty::Unknown);
                    need_bool("the closure of a predicate builtin", body, span)?;
                }
                match builtin {
                    Builtin::Map => Ty::Array(body.map_or(Elem::Unknown, Elem::of)),
                    Builtin::Filter => first,
                    Builtin::Count => Ty::Int,
                    // expr-lang types a sum as its closure's result.
                    Builtin::Sum => body.unwrap_or(Ty::Unknown),
                    _ => Ty::Bool,
                }
            }
        })
    }
}

fn unary(op: UnOp, t: Ty, span: Span) -> Result<Ty, Fail> {
    let (ok, op) = match op {
        UnOp::Not => (t.maybe(&[Ty::Bool]), "!"),
        UnOp::Neg => (t.maybe(&NUMBERS), "-"),
        UnOp::Plus => (t.maybe(&NUMBERS), "+"),
    };
    if !ok {
        let operand = t.name();
        return Err((span, EvalErrorKind::InvalidUnary { op, operand }));
    }
    Ok(if op == "!" { Ty::Bool } else { t })
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
        BinOp::In | BinOp::NotIn => {
            let elem = match r {
                Ty::Array(elem) => elem.ty(),
                _ => Ty::Unknown,
            };
            let comparable = l.kind().zip(elem.kind()).is_none_or(|(a, b)| a == b);
            r.maybe(&[ARRAY]) && comparable
        }
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
        // expr-lang: the side that is not nil, or the left when both have its type.
        BinOp::Coalesce if r == Ty::Nil || l == r => l,
        BinOp::Coalesce if l == Ty::Nil => r,
        BinOp::Coalesce | BinOp::Add | BinOp::Sub | BinOp::Mul => Ty::Unknown,
        _ => Ty::Bool,
    })
}
