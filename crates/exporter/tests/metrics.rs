//! Metric families from map snapshots, checked against ebpf_exporter's
//! collection and bucket math, and their text / OpenMetrics exposition.

use bpfkit_exporter::config::{self, Config};
use bpfkit_exporter::decoders::{DecoderOptions, Decoders};
use bpfkit_exporter::metrics::{
    counter_family, encode_openmetrics, encode_text, histogram_family, negotiate, self_metrics,
    DecoderErrorCounts, Encoding, Family, HistogramSeries, MapSnapshot, MetricError, ProgramInfo,
    Sample, SelfMetrics,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn data(file: &str) -> Config {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    config::parse(&path, &text, true)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .0
}

fn inline(yaml: &str) -> Config {
    config::parse(Path::new("inline.yaml"), yaml, true)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

fn decoders() -> Decoders {
    Decoders::with_options(DecoderOptions {
        cache_limit: 0,
        ..DecoderOptions::default()
    })
}

fn counter<'a>(c: &'a Config, name: &str) -> &'a config::Counter {
    c.metrics
        .counters
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

fn histogram<'a>(c: &'a Config, name: &str) -> &'a config::Histogram {
    c.metrics
        .histograms
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no histogram {name}"))
}

fn u32b(v: u32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}
fn u64b(v: u64) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}
fn percpu(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}
fn comm(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.resize(16, 0);
    b
}
fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn snap(key_size: usize, per_cpu: bool, entries: Vec<(Vec<u8>, Vec<u8>)>) -> MapSnapshot {
    MapSnapshot {
        key_size,
        value_size: 8,
        per_cpu,
        entries,
    }
}

/// Samples as `label=value,...=value` strings, in family order.
fn flat(f: &Family) -> Vec<(String, f64)> {
    let Family::Counter { samples, .. } = f else {
        panic!("not a counter: {f:?}");
    };
    samples
        .iter()
        .map(|s| {
            let l = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            (l, s.value)
        })
        .collect()
}

fn series(f: &Family) -> &[HistogramSeries] {
    let Family::Histogram { series, .. } = f else {
        panic!("not a histogram: {f:?}");
    };
    series
}

// ---------------------------------------------------------------- counters

struct CounterCase {
    what: &'static str,
    config: Config,
    metric: &'static str,
    map: MapSnapshot,
    want: Vec<(&'static str, f64)>,
}

#[test]
fn counters_from_maps() {
    let cases = vec![
        CounterCase {
            what: "per-CPU split by a last `cpu` label (u16 appended to the key)",
            config: data("percpu-softirq.yaml"),
            metric: "softirqs_total",
            map: snap(
                4,
                true,
                vec![
                    (u32b(1), percpu(&[5, 7])),
                    (u32b(3), percpu(&[1, 0])),
                ],
            ),
            want: vec![
                ("vec=NET_RX_SOFTIRQ,cpu=0", 1.0),
                ("vec=NET_RX_SOFTIRQ,cpu=1", 0.0),
                ("vec=TIMER_SOFTIRQ,cpu=0", 5.0),
                ("vec=TIMER_SOFTIRQ,cpu=1", 7.0),
            ],
        },
        CounterCase {
            what: "per-CPU summed when the last label is not `cpu`; equal label sets summed",
            config: data("regexp.yaml"),
            metric: "mm_shrink_slab_events_total",
            map: snap(
                16,
                true,
                vec![
                    (comm("kswapd0"), percpu(&[1, 2, 3])),
                    (comm("kswapd1"), percpu(&[10, 0, 0])),
                    (comm("systemd-journal"), percpu(&[0, 0, 4])),
                    (comm("bash"), percpu(&[1, 1, 1])),
                ],
            ),
            want: vec![
                ("comm=bash", 3.0),
                ("comm=kswapd", 16.0),
                ("comm=systemd-journal", 4.0),
            ],
        },
        CounterCase {
            what: "regexp drops label sets that match nothing (`.` stops at newline)",
            config: data("regexp.yaml"),
            metric: "mm_shrink_slab_events_total",
            map: snap(
                16,
                false,
                vec![(comm("a\nb"), u64b(9)), (comm("kswapd0"), u64b(2))],
            ),
            want: vec![("comm=kswapd", 2.0)],
        },
        CounterCase {
            what: "a `cpu` label on a plain map is an ordinary key field",
            config: data("llcstat.yaml"),
            metric: "llc_misses_total",
            map: snap(4, false, vec![(u32b(1), u64b(20)), (u32b(0), u64b(10))]),
            want: vec![("cpu=0", 10.0), ("cpu=1", 20.0)],
        },
        CounterCase {
            what: "per-CPU with `cpu` the only label: the u32 0 key is dropped",
            config: inline(
                "metrics:\n  counters:\n    - name: per_cpu_total\n      help: h\n      labels:\n        - name: cpu\n          size: 2\n          decoders: [{name: uint}]\n",
            ),
            metric: "per_cpu_total",
            map: snap(4, true, vec![(u32b(0), percpu(&[3, 4, 5]))]),
            want: vec![("cpu=0", 3.0), ("cpu=1", 4.0), ("cpu=2", 5.0)],
        },
        CounterCase {
            what: "duplicate label sets from different keys via static_map are summed",
            config: inline(
                "metrics:\n  counters:\n    - name: ops_total\n      help: h\n      labels:\n        - name: op\n          size: 4\n          decoders:\n            - name: uint\n            - name: static_map\n              static_map: {1: read, 2: read, 3: write}\n",
            ),
            metric: "ops_total",
            map: snap(
                4,
                false,
                vec![
                    (u32b(1), u64b(5)),
                    (u32b(3), u64b(1)),
                    (u32b(2), u64b(6)),
                ],
            ),
            want: vec![("op=read", 11.0), ("op=write", 1.0)],
        },
        CounterCase {
            what: "an empty map gives an empty family",
            config: data("percpu-softirq.yaml"),
            metric: "softirqs_total",
            map: snap(4, true, vec![]),
            want: vec![],
        },
        CounterCase {
            what: "u64 values read in host order, large values kept",
            config: data("llcstat.yaml"),
            metric: "llc_references_total",
            map: snap(4, false, vec![(u32b(7), u64b(1 << 40))]),
            want: vec![("cpu=7", (1u64 << 40) as f64)],
        },
    ];
    let d = decoders();
    for case in &cases {
        let c = counter(&case.config, case.metric);
        let family =
            counter_family(c, &case.map, &d).unwrap_or_else(|e| panic!("{}: {e}", case.what));
        assert_eq!(
            family.name(),
            format!("ebpf_exporter_{}", case.metric),
            "{}",
            case.what
        );
        assert_eq!(family.help(), c.help, "{}", case.what);
        let want: Vec<(String, f64)> = case.want.iter().map(|(l, v)| (l.to_string(), *v)).collect();
        assert_eq!(flat(&family), want, "{}", case.what);
    }
}

struct ErrCase {
    what: &'static str,
    config: Config,
    metric: &'static str,
    histogram: bool,
    map: MapSnapshot,
    /// Substrings of the message.
    want: &'static [&'static str],
    decoder_error: bool,
}

