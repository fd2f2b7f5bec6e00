//! Declarative, typed trigger metadata, in the spirit of KEDA's `keda:"name=…, order=…"` tags.
//!
//! A scaler describes each parameter once (name, where it may come from, default, allowed
//! values, deprecation) and gets a typed value back. Every problem is collected, so one
//! message can name every bad field and its fix. `xFromEnv` is understood for any parameter
//! read from trigger metadata, as in KEDA.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest value a trigger metadata parameter may have. KEDA sets none, but no parameter
/// comes near it (a PromQL query, a CloudWatch expression); TriggerAuthentication parameters
/// (a CA bundle) are not limited.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Unknown metadata keys warned about one by one (each with a suggestion); more are counted.
pub const MAX_UNKNOWN_KEY_WARNINGS: usize = 20;

/// The smallest metric target: the HPA wants a positive quantity, and KEDA writes targets in
/// thousandths (`-5`, `0` and `1e-320` all become `0`, which the API server refuses).
pub const MIN_TARGET: f64 = 0.001;

/// A value as shown in a message: quoted, and cut after 64 characters so a huge value does
/// not make a huge message.
pub fn shown(v: &str) -> String {
    match cut_at(v) {
        None => format!("{v:?}"),
        Some(end) => format!("{:?}… ({} bytes)", &v[..end], v.len()),
    }
}

/// [`shown`] without the quotes, for text that is already quoted (JSON).
pub fn cut(v: &str) -> String {
    match cut_at(v) {
        None => v.to_string(),
        Some(end) => format!("{}… ({} bytes)", &v[..end], v.len()),
    }
}

fn cut_at(v: &str) -> Option<usize> {
    v.char_indices().nth(64).map(|(end, _)| end)
}

/// Where a parameter may be read from, in KEDA's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `triggers[i].metadata` (and its `…FromEnv` form).
    Metadata,
    /// Parameters resolved from a TriggerAuthentication.
    Auth,
    /// The target container's environment, by exact name.
    Env,
}

/// One parameter's declaration.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub order: &'static [Source],
    pub deprecated: Option<&'static str>,
    /// Shown in the message when the value is missing or wrong.
    pub hint: &'static str,
}

impl Field {
    pub const fn new(name: &'static str) -> Field {
        Field {
            name,
            order: &[Source::Metadata],
            deprecated: None,
            hint: "",
        }
    }
    pub const fn from(mut self, order: &'static [Source]) -> Field {
        self.order = order;
        self
    }
    pub const fn deprecated(mut self, note: &'static str) -> Field {
        self.deprecated = Some(note);
        self
    }
    pub const fn hint(mut self, hint: &'static str) -> Field {
        self.hint = hint;
        self
    }
}

/// A problem with one parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    /// The path of the field, e.g. `triggers[0].metadata.queueLength`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why one value is wrong, said as the message of the field it came from: parsers of a
/// single value return it and the caller places it on its field ([`Params::error`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<Invalid> for String {
    fn from(e: Invalid) -> String {
        e.0
    }
}

impl From<String> for Invalid {
    fn from(why: String) -> Invalid {
        Invalid(why)
    }
}

impl From<&str> for Invalid {
    fn from(why: &str) -> Invalid {
        Invalid(why.to_string())
    }
}

