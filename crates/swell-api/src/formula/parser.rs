//! expr-lang's precedence-climbing parser (parser/parser.go) to an AST with byte spans.
//!
//! Runs of one left-associative precedence (`a + b - c`, `a && b && c`, `a ?? b ?? c`) and
//! comparison chains (`a < b <= c`) are one flat [`Node::Chain`], so the AST's depth, and with
//! it the recursion of the parser and the evaluator, grows only with what [`Parser::enter`]
//! counts against `max_depth`: brackets, calls, closures, unary operators, `**`, ternaries and
//! `let`s. Every other recursion is bounded by the number of precedence levels.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::lexer::{Lexed, Tok};
use super::{Limits, Position, Span, SyntaxError, Wrap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    And,
    Or,
    Coalesce,
}

impl BinOp {
    fn precedence(self) -> u16 {
        match self {
            BinOp::Or => 10,
            BinOp::And => 15,
            BinOp::Eq | BinOp::Ne | BinOp::In | BinOp::NotIn => 20,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 20,
            BinOp::Add | BinOp::Sub => 30,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 60,
            BinOp::Coalesce => 500,
        }
    }

    fn is_comparison(self) -> bool {
        matches!(self, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnOp {
    Neg,
    Plus,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Builtin {
    Abs,
    All,
    Any,
    Ceil,
    Count,
    Filter,
    Float,
    Floor,
    Int,
    Len,
    Map,
    Max,
    Mean,
    Median,
    Min,
    None,
    One,
    Round,
    Sum,
}

impl Builtin {
    fn lookup(name: &str) -> Option<Builtin> {
        Some(match name {
            "abs" => Builtin::Abs,
            "all" => Builtin::All,
            "any" => Builtin::Any,
            "ceil" => Builtin::Ceil,
            "count" => Builtin::Count,
            "filter" => Builtin::Filter,
            "float" => Builtin::Float,
            "floor" => Builtin::Floor,
            "int" => Builtin::Int,
            "len" => Builtin::Len,
            "map" => Builtin::Map,
            "max" => Builtin::Max,
            "mean" => Builtin::Mean,
            "median" => Builtin::Median,
            "min" => Builtin::Min,
            "none" => Builtin::None,
            "one" => Builtin::One,
            "round" => Builtin::Round,
            "sum" => Builtin::Sum,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Builtin::Abs => "abs",
            Builtin::All => "all",
            Builtin::Any => "any",
            Builtin::Ceil => "ceil",
            Builtin::Count => "count",
            Builtin::Filter => "filter",
            Builtin::Float => "float",
            Builtin::Floor => "floor",
            Builtin::Int => "int",
            Builtin::Len => "len",
            Builtin::Map => "map",
            Builtin::Max => "max",
            Builtin::Mean => "mean",
            Builtin::Median => "median",
            Builtin::Min => "min",
            Builtin::None => "none",
            Builtin::One => "one",
            Builtin::Round => "round",
            Builtin::Sum => "sum",
        }
    }

    /// `(fewest, most)` arguments and whether the second is a closure (expr-lang's predicates).
    fn arity(self) -> (usize, usize, bool) {
        match self {
            Builtin::All | Builtin::Any | Builtin::None | Builtin::One => (2, 2, true),
            Builtin::Filter | Builtin::Map => (2, 2, true),
            Builtin::Count | Builtin::Sum => (1, 2, true),
            Builtin::Max | Builtin::Min | Builtin::Mean | Builtin::Median => (1, usize::MAX, false),
            _ => (1, 1, false),
        }
    }
}

/// expr-lang builtins this evaluator refuses as unsupported rather than unknown.
const OTHER_EXPR_BUILTINS: [&str; 44] = [
    "find",
    "findIndex",
    "findLast",
    "findLastIndex",
    "groupBy",
    "sortBy",
    "reduce",
    "type",
    "string",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "upper",
    "lower",
    "split",
    "splitAfter",
    "replace",
    "repeat",
    "join",
    "indexOf",
    "lastIndexOf",
    "hasPrefix",
    "hasSuffix",
    "toJSON",
    "fromJSON",
    "toBase64",
    "fromBase64",
    "now",
    "duration",
    "date",
    "timezone",
    "first",
    "last",
    "get",
    "take",
    "keys",
    "values",
    "toPairs",
    "fromPairs",
    "reverse",
    "uniq",
    "concat",
    "flatten",
    "sort",
];

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Shared with the values built from it, so a closure does not copy it per element.
    Str(Arc<str>),
    /// A variable, by its index in `compile`'s `variables`.
    Var(usize),
    /// A `let` binding, by its depth in the scope stack.
    Local(usize),
    /// `#` and `#index` of the innermost closure.
    Element,
    ElementIndex,
    Array(Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    /// `first op1 e1 op2 e2 ...`, left to right; comparisons compare neighbours, and-ed.
    Chain(Box<Expr>, Vec<(BinOp, Span, Expr)>),
    Pow(Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `a ?: b`: `a` when it is true, else `b`.
    Elvis(Box<Expr>, Box<Expr>),
    Let(Box<Expr>, Box<Expr>),
    Seq(Vec<Expr>),
    Call(Builtin, Vec<Expr>),
    Closure(Box<Expr>),
    Subscript(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Expr {
    pub(super) node: Node,
    pub(super) span: Span,
}

pub(super) struct Parsed<'a> {
    pub(super) root: Expr,
    pub(super) used: Vec<usize>,
    pub(super) unknown: Vec<(&'a str, Span)>,
}

type PResult<T> = Result<T, (Span, SyntaxError)>;

enum Infix {
    Op(BinOp),
    Pow,
    Pipe,
    Unsupported(&'static str),
}

struct Parser<'t, 'a, 'v> {
    src: &'a str,
    toks: &'t [(Tok<'a>, Span)],
    pos: usize,
    vars: HashMap<&'v str, usize>,
    locals: Vec<&'a str>,
    /// The builtins whose closures are being parsed, innermost last.
    closures: Vec<Builtin>,
    depth: usize,
    nodes: usize,
    wrap: Wrap,
    limits: Limits,
    seen: Vec<bool>,
    used: Vec<usize>,
    unknown: Vec<(&'a str, Span)>,
    unknown_seen: HashSet<&'a str>,
}

/// Parses the whole token stream as KEDA's `wrap` of it would parse; the wrapper's nodes count
/// against `max_nodes`, as in expr-lang.
pub(super) fn parse<'a>(
    src: &'a str,
    toks: &Lexed<'a>,
    variables: &[&str],
    limits: &Limits,
    wrap: Wrap,
) -> PResult<Parsed<'a>> {
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        vars: variables.iter().enumerate().map(|(i, v)| (*v, i)).collect(),
        locals: Vec::new(),
        closures: Vec::new(),
        depth: 0,
        nodes: wrap.nodes(),
        wrap,
        limits: *limits,
        seen: vec![false; variables.len()],
        used: Vec::new(),
        unknown: Vec::new(),
        unknown_seen: HashSet::new(),
    };
    let root = p.sequence()?;
    // `float(F,)` parses: a trailing comma is an empty last argument to expr-lang.
    if wrap == Wrap::Float && p.tok().is_op(",") && *p.peek() == Tok::Eof {
        p.advance();
    }
    match p.tok() {
        Tok::Eof => {}
        Tok::Op(close @ (")" | "]" | "}")) => {
            let found = format!("`{close}` with no opening bracket before it");
            let expected = "remove it or add the opening bracket".to_owned();
            return Err((p.span(), SyntaxError::Unexpected { found, expected }));
        }
        _ => return Err(p.unexpected("an operator or the end of the formula")),
    }
    // KEDA compiles `float(F)`, where a bare `a; b` does not parse; `??` formulas get `(F)`.
    if matches!(root.node, Node::Seq(_)) && wrap == Wrap::Float {
        return Err((root.span, SyntaxError::TopLevelSequence));
    }
    Ok(Parsed {
        root,
        used: p.used,
        unknown: p.unknown,
    })
}

impl<'a> Parser<'_, 'a, '_> {
    fn tok(&self) -> &Tok<'a> {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn span(&self) -> Span {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }

    fn peek(&self) -> &Tok<'a> {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)].0
    }

    fn advance(&mut self) -> Span {
        let span = self.span();
        self.pos += 1;
        span
    }

    fn unexpected(&self, expected: &str) -> (Span, SyntaxError) {
        let found = self.tok().describe();
        let expected = expected.to_owned();
        (self.span(), SyntaxError::Unexpected { found, expected })
    }

    fn expect(&mut self, op: &str, expected: &str) -> PResult<Span> {
        if self.tok().is_op(op) {
            Ok(self.advance())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// The closing bracket for the `open` at `opened`, or an error naming where it opened.
    fn close(&mut self, open: &'static str, close: &'static str, opened: Span) -> PResult<Span> {
        if self.tok().is_op(close) {
            return Ok(self.advance());
        }
        let opened_at = Position::of(self.src, opened.start);
        if *self.tok() == Tok::Eof {
            let error = SyntaxError::Unclosed {
                open,
                close,
                opened: opened_at,
            };
            return Err((self.span(), error));
        }
        Err(self.unexpected(&format!("`{close}` to close the `{open}` at {opened_at}")))
    }

    /// The `,` between items, or the error for an unclosed `open`.
    fn separator(&mut self, open: &'static str, close: &'static str, opened: Span) -> PResult<()> {
        if self.tok().is_op(",") {
            self.advance();
            return Ok(());
        }
        if *self.tok() == Tok::Eof {
            return self.close(open, close, opened).map(|_| ());
        }
        Err(self.unexpected(&format!("`,` or `{close}`")))
    }

    /// One more level of nesting, refused past `max_depth` before it can recurse further.
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            let max = self.limits.max_depth;
            return Err((self.span(), SyntaxError::TooDeep { max }));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn make(&mut self, node: Node, span: Span) -> PResult<Expr> {
        self.count(span)?;
        Ok(Expr { node, span })
    }

    fn count(&mut self, span: Span) -> PResult<()> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            let max = self.limits.max_nodes;
            return Err((span, SyntaxError::TooManyNodes { max }));
        }
        Ok(())
    }

    fn sequence(&mut self) -> PResult<Expr> {
        let first = self.expression(0)?;
        if !self.tok().is_op(";") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.tok().is_op(";") {
            let semicolon = self.advance();
            if *self.tok() == Tok::Eof {
                // Wrapped, the `;` is followed by KEDA's `)`, where no expression starts.
                if self.wrap != Wrap::None {
                    return Err((semicolon, SyntaxError::TrailingSemicolon));
                }
                break;
            }
            items.push(self.expression(0)?);
        }
        if items.len() == 1 {
            return Ok(items.remove(0));
        }
        let span = items[0].span.to(items[items.len() - 1].span);
        self.make(Node::Seq(items), span)
    }

    fn infix(&self) -> Option<(Infix, u16, usize)> {
        let op = match self.tok() {
            Tok::Op(op) => *op,
            _ => return None,
        };
        let bin = |b: BinOp| Some((Infix::Op(b), b.precedence(), 1));
        match op {
            "|" => Some((Infix::Pipe, 0, 1)),
            "or" | "||" => bin(BinOp::Or),
            "and" | "&&" => bin(BinOp::And),
            "==" => bin(BinOp::Eq),
            "!=" => bin(BinOp::Ne),
            "<" => bin(BinOp::Lt),
            "<=" => bin(BinOp::Le),
            ">" => bin(BinOp::Gt),
            ">=" => bin(BinOp::Ge),
            "in" => bin(BinOp::In),
            "+" => bin(BinOp::Add),
            "-" => bin(BinOp::Sub),
            "*" => bin(BinOp::Mul),
            "/" => bin(BinOp::Div),
            "%" => bin(BinOp::Mod),
            "**" | "^" => Some((Infix::Pow, 100, 1)),
            "??" => bin(BinOp::Coalesce),
            ".." => Some((Infix::Unsupported("the range operator `..`"), 25, 1)),
            "matches" | "contains" | "startsWith" | "endsWith" => {
                Some((Infix::Unsupported("a string operator"), 20, 1))
            }
            "not" => match self.peek() {
                Tok::Op("in") => Some((Infix::Op(BinOp::NotIn), 20, 2)),
                Tok::Op("matches" | "contains" | "startsWith" | "endsWith") => {
                    Some((Infix::Unsupported("a string operator"), 20, 2))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn expression(&mut self, min: u16) -> PResult<Expr> {
        if min == 0 && self.tok().is_op("let") {
            return self.let_binding();
        }
        if min == 0 && self.tok().is_op("if") {
            return self.if_else();
        }
        let mut left = self.primary()?;
        let mut prev: Option<BinOp> = None;
        while let Some((infix, precedence, len)) = self.infix() {
            if precedence < min {
                break;
            }
            let span = self.span();
            if prev == Some(BinOp::Coalesce) && !matches!(infix, Infix::Op(BinOp::Coalesce)) {
                let op = self.src[span.start..span.end].to_owned();
                return Err((span, SyntaxError::MixedCoalesce(op)));
            }
            self.pos += len;
            left = match infix {
                Infix::Unsupported(what) => {
                    return Err((span, SyntaxError::Unsupported(what.into())));
                }
                Infix::Pipe => self.pipe(left)?,
                Infix::Pow => {
                    self.enter()?;
                    let right = self.expression(precedence)?;
                    self.leave();
                    let whole = left.span.to(right.span);
                    self.make(Node::Pow(Box::new(left), Box::new(right)), whole)?
                }
                Infix::Op(op) if op.is_comparison() => self.comparison(left, op, span)?,
                Infix::Op(op) => {
                    let right = self.expression(precedence + 1)?;
                    self.chain(left, op, span, right)?
                }
            };
            prev = match infix {
                Infix::Op(op) => Some(op),
                _ => None,
            };
        }
        if min == 0 {
            return self.conditional(left);
        }
        Ok(left)
    }

    /// Appends `op right` to `left` when `left` is a chain of the same precedence, which for
    /// left-associative operators reads the same as nesting it.
    fn chain(&mut self, left: Expr, op: BinOp, span: Span, right: Expr) -> PResult<Expr> {
        self.count(span)?;
        let whole = left.span.to(right.span);
        match left.node {
            Node::Chain(first, mut rest)
                if rest.first().is_some_and(|(o, _, _)| {
                    o.precedence() == op.precedence() && !o.is_comparison()
                }) =>
            {
                rest.push((op, span, right));
                Ok(Expr {
                    node: Node::Chain(first, rest),
                    span: whole,
                })
            }
            node => {
                let left = Expr {
                    node,
                    span: left.span,
                };
                Ok(Expr {
                    node: Node::Chain(Box::new(left), vec![(op, span, right)]),
                    span: whole,
                })
            }
        }
    }

    /// `a < b <= c`: expr-lang's `parseComparison`, and-ing neighbouring comparisons.
    fn comparison(&mut self, left: Expr, op: BinOp, span: Span) -> PResult<Expr> {
        let mut rest = Vec::new();
        let (mut op, mut span) = (op, span);
        loop {
            self.count(span)?;
            if !rest.is_empty() {
                self.count(span)?; // the `&&` expr-lang adds
            }
            let right = self.expression(op.precedence() + 1)?;
            rest.push((op, span, right));
            match self.infix() {
                Some((Infix::Op(next), _, _)) if next.is_comparison() => {
                    (op, span) = (next, self.advance());
                }
                _ => break,
            }
        }
        let whole = left.span.to(rest[rest.len() - 1].2.span);
        Ok(Expr {
            node: Node::Chain(Box::new(left), rest),
            span: whole,
        })
    }

    /// `cond ? a : b` and `cond ?: b`, right-associative through `expression(0)`.
    fn conditional(&mut self, mut node: Expr) -> PResult<Expr> {
        while self.tok().is_op("?") {
            self.advance();
            self.enter()?;
            if self.tok().is_op(":") {
                self.advance();
                let other = self.expression(0)?;
                let span = node.span.to(other.span);
                node = self.make(Node::Elvis(Box::new(node), Box::new(other)), span)?;
            } else {
                let then = self.expression(0)?;
                self.expect(":", "`:` and the value for a false condition")?;
                let other = self.expression(0)?;
                let span = node.span.to(other.span);
                let cond = Node::Cond(Box::new(node), Box::new(then), Box::new(other));
                node = self.make(cond, span)?;
            }
            self.leave();
        }
        Ok(node)
    }

    fn let_binding(&mut self) -> PResult<Expr> {
        let start = self.advance();
        let Tok::Ident(name) = *self.tok() else {
            return Err(self.unexpected("a name after `let`"));
        };
        // expr-lang's checker refuses shadowing anything, KEDA's own `??` wrapper variable too.
        let wrapper = self.wrap == Wrap::Coalesce && name == "_kedaCompositeResult";
        if self.vars.contains_key(name)
            || Builtin::lookup(name).is_some()
            || OTHER_EXPR_BUILTINS.contains(&name)
            || self.locals.contains(&name)
            || wrapper
        {
            return Err((self.span(), SyntaxError::Redeclared(name.to_owned())));
        }
        self.advance();
        self.expect("=", "`=` after the name of the `let`")?;
        self.enter()?;
        let value = self.expression(0)?;
        self.expect(";", "`;` after the value of the `let`")?;
        self.locals.push(name);
        let body = self.sequence()?;
        self.locals.pop();
        self.leave();
        let span = start.to(body.span);
        self.make(Node::Let(Box::new(value), Box::new(body)), span)
    }

    fn if_else(&mut self) -> PResult<Expr> {
        let start = self.advance();
        self.enter()?;
        let cond = self.expression(0)?;
        let then = self.block()?;
        self.expect("else", "`else` after the `if` block")?;
        let other = if self.tok().is_op("if") {
            self.if_else()?
        } else {
            self.block()?
        };
        self.leave();
        let span = start.to(other.span);
        let node = Node::Cond(Box::new(cond), Box::new(then), Box::new(other));
        // expr-lang builds this node without counting it.
        Ok(Expr { node, span })
    }

    fn block(&mut self) -> PResult<Expr> {
        let open = self.expect("{", "`{`")?;
        let body = self.sequence()?;
        self.close("{", "}", open)?;
        Ok(body)
    }

    fn primary(&mut self) -> PResult<Expr> {
        let span = self.span();
        let unary = match self.tok() {
            Tok::Op("not" | "!") => Some((UnOp::Not, 50)),
            Tok::Op("-") => Some((UnOp::Neg, 90)),
            Tok::Op("+") => Some((UnOp::Plus, 90)),
            _ => None,
        };
        if let Some((op, precedence)) = unary {
            self.advance();
            self.enter()?;
            let operand = self.expression(precedence)?;
            self.leave();
            let whole = span.to(operand.span);
            let node = self.make(Node::Unary(op, Box::new(operand)), whole)?;
            return self.postfix(node);
        }
        match *self.tok() {
            Tok::Op("(") => {
                self.advance();
                self.enter()?;
                let inner = self.sequence()?;
                let end = self.close("(", ")", span)?;
                self.leave();
                let inner = Expr {
                    span: span.to(end),
                    ..inner
                };
                self.postfix(inner)
            }
            Tok::Pointer(name) => {
                self.advance();
                let node = match name {
                    _ if self.closures.is_empty() => {
                        return Err((span, SyntaxError::PointerOutsideClosure(name.into())));
                    }
                    "" => Node::Element,
                    // expr-lang 1.17 (KEDA's) gives `#index` to map's closure only.
                    "index" if self.closures.last() == Some(&Builtin::Map) => Node::ElementIndex,
                    _ => return Err((span, SyntaxError::UnknownPointer(name.into()))),
                };
                let node = self.make(node, span)?;
                self.postfix(node)
            }
            Tok::Op("::") => Err((span, SyntaxError::Unsupported("`::`".into()))),
            _ => self.secondary(),
        }
    }

    fn secondary(&mut self) -> PResult<Expr> {
        let span = self.span();
        let node = match self.tok().clone() {
            Tok::Ident(name) => {
                self.advance();
                match name {
                    "true" => Node::Bool(true),
                    "false" => Node::Bool(false),
                    "nil" => Node::Nil,
                    _ if self.tok().is_op("(") => {
                        let call = self.call(name, span, Vec::new())?;
                        return self.postfix(call);
                    }
                    _ => self.resolve(name, span),
                }
            }
            Tok::Int(i) => {
                self.advance();
                Node::Int(i)
            }
            Tok::Float(f) => {
                self.advance();
                Node::Float(f)
            }
            Tok::Str(s) => {
                self.advance();
                Node::Str(Arc::from(s))
            }
            Tok::Op("[") => {
                let array = self.array()?;
                return self.postfix(array);
            }
            Tok::Op("{") => return Err((span, SyntaxError::Unsupported("a map `{...}`".into()))),
            _ => {
                return Err(
                    self.unexpected("a value: a number, a trigger name, `(` or a function call")
                );
            }
        };
        let node = self.make(node, span)?;
        self.postfix(node)
    }

    /// A name: a `let` (innermost first), then a variable; anything else is recorded as unknown
    /// so that the error can list every unknown name at once.
    fn resolve(&mut self, name: &'a str, span: Span) -> Node {
        if let Some(slot) = self.locals.iter().rposition(|l| *l == name) {
            return Node::Local(slot);
        }
        if let Some(&index) = self.vars.get(name) {
            if !self.seen[index] {
                self.seen[index] = true;
                self.used.push(index);
            }
            return Node::Var(index);
        }
        if self.unknown_seen.insert(name) {
            self.unknown.push((name, span));
        }
        Node::Nil
    }

    fn postfix(&mut self, mut node: Expr) -> PResult<Expr> {
        loop {
            let span = self.span();
            match self.tok() {
                Tok::Op("." | "?.") => {
                    let what = "member access (`.name`); trigger values are numbers";
                    return Err((span, SyntaxError::Unsupported(what.into())));
                }
                Tok::Op("[") => {
                    self.advance();
                    self.enter()?;
                    if self.tok().is_op(":") {
                        return Err((self.span(), SyntaxError::Unsupported("a slice".into())));
                    }
                    let index = self.expression(0)?;
                    if self.tok().is_op(":") {
                        return Err((self.span(), SyntaxError::Unsupported("a slice".into())));
                    }
                    let end = self.close("[", "]", span)?;
                    self.leave();
                    let whole = node.span.to(end);
                    node = self.make(Node::Subscript(Box::new(node), Box::new(index)), whole)?;
                }
                _ => return Ok(node),
            }
        }
    }

    fn array(&mut self) -> PResult<Expr> {
        let open = self.advance();
        self.enter()?;
        let mut items = Vec::new();
        while !self.tok().is_op("]") {
            if !items.is_empty() {
                self.separator("[", "]", open)?;
                if self.tok().is_op("]") {
                    break;
                }
            }
            items.push(self.expression(0)?);
        }
        let end = self.close("[", "]", open)?;
        self.leave();
        self.make(Node::Array(items), open.to(end))
    }

    /// `lhs | f(args)` is `f(lhs, args)`.
    fn pipe(&mut self, left: Expr) -> PResult<Expr> {
        let span = self.span();
        let Tok::Ident(name) = *self.tok() else {
            return Err(self.unexpected("a function call after `|`"));
        };
        self.advance();
        if !self.tok().is_op("(") {
            return Err(self.unexpected("`(` after the function name"));
        }
        self.call(name, span, vec![left])
    }

    fn call(&mut self, name: &'a str, span: Span, mut args: Vec<Expr>) -> PResult<Expr> {
        let Some(builtin) = Builtin::lookup(name) else {
            if OTHER_EXPR_BUILTINS.contains(&name) {
                let what = format!("the function `{name}`");
                return Err((span, SyntaxError::Unsupported(what)));
            }
            let name = name.to_owned();
            return Err((span, SyntaxError::UnknownFunction { name }));
        };
        let open = self.advance();
        self.enter()?;
        let (fewest, most, closure) = builtin.arity();
        let prefilled = args.len();
        while !self.tok().is_op(")") {
            if args.len() > prefilled {
                self.separator("(", ")", open)?;
                if self.tok().is_op(")") {
                    break;
                }
            }
            if closure && args.len() == 1 {
                args.push(self.closure(builtin)?);
            } else {
                args.push(self.expression(0)?);
            }
        }
        let end = self.close("(", ")", open)?;
        self.leave();
        if args.len() < fewest || args.len() > most {
            let expected = match (fewest, most) {
                (1, 1) => "1",
                (2, 2) => "2",
                (1, 2) => "1 or 2",
                _ => "at least 1",
            };
            let error = SyntaxError::Arity {
                name: builtin.name(),
                expected,
                got: args.len(),
            };
            return Err((span.to(end), error));
        }
        self.make(Node::Call(builtin, args), span.to(end))
    }

    /// A closure argument: `{ seq }` or a bare expression, in which `#` is the element.
    fn closure(&mut self, builtin: Builtin) -> PResult<Expr> {
        let start = self.span();
        self.enter()?;
        self.closures.push(builtin);
        let body = if self.tok().is_op("{") {
            self.advance();
            let body = self.sequence()?;
            self.close("{", "}", start)?;
            body
        } else {
            let body = self.expression(0)?;
            if self.tok().is_op(";") {
                return Err((self.span(), SyntaxError::ClosureSequence));
            }
            body
        };
        self.closures.pop();
        self.leave();
        let span = start.to(body.span);
        self.make(Node::Closure(Box::new(body)), span)
    }
}
