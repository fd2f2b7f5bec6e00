//! A short, deterministic run of the fuzzing harness (`fuzz/`, `manifest::exercise`) over the
//! `swell check` case corpus and mutations of it: no input may panic. Long runs: see README.

use std::path::Path;

use swell_controller::manifest::exercise;

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../swell/tests/check-cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the check-cases corpus exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("corpus file");
        // Whole files and each document on its own.
        out.push(text.clone().into_bytes());
        out.extend(text.split("\n---\n").map(|d| d.as_bytes().to_vec()));
    }
    out.push(
        b"queueURL=https://sqs.x.amazonaws.com/1/q\nawsRegion=\nqueueLength=-0\ntimezone=\xff"
            .to_vec(),
    );
    out
}

/// Tokens that steer mutations toward interesting YAML and metadata.
const TOKENS: &[&str] = &[
    "\n---\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "&a ",
    "*a",
    "!!binary ",
    "~",
    "null",
    "-1",
    "1e309",
    "NaN",
    "0x",
    "${",
    "FromEnv",
    "triggers",
    "metadata",
    "metricType",
    "Utilization",
    "Value",
    "formula",
    "(",
    ")",
    "#",
    "\t",
    "\u{0}",
    "é",
    "🙂",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = (rng.next() & 0xff) as u8;
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            2 => {
                let end = (at + rng.below(40)).min(v.len());
                v.drain(at..end);
            }
            3 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let to = (from + rng.below(200)).min(other.len());
                v.splice(at..at, other[from..to].iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn corpus_and_mutations_never_panic() {
    let corpus = corpus();
    for input in &corpus {
        exercise(input);
    }
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for _ in 0..3000 {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base, &corpus);
        exercise(&input);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
        exercise(&bytes);
    }
}
