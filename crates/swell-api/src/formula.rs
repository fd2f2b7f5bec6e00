//! Just enough of expr-lang's lexer to find the variables a `scalingModifiers.formula` reads.
//!
//! KEDA compiles the formula with the named triggers as its only variables, so an unknown name
//! is a compile error there. A full expr-lang implementation is not needed to catch that; this
//! skips literals, member accesses, function calls, closure pointers (`#`, `#index`), map keys
//! and `let` bindings, and returns every other identifier.

/// Words that are operators or literals rather than variables.
const KEYWORDS: [&str; 13] = [
    "and", "contains", "else", "endsWith", "false", "if", "in", "let", "matches", "nil", "not",
    "or", "true",
];

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Punct(&'a str),
    Literal,
}

fn tokenize(src: &str) -> Vec<Token<'_>> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                // Raw (backtick) strings have no escapes.
                if bytes[i] == b'\\' && c != b'`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            tokens.push(Token::Literal);
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() {
                let d = bytes[i];
                let exponent_sign = (d == b'+' || d == b'-')
                    && matches!(bytes.get(i.wrapping_sub(1)), Some(b'e' | b'E'))
                    && !src[start..i].starts_with("0x");
                // `1..5` is a range, not a float.
                let decimal_point = d == b'.' && bytes.get(i + 1) != Some(&b'.');
                if d.is_ascii_alphanumeric() || d == b'_' || decimal_point || exponent_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            tokens.push(Token::Literal);
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            tokens.push(Token::Ident(&src[start..i]));
        } else {
            let two = src.get(i..i + 2);
            let len = match two {
                Some("?." | "??" | ".." | "==" | "!=" | "<=" | ">=" | "&&" | "||" | "**") => 2,
                _ => src[i..].chars().next().map_or(1, char::len_utf8),
            };
            tokens.push(Token::Punct(&src[i..i + len]));
            i += len;
        }
    }
    tokens
}

/// The free variables of `formula`, in order of first use.
pub(crate) fn free_variables(formula: &str) -> Vec<&str> {
    let tokens = tokenize(formula);
    let mut locals: Vec<&str> = Vec::new();
    let mut vars: Vec<&str> = Vec::new();
    let mut brackets: Vec<&str> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Punct(p @ ("(" | "[" | "{")) => brackets.push(p),
            Token::Punct(")" | "]" | "}") => {
                brackets.pop();
            }
            _ => {}
        }
        let Token::Ident(name) = token else {
            continue;
        };
        let prev = i.checked_sub(1).and_then(|j| tokens.get(j));
        let next = tokens.get(i + 1);
        let is_member = matches!(prev, Some(Token::Punct("." | "?." | "#")));
        let is_call = matches!(next, Some(Token::Punct("(")));
        let is_map_key = brackets.last() == Some(&"{")
            && matches!(prev, Some(Token::Punct("{" | ",")))
            && matches!(next, Some(Token::Punct(":")));
        if matches!(prev, Some(Token::Ident("let"))) {
            locals.push(name);
            continue;
        }
        if is_member
            || is_call
            || is_map_key
            || KEYWORDS.contains(name)
            || locals.contains(name)
            || vars.contains(name)
        {
            continue;
        }
        vars.push(name);
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::free_variables;

    #[test]
    fn finds_trigger_variables() {
        let cases: &[(&str, &[&str])] = &[
            ("(queue_a + queue_b) / 2", &["queue_a", "queue_b"]),
            ("trig_one ?? trig_two ?? 5", &["trig_one", "trig_two"]),
            ("float(a) > 1.5e3 ? a : b", &["a", "b"]),
            ("max(a, b) * 0x1F", &["a", "b"]),
            ("a.value + b?.value", &["a", "b"]),
            ("'a' + \"b\" + `c` + x", &["x"]),
            ("'it\\'s' + x", &["x"]),
            ("let y = a * 2; y + 1", &["a"]),
            ("all(list, {# > 1}) and not done", &["list", "done"]),
            ("{key: a}.key", &["a"]),
            ("1..n", &["n"]),
            ("x in [1, 2] || y == nil", &["x", "y"]),
            ("", &[]),
        ];
        for (formula, want) in cases {
            assert_eq!(free_variables(formula), *want, "{formula}");
        }
    }

    #[test]
    fn odd_input_does_not_panic() {
        for formula in [
            "'unterminated",
            "\"\\é\" + é + x",
            "1e",
            "0x",
            "a ?",
            "((",
            "🙂 + y",
            "`raw\\`",
        ] {
            let _ = free_variables(formula);
        }
        assert_eq!(free_variables("é + x"), ["x"]);
    }
}
