//! Reading a config: YAML into [`Value`], then a walk over the known schema.
//!
//! Why a walk over `serde_yaml_ng::Value` rather than `#[derive(Deserialize)]`
//! structs: the walk knows where it is (metric and field path) at every step,
//! so type errors, semantic errors and unknown fields all name the metric and
//! the field (`metric `x`: field `labels[0].size``), and it collects *every*
//! unknown field as a warning in one pass, where `deny_unknown_fields` stops
//! at the first and a second lenient pass would be needed to load anyway.
//! The cost is that only YAML syntax errors carry a line and column (the
//! `Value` tree has no positions); the field path stands in for them.
//!
//! Scalars follow yaml.v2 (which ebpf_exporter uses) where it differs from
//! YAML 1.2: `yes`/`no`/`on`/`off`/`y`/`n` are booleans, scalars of any type
//! read into string fields as text, `null` is the field's default, a bare
//! number `flush_interval` is nanoseconds, and `<<` merge keys apply.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::duration::{from_nanos, parse_go_duration};
use super::{
    BucketType, CgroupIdMap, CgroupIdMapType, Config, ConfigError, Counter, DecoderConfig,
    Histogram, Label, Metrics, Span, Tracing, Warning, KNOWN_DECODERS,
};

const CONFIG_KEYS: &[&str] = &["metrics", "tracing", "kaddrs", "cgroup_id_map", "name"];
const METRICS_KEYS: &[&str] = &["counters", "histograms"];
const COUNTER_KEYS: &[&str] = &[
    "name",
    "help",
    "perf_event_array",
    "flush_interval",
    "labels",
];
const HISTOGRAM_KEYS: &[&str] = &[
    "name",
    "help",
    "bucket_type",
    "bucket_multiplier",
    "bucket_min",
    "bucket_max",
    "bucket_keys",
    "labels",
];
const LABEL_KEYS: &[&str] = &["name", "size", "padding", "decoders"];
const DECODER_KEYS: &[&str] = &["name", "static_map", "regexps", "allow_unknown"];
const CGROUP_ID_MAP_KEYS: &[&str] = &["name", "type", "regexps"];
const TRACING_KEYS: &[&str] = &["spans"];
const SPAN_KEYS: &[&str] = &["name", "ringbuf", "service", "labels"];

pub(super) fn parse(
    file: &Path,
    name: String,
    text: &str,
    strict: bool,
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let yaml_error = |err: serde_yaml_ng::Error| {
        let location = err.location();
        // The location is reported separately.
        let message = strip_locations(&err.to_string());
        ConfigError::Yaml {
            file: file.to_path_buf(),
            line: location.as_ref().map(|l| l.line()),
            column: location.as_ref().map(|l| l.column()),
            message,
        }
    };
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    value.apply_merge().map_err(yaml_error)?;
    let mut walker = Walker {
        file,
        strict,
        warnings: Vec::new(),
    };
    let config = walker.config(&value, name)?;
    Ok((config, walker.warnings))
}

/// `msg at line 4 column 4, while parsing` → `msg, while parsing`.
fn strip_locations(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" at line ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + " at line ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let line_len = digits(after);
        let tail = &after[line_len..];
        rest = match tail.strip_prefix(" column ") {
            Some(col) if line_len > 0 => &col[digits(col)..],
            _ if line_len > 0 => tail,
            _ => {
                out.push_str(" at line ");
                after
            }
        };
    }
    out.push_str(rest);
    out
}

/// Where in the config: the metric (when inside one) and the field path
/// (relative to the metric when inside one).
#[derive(Clone, Debug)]
struct At {
    metric: Option<String>,
    field: String,
}

impl At {
    fn root() -> At {
        At {
            metric: None,
            field: String::new(),
        }
    }

    fn metric(name: &str) -> At {
        At {
            metric: Some(name.to_string()),
            field: String::new(),
        }
    }

    fn key(&self, key: &str) -> At {
        let field = if self.field.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.field)
        };
        At {
            metric: self.metric.clone(),
            field,
        }
    }

    fn index(&self, index: usize) -> At {
        At {
            metric: self.metric.clone(),
            field: format!("{}[{index}]", self.field),
        }
    }
}

