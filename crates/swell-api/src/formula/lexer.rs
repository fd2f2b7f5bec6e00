//! expr-lang's lexer (parser/lexer/state.go), producing every token up front in one pass.

use super::{Span, SyntaxError};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(&'a str),
    /// Operators, brackets and the operator words (`and`, `not`, `in`, `let`, `if`, ...).
    Op(&'a str),
    /// `#` (the closure element) or `#name`; `name` is empty for a bare `#`.
    Pointer(&'a str),
    Eof,
}

impl Tok<'_> {
    pub(super) fn is_op(&self, op: &str) -> bool {
        matches!(self, Tok::Op(o) if *o == op)
    }

    /// How the token reads in an error message.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Int(i) => format!("number `{i}`"),
            Tok::Float(f) => format!("number `{f}`"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Ident(i) => format!("`{i}`"),
            Tok::Op(o) => format!("`{o}`"),
            Tok::Pointer(p) => format!("`#{p}`"),
            Tok::Eof => "end of the formula".to_owned(),
        }
    }
}

/// Words the lexer emits as operators, as expr-lang does.
const OPERATOR_WORDS: [&str; 11] = [
    "not",
    "in",
    "or",
    "and",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "let",
    "if",
    "else",
];

pub(super) type Lexed<'a> = Vec<(Tok<'a>, Span)>;

/// Letters, digits, `_` and `$`, as expr-lang's `utils.IsAlphaNumeric`.
fn is_word_char(c: char) -> bool {
    c == '_' || c == '$' || c.is_alphanumeric()
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    out: Lexed<'a>,
    wrapped: bool,
}

