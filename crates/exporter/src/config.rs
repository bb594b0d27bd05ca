//! ebpf_exporter's configuration format.
//!
//! Each config is a `<name>.yaml` file in the config directory with the eBPF
//! object `<name>.bpf.o` beside it. The format (field names, defaults and
//! meaning) is the one of cloudflare/ebpf_exporter's `config/config.go`, so
//! its configs run unchanged:
//!
//! ```yaml
//! metrics:
//!   counters:
//!     - name: timer_starts_total       # map name and metric name
//!       help: Timers fired in the kernel
//!       perf_event_array: false        # map is a BPF_MAP_TYPE_PERF_EVENT_ARRAY
//!       flush_interval: 1m             # Go duration; perf_event_array only
//!       labels:
//!         - name: function
//!           size: 8                    # bytes of the map key
//!           padding: 0                 # bytes skipped after it
//!           decoders:
//!             - name: ksym
//!   histograms:
//!     - name: bio_latency_seconds
//!       help: Block IO latency histogram
//!       bucket_type: exp2              # exp2, exp2zero, linear or fixed
//!       bucket_min: 0                  # exp2, exp2zero and linear
//!       bucket_max: 27
//!       bucket_keys: [1, 5, 10]        # fixed only
//!       bucket_multiplier: 0.000001    # default 1
//!       labels: [...]                  # the last label is the bucket
//! tracing:
//!   spans: [{ name, ringbuf, service, labels }]
//! kaddrs: [symbol]                     # set as kaddr_<symbol> in the object
//! cgroup_id_map: { name, type: hash | cgrp_storage, regexps: [...] }
//! ```
//!
//! Checks that ebpf_exporter only makes while running (label sizes,
//! decoders, bucket ranges, regexps) are made here, when the config is read,
//! with errors naming the file, the metric and the field.

mod duration;
mod schema;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A parsed and validated config: one eBPF object and the metrics it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config's name: the file stem of its YAML file (for [`load`], the
    /// name given in `--config.names`). The program is `<name>.bpf.o`.
    pub name: String,
    /// The YAML file this config was read from.
    pub path: PathBuf,
    pub metrics: Metrics,
    /// Tracing spans read from ring buffers (`tracing.spans`).
    pub tracing: Tracing,
    /// Kernel symbols whose addresses are set as `kaddr_<symbol>` in the object.
    pub kaddrs: Vec<String>,
    /// Present when `cgroup_id_map` names a map.
    pub cgroup_id_map: Option<CgroupIdMap>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub counters: Vec<Counter>,
    pub histograms: Vec<Histogram>,
}

/// A Prometheus counter read from the eBPF map of the same name.
#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    pub name: String,
    pub help: String,
    /// The map is a `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: each event counts one
    /// for the labels decoded from it.
    pub perf_event_array: bool,
    /// How often counters fed by a perf event array are reset. `None` when
    /// unset or zero: ebpf_exporter then uses one hour.
    pub flush_interval: Option<Duration>,
    pub labels: Vec<Label>,
}

/// How the bucket label of a histogram's map key maps to a bucket bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketType {
    /// Key `i` is the bucket `<= 2^i * multiplier`.
    Exp2,
    /// Key 0 is the bucket `<= 0`, key `i > 0` is `<= 2^(i-1) * multiplier`.
    Exp2Zero,
    /// Key `i` is the bucket `<= i * multiplier`.
    Linear,
    /// The keys are `bucket_keys`, bucket `<= key * multiplier`.
    Fixed,
}

impl BucketType {
    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketType::Exp2 => "exp2",
            BucketType::Exp2Zero => "exp2zero",
            BucketType::Linear => "linear",
            BucketType::Fixed => "fixed",
        }
    }
}

impl fmt::Display for BucketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Prometheus histogram read from the eBPF map of the same name. The map
/// key is the labels followed by the bucket: the last label is the bucket
/// index and is not exported as a label.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub name: String,
    pub help: String,
    pub bucket_type: BucketType,
    /// 1 when unset or zero, as in ebpf_exporter.
    pub bucket_multiplier: f64,
    /// First bucket key (exp2, exp2zero and linear; 0 for fixed).
    pub bucket_min: u64,
    /// Last bucket key (exp2, exp2zero and linear; 0 for fixed). The key
    /// `bucket_max + 1` holds the optional sum.
    pub bucket_max: u64,
    /// The bucket keys of a fixed histogram, strictly increasing whole
    /// numbers (empty for the other types). The key after the last holds
    /// the optional sum.
    pub bucket_keys: Vec<f64>,
    /// The labels, the last one being the bucket index.
    pub labels: Vec<Label>,
}

