//! Counters fed by a perf event array (`perf_event_array: true`), as
//! ebpf_exporter's `exporter/perf_event_array.go`: each event the program
//! sends with `bpf_perf_event_output` counts one for the labels decoded from
//! its first bytes. The counts start again every `flush_interval` (one hour
//! when unset), so label sets that stop appearing go away; events the kernel
//! dropped because a buffer was full are counted in
//! `dropped_perf_event_map_events_<name>`.
//!
//! [`PerfCounter`] holds the counts and knows nothing of the kernel;
//! [`pump`] feeds it from a [`PerfBufReader`].

use crate::config::Counter;
use crate::decoders::{DecodeError, Decoders, LabelSpec};
use crate::metrics::{self, Family, Sample};
use bpfkit::kernel::events::PerfBufReader;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// ebpf_exporter's reset period when `flush_interval` is unset.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);

/// Pages of each CPU's perf buffer (1 MiB with 4 KiB pages): room for a
/// burst of small events between two reads.
pub const PAGES_PER_CPU: usize = 256;

#[derive(Default)]
struct Counts {
    /// Label values → events since the last flush.
    series: HashMap<Vec<String>, u64>,
    dropped: u64,
    decode_errors: u64,
}

/// One perf-event-array counter of a config.
pub struct PerfCounter {
    counter: Counter,
    labels: Vec<LabelSpec>,
    /// Bytes of each event that hold labels: the sum of the labels' sizes
    /// and paddings. The kernel pads samples to 8 bytes; the padding is not
    /// part of the key.
    width: usize,
    counts: Mutex<Counts>,
}

