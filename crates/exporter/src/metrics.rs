//! Metric families from the contents of eBPF maps, as ebpf_exporter's
//! `exporter/exporter.go` and `exporter/histogram.go` build them, and their
//! exposition in the Prometheus text format (0.0.4) and OpenMetrics 1.0.
//!
//! Nothing here touches the kernel: the input is a [`MapSnapshot`] (the
//! map's keys and values as bytes), the output a [`Family`].
//!
//! * Counters: every map entry is a series whose labels are decoded from
//!   the key. Per-CPU values are summed, unless the last label is named
//!   `cpu`: then the CPU number is appended to the key as a host-order
//!   `u16` and decoded like the other labels. Label sets the decoders drop
//!   (`regexp` without a match) are skipped; equal label sets (two cgroup
//!   ids decoding to the same path, say) are summed.
//! * Histograms: the last label is the bucket index, read as a number and
//!   turned into the upper bound by the bucket type (see [`BucketType`]).
//!   Buckets missing from the map are filled in, buckets are cumulative and
//!   the `+Inf` bucket equals `_count`. The key after the last bucket holds
//!   the optional sum (times `bucket_multiplier`).
//! * A key that does not decode fails the whole metric for this scrape;
//!   the caller counts it in `ebpf_exporter_decoder_errors_total` for the
//!   config ([`MetricError::is_decoder_error`], [`DecoderErrorCounts`]).
//!
//! [`BucketType`]: crate::config::BucketType

mod collect;
mod encode;
mod histogram;
mod negotiate;
mod selfmetrics;

use crate::config;
use crate::decoders::{DecoderSpec, Decoders, LabelSpec};

pub use encode::{encode_openmetrics, encode_text};
pub use negotiate::{negotiate, Encoding, Format};
pub use selfmetrics::{self_metrics, DecoderErrorCounts, ProgramInfo, SelfMetrics};

/// Prefix of every metric name: ebpf_exporter's Prometheus namespace.
pub const NAMESPACE: &str = "ebpf_exporter";

/// Most buckets one histogram may have (a linear histogram's `bucket_max`
/// is otherwise unbounded).
pub const MAX_BUCKETS: u64 = 100_000;

/// The contents of one eBPF map, read at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapSnapshot {
    /// The map's key size in bytes.
    pub key_size: usize,
    /// The map's value size in bytes (must be 8: values are `u64`).
    pub value_size: usize,
    /// A per-CPU map (`PERCPU_HASH`, `PERCPU_ARRAY`, `LRU_PERCPU_HASH`).
    pub per_cpu: bool,
    /// Keys and values. A per-CPU value is one slot per CPU, each
    /// `value_size` rounded up to 8 bytes, concatenated.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One series of a counter or gauge.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Label names and values, in the config's order.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// One series of a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSeries {
    /// Label names and values (the bucket label left out), in the config's order.
    pub labels: Vec<(String, String)>,
    /// Upper bounds (`le`, increasing, without `+Inf`) and cumulative counts.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    /// Equals the last bucket's count: the `+Inf` bucket.
    pub count: u64,
}

/// A metric family: a name (with the `ebpf_exporter_` prefix), its help
/// and its series.
#[derive(Debug, Clone, PartialEq)]
pub enum Family {
    Counter {
        name: String,
        help: String,
        samples: Vec<Sample>,
    },
    Gauge {
        name: String,
        help: String,
        samples: Vec<Sample>,
    },
    Histogram {
        name: String,
        help: String,
        series: Vec<HistogramSeries>,
    },
}

impl Family {
    pub fn name(&self) -> &str {
        match self {
            Family::Counter { name, .. }
            | Family::Gauge { name, .. }
            | Family::Histogram { name, .. } => name,
        }
    }

    pub fn help(&self) -> &str {
        match self {
            Family::Counter { help, .. }
            | Family::Gauge { help, .. }
            | Family::Histogram { help, .. } => help,
        }
    }
}