/// Go's `time.ParseDuration`: decimal numbers with units (`300ms`, `1.5h`, `2h45m`), signed
/// or not; `0` alone needs no unit. `Some((negative, magnitude))`, `None` if it is not one.
pub fn go_duration(v: &str) -> Option<(bool, Duration)> {
    let (negative, mut rest) = match v.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    if rest == "0" {
        return Some((false, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut secs = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        secs += number
            * match &rest[..u] {
                "ns" => 1e-9,
                "us" | "µs" | "μs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return None,
            };
        rest = &rest[u..];
    }
    let d = Duration::try_from_secs_f64(secs).ok()?;
    Some((negative && !d.is_zero(), d))
}

/// A `time.Duration` field as KEDA's typed config reads it: a Go duration, or else whole
/// milliseconds; negative ones are refused.
pub fn keda_duration(v: &str) -> Result<Duration, Invalid> {
    let negative = || Invalid(format!("duration cannot be negative: {}", shown(v)));
    match go_duration(v) {
        Some((true, _)) => Err(negative()),
        Some((false, d)) => Ok(d),
        None => match v.parse::<i64>() {
            Ok(ms) => u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| negative()),
            Err(_) => Err(Invalid(format!(
                "{} is not a duration: give a Go duration such as 500ms or 30s, or milliseconds",
                shown(v)
            ))),
        },
    }
}

/// All the problems of one trigger's metadata.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct MetadataError(pub Vec<ParamError>);

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

/// The raw inputs of one trigger.
#[derive(Clone, Debug, Default)]
pub struct RawParams {
    pub trigger_index: usize,
    pub metadata: BTreeMap<String, String>,
    pub auth: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// The target container's environment is not known (offline `swell check`): a
    /// `…FromEnv` reference is taken on trust instead of reported.
    pub env_unknown: bool,
    /// The trigger's TriggerAuthentication parameters are not known (offline `swell check`):
    /// a parameter that may come from it is not reported as missing.
    pub auth_unknown: bool,
    /// With `auth_unknown`: the TriggerAuthentication's name and the parameters it lists
    /// (their values stay unknown), when its spec was checked. Only those are taken on
    /// trust; a missing required one is reported, naming it.
    pub auth_lists: Option<(String, BTreeSet<String>)>,
}

/// Reads parameters declared with [`Field`], collecting every problem.
pub struct Params<'a> {
    raw: &'a RawParams,
    errors: Vec<ParamError>,
    warnings: Vec<String>,
    used: BTreeSet<String>,
    /// Parameters whose value is only known at run time (see [`RawParams::env_unknown`]).
    deferred: BTreeSet<&'static str>,
}

impl<'a> Params<'a> {
    pub fn new(raw: &'a RawParams) -> Params<'a> {
        Params {
            raw,
            errors: Vec::new(),
            warnings: Vec::new(),
            used: BTreeSet::new(),
            deferred: BTreeSet::new(),
        }
    }

    fn path(&self, source: Source, name: &str) -> String {
        let i = self.raw.trigger_index;
        match source {
            Source::Metadata => format!("triggers[{i}].metadata.{name}"),
            Source::Auth => format!("triggers[{i}].authenticationRef (parameter {name})"),
            Source::Env => format!("triggers[{i}] container env {name}"),
        }
    }

    /// Records a problem for a field; scalers use it for cross-field rules.
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let field = self.path(Source::Metadata, name);
        self.errors.push(ParamError {
            field,
            message: message.into(),
        });
    }

    /// Records a problem with a trigger field outside its metadata, e.g. `metricType`.
    pub fn trigger_error(&mut self, field: &str, message: impl Into<String>) {
        let i = self.raw.trigger_index;
        self.errors.push(ParamError {
            field: format!("triggers[{i}].{field}"),
            message: message.into(),
        });
    }

    /// The raw string of a parameter, from the first source that has it.
    pub fn raw(&mut self, f: Field) -> Option<String> {
        for &source in f.order {
            let found = match source {
                Source::Metadata => self.lookup_metadata(f.name),
                Source::Auth => self.raw.auth.get(f.name).cloned(),
                Source::Env => self.raw.env.get(f.name).cloned(),
            };
            if let Some(v) = found {
                if source == Source::Metadata && v.len() > MAX_VALUE_BYTES {
                    // Reported once however often it is read; not "missing" afterwards.
                    if self.deferred.insert(f.name) {
                        let field = self.path(source, f.name);
                        self.errors.push(ParamError {
                            field,
                            message: format!(
                                "is {} bytes long; the limit is {MAX_VALUE_BYTES}",
                                v.len()
                            ),
                        });
                    }
                    return None;
                }
                if let Some(note) = f.deprecated {
                    self.warnings
                        .push(format!("{}: deprecated; {note}", self.path(source, f.name)));
                }
                return Some(v);
            }
        }
        let listed = match &self.raw.auth_lists {
            Some((_, names)) => names.contains(f.name),
            None => true,
        };
        if self.raw.auth_unknown && listed && f.order.contains(&Source::Auth) {
            self.deferred.insert(f.name);
        }
        if self.raw.env_unknown
            && f.order.contains(&Source::Metadata)
            && self
                .raw
                .metadata
                .contains_key(&format!("{}FromEnv", f.name))
        {
            self.deferred.insert(f.name);
        }
        None
    }