impl Histogram {
    /// The exported labels: all but the last, which is the bucket index.
    pub fn exported_labels(&self) -> &[Label] {
        &self.labels[..self.labels.len().saturating_sub(1)]
    }

    /// The label holding the bucket index (the last one).
    pub fn bucket_label(&self) -> Option<&Label> {
        self.labels.last()
    }
}

/// One field of a map key, decoded into a label value.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub name: String,
    /// Bytes of the key decoded by this label (never zero).
    pub size: usize,
    /// Bytes skipped after the field (alignment).
    pub padding: usize,
    /// Applied in order; never empty.
    pub decoders: Vec<DecoderConfig>,
}

impl Label {
    /// Bytes of the key this label takes: `size + padding`.
    pub fn width(&self) -> usize {
        self.size + self.padding
    }
}

/// One step turning key bytes into a label value. The fields besides `name`
/// are ebpf_exporter's decoder options; each is used by one decoder only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecoderConfig {
    /// One of [`KNOWN_DECODERS`].
    pub name: String,
    /// `static_map`: input value to label value. Keys and values are the
    /// YAML scalars as text (`1: read`).
    pub static_map: BTreeMap<String, String>,
    /// `static_map`: pass values missing from the map through unchanged
    /// instead of `unknown:<value>`.
    pub allow_unknown: bool,
    /// `regexp`: the patterns, tried in order; the first sub-match (or the
    /// whole match) is the value, and when none matches the label set is
    /// dropped. All compile.
    pub regexps: Vec<String>,
}

/// The kind of map that `cgroup_id_map` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CgroupIdMapType {
    /// A hash map keyed by the u64 cgroup id (`type: hash`, the default).
    #[default]
    Hash,
    /// A `BPF_MAP_TYPE_CGRP_STORAGE` map (`type: cgrp_storage`), keyed by a
    /// cgroup fd (4 bytes).
    CgrpStorage,
}

impl CgroupIdMapType {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupIdMapType::Hash => "hash",
            CgroupIdMapType::CgrpStorage => "cgrp_storage",
        }
    }

    /// The key size ebpf_exporter expects for the map.
    pub fn key_size(self) -> usize {
        match self {
            CgroupIdMapType::Hash => 8,
            CgroupIdMapType::CgrpStorage => 4,
        }
    }
}

/// A map the exporter fills with the cgroups whose path matches one of the
/// regexps, for the eBPF program to filter on.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupIdMap {
    /// The map's name in the object (never empty).
    pub name: String,
    pub map_type: CgroupIdMapType,
    /// Patterns matched against cgroup paths. All compile.
    pub regexps: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tracing {
    pub spans: Vec<Span>,
}

/// A tracing span decoded from records of a ring buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    /// The ring buffer map's name (never empty).
    pub ringbuf: String,
    pub service: String,
    pub labels: Vec<Label>,
}

/// Every decoder name bpfkit supports (ebpf_exporter's set): the decoders'
/// own table.
pub use crate::decoders::DECODER_NAMES as KNOWN_DECODERS;

/// Something in a config that does not stop it from loading: an unknown
/// field (outside strict mode) or a setting that has no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: PathBuf,
    pub metric: Option<String>,
    /// The field's path, relative to the metric when there is one
    /// (`labels[0].sizee`), else from the top (`metrics.countres`).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_context(f, &self.file, self.metric.as_deref(), Some(&self.field))?;
        f.write_str(&self.message)
    }
}

/// `file: metric `m`: field `f`: ` — the prefix of every message.
fn write_context(
    f: &mut fmt::Formatter<'_>,
    file: &Path,
    metric: Option<&str>,
    field: Option<&str>,
) -> fmt::Result {
    write!(f, "{}: ", file.display())?;
    if let Some(metric) = metric {
        write!(f, "metric `{metric}`: ")?;
    }
    if let Some(field) = field {
        write!(f, "field `{field}`: ")?;
    }
    Ok(())
}

/// `file: metric `m`: field `f`` for error messages.
struct Context<'a> {
    file: &'a Path,
    metric: Option<&'a str>,
    field: Option<&'a str>,
}

impl fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same as `write_context` without the trailing ": ".
        write!(f, "{}", self.file.display())?;
        if let Some(metric) = self.metric {
            write!(f, ": metric `{metric}`")?;
        }
        if let Some(field) = self.field {
            write!(f, ": field `{field}`")?;
        }
        Ok(())
    }
}

fn ctx<'a>(file: &'a Path, metric: &'a Option<String>, field: &'a str) -> Context<'a> {
    Context {
        file,
        metric: metric.as_deref(),
        field: Some(field),
    }
}