#[test]
fn metric_errors() {
    let string_then_uint = inline(
        "metrics:\n  counters:\n    - name: bad_total\n      help: h\n      labels:\n        - name: x\n          size: 4\n          decoders: [{name: string}, {name: errno}]\n",
    );
    // Config checks reject a non-numeric last decoder; build one anyway.
    let mut string_bucket = inline(
        "metrics:\n  histograms:\n    - name: bad_hist\n      help: h\n      bucket_type: linear\n      bucket_min: 0\n      bucket_max: 3\n      labels:\n        - name: bucket\n          size: 4\n          decoders: [{name: uint}]\n",
    );
    string_bucket.metrics.histograms[0].labels[0].decoders[0].name = "string".into();
    let cases = vec![
        ErrCase {
            what: "map key size differs from the labels",
            config: data("shrinklat.yaml"),
            metric: "shrink_node_latency_seconds",
            histogram: true,
            map: snap(8, false, vec![]),
            want: &[
                "shrink_node_latency_seconds",
                "map key is 8 bytes",
                "bucket 4",
            ],
            decoder_error: true,
        },
        ErrCase {
            what: "counter key size differs",
            config: data("percpu-softirq.yaml"),
            metric: "softirqs_total",
            histogram: false,
            // Not per-CPU: the cpu bytes are not appended, labels take 6.
            map: snap(4, false, vec![(u32b(1), u64b(1))]),
            want: &["softirqs_total", "map key is 4 bytes but the labels take 6"],
            decoder_error: true,
        },
        ErrCase {
            what: "per-CPU, `cpu` the only label but 4 bytes wide",
            config: data("llcstat.yaml"),
            metric: "llc_misses_total",
            histogram: false,
            map: snap(4, true, vec![(u32b(0), percpu(&[1, 2]))]),
            want: &["llc_misses_total", "per-CPU"],
            decoder_error: true,
        },
        ErrCase {
            what: "values are not u64",
            config: data("llcstat.yaml"),
            metric: "llc_misses_total",
            histogram: false,
            map: MapSnapshot {
                key_size: 4,
                value_size: 4,
                per_cpu: false,
                entries: vec![(u32b(0), u32b(1))],
            },
            want: &["llc_misses_total", "not expected 8 bytes", "it is 4 bytes"],
            decoder_error: true,
        },
        ErrCase {
            what: "an entry's key is shorter than the map's",
            config: data("llcstat.yaml"),
            metric: "llc_misses_total",
            histogram: false,
            map: snap(4, false, vec![(u32b(0), u64b(1)), (vec![1, 2], u64b(1))]),
            want: &["llc_misses_total", "entry 1", "key is 2 bytes"],
            decoder_error: true,
        },
        ErrCase {
            what: "an entry's value is not 8 bytes",
            config: data("llcstat.yaml"),
            metric: "llc_misses_total",
            histogram: false,
            map: snap(4, false, vec![(u32b(0), vec![1, 2, 3])]),
            want: &["llc_misses_total", "entry 0", "value is 3 bytes"],
            decoder_error: true,
        },
        ErrCase {
            what: "a per-CPU value is not whole slots",
            config: data("percpu-softirq.yaml"),
            metric: "softirqs_total",
            histogram: false,
            map: snap(4, true, vec![(u32b(0), vec![0; 12])]),
            want: &["softirqs_total", "entry 0", "12 bytes"],
            decoder_error: true,
        },
        ErrCase {
            what: "an empty per-CPU value",
            config: data("percpu-softirq.yaml"),
            metric: "softirqs_total",
            histogram: false,
            map: snap(4, true, vec![(u32b(0), vec![])]),
            want: &["softirqs_total", "entry 0"],
            decoder_error: true,
        },
        ErrCase {
            what: "a key that does not decode fails the metric",
            config: string_then_uint,
            metric: "bad_total",
            histogram: false,
            map: snap(
                4,
                false,
                vec![(b"12\0\0".to_vec(), u64b(1)), (b"ab\0\0".to_vec(), u64b(1))],
            ),
            want: &["bad_total", "errno"],
            decoder_error: true,
        },
        ErrCase {
            what: "a bucket label that is not a number (logged, not counted)",
            config: string_bucket,
            metric: "bad_hist",
            histogram: true,
            map: snap(
                4,
                false,
                vec![
                    (b"1\0\0\0".to_vec(), u64b(1)),
                    (b"x\0\0\0".to_vec(), u64b(1)),
                ],
            ),
            want: &["bad_hist", "\"x\"", "not a whole number"],
            decoder_error: false,
        },
        ErrCase {
            what: "perf event array counters are not read from maps",
            config: data("fixed-buckets.yaml"),
            metric: "exec_total",
            histogram: false,
            map: snap(16, false, vec![]),
            want: &["exec_total", "perf_event_array"],
            decoder_error: false,
        },
    ];
    let d = decoders();
    for case in &cases {
        let result = if case.histogram {
            histogram_family(histogram(&case.config, case.metric), &case.map, &d)
        } else {
            counter_family(counter(&case.config, case.metric), &case.map, &d)
        };
        let err = match result {
            Ok(f) => panic!("{}: expected an error, got {f:?}", case.what),
            Err(e) => e,
        };
        assert_eq!(err.metric(), case.metric, "{}", case.what);
        let msg = err.to_string();
        for w in case.want {
            assert!(msg.contains(w), "{}: {msg:?} lacks {w:?}", case.what);
        }
        assert_eq!(
            err.is_decoder_error(),
            case.decoder_error,
            "{}: {msg}",
            case.what
        );
    }
}