    /// Whether a parameter's value is only known at run time, so checks that need it are
    /// skipped (offline `swell check`).
    pub fn is_deferred(&self, name: &str) -> bool {
        self.deferred.contains(name)
    }

    fn lookup_metadata(&mut self, name: &str) -> Option<String> {
        if let Some(v) = self.raw.metadata.get(name) {
            self.used.insert(name.to_string());
            return Some(v.clone());
        }
        let env_key = format!("{name}FromEnv");
        let var = self.raw.metadata.get(&env_key)?.clone();
        self.used.insert(env_key.clone());
        match self.raw.env.get(&var) {
            Some(v) => Some(v.clone()),
            None if self.raw.env_unknown => None,
            None => {
                let field = self.path(Source::Metadata, &env_key);
                self.errors.push(ParamError {
                    field,
                    message: format!(
                        "environment variable {var:?} is not set on the scale target's container; \
                         add it there or set {name} directly"
                    ),
                });
                None
            }
        }
    }

    fn describe(&self, f: Field) -> String {
        let places: Vec<&str> = f
            .order
            .iter()
            .map(|s| match s {
                Source::Metadata => "trigger metadata",
                Source::Auth => "the TriggerAuthentication",
                Source::Env => "the container's environment",
            })
            .collect();
        places.join(" or ")
    }

