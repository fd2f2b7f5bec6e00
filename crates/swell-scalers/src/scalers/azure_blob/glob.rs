//! `globPattern` as KEDA compiles it (gobwas/glob without separators): `*` and `**` match
//! any text (`/` included), `?` one character, `[abc]`, `[a-z]`, `[!abc]` one of / none of,
//! `{a,b}` alternatives (nested too), `\` escapes the next character.

/// One element of a pattern without alternatives.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Lit(char),
    Any,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern: its alternatives spelled out.
#[derive(Clone, Debug)]
pub struct Glob(Vec<Vec<Tok>>);

/// At most this many spelled-out alternatives (nested `{…}` multiply), and `{…}` this deep.
const MAX_ALTERNATIVES: usize = 1024;
const MAX_DEPTH: usize = 16;

impl Glob {
    pub fn compile(pattern: &str) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let (alts, end) = sequence(&chars, 0, 0)?;
        if end != chars.len() {
            return Err(format!("unexpected {:?} at {end}", chars[end]));
        }
        Ok(Glob(alts))
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.0.iter().any(|p| matches(p, &text))
    }
}

/// Reads from `i` up to the end, or (inside braces) up to an unnested `,` or `}`; returns
/// the alternatives of what it read and where it stopped.
fn sequence(c: &[char], mut i: usize, depth: usize) -> Result<(Vec<Vec<Tok>>, usize), String> {
    let in_braces = depth > 0;
    let mut alts: Vec<Vec<Tok>> = vec![Vec::new()];
    let push = |alts: &mut Vec<Vec<Tok>>, t: Tok| alts.iter_mut().for_each(|a| a.push(t.clone()));
    while i < c.len() {
        match c[i] {
            ',' | '}' if in_braces => return Ok((alts, i)),
            '*' => {
                while i < c.len() && c[i] == '*' {
                    i += 1;
                }
                push(&mut alts, Tok::Any);
                continue;
            }
            '?' => push(&mut alts, Tok::One),
            '\\' => {
                i += 1;
                let Some(&ch) = c.get(i) else {
                    return Err("it ends with an unfinished escape '\\'".into());
                };
                push(&mut alts, Tok::Lit(ch));
            }
            '[' => {
                let (tok, end) = class(c, i)?;
                push(&mut alts, tok);
                i = end;
                continue;
            }
            '{' => {
                if depth >= MAX_DEPTH {
                    return Err(format!("its '{{' are nested more than {MAX_DEPTH} deep"));
                }
                let (choices, end) = braces(c, i, depth + 1)?;
                if alts.len() * choices.len() > MAX_ALTERNATIVES {
                    return Err(format!("it has more than {MAX_ALTERNATIVES} alternatives"));
                }
                let mut next = Vec::new();
                for a in &alts {
                    for choice in &choices {
                        next.push(a.iter().chain(choice).cloned().collect());
                    }
                }
                alts = next;
                i = end;
                continue;
            }
            ch => push(&mut alts, Tok::Lit(ch)),
        }
        i += 1;
    }
    if in_braces {
        return Err("a '{' is not closed".into());
    }
    Ok((alts, i))
}

/// `{a,b,…}` starting at `start`: every alternative, and the index after the `}`.
fn braces(c: &[char], start: usize, depth: usize) -> Result<(Vec<Vec<Tok>>, usize), String> {
    let mut choices = Vec::new();
    let mut i = start + 1;
    loop {
        let (alts, end) = sequence(c, i, depth)?;
        choices.extend(alts);
        if choices.len() > MAX_ALTERNATIVES {
            return Err(format!("it has more than {MAX_ALTERNATIVES} alternatives"));
        }
        match c.get(end) {
            Some(',') => i = end + 1,
            Some('}') => return Ok((choices, end + 1)),
            _ => return Err("a '{' is not closed".into()),
        }
    }
}

/// `[…]` starting at `start`: the class and the index after the `]`.
fn class(c: &[char], start: usize) -> Result<(Tok, usize), String> {
    let mut i = start + 1;
    let negated = c.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let Some(&first) = c.get(i) else {
            return Err("a '[' is not closed".into());
        };
        // `\` escapes inside a class too, so `[\]` is not closed.
        let (lo, escaped) = match first {
            '\\' => match c.get(i + 1) {
                Some(&e) => (e, true),
                None => return Err("a '[' is not closed".into()),
            },
            ch => (ch, false),
        };
        if escaped {
            i += 1;
        } else if lo == ']' {
            if ranges.is_empty() {
                return Err("a '[]' is empty".into());
            }
            return Ok((Tok::Class { negated, ranges }, i + 1));
        }
        if c.get(i + 1) == Some(&'-') && c.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = c[i + 2];
            if hi < lo {
                return Err(format!("the range {lo}-{hi} is reversed"));
            }
            ranges.push((lo, hi));
            i += 3;
        } else {
            ranges.push((lo, lo));
            i += 1;
        }
    }
}

/// Whether `p` (no alternatives) matches all of `s`: `*` by backtracking to the last star.
fn matches(p: &[Tok], s: &[char]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(Tok::Any) => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some(t) if one(t, s[si]) => {
                pi += 1;
                si += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|t| *t == Tok::Any)
}

fn one(t: &Tok, ch: char) -> bool {
    match t {
        Tok::Lit(c) => *c == ch,
        Tok::One => true,
        Tok::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&ch)) != *negated
        }
        Tok::Any => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_as_gobwas_without_separators() {
        let table: &[(&str, &str, bool)] = &[
            ("*.json", "a.json", true),
            ("*.json", "folder/sub/a.json", true),
            ("*.json", "a.json.bak", false),
            ("folder/*.json", "folder/a.json", true),
            ("folder/*.json", "folder/sub/a.json", true),
            ("folder/*.json", "other/a.json", false),
            ("**/x", "a/b/x", true),
            ("?.txt", "a.txt", true),
            ("?.txt", "ab.txt", false),
            ("[ab].txt", "b.txt", true),
            ("[!ab].txt", "b.txt", false),
            ("[a-c]1", "c1", true),
            ("[a-c]1", "d1", false),
            ("{logs,data}/*.{csv,json}", "data/x.json", true),
            ("{logs,data}/*.{csv,json}", "logs/x.csv", true),
            ("{logs,data}/*.{csv,json}", "tmp/x.csv", false),
            ("{a,b{c,d}}", "bd", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("", "", true),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
        ];
        for (p, s, want) in table {
            assert_eq!(Glob::compile(p).unwrap().matches(s), *want, "{p} {s}");
        }
    }

    #[test]
    fn refuses_what_gobwas_refuses() {
        // KEDA's `[\]` (its invalid case) among them.
        for p in ["[abc", "{a,b", "a\\", "[]", "[z-a]", "[\\]"] {
            assert!(Glob::compile(p).is_err(), "{p}");
        }
        // Bounded: deep nesting and exploding alternatives are refused, not expanded.
        let deep = "{".repeat(100_000);
        assert!(Glob::compile(&deep).unwrap_err().contains("nested"));
        let many = "{a,b,c,d}".repeat(6);
        assert!(Glob::compile(&many).unwrap_err().contains("alternatives"));
    }
}