/// Which labels a label list holds: it decides the name checks.
#[derive(Clone, Copy, PartialEq)]
enum LabelUse {
    Counter,
    /// The last label is the bucket index, not exported.
    Histogram,
    /// Span attributes: any name.
    Span,
}

struct Walker<'a> {
    file: &'a Path,
    strict: bool,
    warnings: Vec<Warning>,
}

fn untag(value: &Value) -> &Value {
    match value {
        Value::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

fn kind(value: &Value) -> &'static str {
    match untag(value) {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A field's value; `None` when absent or null (the default, as in yaml.v2).
fn get<'v>(map: &'v Mapping, key: &str) -> Option<&'v Value> {
    match map.get(key).map(untag) {
        None | Some(Value::Null) => None,
        Some(value) => Some(value),
    }
}

/// Scalars as text, as yaml.v2 reads them into Go strings.
fn scalar_text(value: &Value) -> Option<String> {
    match untag(value) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// The closest name in `known`, for "did you mean".
pub(crate) fn suggest(word: &str, known: &[&str]) -> Option<String> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min()
        .map(|(_, k)| k.to_string())
}

fn is_metric_name(name: &str) -> bool {
    // Exported as `ebpf_exporter_<name>`, so a leading digit is fine.
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The message of a regex error, on one line.
fn regex_message(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or(text.lines().next().unwrap_or(""))
        .to_string()
}

impl Walker<'_> {
    fn invalid(&self, at: &At, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            metric: at.metric.clone(),
            field: at.field.clone(),
            message: message.into(),
        }
    }

    fn warn(&mut self, at: &At, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: self.file.to_path_buf(),
            metric: at.metric.clone(),
            field: at.field.clone(),
            message: message.into(),
        });
    }

    fn type_error(&self, at: &At, expected: &str, value: &Value) -> ConfigError {
        self.invalid(at, format!("expected {expected}, found {}", kind(value)))
    }

    fn mapping<'v>(&self, at: &At, value: &'v Value) -> Result<&'v Mapping, ConfigError> {
        match untag(value) {
            Value::Mapping(map) => Ok(map),
            other => Err(self.type_error(at, "a mapping", other)),
        }
    }

    /// Unknown keys: errors in strict mode, warnings otherwise.
    fn check_keys(&mut self, at: &At, map: &Mapping, known: &[&str]) -> Result<(), ConfigError> {
        for key in map.keys() {
            let Some(key) = untag(key).as_str() else {
                return Err(self.invalid(at, format!("keys must be strings, found {}", kind(key))));
            };
            if known.contains(&key) {
                continue;
            }
            let field = at.key(key);
            let suggestion = suggest(key, known);
            if self.strict {
                return Err(ConfigError::UnknownField {
                    file: self.file.to_path_buf(),
                    metric: field.metric,
                    field: field.field,
                    suggestion,
                });
            }
            let message = match suggestion {
                Some(s) => format!("unknown field (did you mean `{s}`?)"),
                None => "unknown field".to_string(),
            };
            self.warn(&field, message);
        }
        Ok(())
    }

    fn string(&self, at: &At, value: &Value) -> Result<String, ConfigError> {
        scalar_text(value).ok_or_else(|| self.type_error(at, "a string", value))
    }

    fn opt_string(&self, map: &Mapping, at: &At, key: &str) -> Result<String, ConfigError> {
        match get(map, key) {
            None => Ok(String::new()),
            Some(value) => self.string(&at.key(key), value),
        }
    }

    /// A non-negative integer that fits Go's `int`.
    fn uint(&self, at: &At, value: &Value) -> Result<u64, ConfigError> {
        match untag(value) {
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    if u > i64::MAX as u64 {
                        return Err(self.invalid(at, format!("{u} is out of range")));
                    }
                    Ok(u)
                } else if n.as_i64().is_some() {
                    Err(self.invalid(at, format!("must not be negative, found {n}")))
                } else {
                    Err(self.invalid(at, format!("expected a whole number, found {n}")))
                }
            }
            other => Err(self.type_error(at, "a whole number", other)),
        }
    }

    fn opt_uint(&self, map: &Mapping, at: &At, key: &str) -> Result<Option<u64>, ConfigError> {
        get(map, key)
            .map(|v| self.uint(&at.key(key), v))
            .transpose()
    }

    fn float(&self, at: &At, value: &Value) -> Result<f64, ConfigError> {
        match untag(value) {
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(f),
                _ => Err(self.invalid(at, format!("expected a finite number, found {n}"))),
            },
            other => Err(self.type_error(at, "a number", other)),
        }
    }

    /// yaml.v2 booleans (YAML 1.1): also `yes`, `no`, `on`, `off`, `y`, `n`.
    fn bool(&self, map: &Mapping, at: &At, key: &str) -> Result<bool, ConfigError> {
        let Some(value) = get(map, key) else {
            return Ok(false);
        };
        match value {
            Value::Bool(b) => Ok(*b),
            Value::String(s) => match s.as_str() {
                "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True"
                | "TRUE" => Ok(true),
                "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
                | "FALSE" => Ok(false),
                _ => Err(self.invalid(&at.key(key), format!("expected a boolean, found {s:?}"))),
            },
            other => Err(self.type_error(&at.key(key), "a boolean", other)),
        }
    }

    /// A list field; empty when absent or null.
    fn list<'v>(&self, map: &'v Mapping, at: &At, key: &str) -> Result<&'v [Value], ConfigError> {
        match get(map, key) {
            None => Ok(&[]),
            Some(Value::Sequence(items)) => Ok(items),
            Some(other) => Err(self.type_error(&at.key(key), "a list", other)),
        }
    }

    fn string_list(&self, map: &Mapping, at: &At, key: &str) -> Result<Vec<String>, ConfigError> {
        let field = at.key(key);
        self.list(map, at, key)?
            .iter()
            .enumerate()
            .map(|(i, v)| self.string(&field.index(i), v))
            .collect()
    }

    /// Regexps that must compile (Go's RE2 syntax is a subset of `regex`'s).
    fn regexps(&self, map: &Mapping, at: &At) -> Result<Vec<String>, ConfigError> {
        let regexps = self.string_list(map, at, "regexps")?;
        for (i, expr) in regexps.iter().enumerate() {
            if let Err(err) = regex::Regex::new(expr) {
                return Err(self.invalid(
                    &at.key("regexps").index(i),
                    format!("invalid regexp {expr:?}: {}", regex_message(&err)),
                ));
            }
        }
        Ok(regexps)
    }

    fn config(&mut self, value: &Value, name: String) -> Result<Config, ConfigError> {
        let root = At::root();
        let empty = Mapping::new();
        let map = match untag(value) {
            Value::Null => &empty,
            Value::Mapping(map) => map,
            other => {
                return Err(ConfigError::Invalid {
                    file: self.file.to_path_buf(),
                    metric: None,
                    field: "(top level)".to_string(),
                    message: format!("expected a mapping, found {}", kind(other)),
                })
            }
        };
        self.check_keys(&root, map, CONFIG_KEYS)?;
        if get(map, "name").is_some() {
            self.warn(
                &root.key("name"),
                "ignored: a config's name is its file name",
            );
        }

        let mut seen = BTreeMap::new();
        let metrics = match get(map, "metrics") {
            None => Metrics::default(),
            Some(value) => self.metrics(value, &mut seen)?,
        };
        let tracing = match get(map, "tracing") {
            None => Tracing::default(),
            Some(value) => self.tracing(value)?,
        };
        if metrics.counters.is_empty() && metrics.histograms.is_empty() && tracing.spans.is_empty()
        {
            return Err(self.invalid(
                &root.key("metrics"),
                "neither metrics nor tracing are defined",
            ));
        }

        let kaddrs = self.string_list(map, &root, "kaddrs")?;
        for (i, kaddr) in kaddrs.iter().enumerate() {
            if kaddr.is_empty() {
                return Err(self.invalid(&root.key("kaddrs").index(i), "empty symbol name"));
            }
        }

        let cgroup_id_map = match get(map, "cgroup_id_map") {
            None => None,
            Some(value) => self.cgroup_id_map(value)?,
        };

        Ok(Config {
            name,
            path: self.file.to_path_buf(),
            metrics,
            tracing,
            kaddrs,
            cgroup_id_map,
        })
    }

    fn metrics(
        &mut self,
        value: &Value,
        seen: &mut BTreeMap<String, String>,
    ) -> Result<Metrics, ConfigError> {
        let at = At::root().key("metrics");
        let map = self.mapping(&at, value)?;
        self.check_keys(&at, map, METRICS_KEYS)?;
        let mut metrics = Metrics::default();
        for (i, item) in self.list(map, &at, "counters")?.iter().enumerate() {
            let at = at.key("counters").index(i);
            metrics.counters.push(self.counter(&at, item, seen)?);
        }
        for (i, item) in self.list(map, &at, "histograms")?.iter().enumerate() {
            let at = at.key("histograms").index(i);
            metrics.histograms.push(self.histogram(&at, item, seen)?);
        }
        Ok(metrics)
    }

    /// The name and help shared by counters and histograms; returns the
    /// position inside the metric for the other fields.
    fn metric_head(
        &mut self,
        at: &At,
        map: &Mapping,
        known: &[&str],
        seen: &mut BTreeMap<String, String>,
    ) -> Result<(String, String, At), ConfigError> {
        let name = self.opt_string(map, at, "name")?;
        let inner = if name.is_empty() {
            at.clone()
        } else {
            At::metric(&name)
        };
        self.check_keys(&inner, map, known)?;
        if name.is_empty() {
            return Err(self.invalid(&at.key("name"), "a metric needs a name (its map's name)"));
        }
        if !is_metric_name(&name) {
            return Err(self.invalid(
                &inner.key("name"),
                "not a valid Prometheus metric name: use letters, digits, `_` and `:`",
            ));
        }
        if let Some(first) = seen.insert(name.clone(), at.field.clone()) {
            return Err(self.invalid(
                &inner.key("name"),
                format!("duplicate metric name, first defined at `{first}`"),
            ));
        }
        let help = self.opt_string(map, &inner, "help")?;
        if help.is_empty() {
            return Err(self.invalid(&inner.key("help"), "a metric needs a help text"));
        }
        Ok((name, help, inner))
    }

    fn counter(
        &mut self,
        at: &At,
        value: &Value,
        seen: &mut BTreeMap<String, String>,
    ) -> Result<Counter, ConfigError> {
        let map = self.mapping(at, value)?;
        let (name, help, at) = self.metric_head(at, map, COUNTER_KEYS, seen)?;
        let perf_event_array = self.bool(map, &at, "perf_event_array")?;
        let flush_interval = match get(map, "flush_interval") {
            None => None,
            Some(value) => {
                let field = at.key("flush_interval");
                let nanos = match value {
                    Value::String(s) => {
                        parse_go_duration(s).map_err(|m| self.invalid(&field, m))?
                    }
                    Value::Number(n) if n.as_i64().is_some() => {
                        // yaml.v2 reads a bare integer into time.Duration as nanoseconds.
                        let nanos = n.as_i64().unwrap_or_default();
                        if nanos > 0 {
                            self.warn(
                                &field,
                                format!("a bare number is {nanos} nanoseconds; write a unit, e.g. `{nanos}s`"),
                            );
                        }
                        i128::from(nanos)
                    }
                    other => return Err(self.type_error(&field, "a duration like `30s`", other)),
                };
                if nanos < 0 {
                    return Err(self.invalid(&field, "must not be negative"));
                }
                let interval = from_nanos(nanos);
                if interval.is_some() && !perf_event_array {
                    self.warn(&field, "has no effect without `perf_event_array: true`");
                }
                interval
            }
        };
        let labels = self.labels(map, &at, LabelUse::Counter)?;
        Ok(Counter {
            name,
            help,
            perf_event_array,
            flush_interval,
            labels,
        })
    }

    fn histogram(
        &mut self,
        at: &At,
        value: &Value,
        seen: &mut BTreeMap<String, String>,
    ) -> Result<Histogram, ConfigError> {
        let map = self.mapping(at, value)?;
        let (name, help, at) = self.metric_head(at, map, HISTOGRAM_KEYS, seen)?;

        let type_at = at.key("bucket_type");
        let bucket_type = match self.opt_string(map, &at, "bucket_type")?.as_str() {
            "exp2" => BucketType::Exp2,
            "exp2zero" => BucketType::Exp2Zero,
            "linear" => BucketType::Linear,
            "fixed" => BucketType::Fixed,
            "" => {
                return Err(self.invalid(&type_at, "missing: one of exp2, exp2zero, linear, fixed"))
            }
            other => {
                return Err(self.invalid(
                    &type_at,
                    format!(
                    "unknown bucket type `{other}`: expected one of exp2, exp2zero, linear, fixed"
                ),
                ))
            }
        };

        let multiplier_at = at.key("bucket_multiplier");
        let bucket_multiplier = match get(map, "bucket_multiplier") {
            None => {
                if bucket_type == BucketType::Linear {
                    self.warn(
                        &multiplier_at,
                        "not set for a linear histogram: buckets are 1 apart",
                    );
                }
                1.0
            }
            Some(value) => match self.float(&multiplier_at, value)? {
                m if m < 0.0 => {
                    return Err(self.invalid(&multiplier_at, format!("must be positive, found {m}")))
                }
                // ebpf_exporter treats 0 as unset.
                0.0 => 1.0,
                m => m,
            },
        };

        let bucket_min = self.opt_uint(map, &at, "bucket_min")?;
        let bucket_max = self.opt_uint(map, &at, "bucket_max")?;
        let keys_at = at.key("bucket_keys");
        let key_values = self.list(map, &at, "bucket_keys")?;
        let mut bucket_keys = Vec::with_capacity(key_values.len());
        if bucket_type == BucketType::Fixed {
            if key_values.is_empty() {
                return Err(self.invalid(&keys_at, "a fixed histogram needs bucket keys"));
            }
            for (i, value) in key_values.iter().enumerate() {
                let key_at = keys_at.index(i);
                let key = self.float(&key_at, value)?;
                if key < 0.0 || key.fract() != 0.0 || key >= u64::MAX as f64 {
                    return Err(self.invalid(
                        &key_at,
                        format!(
                            "{key} is not a bucket index: kernel bucket keys are unsigned integers"
                        ),
                    ));
                }
                if let Some(&prev) = bucket_keys.last() {
                    if key <= prev {
                        return Err(self.invalid(
                            &key_at,
                            format!(
                                "bucket keys must be strictly increasing: {key} follows {prev}"
                            ),
                        ));
                    }
                }
                bucket_keys.push(key);
            }
            for key in ["bucket_min", "bucket_max"] {
                if get(map, key).is_some() {
                    self.warn(
                        &at.key(key),
                        "ignored for fixed histograms (they use bucket_keys)",
                    );
                }
            }
        } else {
            if !key_values.is_empty() {
                self.warn(
                    &keys_at,
                    format!("ignored for {bucket_type} histograms (fixed only)"),
                );
            }
            let (min, max) = (bucket_min.unwrap_or(0), bucket_max.unwrap_or(0));
            let max_at = at.key("bucket_max");
            if max <= min {
                return Err(self.invalid(
                    &max_at,
                    format!("bucket_max ({max}) must be greater than bucket_min ({min})"),
                ));
            }
            // 2^1024 is not a finite f64.
            let limit = match bucket_type {
                BucketType::Exp2 => Some(1023),
                BucketType::Exp2Zero => Some(1024),
                _ => None,
            };
            if let Some(limit) = limit.filter(|&l| max > l) {
                return Err(self.invalid(
                    &max_at,
                    format!("{max} is too large for {bucket_type} buckets (at most {limit})"),
                ));
            }
        }

        let labels = self.labels(map, &at, LabelUse::Histogram)?;
        let labels_at = at.key("labels");
        let Some(bucket) = labels.last() else {
            return Err(self.invalid(
                &labels_at,
                "a histogram needs at least one label: the last one is the bucket index",
            ));
        };
        let last = bucket
            .decoders
            .last()
            .map(|d| d.name.as_str())
            .unwrap_or_default();
        if !matches!(last, "uint" | "static_map" | "regexp") {
            return Err(self.invalid(
                &labels_at.index(labels.len() - 1).key("decoders"),
                format!(
                    "the last label of a histogram is the bucket index and must decode to an integer, \
                     but its last decoder is `{last}` (use `uint`)"
                ),
            ));
        }

        let (bucket_min, bucket_max) = if bucket_type == BucketType::Fixed {
            (0, 0)
        } else {
            (bucket_min.unwrap_or(0), bucket_max.unwrap_or(0))
        };
        Ok(Histogram {
            name,
            help,
            bucket_type,
            bucket_multiplier,
            bucket_min,
            bucket_max,
            bucket_keys,
            labels,
        })
    }

    fn labels(
        &mut self,
        map: &Mapping,
        at: &At,
        usage: LabelUse,
    ) -> Result<Vec<Label>, ConfigError> {
        let items = self.list(map, at, "labels")?;
        let at = at.key("labels");
        let mut labels: Vec<Label> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let label = self.label(&at.index(i), item)?;
            let exported = match usage {
                LabelUse::Counter => true,
                LabelUse::Histogram => i + 1 < items.len(),
                LabelUse::Span => false,
            };
            if exported {
                let name_at = at.index(i).key("name");
                if !is_label_name(&label.name) || label.name.starts_with("__") {
                    return Err(self.invalid(
                        &name_at,
                        format!(
                            "`{}` is not a valid Prometheus label name: use letters, digits and `_`, \
                             not starting with a digit or `__`",
                            label.name
                        ),
                    ));
                }
                if usage == LabelUse::Histogram && label.name == "le" {
                    return Err(self.invalid(&name_at, "`le` is reserved for histogram buckets"));
                }
                if let Some(first) = labels.iter().position(|l| l.name == label.name) {
                    return Err(self.invalid(
                        &name_at,
                        format!(
                            "duplicate label name `{}`, also labels[{first}]",
                            label.name
                        ),
                    ));
                }
            }
            labels.push(label);
        }
        Ok(labels)
    }

    fn label(&mut self, at: &At, value: &Value) -> Result<Label, ConfigError> {
        let map = self.mapping(at, value)?;
        self.check_keys(at, map, LABEL_KEYS)?;
        let name = self.opt_string(map, at, "name")?;
        if name.is_empty() {
            return Err(self.invalid(&at.key("name"), "a label needs a name"));
        }
        let size = self.opt_uint(map, at, "size")?.unwrap_or(0);
        if size == 0 {
            return Err(self.invalid(
                &at.key("size"),
                format!("label `{name}` needs a size in bytes greater than zero"),
            ));
        }
        let padding = self.opt_uint(map, at, "padding")?.unwrap_or(0);
        let items = self.list(map, at, "decoders")?;
        if items.is_empty() {
            return Err(self.invalid(
                &at.key("decoders"),
                format!("label `{name}` needs at least one decoder"),
            ));
        }
        let mut decoders = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            decoders.push(self.decoder(&at.key("decoders").index(i), item, &name)?);
        }
        // `uint` reads the raw key bytes as a host-endian integer.
        if decoders[0].name == "uint" && !matches!(size, 1 | 2 | 4 | 8) {
            return Err(self.invalid(
                &at.key("size"),
                format!(
                    "the `uint` decoder reads 1, 2, 4 or 8 bytes, but label `{name}` has {size}"
                ),
            ));
        }
        Ok(Label {
            name,
            size: usize::try_from(size).unwrap_or(usize::MAX),
            padding: usize::try_from(padding).unwrap_or(usize::MAX),
            decoders,
        })
    }

    fn decoder(
        &mut self,
        at: &At,
        value: &Value,
        label: &str,
    ) -> Result<DecoderConfig, ConfigError> {
        let map = self.mapping(at, value)?;
        self.check_keys(at, map, DECODER_KEYS)?;
        let name = self.opt_string(map, at, "name")?;
        if name.is_empty() {
            return Err(self.invalid(
                &at.key("name"),
                format!("a decoder of label `{label}` needs a name"),
            ));
        }
        if !KNOWN_DECODERS.contains(&name.as_str()) {
            return Err(ConfigError::UnknownDecoder {
                file: self.file.to_path_buf(),
                metric: at.metric.clone(),
                field: at.key("name").field,
                label: label.to_string(),
                decoder: name,
            });
        }

        let mut static_map = BTreeMap::new();
        if let Some(value) = get(map, "static_map") {
            let map_at = at.key("static_map");
            let Value::Mapping(entries) = value else {
                return Err(self.type_error(&map_at, "a mapping", value));
            };
            for (key, value) in entries {
                let Some(key_text) = scalar_text(key) else {
                    return Err(self.invalid(
                        &map_at,
                        format!("keys must be scalars, found {}", kind(key)),
                    ));
                };
                let entry_at = map_at.key(&key_text);
                let value = self.string(&entry_at, value)?;
                static_map.insert(key_text, value);
            }
        }
        let allow_unknown = self.bool(map, at, "allow_unknown")?;
        let regexps = self.regexps(map, at)?;

        if name == "static_map" && static_map.is_empty() {
            return Err(self.invalid(
                &at.key("static_map"),
                format!(
                    "the `static_map` decoder of label `{label}` needs a non-empty `static_map`"
                ),
            ));
        }
        if name == "regexp" && regexps.is_empty() {
            return Err(self.invalid(
                &at.key("regexps"),
                format!("the `regexp` decoder of label `{label}` needs `regexps`"),
            ));
        }
        for (field, used_by, set) in [
            ("static_map", "static_map", get(map, "static_map").is_some()),
            (
                "allow_unknown",
                "static_map",
                get(map, "allow_unknown").is_some(),
            ),
            ("regexps", "regexp", get(map, "regexps").is_some()),
        ] {
            if set && name != used_by {
                self.warn(
                    &at.key(field),
                    format!("ignored: only the `{used_by}` decoder uses it, this is `{name}`"),
                );
            }
        }
        Ok(DecoderConfig {
            name,
            static_map,
            allow_unknown,
            regexps,
        })
    }

    fn cgroup_id_map(&mut self, value: &Value) -> Result<Option<CgroupIdMap>, ConfigError> {
        let at = At::root().key("cgroup_id_map");
        let map = self.mapping(&at, value)?;
        self.check_keys(&at, map, CGROUP_ID_MAP_KEYS)?;
        let name = self.opt_string(map, &at, "name")?;
        let map_type = match self.opt_string(map, &at, "type")?.as_str() {
            // ebpf_exporter's default, from before cgrp_storage.
            "" | "hash" => CgroupIdMapType::Hash,
            "cgrp_storage" => CgroupIdMapType::CgrpStorage,
            other => {
                return Err(self.invalid(
                    &at.key("type"),
                    format!("unknown cgroup_id_map type `{other}`: expected hash or cgrp_storage"),
                ))
            }
        };
        let regexps = self.regexps(map, &at)?;
        if name.is_empty() {
            if map.is_empty() {
                return Ok(None);
            }
            return Err(self.invalid(&at.key("name"), "cgroup_id_map needs the name of its map"));
        }
        Ok(Some(CgroupIdMap {
            name,
            map_type,
            regexps,
        }))
    }

    fn tracing(&mut self, value: &Value) -> Result<Tracing, ConfigError> {
        let at = At::root().key("tracing");
        let map = self.mapping(&at, value)?;
        self.check_keys(&at, map, TRACING_KEYS)?;
        let mut spans = Vec::new();
        for (i, item) in self.list(map, &at, "spans")?.iter().enumerate() {
            let at = at.key("spans").index(i);
            let span = self.mapping(&at, item)?;
            self.check_keys(&at, span, SPAN_KEYS)?;
            let ringbuf = self.opt_string(span, &at, "ringbuf")?;
            if ringbuf.is_empty() {
                return Err(self.invalid(
                    &at.key("ringbuf"),
                    "a span needs the name of its ring buffer",
                ));
            }
            spans.push(Span {
                name: self.opt_string(span, &at, "name")?,
                ringbuf,
                service: self.opt_string(span, &at, "service")?,
                labels: self.labels(span, &at, LabelUse::Span)?,
            });
        }
        Ok(Tracing { spans })
    }
}