#[test]
fn no_label_counter_key_is_u32_zero() {
    let mut c = counter(&data("llcstat.yaml"), "llc_misses_total").clone();
    c.labels.clear();
    let d = decoders();
    let ok = counter_family(&c, &snap(4, true, vec![(u32b(0), percpu(&[2, 3]))]), &d).unwrap();
    assert_eq!(flat(&ok), vec![(String::new(), 5.0)]);
    // Any other key does not decode.
    let err = counter_family(&c, &snap(4, false, vec![(u32b(1), u64b(1))]), &d).unwrap_err();
    assert!(matches!(err, MetricError::Decode { .. }), "{err:?}");
    // Nor does a key size other than 4.
    let err = counter_family(&c, &snap(8, false, vec![]), &d).unwrap_err();
    assert!(matches!(err, MetricError::KeySize { .. }), "{err:?}");
}

#[test]
fn decoder_error_counts() {
    let mut counts = DecoderErrorCounts::new(["a", "b"]);
    let decode = MetricError::Decode {
        metric: "m".into(),
        source: bpfkit_exporter::decoders::DecodeError::Failed {
            label: "l".into(),
            decoder: "uint".into(),
            message: "bad".into(),
        },
    };
    let bucket = MetricError::Bucket {
        metric: "m".into(),
        labels: vec![],
        value: "x".into(),
    };
    counts.record("a", &decode);
    counts.record("a", &decode);
    counts.record("b", &bucket);
    counts.inc("c");
    assert_eq!(
        (counts.get("a"), counts.get("b"), counts.get("c")),
        (2, 0, 1)
    );
}