    fn missing(&mut self, f: Field) {
        if self.deferred.contains(f.name) {
            return;
        }
        let hint = if f.hint.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.hint)
        };
        let field = self.path(f.order.first().copied().unwrap_or(Source::Metadata), f.name);
        let mut message = format!("required; set {} in {}{hint}", f.name, self.describe(f));
        if let (Some((auth, names)), true) = (&self.raw.auth_lists, f.order.contains(&Source::Auth))
        {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let lists = if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            };
            message.push_str(&format!(
                "; TriggerAuthentication {auth:?} does not provide it (it provides: {lists})"
            ));
        }
        self.errors.push(ParamError { field, message });
    }

    /// An optional string.
    pub fn opt_string(&mut self, f: Field) -> Option<String> {
        self.raw(f).filter(|s| !s.is_empty())
    }

    /// A required, non-empty string.
    pub fn string(&mut self, f: Field) -> String {
        match self.opt_string(f) {
            Some(v) => v,
            None => {
                self.missing(f);
                String::new()
            }
        }
    }

    /// An optional typed value; a present but unparsable value is an error.
    pub fn opt<T: FromStr>(&mut self, f: Field, what: &str) -> Option<T> {
        let v = self.opt_string(f)?;
        // Rust reads `NaN`, `inf` and `1e999` as floats; KEDA's JSON-typed numbers do not.
        let non_finite = v.trim().parse::<f64>().is_ok_and(|n| !n.is_finite());
        let message = match v.trim().parse::<T>() {
            Ok(t) if !non_finite => return Some(t),
            Ok(_) => format!("{} is not a finite number{}", shown(&v), hint_suffix(f)),
            Err(_) => format!("{} is not {what}{}", shown(&v), hint_suffix(f)),
        };
        let field = self.path(Source::Metadata, f.name);
        self.errors.push(ParamError { field, message });
        None
    }

    /// A typed value with a default.
    pub fn or<T: FromStr>(&mut self, f: Field, what: &str, default: T) -> T {
        self.opt(f, what).unwrap_or(default)
    }

    /// A required typed value (the placeholder is returned alongside an error).
    pub fn required<T: FromStr + Default>(&mut self, f: Field, what: &str) -> T {
        if self.opt_string(f).is_none() {
            self.missing(f);
            return T::default();
        }
        self.opt(f, what).unwrap_or_default()
    }

    /// A float (KEDA accepts any float syntax).
    pub fn float(&mut self, f: Field, default: f64) -> f64 {
        self.or(f, "a number", default)
    }

    /// An optional `time.Duration` parameter, read as KEDA's typed config does
    /// ([`keda_duration`]).
    pub fn duration(&mut self, f: Field) -> Option<Duration> {
        let v = self.opt_string(f)?;
        match keda_duration(v.trim()) {
            Ok(d) => Some(d),
            Err(why) => {
                self.error(f.name, why);
                None
            }
        }
    }

    /// An optional URL (or address): no whitespace or control character inside (a CR/LF in a
    /// URL smuggles headers, and Go's url.Parse refuses them), and with `http_only` an
    /// http:// or https:// scheme. Surrounding spaces are dropped, as KEDA trims values.
    pub fn opt_url(&mut self, f: Field, http_only: bool) -> Option<String> {
        let v = self.opt_string(f)?.trim().to_string();
        if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
            self.error(
                f.name,
                "contains whitespace or a control character (CR, LF, tab…); remove it",
            );
        } else if http_only && !(v.starts_with("http://") || v.starts_with("https://")) {
            let message = format!("{} is not an http:// or https:// URL", shown(&v));
            self.error(f.name, message);
        }
        Some(v)
    }

    /// A required URL, see [`Params::opt_url`].
    pub fn url(&mut self, f: Field, http_only: bool) -> String {
        match self.opt_url(f, http_only) {
            Some(v) => v,
            None => {
                self.missing(f);
                String::new()
            }
        }
    }

    /// A required metric target: a finite number of at least [`MIN_TARGET`].
    pub fn target(&mut self, f: Field) -> f64 {
        if self.opt_string(f).is_none() {
            self.missing(f);
            return 0.0;
        }
        let Some(value) = self.opt::<f64>(f, "a number") else {
            return 0.0;
        };
        if value < MIN_TARGET {
            let field = self.path(Source::Metadata, f.name);
            self.errors.push(ParamError {
                field,
                message: format!(
                    "must be greater than 0 (at least {MIN_TARGET}: the HPA's target is a positive quantity in thousandths), got {value}"
                ),
            });
        }
        value
    }

    /// A boolean, as Go's strconv.ParseBool reads it.
    pub fn bool(&mut self, f: Field, default: bool) -> bool {
        let Some(v) = self.opt_string(f) else {
            return default;
        };
        match v.trim() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
            "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
            other => {
                let field = self.path(Source::Metadata, f.name);
                self.errors.push(ParamError {
                    field,
                    message: format!("{other:?} is not true or false"),
                });
                default
            }
        }
    }

    /// One of a fixed set of values.
    pub fn one_of(
        &mut self,
        f: Field,
        allowed: &[&'static str],
        default: &'static str,
    ) -> &'static str {
        let Some(v) = self.opt_string(f) else {
            return default;
        };
        match allowed.iter().find(|a| **a == v) {
            Some(a) => a,
            None => {
                let field = self.path(Source::Metadata, f.name);
                self.errors.push(ParamError {
                    field,
                    message: format!("{v:?} is not one of {}", allowed.join(", ")),
                });
                default
            }
        }
    }

    /// A `key1=value1,key2=value2` map, as KEDA reads map parameters.
    pub fn map(&mut self, f: Field) -> Vec<(String, String)> {
        let Some(v) = self.opt_string(f) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // Values may be secrets (headers): messages name the entry, never its text.
        for (n, part) in v
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            match part.split_once('=') {
                // Entries become HTTP headers or query parameters: a CR/LF would smuggle more.
                Some(_) if part.chars().any(char::is_control) => {
                    let field = self.path(Source::Metadata, f.name);
                    self.errors.push(ParamError {
                        field,
                        message: format!(
                            "entry {} contains a line break or other control character; remove it",
                            n + 1
                        ),
                    });
                }
                Some((k, val)) if !k.trim().is_empty() => {
                    out.push((k.trim().to_string(), val.trim().to_string()));
                }
                _ => {
                    let field = self.path(Source::Metadata, f.name);
                    self.errors.push(ParamError {
                        field,
                        message: format!(
                            "entry {} is not key=value (use key1=value1,key2=value2)",
                            n + 1
                        ),
                    });
                }
            }
        }
        out
    }

    /// Metadata keys that no declared field read, for warnings.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.raw
            .metadata
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect()
    }

    /// Warnings for metadata keys that are not among `fields` (nor their `…FromEnv` form):
    /// KEDA ignores them silently, which hides typos such as `queueUrl`.
    pub fn warn_unknown_keys(&mut self, scaler: &str, fields: &[Field]) {
        let known: Vec<&str> = fields
            .iter()
            .filter(|f| f.order.contains(&Source::Metadata))
            .map(|f| f.name)
            .collect();
        let is_known = |k: &str| {
            known.contains(&k)
                || k.strip_suffix("FromEnv")
                    .is_some_and(|b| known.contains(&b))
        };
        let raw = self.raw;
        let unknown = raw.metadata.keys().filter(|k| !is_known(k));
        let count = raw.metadata.keys().filter(|k| !is_known(k)).count();
        if count > MAX_UNKNOWN_KEY_WARNINGS {
            let i = raw.trigger_index;
            self.warnings.push(format!(
                "triggers[{i}].metadata: {count} unknown keys for {scaler}, ignored; the first {MAX_UNKNOWN_KEY_WARNINGS} follow"
            ));
        }
        for key in unknown.take(MAX_UNKNOWN_KEY_WARNINGS) {
            let base = key.strip_suffix("FromEnv").unwrap_or(key);
            let suggestion = known
                .iter()
                .find(|k| {
                    k.eq_ignore_ascii_case(base)
                        // At least the difference in chars (8 bytes: 2 chars of 4): skip the rest.
                        || (k.len().abs_diff(base.len()) <= 8 && edit_distance(k, base, 2) <= 2)
                })
                .map(|k| {
                    let suffix = if base.len() < key.len() {
                        "FromEnv"
                    } else {
                        ""
                    };
                    format!("did you mean {k}{suffix}? ")
                })
                .unwrap_or_default();
            let field = if key.len() > 128 {
                self.path(Source::Metadata, &shown(key))
            } else {
                self.path(Source::Metadata, key)
            };
            self.warnings.push(format!(
                "{field}: unknown key for {scaler}, ignored; {suggestion}known keys: {}",
                known.join(", ")
            ));
        }
    }

    /// Ends parsing: every error and every warning.
    pub fn into_parts(self) -> (Vec<ParamError>, Vec<String>) {
        (self.errors, self.warnings)
    }

    /// Ends parsing: all errors, or the warnings.
    pub fn finish(self) -> Result<Vec<String>, MetadataError> {
        if self.errors.is_empty() {
            Ok(self.warnings)
        } else {
            Err(MetadataError(self.errors))
        }
    }
}