impl PerfCounter {
    pub fn new(counter: &Counter) -> PerfCounter {
        PerfCounter {
            labels: counter.labels.iter().map(LabelSpec::from).collect(),
            width: counter.labels.iter().map(|l| l.width()).sum(),
            counter: counter.clone(),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// The counter's name (and its perf event array's).
    pub fn name(&self) -> &str {
        &self.counter.name
    }

    /// How often the counts start again.
    pub fn flush_interval(&self) -> Duration {
        self.counter
            .flush_interval
            .unwrap_or(DEFAULT_FLUSH_INTERVAL)
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one event. A label set the decoders drop (`regexp`) is not
    /// counted; one that fails to decode is counted as a decoder error and
    /// returned. An event shorter than the labels is decoded as it is, and
    /// fails in the decoder that runs out of bytes.
    pub fn record(&self, event: &[u8], decoders: &Decoders) -> Result<(), DecodeError> {
        let key = &event[..self.width.min(event.len())];
        match decoders.decode_labels(&self.labels, key) {
            Ok(values) => {
                let mut counts = self.counts();
                let n = counts.series.entry(values).or_insert(0);
                *n = n.saturating_add(1);
                Ok(())
            }
            Err(DecodeError::Skip) => Ok(()),
            Err(e) => {
                self.counts().decode_errors += 1;
                Err(e)
            }
        }
    }

    /// Counts events the kernel dropped.
    pub fn lost(&self, n: u64) {
        let mut counts = self.counts();
        counts.dropped = counts.dropped.saturating_add(n);
    }

    /// Starts the counts again (the dropped and decoder-error totals stay).
    pub fn flush(&self) {
        self.counts().series.clear();
    }

    /// Events that did not decode, since the start.
    pub fn decode_errors(&self) -> u64 {
        self.counts().decode_errors
    }

    /// The counter's family and its dropped-events counter.
    pub fn families(&self) -> [Family; 2] {
        let counts = self.counts();
        let mut samples: Vec<Sample> = counts
            .series
            .iter()
            .map(|(values, n)| Sample {
                labels: self
                    .counter
                    .labels
                    .iter()
                    .map(|l| l.name.clone())
                    .zip(values.iter().cloned())
                    .collect(),
                value: *n as f64,
            })
            .collect();
        samples.sort_by(|a, b| metrics::by_values(&a.labels, &b.labels));
        [
            Family::Counter {
                name: metrics::full_name(&self.counter.name),
                help: self.counter.help.clone(),
                samples,
            },
            Family::Counter {
                name: format!("dropped_perf_event_map_events_{}", self.counter.name),
                help: "Dropped perf map events".to_string(),
                samples: vec![Sample {
                    labels: Vec::new(),
                    value: counts.dropped as f64,
                }],
            },
        ]
    }
}

/// Feeds `counter` from `reader` until the reader fails, flushing every
/// flush interval. Decode failures are logged with `config`'s name.
pub async fn pump(
    config: String,
    mut reader: PerfBufReader,
    counter: Arc<PerfCounter>,
    decoders: Arc<Decoders>,
) {
    let every = counter.flush_interval();
    let mut flush = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            // `next_batch` takes events only inside one poll: dropping it
            // for the flush tick loses nothing.
            batch = reader.next_batch() => match batch {
                Ok(batch) => {
                    for event in &batch.samples {
                        if let Err(e) = counter.record(event, &decoders) {
                            eprintln!(
                                "ebpf_exporter: config `{config}`: metric `{}`: failed to decode labels: {e}",
                                counter.name()
                            );
                        }
                    }
                    if batch.lost > 0 {
                        counter.lost(batch.lost);
                    }
                }
                Err(e) => {
                    eprintln!("ebpf_exporter: config `{config}`: metric `{}`: {e}; no more events", counter.name());
                    return;
                }
            },
            _ = flush.tick() => counter.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DecoderConfig, Label};

    fn label(name: &str, size: usize, padding: usize, decoders: &[&str]) -> Label {
        Label {
            name: name.to_string(),
            size,
            padding,
            decoders: decoders
                .iter()
                .map(|d| DecoderConfig {
                    name: d.to_string(),
                    ..DecoderConfig::default()
                })
                .collect(),
        }
    }

    fn counter() -> Counter {
        let mut kind = label("kind", 1, 3, &["uint", "static_map", "regexp"]);
        kind.decoders[1].static_map = [("1", "one"), ("2", "two"), ("3", "three")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        kind.decoders[2].regexps = vec!["^(t.*)$".to_string()];
        Counter {
            name: "events_total".to_string(),
            help: "Events".to_string(),
            perf_event_array: true,
            flush_interval: None,
            labels: vec![label("pid", 4, 0, &["uint"]), kind],
        }
    }

    fn event(pid: u32, kind: u8) -> Vec<u8> {
        let mut e = pid.to_ne_bytes().to_vec();
        // kind, its 3 bytes of padding, and the kernel's 8-byte alignment.
        e.extend_from_slice(&[kind, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0]);
        e
    }

    fn series(f: &Family) -> Vec<(Vec<(String, String)>, f64)> {
        match f {
            Family::Counter { samples, .. } => samples
                .iter()
                .map(|s| (s.labels.clone(), s.value))
                .collect(),
            other => panic!("not a counter: {other:?}"),
        }
    }

    fn pairs(pid: &str, kind: &str) -> Vec<(String, String)> {
        vec![
            ("pid".to_string(), pid.to_string()),
            ("kind".to_string(), kind.to_string()),
        ]
    }

    #[test]
    fn events_count_by_their_labels_and_dropped_label_sets_are_left_out() {
        let c = PerfCounter::new(&counter());
        let d = Decoders::new();
        for e in [
            event(7, 2),
            event(7, 2),
            event(7, 3),
            event(9, 2),
            event(7, 1),
        ] {
            c.record(&e, &d).unwrap();
        }
        let [counts, dropped] = c.families();
        assert_eq!(counts.name(), "ebpf_exporter_events_total");
        assert_eq!(
            series(&counts),
            vec![
                (pairs("7", "three"), 1.0),
                (pairs("7", "two"), 2.0),
                (pairs("9", "two"), 1.0)
            ]
        );
        assert_eq!(dropped.name(), "dropped_perf_event_map_events_events_total");
        assert_eq!(series(&dropped), vec![(Vec::new(), 0.0)]);
    }

    #[test]
    fn flush_starts_the_counts_again_but_keeps_the_dropped_total() {
        let c = PerfCounter::new(&counter());
        let d = Decoders::new();
        c.record(&event(1, 2), &d).unwrap();
        c.lost(5);
        c.flush();
        c.record(&event(2, 3), &d).unwrap();
        let [counts, dropped] = c.families();
        assert_eq!(series(&counts), vec![(pairs("2", "three"), 1.0)]);
        assert_eq!(series(&dropped), vec![(Vec::new(), 5.0)]);
        assert_eq!(c.flush_interval(), DEFAULT_FLUSH_INTERVAL);
    }

    #[test]
    fn a_short_event_is_a_decoder_error_and_not_counted() {
        let c = PerfCounter::new(&counter());
        let d = Decoders::new();
        // Two bytes: the 4-byte pid cannot be read.
        assert!(c.record(&[1, 2], &d).is_err());
        // Kind 9 becomes `unknown:9`, which the regexp drops: not an error.
        assert!(c.record(&event(1, 9), &d).is_ok());
        assert_eq!(c.decode_errors(), 1);
        let [counts, _] = c.families();
        assert!(series(&counts).is_empty());
    }
}