// -------------------------------------------------------------- histograms

/// (labels, buckets (le, cumulative), sum, count)
type WantSeries = (Vec<(&'static str, &'static str)>, Vec<(f64, u64)>, f64, u64);

struct HistCase {
    what: &'static str,
    config: Config,
    metric: &'static str,
    map: MapSnapshot,
    /// (labels, buckets (le, cumulative), sum, count)
    want: Vec<WantSeries>,
}

/// Expected cumulative buckets: bounds and per-bucket counts.
fn cumulative(bounds: &[f64], counts: &[u64]) -> Vec<(f64, u64)> {
    let mut total = 0;
    bounds
        .iter()
        .zip(counts)
        .map(|(&b, &c)| {
            total += c;
            (b, total)
        })
        .collect()
}

#[test]
fn histograms_match_ebpf_exporter_math() {
    // exp2, 0..26, multiplier 1e-6: le = 2^i * 1e-6. Key 27 is the sum;
    // key 28 is out of range and ignored.
    let exp2_bounds: Vec<f64> = (0..=26).map(|i| 2f64.powi(i) * 0.000001).collect();
    let mut exp2_counts = vec![0u64; 27];
    exp2_counts[0] = 2;
    exp2_counts[3] = 5;
    exp2_counts[26] = 1;

    // exp2zero, 0..17: le = 0, 1, 2, 4, ... 2^16. Key 18 is the sum.
    let exp2zero_bounds: Vec<f64> = std::iter::once(0.0)
        .chain((1..=17).map(|i| 2f64.powi(i - 1)))
        .collect();
    let mut exp2zero_counts = vec![0u64; 18];
    exp2zero_counts[0] = 3;
    exp2zero_counts[1] = 1;
    exp2zero_counts[2] = 4;
    exp2zero_counts[5] = 2; // le 16

    // linear, 0..20, multiplier 50: le = 0, 50, ... 1000. Key 21 is the sum.
    let linear_bounds: Vec<f64> = (0..=20).map(|i| f64::from(i) * 50.0).collect();
    let mut linear_counts = vec![0u64; 21];
    linear_counts[0] = 1;
    linear_counts[1] = 2;
    linear_counts[20] = 3;

    let fixed_bounds = [64.0, 512.0, 4096.0, 65536.0];
    let op = |v: u8| {
        let mut k = vec![v];
        k.resize(8, 0);
        k
    };

    let cases = vec![
        HistCase {
            what: "exp2 with multiplier, sum key, out-of-range key ignored",
            config: data("shrinklat.yaml"),
            metric: "shrink_node_latency_seconds",
            map: snap(
                4,
                false,
                vec![
                    (u32b(3), u64b(5)),
                    (u32b(0), u64b(2)),
                    (u32b(26), u64b(1)),
                    (u32b(27), u64b(1234)),
                    (u32b(28), u64b(99)),
                ],
            ),
            want: vec![(
                vec![],
                cumulative(&exp2_bounds, &exp2_counts),
                1234.0 * 0.000001,
                8,
            )],
        },
        HistCase {
            what: "exp2zero: key 0 is le 0, key i is le 2^(i-1)",
            config: data("tcp-syn-backlog-exp2zero.yaml"),
            metric: "tcp_syn_backlog",
            map: snap(
                8,
                false,
                vec![
                    (u64b(0), u64b(3)),
                    (u64b(1), u64b(1)),
                    (u64b(2), u64b(4)),
                    (u64b(5), u64b(2)),
                    (u64b(18), u64b(100)),
                ],
            ),
            want: vec![(
                vec![],
                cumulative(&exp2zero_bounds, &exp2zero_counts),
                100.0,
                10,
            )],
        },
        HistCase {
            what: "linear with multiplier 50; sum times the multiplier",
            config: data("tcp-syn-backlog.yaml"),
            metric: "tcp_syn_backlog",
            map: snap(
                8,
                false,
                vec![
                    (u64b(0), u64b(1)),
                    (u64b(1), u64b(2)),
                    (u64b(20), u64b(3)),
                    (u64b(21), u64b(7)),
                ],
            ),
            want: vec![(vec![], cumulative(&linear_bounds, &linear_counts), 350.0, 6)],
        },
        HistCase {
            what: "linear, empty map: every bucket present with 0",
            config: data("tcp-syn-backlog.yaml"),
            metric: "tcp_syn_backlog",
            map: snap(8, false, vec![]),
            want: vec![],
        },
        HistCase {
            what: "fixed keys by label; keys between bucket keys ignored; last+1 is the sum",
            config: data("fixed-buckets.yaml"),
            metric: "request_size_bytes",
            map: snap(
                16,
                false,
                vec![
                    (cat(&[op(1), u64b(64)]), u64b(2)),
                    (cat(&[op(1), u64b(4096)]), u64b(3)),
                    (cat(&[op(1), u64b(100)]), u64b(9)),
                    (cat(&[op(1), u64b(65537)]), u64b(777)),
                    (cat(&[op(2), u64b(512)]), u64b(1)),
                    (cat(&[op(3), u64b(65536)]), u64b(4)),
                ],
            ),
            want: vec![
                (
                    vec![("op", "3")],
                    cumulative(&fixed_bounds, &[0, 0, 0, 4]),
                    0.0,
                    4,
                ),
                (
                    vec![("op", "read")],
                    cumulative(&fixed_bounds, &[2, 0, 3, 0]),
                    777.0,
                    5,
                ),
                (
                    vec![("op", "write")],
                    cumulative(&fixed_bounds, &[0, 1, 0, 0]),
                    0.0,
                    1,
                ),
            ],
        },
    ];
    let d = decoders();
    for case in &cases {
        let h = histogram(&case.config, case.metric);
        let family =
            histogram_family(h, &case.map, &d).unwrap_or_else(|e| panic!("{}: {e}", case.what));
        assert_eq!(family.name(), format!("ebpf_exporter_{}", case.metric));
        let got = series(&family);
        assert_eq!(got.len(), case.want.len(), "{}: {got:?}", case.what);
        for (s, (labels, buckets, sum, count)) in got.iter().zip(&case.want) {
            let labels: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(s.labels, labels, "{}", case.what);
            assert_eq!(&s.buckets, buckets, "{}", case.what);
            assert_eq!(s.sum, *sum, "{}", case.what);
            assert_eq!(s.count, *count, "{}", case.what);
            // Consistent: cumulative, and the last bucket is `_count`.
            assert!(s
                .buckets
                .windows(2)
                .all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
            assert_eq!(
                s.buckets.last().map(|b| b.1),
                Some(s.count),
                "{}",
                case.what
            );
        }
    }
}

#[test]
fn histogram_per_cpu_values_and_duplicate_sets_summed() {
    // The bucket key's two per-CPU slots and two keys that decode to the
    // same labels all add up.
    let c = inline(
        "metrics:\n  histograms:\n    - name: lat\n      help: h\n      bucket_type: linear\n      bucket_min: 1\n      bucket_max: 3\n      labels:\n        - name: dev\n          size: 4\n          decoders:\n            - name: uint\n            - name: static_map\n              static_map: {1: sda, 2: sda}\n        - name: bucket\n          size: 4\n          decoders: [{name: uint}]\n",
    );
    let h = histogram(&c, "lat");
    let map = snap(
        8,
        true,
        vec![
            (cat(&[u32b(1), u32b(1)]), percpu(&[1, 2])),
            (cat(&[u32b(2), u32b(1)]), percpu(&[4, 0])),
            (cat(&[u32b(2), u32b(3)]), percpu(&[0, 1])),
            // Below bucket_min: ignored.
            (cat(&[u32b(2), u32b(0)]), percpu(&[50, 50])),
        ],
    );
    let family = histogram_family(h, &map, &decoders()).unwrap();
    let s = series(&family);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels, vec![("dev".to_string(), "sda".to_string())]);
    assert_eq!(s[0].buckets, vec![(1.0, 7), (2.0, 7), (3.0, 8)]);
    assert_eq!((s[0].sum, s[0].count), (0.0, 8));
}