/// Levenshtein distance over chars, stopping as soon as it must exceed `limit` (then any
/// value above `limit` is returned): a key thousands of characters long costs a few rows, not
/// its length times the known key's.
fn edit_distance(a: &str, b: &str, limit: usize) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = Vec::with_capacity(b.len() + 1);
    for (i, ca) in a.chars().enumerate() {
        cur.clear();
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        if cur.iter().all(|d| *d > limit) {
            return limit + 1;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or_default()
}

fn hint_suffix(f: Field) -> String {
    if f.hint.is_empty() {
        String::new()
    } else {
        format!(" ({})", f.hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timeouts_like_keda() {
        for (v, want) in [
            ("1000", Ok(Duration::from_millis(1000))),
            ("0", Ok(Duration::ZERO)),
            ("1.5s", Ok(Duration::from_millis(1500))),
            ("1m30s", Ok(Duration::from_secs(90))),
            ("250ms", Ok(Duration::from_millis(250))),
            ("-10", Err("negative")),
            ("0s", Ok(Duration::ZERO)),
            ("-0s", Ok(Duration::ZERO)),
            ("30s", Ok(Duration::from_secs(30))),
            ("-1s", Err("negative")),
            ("error", Err("not a duration")),
            ("5x", Err("not a duration")),
            ("", Err("not a duration")),
        ] {
            match (keda_duration(v), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{v}"),
                (Err(got), Err(want)) => assert!(got.0.contains(want), "{v}: {got}"),
                (got, want) => panic!("{v}: got {got:?}, want {want:?}"),
            }
        }
    }

    fn raw(meta: &[(&str, &str)], auth: &[(&str, &str)], env: &[(&str, &str)]) -> RawParams {
        let m = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        RawParams {
            trigger_index: 1,
            metadata: m(meta),
            auth: m(auth),
            env: m(env),
            ..Default::default()
        }
    }

    const URL: Field = Field::new("queueURL").hint("the queue's URL");
    const LEN: Field = Field::new("queueLength");
    const REGION: Field = Field::new("awsRegion").from(&[Source::Metadata, Source::Auth]);

    #[test]
    fn reads_defaults_and_values() {
        let r = raw(&[("queueURL", "u"), ("queueLength", "7")], &[], &[]);
        let mut p = Params::new(&r);
        assert_eq!(p.string(URL), "u");
        assert_eq!(p.float(LEN, 5.0), 7.0);
        assert_eq!(p.float(Field::new("other"), 5.0), 5.0);
        assert!(p.finish().is_ok());
    }

    #[test]
    fn from_env_and_auth_order() {
        let r = raw(
            &[("queueURLFromEnv", "Q")],
            &[("awsRegion", "eu-west-1")],
            &[("Q", "from-env")],
        );
        let mut p = Params::new(&r);
        assert_eq!(p.string(URL), "from-env");
        assert_eq!(p.string(REGION), "eu-west-1");
        assert!(p.unknown_keys().is_empty());
        assert!(p.finish().is_ok());
    }

    #[test]
    fn collects_every_problem_with_its_field() {
        let r = raw(
            &[
                ("queueLength", "lots"),
                ("queueURLFromEnv", "MISSING"),
                ("x", "1"),
            ],
            &[],
            &[],
        );
        let mut p = Params::new(&r);
        let _ = p.string(URL);
        let _ = p.float(LEN, 5.0);
        let _ = p.one_of(Field::new("mode"), &["a", "b"], "a");
        assert_eq!(p.unknown_keys(), vec!["x".to_string()]);
        let err = p.finish().expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("triggers[1].metadata.queueURLFromEnv: environment variable \"MISSING\""),
            "{text}"
        );
        assert!(
            text.contains("triggers[1].metadata.queueURL: required"),
            "{text}"
        );
        assert!(
            text.contains("triggers[1].metadata.queueLength: \"lots\" is not a number"),
            "{text}"
        );
    }

    #[test]
    fn enums_and_bools() {
        let r = raw(&[("mode", "c"), ("flag", "yes"), ("ok", "True")], &[], &[]);
        let mut p = Params::new(&r);
        assert_eq!(p.one_of(Field::new("mode"), &["a", "b"], "a"), "a");
        assert!(p.bool(Field::new("flag"), true));
        assert!(p.bool(Field::new("ok"), false));
        let err = p.finish().expect_err("invalid").to_string();
        assert!(err.contains("\"c\" is not one of a, b"), "{err}");
        assert!(err.contains("\"yes\" is not true or false"), "{err}");
    }

    #[test]
    fn unknown_keys_warn_with_a_suggestion() {
        let r = raw(
            &[("queueUrl", "u"), ("queueLengthFromEnv", "X"), ("zzz", "1")],
            &[],
            &[("X", "1")],
        );
        let mut p = Params::new(&r);
        let _ = p.opt_string(URL);
        p.warn_unknown_keys("aws-sqs-queue", &[URL, LEN, REGION]);
        let warnings = p.finish().expect("only warnings");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("triggers[1].metadata.queueUrl: unknown key for aws-sqs-queue, ignored; did you mean queueURL?"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("metadata.zzz: unknown key"),
            "{warnings:?}"
        );
    }

    #[test]
    fn offline_defers_env_and_auth() {
        let mut r = raw(&[("queueURLFromEnv", "Q")], &[], &[]);
        r.env_unknown = true;
        r.auth_unknown = true;
        let mut p = Params::new(&r);
        assert_eq!(p.string(URL), "");
        assert_eq!(p.string(REGION), "");
        assert!(p.is_deferred("queueURL") && p.is_deferred("awsRegion"));
        assert!(p.finish().is_ok());
    }

    #[test]
    fn deprecations_warn() {
        let r = raw(&[("old", "1")], &[], &[]);
        let mut p = Params::new(&r);
        let _ = p.opt_string(Field::new("old").deprecated("use new"));
        assert_eq!(
            p.finish(),
            Ok(vec!["triggers[1].metadata.old: deprecated; use new".into()])
        );
    }

    /// Issue 17: `NaN`, `Inf`, `-5` and `1e-320` targets were accepted (KEDA's JSON-typed
    /// numbers refuse the first two, and the HPA the others, as KEDA writes them as 0).
    #[test]
    fn numbers_are_finite_and_targets_positive() {
        let cases = [
            ("NaN", "\"NaN\" is not a finite number"),
            ("inf", "\"inf\" is not a finite number"),
            ("-Infinity", "\"-Infinity\" is not a finite number"),
            ("1e999", "\"1e999\" is not a finite number"),
            ("-5", "must be greater than 0"),
            ("0", "must be greater than 0"),
            ("1e-320", "must be greater than 0"),
            ("0.0009", "must be greater than 0"),
        ];
        for (value, want) in cases {
            let r = raw(&[("queueLength", value), ("activation", value)], &[], &[]);
            let mut p = Params::new(&r);
            let _ = p.target(LEN);
            let err = p.finish().expect_err(value).to_string();
            assert!(
                err.contains(&format!("triggers[1].metadata.queueLength: {want}")),
                "{value}: {err}"
            );
        }
        let r = raw(
            &[("queueLength", "0.001"), ("a", "-5"), ("b", "NaN")],
            &[],
            &[],
        );
        let mut p = Params::new(&r);
        assert_eq!(p.target(LEN), 0.001);
        // Activation thresholds may be negative, as in KEDA, but not NaN.
        assert_eq!(p.float(Field::new("a"), 0.0), -5.0);
        assert_eq!(p.float(Field::new("b"), 0.0), 0.0);
        let err = p.finish().expect_err("NaN").to_string();
        assert_eq!(
            err,
            "triggers[1].metadata.b: \"NaN\" is not a finite number"
        );
        // Integers: a non-finite float is not a whole number either.
        let r = raw(&[("n", "inf")], &[], &[]);
        let mut p = Params::new(&r);
        assert_eq!(p.or::<i64>(Field::new("n"), "a whole number", 3), 3);
        assert!(p.finish().is_err());
    }

    #[test]
    fn long_values_are_refused_once_and_cut_in_messages() {
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let r = raw(
            &[("queueURL", &long), ("queueLength", &long)],
            &[("awsRegion", &long)],
            &[],
        );
        let mut p = Params::new(&r);
        assert_eq!(p.string(URL), "");
        assert_eq!(p.opt_string(URL), None);
        let _ = p.float(LEN, 1.0);
        // TriggerAuthentication parameters (a CA bundle) are not limited.
        assert_eq!(p.string(REGION).len(), long.len());
        let err = p.finish().expect_err("too long").0;
        assert_eq!(err.len(), 2, "{err:?}");
        assert_eq!(err[0].field, "triggers[1].metadata.queueURL");
        assert_eq!(err[0].message, "is 65537 bytes long; the limit is 65536");
        let huge = "é".repeat(1000);
        assert!(shown(&huge).len() < 200 && shown(&huge).ends_with("… (2000 bytes)"));
        assert_eq!(shown("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn urls_refuse_line_breaks() {
        let r = raw(
            &[
                ("url", "http://a/\r\nX-Injected: 1"),
                ("plain", " http://b/ "),
                ("ftp", "ftp://c/"),
                ("address", "h:1\0"),
            ],
            &[],
            &[],
        );
        let mut p = Params::new(&r);
        let _ = p.url(Field::new("url"), true);
        assert_eq!(p.url(Field::new("plain"), true), "http://b/");
        let _ = p.url(Field::new("ftp"), true);
        let _ = p.opt_url(Field::new("address"), false);
        assert_eq!(p.url(Field::new("missing"), true), "");
        let err = p.finish().expect_err("invalid").to_string();
        assert!(
            err.contains("metadata.url: contains whitespace or a control character"),
            "{err}"
        );
        assert!(
            err.contains("metadata.ftp: \"ftp://c/\" is not an http:// or https:// URL"),
            "{err}"
        );
        assert!(
            err.contains("metadata.address: contains whitespace"),
            "{err}"
        );
        assert!(err.contains("metadata.missing: required"), "{err}");
        assert!(!err.contains("metadata.plain"), "{err}");
        // Header and query-parameter maps: the entry is named, never its (secret) text.
        let r = raw(
            &[("customHeaders", "A=1,X=secret\r\nInjected: 1")],
            &[],
            &[],
        );
        let mut p = Params::new(&r);
        assert_eq!(
            p.map(Field::new("customHeaders")),
            vec![("A".into(), "1".into())]
        );
        let err = p.finish().expect_err("invalid").to_string();
        assert!(
            err.contains("customHeaders: entry 2 contains a line break"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn unknown_huge_keys_are_cheap() {
        let key = "queueLengt".repeat(100_000);
        let r = raw(&[(&key, "1")], &[], &[]);
        let mut p = Params::new(&r);
        let start = std::time::Instant::now();
        p.warn_unknown_keys("aws-sqs-queue", &[URL, LEN, REGION]);
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        let warnings = p.finish().expect("only warnings");
        assert!(warnings[0].len() < 400, "{}", warnings[0]);
    }
}
