//! ebpf_exporter's own metrics (`Exporter.Collect` before the maps).

use super::{full_name, Family, MetricError, Sample};
use std::collections::BTreeMap;
use std::time::Duration;

/// One eBPF program of a config.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramInfo {
    /// The config's name.
    pub config: String,
    /// The program's name.
    pub program: String,
    /// The program tag (hex), empty when unknown.
    pub tag: String,
    /// The kernel's program id, 0 when unknown.
    pub id: u32,
    /// Whether its link exists.
    pub attached: bool,
    /// Run time and run count, when BPF stats are enabled
    /// (`kernel.bpf_stats_enabled`).
    pub stats: Option<(Duration, u64)>,
}

/// ebpf_exporter's per-config `decoder_errors_total`: one per failed map
/// read (a metric left out of a scrape), starting at 0 for every config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecoderErrorCounts {
    counts: BTreeMap<String, u64>,
}

impl DecoderErrorCounts {
    /// Counts starting at 0 for each config.
    pub fn new<'a>(configs: impl IntoIterator<Item = &'a str>) -> Self {
        DecoderErrorCounts {
            counts: configs.into_iter().map(|c| (c.to_string(), 0)).collect(),
        }
    }

    /// Counts `error` for `config` if ebpf_exporter does
    /// ([`MetricError::is_decoder_error`]).
    pub fn record(&mut self, config: &str, error: &MetricError) {
        if error.is_decoder_error() {
            self.inc(config);
        }
    }

    /// Adds one for `config`.
    pub fn inc(&mut self, config: &str) {
        self.add(config, 1);
    }

    /// Adds `n` for `config` (e.g. perf events that did not decode).
    pub fn add(&mut self, config: &str, n: u64) {
        let count = self.counts.entry(config.to_string()).or_insert(0);
        *count = count.saturating_add(n);
    }

    pub fn get(&self, config: &str) -> u64 {
        self.counts.get(config).copied().unwrap_or(0)
    }
}

/// What the self metrics are built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelfMetrics {
    /// Names of the enabled configs.
    pub configs: Vec<String>,
    pub programs: Vec<ProgramInfo>,
    pub decoder_errors: DecoderErrorCounts,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `ebpf_exporter_enabled_configs`, `ebpf_exporter_ebpf_program_info`,
/// `ebpf_exporter_ebpf_program_attached`, `ebpf_exporter_decoder_errors_total`
/// and, for programs with stats, `ebpf_exporter_ebpf_program_run_time_seconds`
/// and `ebpf_exporter_ebpf_program_run_count_total`, with ebpf_exporter's
/// help texts. Families without series are left out, as client_golang does.
pub fn self_metrics(m: &SelfMetrics) -> Vec<Family> {
    let gauge = |name: &str, help: &str, samples: Vec<Sample>| Family::Gauge {
        name: full_name(name),
        help: help.to_string(),
        samples,
    };
    let counter = |name: &str, help: &str, samples: Vec<Sample>| Family::Counter {
        name: full_name(name),
        help: help.to_string(),
        samples,
    };
    let one = |labels: Vec<(String, String)>, value: f64| Sample { labels, value };

    let mut families = vec![
        gauge(
            "enabled_configs",
            "The set of enabled configs",
            m.configs
                .iter()
                .map(|c| one(labels(&[("name", c)]), 1.0))
                .collect(),
        ),
        gauge(
            "ebpf_program_info",
            "Info about ebpf programs",
            m.programs
                .iter()
                .map(|p| {
                    let id = p.id.to_string();
                    one(
                        labels(&[
                            ("config", &p.config),
                            ("program", &p.program),
                            ("tag", &p.tag),
                            ("id", &id),
                        ]),
                        1.0,
                    )
                })
                .collect(),
        ),
        gauge(
            "ebpf_program_attached",
            "Whether a program is attached",
            m.programs
                .iter()
                .map(|p| {
                    one(
                        labels(&[("id", &p.id.to_string())]),
                        if p.attached { 1.0 } else { 0.0 },
                    )
                })
                .collect(),
        ),
        counter(
            "ebpf_program_run_time_seconds",
            "How long has the program been executing",
            m.programs
                .iter()
                .filter_map(|p| {
                    let (time, _) = p.stats?;
                    Some(one(
                        labels(&[("id", &p.id.to_string())]),
                        time.as_secs_f64(),
                    ))
                })
                .collect(),
        ),
        counter(
            "ebpf_program_run_count_total",
            "How many times has the program been executed",
            m.programs
                .iter()
                .filter_map(|p| {
                    let (_, count) = p.stats?;
                    Some(one(labels(&[("id", &p.id.to_string())]), count as f64))
                })
                .collect(),
        ),
        counter(
            "decoder_errors_total",
            "How many times has decoders encountered errors",
            m.decoder_errors
                .counts
                .iter()
                .map(|(c, n)| one(labels(&[("config", c)]), *n as f64))
                .collect(),
        ),
    ];
    families.retain(|f| match f {
        Family::Counter { samples, .. } | Family::Gauge { samples, .. } => !samples.is_empty(),
        Family::Histogram { series, .. } => !series.is_empty(),
    });
    families
}