/// Why a map gave no metric this scrape. Every variant names the metric
/// (the config's name, without the prefix).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// The map's key size does not match the labels.
    #[error("metric `{metric}`: map key is {key_size} bytes but the labels take {labels_size} bytes ({layout})")]
    KeySize {
        metric: String,
        key_size: usize,
        labels_size: usize,
        layout: String,
    },
    /// The map's values are not `u64`.
    #[error("metric `{metric}`: value size for map is not expected 8 bytes (u64), it is {value_size} bytes")]
    ValueSize { metric: String, value_size: usize },
    /// An entry does not have the map's key or value size.
    #[error("metric `{metric}`: map entry {index}: {message}")]
    Entry {
        metric: String,
        index: usize,
        message: String,
    },
    /// A key did not decode into labels.
    #[error("metric `{metric}`: {source}")]
    Decode {
        metric: String,
        #[source]
        source: crate::decoders::DecodeError,
    },
    /// A histogram's bucket label is not a whole number.
    #[error(
        "metric `{metric}`: bucket label {value:?} of labels {labels:?} is not a whole number"
    )]
    Bucket {
        metric: String,
        labels: Vec<String>,
        value: String,
    },
    /// The histogram's configuration cannot give buckets.
    #[error("metric `{metric}`: {message}")]
    Histogram { metric: String, message: String },
    /// A `perf_event_array` counter has no map to read: its values come
    /// from events.
    #[error("metric `{metric}`: perf_event_array counters are not read from a map")]
    PerfEventArray { metric: String },
}

impl MetricError {
    /// The metric the error is about (the config's name, without prefix).
    pub fn metric(&self) -> &str {
        match self {
            MetricError::KeySize { metric, .. }
            | MetricError::ValueSize { metric, .. }
            | MetricError::Entry { metric, .. }
            | MetricError::Decode { metric, .. }
            | MetricError::Bucket { metric, .. }
            | MetricError::Histogram { metric, .. }
            | MetricError::PerfEventArray { metric } => metric,
        }
    }

    /// Whether ebpf_exporter counts this in
    /// `ebpf_exporter_decoder_errors_total`: it does for every failure to
    /// read a map's values into labels, not for bad histogram buckets
    /// (which it only logs).
    pub fn is_decoder_error(&self) -> bool {
        matches!(
            self,
            MetricError::KeySize { .. }
                | MetricError::ValueSize { .. }
                | MetricError::Entry { .. }
                | MetricError::Decode { .. }
        )
    }
}

impl From<&config::DecoderConfig> for DecoderSpec {
    fn from(d: &config::DecoderConfig) -> Self {
        DecoderSpec {
            name: d.name.clone(),
            static_map: d.static_map.clone(),
            allow_unknown: d.allow_unknown,
            regexps: d.regexps.clone(),
        }
    }
}

impl From<&config::Label> for LabelSpec {
    fn from(l: &config::Label) -> Self {
        LabelSpec {
            name: l.name.clone(),
            size: l.size,
            padding: l.padding,
            decoders: l.decoders.iter().map(DecoderSpec::from).collect(),
        }
    }
}

/// The full metric name: `ebpf_exporter_<name>`.
pub fn full_name(name: &str) -> String {
    format!("{NAMESPACE}_{name}")
}

/// The counter `c` from its map. Perf event array counters are not read
/// from a map and give [`MetricError::PerfEventArray`].
pub fn counter_family(
    c: &config::Counter,
    map: &MapSnapshot,
    decoders: &Decoders,
) -> Result<Family, MetricError> {
    if c.perf_event_array {
        return Err(MetricError::PerfEventArray {
            metric: c.name.clone(),
        });
    }
    let values = collect::labelled_values(&c.name, &c.labels, map, decoders)?;
    let mut samples: Vec<Sample> = values
        .into_iter()
        .map(|(values, value)| Sample {
            labels: c
                .labels
                .iter()
                .map(|l| l.name.clone())
                .zip(values)
                .collect(),
            value,
        })
        .collect();
    samples.sort_by(|a, b| by_values(&a.labels, &b.labels));
    Ok(Family::Counter {
        name: full_name(&c.name),
        help: c.help.clone(),
        samples,
    })
}

/// The histogram `h` from its map.
pub fn histogram_family(
    h: &config::Histogram,
    map: &MapSnapshot,
    decoders: &Decoders,
) -> Result<Family, MetricError> {
    if h.labels.is_empty() {
        return Err(MetricError::Histogram {
            metric: h.name.clone(),
            message: "a histogram needs at least one label: the last one is the bucket index"
                .to_string(),
        });
    }
    let values = collect::labelled_values(&h.name, &h.labels, map, decoders)?;
    let series = histogram::build(h, values)?;
    Ok(Family::Histogram {
        name: full_name(&h.name),
        help: h.help.clone(),
        series,
    })
}

/// Orders series by their label values, in the config's order.
pub(crate) fn by_values(a: &[(String, String)], b: &[(String, String)]) -> std::cmp::Ordering {
    a.iter().map(|(_, v)| v).cmp(b.iter().map(|(_, v)| v))
}