/// Why a config cannot be used. Every error names the file; the metric and
/// the field when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not YAML (or has duplicate keys, bad merges...).
    #[error("{}: invalid YAML{}: {message}", file.display(), yaml_location(*line, *column))]
    Yaml {
        file: PathBuf,
        /// 1-based, when the parser knows it.
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// A field has a wrong type or value.
    #[error("{}: {message}", ctx(file, metric, field))]
    Invalid {
        file: PathBuf,
        metric: Option<String>,
        field: String,
        message: String,
    },
    /// A field the format does not have (strict mode only).
    #[error("{}: unknown field{}", ctx(file, metric, field), hint(suggestion))]
    UnknownField {
        file: PathBuf,
        metric: Option<String>,
        field: String,
        suggestion: Option<String>,
    },
    /// A decoder name that is not one of [`KNOWN_DECODERS`].
    #[error(
        "{}: label `{label}`: unknown decoder `{decoder}`{}",
        ctx(file, metric, field),
        hint(&schema::suggest(decoder, KNOWN_DECODERS))
    )]
    UnknownDecoder {
        file: PathBuf,
        metric: Option<String>,
        field: String,
        label: String,
        decoder: String,
    },
    /// The map's key size does not match the labels.
    #[error("{}: map key is {key_size} bytes but the labels take {labels_size} bytes ({layout})", Context { file, metric: Some(metric), field: None })]
    KeySize {
        file: PathBuf,
        metric: String,
        key_size: usize,
        labels_size: usize,
        /// `name size[+padding]` per label, e.g. `device 4 + operation 4 + bucket 8`.
        layout: String,
    },
    /// [`Config::check_key_size`] was asked about a metric the config lacks.
    #[error("{}: no metric `{metric}` in this config", file.display())]
    NoSuchMetric { file: PathBuf, metric: String },
    /// A name in `--config.names` has no `<name>.yaml` in the config dir.
    #[error("{}: no such config file for config `{name}` (from --config.names)", file.display())]
    MissingConfig { file: PathBuf, name: String },
    /// The config has no `<name>.bpf.o` beside it.
    #[error("{}: eBPF object {} not found", file.display(), object.display())]
    MissingObject { file: PathBuf, object: PathBuf },
    /// A name appears twice in `--config.names`.
    #[error("{}: config `{name}` is named twice in --config.names", file.display())]
    DuplicateName { file: PathBuf, name: String },
    /// The file exists but cannot be read.
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn yaml_location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line} column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

fn hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

impl ConfigError {
    /// The config file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Yaml { file, .. }
            | ConfigError::Invalid { file, .. }
            | ConfigError::UnknownField { file, .. }
            | ConfigError::UnknownDecoder { file, .. }
            | ConfigError::KeySize { file, .. }
            | ConfigError::NoSuchMetric { file, .. }
            | ConfigError::MissingConfig { file, .. }
            | ConfigError::MissingObject { file, .. }
            | ConfigError::DuplicateName { file, .. }
            | ConfigError::Io { file, .. } => file,
        }
    }

    /// The metric the error is about, if any.
    pub fn metric(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { metric, .. }
            | ConfigError::UnknownField { metric, .. }
            | ConfigError::UnknownDecoder { metric, .. } => metric.as_deref(),
            ConfigError::KeySize { metric, .. } | ConfigError::NoSuchMetric { metric, .. } => {
                Some(metric)
            }
            _ => None,
        }
    }

    /// The field the error is about, if any (relative to the metric when
    /// there is one).
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. }
            | ConfigError::UnknownField { field, .. }
            | ConfigError::UnknownDecoder { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Parses and validates one config read from `path` (which is only used
/// for the config's name and in messages; nothing is read from disk).
///
/// Unknown fields are errors with `strict`, warnings otherwise. Other
/// warnings are settings that have no effect.
pub fn parse(path: &Path, text: &str, strict: bool) -> Result<(Config, Vec<Warning>), ConfigError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_named(path, name, text, strict)
}

fn parse_named(
    path: &Path,
    name: String,
    text: &str,
    strict: bool,
) -> Result<(Config, Vec<Warning>), ConfigError> {
    schema::parse(path, name, text, strict)
}

/// Loads the configs named in `--config.names` from `--config.dir`: for each
/// name, `<dir>/<name>.yaml`, whose object `<dir>/<name>.bpf.o` must exist.
/// A config with errors is left out and its errors reported, so the others
/// still load.
pub fn load(
    dir: &Path,
    names: &[String],
    strict: bool,
) -> (Vec<Config>, Vec<ConfigError>, Vec<Warning>) {
    let mut configs = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let file = dir.join(format!("{name}.yaml"));
        if !seen.insert(name.as_str()) {
            errors.push(ConfigError::DuplicateName {
                file,
                name: name.clone(),
            });
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                errors.push(ConfigError::MissingConfig {
                    file,
                    name: name.clone(),
                });
                continue;
            }
            Err(source) => {
                errors.push(ConfigError::Io { file, source });
                continue;
            }
        };
        let parsed = parse_named(&file, name.clone(), &text, strict);
        let object = dir.join(format!("{name}.bpf.o"));
        let object_missing = !object.is_file();
        if object_missing {
            errors.push(ConfigError::MissingObject {
                file: file.clone(),
                object,
            });
        }
        match parsed {
            Ok((config, mut w)) => {
                warnings.append(&mut w);
                if !object_missing {
                    configs.push(config);
                }
            }
            Err(err) => errors.push(err),
        }
    }
    (configs, errors, warnings)
}

