//! Map entries to decoded label values and summed values, as
//! ebpf_exporter's `mapValues`, `readMapValues` and `aggregateMapValues`.

use super::{MapSnapshot, MetricError};
use crate::config::Label;
use crate::decoders::{DecodeError, Decoders, LabelSpec};
use std::collections::HashMap;

/// Bytes of one per-CPU slot: the value size rounded up to 8.
fn slot_size(value_size: usize) -> usize {
    value_size.div_ceil(8).saturating_mul(8)
}

/// Checks the map against the labels as ebpf_exporter reads it.
fn check_map(metric: &str, labels: &[Label], map: &MapSnapshot) -> Result<(), MetricError> {
    if map.value_size != 8 {
        return Err(MetricError::ValueSize {
            metric: metric.to_string(),
            value_size: map.value_size,
        });
    }
    let total = labels
        .iter()
        .fold(0usize, |t, l| t.saturating_add(l.width()));
    let cpu_last = map.per_cpu && labels.last().is_some_and(|l| l.name == "cpu");
    let ok = if labels.is_empty() {
        map.key_size == 4
    } else if cpu_last {
        // The exporter appends the CPU as 2 bytes; with `cpu` the only
        // label, the map key is a u32 0 that is dropped.
        total == map.key_size.saturating_add(2)
            || (labels.len() == 1 && map.key_size == 4 && total == 2)
    } else {
        total == map.key_size
    };
    if ok {
        return Ok(());
    }
    let layout = if labels.is_empty() {
        crate::config::key_layout(labels)
    } else {
        let mut layout = crate::config::key_layout(labels);
        if cpu_last {
            layout.push_str("; per-CPU: the last 2 bytes are the cpu added by the exporter");
        }
        layout
    };
    Err(MetricError::KeySize {
        metric: metric.to_string(),
        key_size: map.key_size,
        labels_size: if labels.is_empty() { 4 } else { total },
        layout,
    })
}

/// The map's rows as (label values, value), label sets dropped by the
/// decoders left out and equal label sets summed, in first-seen order.
pub(super) fn labelled_values(
    metric: &str,
    labels: &[Label],
    map: &MapSnapshot,
    decoders: &Decoders,
) -> Result<Vec<(Vec<String>, f64)>, MetricError> {
    check_map(metric, labels, map)?;
    let specs: Vec<LabelSpec> = labels.iter().map(LabelSpec::from).collect();
    let add_cpu = labels.last().is_some_and(|l| l.name == "cpu");
    let cpu_only = map.per_cpu && labels.len() == 1 && add_cpu;
    let slot = slot_size(map.value_size);

    let mut out: Vec<(Vec<String>, f64)> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut push = |values: Vec<String>, value: f64| match index.get(&values) {
        Some(&i) => {
            if let Some(row) = out.get_mut(i) {
                row.1 += value;
            }
        }
        None => {
            index.insert(values.clone(), out.len());
            out.push((values, value));
        }
    };

    let entry_error = |index: usize, message: String| MetricError::Entry {
        metric: metric.to_string(),
        index,
        message,
    };

    for (i, (key, value)) in map.entries.iter().enumerate() {
        if key.len() != map.key_size {
            return Err(entry_error(
                i,
                format!(
                    "key is {} bytes, the map's keys are {}",
                    key.len(),
                    map.key_size
                ),
            ));
        }
        // (raw key as decoded, value) rows for this entry.
        let mut rows: Vec<(Vec<u8>, f64)> = Vec::new();
        if map.per_cpu {
            if value.is_empty() || value.len() % slot != 0 {
                return Err(entry_error(
                    i,
                    format!(
                        "per-CPU value is {} bytes, not a whole number of {slot}-byte slots",
                        value.len()
                    ),
                ));
            }
            for (cpu, chunk) in value.chunks_exact(slot).enumerate() {
                let mut raw = key.clone();
                if add_cpu {
                    // As ebpf_exporter: the CPU number as a host-order u16.
                    raw.extend_from_slice(&(cpu as u16).to_ne_bytes());
                }
                rows.push((raw, read_u64(chunk)));
            }
        } else {
            if value.len() != map.value_size {
                return Err(entry_error(
                    i,
                    format!(
                        "value is {} bytes, the map's values are {}",
                        value.len(),
                        map.value_size
                    ),
                ));
            }
            rows.push((key.clone(), read_u64(value)));
        }

        for (raw, value) in rows {
            // No labels: a single key of u32 0.
            if labels.is_empty() && raw == [0u8; 4] {
                push(Vec::new(), value);
                continue;
            }
            // Per-CPU with `cpu` the only label: drop the u32 0 key.
            let input = if cpu_only && raw.get(..4) == Some(&[0u8; 4][..]) {
                &raw[4..]
            } else {
                &raw[..]
            };
            match decoders.decode_labels(&specs, input) {
                Ok(values) => push(values, value),
                Err(DecodeError::Skip) => continue,
                Err(source) => {
                    return Err(MetricError::Decode {
                        metric: metric.to_string(),
                        source,
                    })
                }
            }
        }
    }
    Ok(out)
}

/// A host-order u64 from the first 8 bytes (as f64, as ebpf_exporter).
fn read_u64(bytes: &[u8]) -> f64 {
    crate::decoders::first_bytes::<8>(bytes)
        .map(u64::from_ne_bytes)
        .unwrap_or(0) as f64
}
