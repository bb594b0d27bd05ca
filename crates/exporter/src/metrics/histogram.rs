//! Bucket math of ebpf_exporter's `exporter/histogram.go`.

use super::{by_values, HistogramSeries, MetricError, MAX_BUCKETS};
use crate::config::{BucketType, Histogram};
use std::collections::{BTreeMap, HashMap};

/// The upper bound of bucket `key`.
fn upper_bound(kind: BucketType, key: f64, multiplier: f64) -> f64 {
    match kind {
        BucketType::Exp2 => key.exp2() * multiplier,
        BucketType::Exp2Zero => {
            if key == 0.0 {
                0.0
            } else {
                (key - 1.0).exp2() * multiplier
            }
        }
        BucketType::Linear | BucketType::Fixed => key * multiplier,
    }
}

/// The bucket keys the config declares, and the key holding the sum.
fn bucket_keys(h: &Histogram) -> Result<(Vec<f64>, f64), MetricError> {
    let err = |message: String| MetricError::Histogram {
        metric: h.name.clone(),
        message,
    };
    if h.bucket_type == BucketType::Fixed {
        let Some(&last) = h.bucket_keys.last() else {
            return Err(err(
                "histogram buckets have zero size: len(bucket_keys) = 0".to_string(),
            ));
        };
        if h.bucket_keys.len() as u64 > MAX_BUCKETS {
            return Err(err(format!("more than {MAX_BUCKETS} buckets")));
        }
        return Ok((h.bucket_keys.clone(), last + 1.0));
    }
    if h.bucket_max <= h.bucket_min {
        return Err(err(format!(
            "histogram buckets have zero size: [bucket_min .. bucket_max] = [{} .. {}]",
            h.bucket_min, h.bucket_max
        )));
    }
    if h.bucket_max - h.bucket_min >= MAX_BUCKETS {
        return Err(err(format!(
            "[bucket_min .. bucket_max] = [{} .. {}] is more than {MAX_BUCKETS} buckets",
            h.bucket_min, h.bucket_max
        )));
    }
    let keys = (h.bucket_min..=h.bucket_max).map(|k| k as f64).collect();
    Ok((keys, h.bucket_max as f64 + 1.0))
}

/// Go's `strconv.ParseUint(s, 0, 64)`: decimal, or `0x`, `0o`, `0b` or
/// `0` (octal) prefixed, with `_` between digits allowed after a prefix.
pub(super) fn parse_go_uint_base0(s: &str) -> Option<u64> {
    let (digits, radix, prefixed) =
        if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            (r, 16, true)
        } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
            (r, 8, true)
        } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
            (r, 2, true)
        } else if s.len() > 1 && s.starts_with('0') {
            (&s[1..], 8, true)
        } else {
            (s, 10, false)
        };
    if digits.contains('_') {
        // Go's underscoreOK: only with a base prefix, and only between digits.
        let b = digits.as_bytes();
        let leading_zero_octal = radix == 8 && !s[1..].starts_with(['o', 'O']);
        if !prefixed
            || b.first() == Some(&b'_') && !leading_zero_octal
            || b.last() == Some(&b'_')
            || digits.contains("__")
        {
            return None;
        }
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok()
}

/// Series of the histogram from the map's (label values, value) rows,
/// the last label value being the bucket key.
pub(super) fn build(
    h: &Histogram,
    rows: Vec<(Vec<String>, f64)>,
) -> Result<Vec<HistogramSeries>, MetricError> {
    let (keys, sum_key) = bucket_keys(h)?;
    let multiplier = if h.bucket_multiplier == 0.0 {
        1.0
    } else {
        h.bucket_multiplier
    };

    // Label values (bucket left out) -> bucket key -> value, first-seen order.
    let mut groups: Vec<(Vec<String>, HashMap<u64, u64>)> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    for (mut values, value) in rows {
        let Some(bucket) = values.pop() else {
            continue;
        };
        let Some(key) = parse_go_uint_base0(&bucket) else {
            values.push(bucket.clone());
            return Err(MetricError::Bucket {
                metric: h.name.clone(),
                labels: values,
                value: bucket,
            });
        };
        let i = match index.get(&values) {
            Some(&i) => i,
            None => {
                index.insert(values.clone(), groups.len());
                groups.push((values, HashMap::new()));
                groups.len() - 1
            }
        };
        if let Some((_, buckets)) = groups.get_mut(i) {
            // As Go's uint64(float64): the value is a (summed) counter.
            let v = buckets.entry(key).or_insert(0);
            *v = v.saturating_add(value as u64);
        }
    }

    let names: Vec<String> = h.exported_labels().iter().map(|l| l.name.clone()).collect();
    let mut series: Vec<HistogramSeries> = groups
        .into_iter()
        .map(|(values, buckets)| {
            let get = |k: f64| -> u64 {
                if k >= 0.0 && k <= u64::MAX as f64 && k.fract() == 0.0 {
                    buckets.get(&(k as u64)).copied().unwrap_or(0)
                } else {
                    0
                }
            };
            // Cumulative, every declared bucket present; a later bucket
            // with the same bound replaces the earlier (Go's map).
            let mut cumulative: BTreeMap<OrdF64, u64> = BTreeMap::new();
            let mut count: u64 = 0;
            for &k in &keys {
                count = count.saturating_add(get(k));
                cumulative.insert(OrdF64(upper_bound(h.bucket_type, k, multiplier)), count);
            }
            let sum = get(sum_key) as f64 * multiplier;
            HistogramSeries {
                labels: names.iter().cloned().zip(values).collect(),
                buckets: cumulative.into_iter().map(|(k, v)| (k.0, v)).collect(),
                sum,
                count,
            }
        })
        .collect();
    series.sort_by(|a, b| by_values(&a.labels, &b.labels));
    Ok(series)
}

/// An f64 ordered by `total_cmp`, for bucket bounds.
#[derive(Clone, Copy, PartialEq)]
struct OrdF64(f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