#[test]
fn histogram_config_errors() {
    let d = decoders();
    let mut h = histogram(&data("tcp-syn-backlog.yaml"), "tcp_syn_backlog").clone();
    let map = snap(8, false, vec![(u64b(1), u64b(1))]);
    type Change = Box<dyn Fn(&mut config::Histogram)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "no labels",
            Box::new(|h| h.labels.clear()),
            "at least one label",
        ),
        (
            "bucket_max == bucket_min",
            Box::new(|h| h.bucket_max = h.bucket_min),
            "zero size",
        ),
        (
            "too many buckets",
            Box::new(|h| h.bucket_max = u64::MAX),
            "more than",
        ),
        (
            "fixed without keys",
            Box::new(|h| {
                h.bucket_type = config::BucketType::Fixed;
                h.bucket_keys.clear();
            }),
            "len(bucket_keys) = 0",
        ),
    ];
    for (what, change, want) in cases {
        let mut broken = h.clone();
        change(&mut broken);
        let err = histogram_family(&broken, &map, &d).unwrap_err();
        assert!(err.to_string().contains(want), "{what}: {err}");
        assert!(err.to_string().contains("tcp_syn_backlog"), "{what}: {err}");
    }
    // Bucket labels read as Go's ParseUint(s, 0, 64) does.
    h.labels[0].decoders = vec![config::DecoderConfig {
        name: "string".into(),
        ..Default::default()
    }];
    for (key, ok) in [
        ("0x2", true),
        ("0b10", true),
        ("02", true),
        ("2", true),
        ("-2", false),
        ("2.0", false),
        ("", false),
    ] {
        let mut k = key.as_bytes().to_vec();
        k.resize(8, 0);
        let r = histogram_family(&h, &snap(8, false, vec![(k, u64b(1))]), &d);
        match r {
            Ok(f) if ok => assert_eq!(series(&f)[0].buckets[2].1, 1, "{key}"),
            Err(MetricError::Bucket { .. }) if !ok => {}
            other => panic!("{key:?}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- encoding

fn s(labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

fn sample_families() -> Vec<Family> {
    vec![
        Family::Histogram {
            name: "ebpf_exporter_lat_seconds".into(),
            help: "Latency".into(),
            series: vec![
                HistogramSeries {
                    labels: vec![("dev".into(), "sdb".into())],
                    buckets: vec![(0.000001, 1), (1048576.0, 3)],
                    sum: 0.5,
                    count: 3,
                },
                HistogramSeries {
                    labels: vec![("dev".into(), "sda".into())],
                    buckets: vec![(0.000001, 0), (1048576.0, 0)],
                    sum: 0.0,
                    count: 0,
                },
            ],
        },
        Family::Counter {
            name: "ebpf_exporter_ops_total".into(),
            help: "Ops with \\ and \"quotes\"\nand a newline".into(),
            samples: vec![
                s(&[("op", "b\\c"), ("cpu", "1")], 2.0),
                s(&[("op", "a\"q\"\nz"), ("cpu", "0")], 1.5),
                s(&[("op", "a"), ("cpu", "1")], 1e21),
            ],
        },
        Family::Gauge {
            name: "ebpf_exporter_enabled_configs".into(),
            help: String::new(),
            samples: vec![s(&[("name", "x")], 1.0)],
        },
        Family::Counter {
            name: "ebpf_exporter_events".into(),
            help: "No _total suffix".into(),
            samples: vec![s(&[], 0.0)],
        },
    ]
}

#[test]
fn text_format_line_by_line() {
    let mut out = String::new();
    encode_text(&sample_families(), &mut out);
    let want = [
        "# HELP ebpf_exporter_enabled_configs ",
        "# TYPE ebpf_exporter_enabled_configs gauge",
        "ebpf_exporter_enabled_configs{name=\"x\"} 1",
        "# HELP ebpf_exporter_events No _total suffix",
        "# TYPE ebpf_exporter_events counter",
        "ebpf_exporter_events 0",
        "# HELP ebpf_exporter_lat_seconds Latency",
        "# TYPE ebpf_exporter_lat_seconds histogram",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sda\",le=\"1e-06\"} 0",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sda\",le=\"1.048576e+06\"} 0",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sda\",le=\"+Inf\"} 0",
        "ebpf_exporter_lat_seconds_sum{dev=\"sda\"} 0",
        "ebpf_exporter_lat_seconds_count{dev=\"sda\"} 0",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sdb\",le=\"1e-06\"} 1",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sdb\",le=\"1.048576e+06\"} 3",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sdb\",le=\"+Inf\"} 3",
        "ebpf_exporter_lat_seconds_sum{dev=\"sdb\"} 0.5",
        "ebpf_exporter_lat_seconds_count{dev=\"sdb\"} 3",
        // HELP escapes `\` and newlines but not quotes.
        "# HELP ebpf_exporter_ops_total Ops with \\\\ and \"quotes\"\\nand a newline",
        "# TYPE ebpf_exporter_ops_total counter",
        // Labels sorted by name; series by values in that order.
        "ebpf_exporter_ops_total{cpu=\"0\",op=\"a\\\"q\\\"\\nz\"} 1.5",
        "ebpf_exporter_ops_total{cpu=\"1\",op=\"a\"} 1e+21",
        "ebpf_exporter_ops_total{cpu=\"1\",op=\"b\\\\c\"} 2",
    ];
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, want, "\n{out}");
    assert!(out.ends_with('\n'));
}

#[test]
fn openmetrics_line_by_line() {
    let mut out = String::new();
    encode_openmetrics(&sample_families(), &mut out);
    let want = [
        "# HELP ebpf_exporter_enabled_configs ",
        "# TYPE ebpf_exporter_enabled_configs gauge",
        "ebpf_exporter_enabled_configs{name=\"x\"} 1.0",
        "# HELP ebpf_exporter_events No _total suffix",
        "# TYPE ebpf_exporter_events counter",
        "ebpf_exporter_events_total 0.0",
        "# HELP ebpf_exporter_lat_seconds Latency",
        "# TYPE ebpf_exporter_lat_seconds histogram",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sda\",le=\"1e-06\"} 0",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sda\",le=\"1.048576e+06\"} 0",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sda\",le=\"+Inf\"} 0",
        "ebpf_exporter_lat_seconds_sum{dev=\"sda\"} 0.0",
        "ebpf_exporter_lat_seconds_count{dev=\"sda\"} 0",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sdb\",le=\"1e-06\"} 1",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sdb\",le=\"1.048576e+06\"} 3",
        "ebpf_exporter_lat_seconds_bucket{dev=\"sdb\",le=\"+Inf\"} 3",
        "ebpf_exporter_lat_seconds_sum{dev=\"sdb\"} 0.5",
        "ebpf_exporter_lat_seconds_count{dev=\"sdb\"} 3",
        // OpenMetrics escapes quotes in HELP too; counter metadata drops `_total`.
        "# HELP ebpf_exporter_ops Ops with \\\\ and \\\"quotes\\\"\\nand a newline",
        "# TYPE ebpf_exporter_ops counter",
        "ebpf_exporter_ops_total{cpu=\"0\",op=\"a\\\"q\\\"\\nz\"} 1.5",
        "ebpf_exporter_ops_total{cpu=\"1\",op=\"a\"} 1e+21",
        "ebpf_exporter_ops_total{cpu=\"1\",op=\"b\\\\c\"} 2.0",
        "# EOF",
    ];
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, want, "\n{out}");
}

#[test]
fn numbers_as_go_formats_them() {
    // (value, text format, OpenMetrics)
    let cases: &[(f64, &str, &str)] = &[
        (0.0, "0", "0.0"),
        (-0.0, "0", "0.0"),
        (1.0, "1", "1.0"),
        (-1.0, "-1", "-1.0"),
        (2.5, "2.5", "2.5"),
        (123456.0, "123456", "123456.0"),
        (1234567.0, "1.234567e+06", "1.234567e+06"),
        (1e6, "1e+06", "1e+06"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "1e-05", "1e-05"),
        (0.000123, "0.000123", "0.000123"),
        (1e100, "1e+100", "1e+100"),
        (
            1.8446744073709552e19,
            "1.8446744073709552e+19",
            "1.8446744073709552e+19",
        ),
        (f64::INFINITY, "+Inf", "+Inf"),
        (f64::NEG_INFINITY, "-Inf", "-Inf"),
        (f64::NAN, "NaN", "NaN"),
    ];
    for &(v, text, om) in cases {
        let f = [Family::Gauge {
            name: "g".into(),
            help: "h".into(),
            samples: vec![s(&[], v)],
        }];
        let mut out = String::new();
        encode_text(&f, &mut out);
        assert_eq!(
            out.lines().nth(2),
            Some(format!("g {text}").as_str()),
            "{v}"
        );
        let mut out = String::new();
        encode_openmetrics(&f, &mut out);
        assert_eq!(out.lines().nth(2), Some(format!("g {om}").as_str()), "{v}");
    }
}

#[test]
fn real_histogram_encodes_consistently() {
    let c = data("shrinklat.yaml");
    let h = histogram(&c, "shrink_node_latency_seconds");
    let map = snap(
        4,
        false,
        vec![
            (u32b(0), u64b(2)),
            (u32b(20), u64b(1)),
            (u32b(27), u64b(10)),
        ],
    );
    let family = histogram_family(h, &map, &decoders()).unwrap();
    let mut out = String::new();
    encode_text(std::slice::from_ref(&family), &mut out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2 + 27 + 1 + 2);
    assert_eq!(
        lines[2],
        "ebpf_exporter_shrink_node_latency_seconds_bucket{le=\"1e-06\"} 2"
    );
    assert_eq!(
        lines[3],
        "ebpf_exporter_shrink_node_latency_seconds_bucket{le=\"2e-06\"} 2"
    );
    assert_eq!(
        lines[29],
        "ebpf_exporter_shrink_node_latency_seconds_bucket{le=\"+Inf\"} 3"
    );
    assert_eq!(
        lines[30],
        "ebpf_exporter_shrink_node_latency_seconds_sum 9.999999999999999e-06"
    );
    assert_eq!(
        lines[31],
        "ebpf_exporter_shrink_node_latency_seconds_count 3"
    );
}

// ------------------------------------------------------------- negotiation

#[test]
fn negotiation_table() {
    const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";
    const OM1: &str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores";
    const OM0: &str =
        "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores";
    let cases: &[(Option<&str>, Encoding, &str)] = &[
        (None, Encoding::Text, TEXT),
        (Some(""), Encoding::Text, TEXT),
        (Some("*/*"), Encoding::Text, TEXT),
        (Some("text/plain"), Encoding::Text, TEXT),
        (Some("text/plain;version=0.0.4"), Encoding::Text, TEXT),
        (Some("application/openmetrics-text;version=1.0.0"), Encoding::OpenMetrics, OM1),
        (Some("application/openmetrics-text; version=0.0.1"), Encoding::OpenMetrics, OM0),
        (Some("application/openmetrics-text"), Encoding::OpenMetrics, OM0),
        // Prometheus' own scrape Accept header.
        (
            Some("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
            Encoding::OpenMetrics,
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
        ),
        // Preference by q, not by order.
        (Some("text/plain;q=0.5,application/openmetrics-text;version=1.0.0"), Encoding::OpenMetrics, OM1),
        (Some("application/openmetrics-text;version=1.0.0;q=0.2,text/plain;q=0.9"), Encoding::Text, TEXT),
        // Unknown versions, protobuf, other types: text.
        (Some("application/openmetrics-text;version=2.0.0"), Encoding::Text, TEXT),
        (Some("text/plain;version=1.0.0"), Encoding::Text, TEXT),
        (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), Encoding::Text, TEXT),
        (Some("application/json"), Encoding::Text, TEXT),
        (Some("garbage;;;,,,/"), Encoding::Text, TEXT),
        (Some("application/openmetrics-text;q=0"), Encoding::Text, TEXT),
        // Escaping echoed when known, ignored otherwise.
        (Some("text/plain;escaping=dots"), Encoding::Text, "text/plain; version=0.0.4; charset=utf-8; escaping=dots"),
        (Some("text/plain;escaping=bogus"), Encoding::Text, TEXT),
    ];
    for &(accept, encoding, content_type) in cases {
        let f = negotiate(accept);
        assert_eq!(f.encoding, encoding, "{accept:?}");
        assert_eq!(f.content_type, content_type, "{accept:?}");
    }
    let mut out = String::new();
    negotiate(Some("application/openmetrics-text;version=1.0.0")).encode(&[], &mut out);
    assert_eq!(out, "# EOF\n");
}

// ------------------------------------------------------------ self metrics

#[test]
fn self_metrics_as_ebpf_exporter() {
    let mut errors = DecoderErrorCounts::new(["biolatency", "timers"]);
    errors.inc("timers");
    let m = SelfMetrics {
        configs: vec!["biolatency".into(), "timers".into()],
        programs: vec![
            ProgramInfo {
                config: "timers".into(),
                program: "timer_start".into(),
                tag: "abcdef0123456789".into(),
                id: 42,
                attached: true,
                stats: Some((Duration::from_millis(1500), 7)),
            },
            ProgramInfo {
                config: "biolatency".into(),
                program: "block_rq_issue".into(),
                tag: String::new(),
                id: 7,
                attached: false,
                stats: None,
            },
        ],
        decoder_errors: errors,
    };
    let mut out = String::new();
    encode_text(&self_metrics(&m), &mut out);
    let want = "\
# HELP ebpf_exporter_decoder_errors_total How many times has decoders encountered errors
# TYPE ebpf_exporter_decoder_errors_total counter
ebpf_exporter_decoder_errors_total{config=\"biolatency\"} 0
ebpf_exporter_decoder_errors_total{config=\"timers\"} 1
# HELP ebpf_exporter_ebpf_program_attached Whether a program is attached
# TYPE ebpf_exporter_ebpf_program_attached gauge
ebpf_exporter_ebpf_program_attached{id=\"42\"} 1
ebpf_exporter_ebpf_program_attached{id=\"7\"} 0
# HELP ebpf_exporter_ebpf_program_info Info about ebpf programs
# TYPE ebpf_exporter_ebpf_program_info gauge
ebpf_exporter_ebpf_program_info{config=\"biolatency\",id=\"7\",program=\"block_rq_issue\",tag=\"\"} 1
ebpf_exporter_ebpf_program_info{config=\"timers\",id=\"42\",program=\"timer_start\",tag=\"abcdef0123456789\"} 1
# HELP ebpf_exporter_ebpf_program_run_count_total How many times has the program been executed
# TYPE ebpf_exporter_ebpf_program_run_count_total counter
ebpf_exporter_ebpf_program_run_count_total{id=\"42\"} 7
# HELP ebpf_exporter_ebpf_program_run_time_seconds How long has the program been executing
# TYPE ebpf_exporter_ebpf_program_run_time_seconds counter
ebpf_exporter_ebpf_program_run_time_seconds{id=\"42\"} 1.5
# HELP ebpf_exporter_enabled_configs The set of enabled configs
# TYPE ebpf_exporter_enabled_configs gauge
ebpf_exporter_enabled_configs{name=\"biolatency\"} 1
ebpf_exporter_enabled_configs{name=\"timers\"} 1
";
    assert_eq!(out, want);
    // Nothing enabled: no families at all.
    assert!(self_metrics(&SelfMetrics::default()).is_empty());
}