/// `wrapped`: KEDA wraps the formula in `float(...)`, so a `//` comment must end in a newline.
pub(super) fn tokenize(src: &str, wrapped: bool) -> Result<Lexed<'_>, (Span, SyntaxError)> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        out: Vec::new(),
        wrapped,
    };
    lexer.run()?;
    let end = Span::new(src.len(), src.len());
    lexer.out.push((Tok::Eof, end));
    Ok(lexer.out)
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + ahead).copied()
    }

    fn push(&mut self, tok: Tok<'a>, start: usize) {
        self.out.push((tok, Span::new(start, self.pos)));
    }

    fn run(&mut self) -> Result<(), (Span, SyntaxError)> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if c == '\'' || c == '"' {
                let s = self.quoted(c)?;
                self.push(Tok::Str(s), start);
            } else if c == '`' {
                let s = self.raw()?;
                self.push(Tok::Str(s), start);
            } else if c.is_ascii_digit()
                || (c == '.' && self.peek_at(1).is_some_and(|b| b.is_ascii_digit()))
            {
                let tok = self.number()?;
                self.push(tok, start);
            } else if c == '/' && matches!(self.peek_at(1), Some(b'/' | b'*')) {
                self.comment()?;
            } else if c == '#' {
                self.pos += 1;
                let name = self.word();
                self.push(Tok::Pointer(name), start);
            } else if is_word_char(c) {
                let word = self.word();
                if matches!(word, "b" | "B") && matches!(self.peek(), Some('\'' | '"')) {
                    let what = "a bytes literal `b'...'`".to_owned();
                    return Err((
                        Span::new(start, self.pos + 1),
                        SyntaxError::Unsupported(what),
                    ));
                }
                let tok = if OPERATOR_WORDS.contains(&word) {
                    Tok::Op(word)
                } else {
                    Tok::Ident(word)
                };
                self.push(tok, start);
            } else {
                self.operator(c)?;
            }
        }
        Ok(())
    }

    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| is_word_char(*c)) {
            self.pos += c.len_utf8();
        }
        &self.src[start..self.pos]
    }

    /// The operator set of expr-lang's root state: a first byte, then at most one more.
    fn operator(&mut self, c: char) -> Result<(), (Span, SyntaxError)> {
        let start = self.pos;
        let second: &[u8] = match c {
            '?' => b".?",
            '|' => b"|",
            ':' => b":",
            '.' => b".",
            '&' | '!' | '=' | '*' | '<' | '>' => b"&=*",
            '(' | ')' | '[' | ']' | '{' | '}' | ',' | ';' | '%' | '+' | '-' | '^' | '/' => b"",
            _ => {
                let span = Span::new(start, start + c.len_utf8());
                return Err((span, SyntaxError::UnknownCharacter(c)));
            }
        };
        self.pos += 1;
        if self.peek_at(0).is_some_and(|b| second.contains(&b)) {
            self.pos += 1;
        }
        self.push(Tok::Op(&self.src[start..self.pos]), start);
        Ok(())
    }

    fn comment(&mut self) -> Result<(), (Span, SyntaxError)> {
        let start = self.pos;
        let rest = &self.src[start + 2..];
        if self.peek_at(1) == Some(b'/') {
            let Some(end) = rest.find('\n') else {
                if self.wrapped {
                    let span = Span::new(start, self.src.len());
                    return Err((span, SyntaxError::TrailingLineComment));
                }
                self.pos = self.src.len();
                return Ok(());
            };
            self.pos = start + 2 + end;
            return Ok(());
        }
        match rest.find("*/") {
            Some(end) => {
                self.pos = start + 2 + end + 2;
                Ok(())
            }
            None => Err((Span::new(start, start + 2), SyntaxError::UnclosedComment)),
        }
    }

    /// expr-lang's `scanNumber`: a prefix picks the digits (`0x`, `0o`, `0b`), `_` separates,
    /// `.` and an exponent make a float, and `1..2` leaves the `..` alone.
    fn number(&mut self) -> Result<Tok<'a>, (Span, SyntaxError)> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut digits: fn(u8) -> bool = |b| b.is_ascii_digit() || b == b'_';
        let mut radix = 10;
        if bytes[start] == b'0' {
            let (r, d): (u32, fn(u8) -> bool) = match self.peek_at(1) {
                Some(b'x' | b'X') => (16, |b| b.is_ascii_hexdigit() || b == b'_'),
                Some(b'o' | b'O') => (8, |b| matches!(b, b'0'..=b'7' | b'_')),
                Some(b'b' | b'B') => (2, |b| matches!(b, b'0' | b'1' | b'_')),
                _ => (10, digits),
            };
            if r != 10 {
                self.pos += 2;
            }
            (radix, digits) = (r, d);
        }
        let run = |lexer: &mut Self| {
            while lexer.peek_at(0).is_some_and(digits) {
                lexer.pos += 1;
            }
        };
        run(self);
        let mut float = false;
        if self.peek_at(0) == Some(b'.') && self.peek_at(1) != Some(b'.') {
            self.pos += 1;
            float = true;
            run(self);
        }
        if matches!(self.peek_at(0), Some(b'e' | b'E')) && radix != 16 {
            self.pos += 1;
            if matches!(self.peek_at(0), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            float = true;
            run(self);
        }
        let text = &self.src[start..self.pos];
        if self.peek().is_some_and(is_word_char) {
            self.word();
            let span = Span::new(start, self.pos);
            return Err((
                span,
                SyntaxError::BadNumber(self.src[start..self.pos].to_owned()),
            ));
        }
        parse_number(text, radix, float).ok_or_else(|| {
            let span = Span::new(start, self.pos);
            (span, SyntaxError::BadNumber(text.to_owned()))
        })
    }

    fn quoted(&mut self, quote: char) -> Result<String, (Span, SyntaxError)> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek().filter(|c| *c != '\n') else {
                let span = Span::new(start, self.pos);
                return Err((span, SyntaxError::UnterminatedString(quote)));
            };
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let escape_start = self.pos - 1;
            match self.escape(quote) {
                Some(e) => out.push(e),
                None => {
                    let span = Span::new(escape_start, self.pos);
                    return Err((span, SyntaxError::BadEscape));
                }
            }
        }
    }

    /// One escape after `\`, as expr-lang's `scanEscape`: the other quote, `` \` `` and `\?` are
    /// not escapes there.
    fn escape(&mut self, quote: char) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => c,
            _ if c == quote => c,
            'x' => return self.hex(2),
            'u' if self.peek() == Some('{') => {
                let rest = &self.src[self.pos + 1..];
                let end = rest.find('}').filter(|e| (1..=6).contains(e))?;
                let code = hex_value(&rest[..end])?;
                self.pos += end + 2;
                return char::from_u32(code);
            }
            'u' => return self.hex(4),
            'U' => return self.hex(8),
            '0'..='7' => {
                let digits = self.src.get(self.pos - 1..self.pos + 2)?;
                if !digits.bytes().all(|b| matches!(b, b'0'..=b'7')) {
                    return None;
                }
                let code = u32::from_str_radix(digits, 8).ok().filter(|c| *c <= 255)?;
                self.pos += 2;
                return char::from_u32(code);
            }
            _ => return None,
        };
        Some(simple)
    }

    fn hex(&mut self, len: usize) -> Option<char> {
        let code = hex_value(self.src.get(self.pos..self.pos + len)?)?;
        self.pos += len;
        char::from_u32(code)
    }

    fn raw(&mut self) -> Result<String, (Span, SyntaxError)> {
        let start = self.pos;
        let rest = &self.src[start + 1..];
        let Some(end) = rest.find('`') else {
            let span = Span::new(start, self.src.len());
            return Err((span, SyntaxError::UnterminatedString('`')));
        };
        self.pos = start + 1 + end + 1;
        Ok(rest[..end].to_owned())
    }
}

/// Hex digits only (`from_str_radix` alone would take a leading `+`).
fn hex_value(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The value of a number token, as expr-lang's parser reads it; `None` when it does not fit.
fn parse_number(text: &str, radix: u32, float: bool) -> Option<Tok<'static>> {
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    if radix != 10 {
        return i64::from_str_radix(&clean[2..], radix).ok().map(Tok::Int);
    }
    if float {
        return clean
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Tok::Float);
    }
    clean.parse::<i64>().ok().map(Tok::Int)
}