impl Config {
    /// The eBPF object beside the YAML file: `<dir>/<name>.bpf.o`.
    pub fn object_path(&self) -> PathBuf {
        self.path.with_file_name(format!("{}.bpf.o", self.name))
    }

    /// The labels of the counter or histogram `metric`, and whether it is a
    /// perf event array counter.
    fn metric_labels(&self, metric: &str) -> Option<(&[Label], bool)> {
        if let Some(c) = self.metrics.counters.iter().find(|c| c.name == metric) {
            return Some((&c.labels, c.perf_event_array));
        }
        self.metrics
            .histograms
            .iter()
            .find(|h| h.name == metric)
            .map(|h| (&h.labels[..], false))
    }

    /// Checks the key size of `metric`'s map against its labels, as
    /// ebpf_exporter decodes keys. Accepts any layout ebpf_exporter can
    /// decode, per-CPU or not; see [`Config::check_map_key_size`].
    pub fn check_key_size(&self, metric: &str, key_size: usize) -> Result<(), ConfigError> {
        match self.check_map_key_size(metric, key_size, false) {
            Ok(()) => Ok(()),
            Err(err) => match self.check_map_key_size(metric, key_size, true) {
                Ok(()) => Ok(()),
                Err(_) => Err(err),
            },
        }
    }

    /// Checks the key size of `metric`'s map against its labels:
    ///
    /// * without labels, the key is a `u32` (4 bytes, always 0);
    /// * otherwise the labels' sizes and paddings add up to the key size
    ///   (for a histogram the last label is the bucket index, part of the key);
    /// * for a per-CPU map whose last label is named `cpu`, the exporter
    ///   appends the CPU number as 2 bytes to each key, so the labels add
    ///   up to `key_size + 2`; when `cpu` is the only label the map key is a
    ///   `u32` 0 that is dropped;
    /// * for a `perf_event_array` counter, `key_size` is the event record
    ///   size, which must hold at least the labels (the rest is ignored).
    pub fn check_map_key_size(
        &self,
        metric: &str,
        key_size: usize,
        percpu: bool,
    ) -> Result<(), ConfigError> {
        let Some((labels, perf_event_array)) = self.metric_labels(metric) else {
            return Err(ConfigError::NoSuchMetric {
                file: self.path.clone(),
                metric: metric.to_string(),
            });
        };
        let total: usize = labels.iter().map(Label::width).sum();
        let ok = if perf_event_array {
            total <= key_size
        } else if labels.is_empty() {
            key_size == 4
        } else if percpu && labels.last().is_some_and(|l| l.name == "cpu") {
            total == key_size + 2 || (labels.len() == 1 && key_size == 4 && total == 2)
        } else {
            total == key_size
        };
        if ok {
            return Ok(());
        }
        let layout = if labels.is_empty() {
            key_layout(labels)
        } else {
            let mut layout = key_layout(labels);
            if perf_event_array {
                layout.push_str("; perf event records must hold at least the labels");
            } else if percpu && labels.last().is_some_and(|l| l.name == "cpu") {
                layout.push_str("; per-CPU: the last 2 bytes are the cpu added by the exporter");
            }
            layout
        };
        Err(ConfigError::KeySize {
            file: self.path.clone(),
            metric: metric.to_string(),
            key_size,
            labels_size: if labels.is_empty() { 4 } else { total },
            layout,
        })
    }
}

/// How labels lay out a map key, for size-mismatch messages:
/// `syscall 8 + errno 4+4` (size, then padding after a `+`).
pub fn key_layout(labels: &[Label]) -> String {
    if labels.is_empty() {
        return "no labels: the key is a u32 0".to_string();
    }
    labels
        .iter()
        .map(|l| {
            if l.padding == 0 {
                format!("{} {}", l.name, l.size)
            } else {
                format!("{} {}+{}", l.name, l.size, l.padding)
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}
