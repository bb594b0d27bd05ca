//! The Prometheus text format 0.0.4 and OpenMetrics 1.0, written as
//! client_golang's `expfmt` writes them (ebpf_exporter serves its metrics
//! through client_golang).
//!
//! Written by hand rather than with the prometheus-client crate: that crate
//! only writes OpenMetrics (no 0.0.4 text format, which Prometheus and
//! ebpf_exporter use by default), and it formats numbers its own way,
//! where ebpf_exporter's output (bucket bounds like `le="1.048576e+06"`
//! or `le="1e-06"`) comes from Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
//! Dashboards and recording rules match on those `le` strings.
//!
//! As client_golang: families sorted by name, the labels of a series by
//! name (`le` last), series by their label values in that order.

use super::{Family, HistogramSeries, Sample};
use std::cmp::Ordering;
use std::fmt::Write;

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Text,
    OpenMetrics,
}

/// Writes `families` in the Prometheus text format 0.0.4.
pub fn encode_text(families: &[Family], out: &mut String) {
    encode(families, out, Style::Text);
}

/// Writes `families` in OpenMetrics 1.0 text, ending with `# EOF`.
/// Counter samples are named `<name>_total` (a `_total` suffix is not
/// doubled) and their metadata lines `<name>` without it.
pub fn encode_openmetrics(families: &[Family], out: &mut String) {
    encode(families, out, Style::OpenMetrics);
    out.push_str("# EOF\n");
}

fn encode(families: &[Family], out: &mut String, style: Style) {
    let mut sorted: Vec<&Family> = families.iter().collect();
    sorted.sort_by(|a, b| a.name().cmp(b.name()));
    for family in sorted {
        match family {
            Family::Counter {
                name,
                help,
                samples,
            } => {
                let (meta, sample_name) = match style {
                    Style::Text => (name.clone(), name.clone()),
                    Style::OpenMetrics => {
                        let base = name.strip_suffix("_total").unwrap_or(name).to_string();
                        let total = format!("{base}_total");
                        (base, total)
                    }
                };
                header(out, &meta, help, "counter", style);
                simple_samples(out, &sample_name, samples, style);
            }
            Family::Gauge {
                name,
                help,
                samples,
            } => {
                header(out, name, help, "gauge", style);
                simple_samples(out, name, samples, style);
            }
            Family::Histogram { name, help, series } => {
                header(out, name, help, "histogram", style);
                histogram_samples(out, name, series, style);
            }
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str, style: Style) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape(out, help, style == Style::OpenMetrics);
    out.push('\n');
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label pairs sorted by name (stable).
fn sorted_labels(labels: &[(String, String)]) -> Vec<&(String, String)> {
    let mut sorted: Vec<&(String, String)> = labels.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted
}

/// client_golang's series order: fewer labels first, then label values in
/// label-name order.
fn series_order(a: &[&(String, String)], b: &[&(String, String)]) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().map(|p| &p.1).cmp(b.iter().map(|p| &p.1)))
}

fn simple_samples(out: &mut String, name: &str, samples: &[Sample], style: Style) {
    let mut rows: Vec<(Vec<&(String, String)>, f64)> = samples
        .iter()
        .map(|s| (sorted_labels(&s.labels), s.value))
        .collect();
    rows.sort_by(|a, b| series_order(&a.0, &b.0));
    for (labels, value) in rows {
        out.push_str(name);
        label_set(out, &labels, None);
        out.push(' ');
        float(out, value, style);
        out.push('\n');
    }
}

fn histogram_samples(out: &mut String, name: &str, series: &[HistogramSeries], style: Style) {
    let mut rows: Vec<(Vec<&(String, String)>, &HistogramSeries)> = series
        .iter()
        .map(|s| (sorted_labels(&s.labels), s))
        .collect();
    rows.sort_by(|a, b| series_order(&a.0, &b.0));
    let bucket_name = format!("{name}_bucket");
    for (labels, s) in rows {
        let mut le = String::new();
        for &(bound, count) in &s.buckets {
            if bound.is_nan() || bound == f64::INFINITY {
                continue;
            }
            le.clear();
            float(&mut le, bound, style);
            out.push_str(&bucket_name);
            label_set(out, &labels, Some(&le));
            let _ = writeln!(out, " {count}");
        }
        out.push_str(&bucket_name);
        label_set(out, &labels, Some("+Inf"));
        let _ = writeln!(out, " {}", s.count);
        out.push_str(name);
        out.push_str("_sum");
        label_set(out, &labels, None);
        out.push(' ');
        float(out, s.sum, style);
        out.push('\n');
        out.push_str(name);
        out.push_str("_count");
        label_set(out, &labels, None);
        let _ = writeln!(out, " {}", s.count);
    }
}

fn label_set(out: &mut String, labels: &[&(String, String)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        escape(out, value, true);
        out.push('"');
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        out.push_str("le=\"");
        out.push_str(le);
        out.push('"');
    }
    out.push('}');
}

/// `\` → `\\`, newline → `\n`, and with `quote` `"` → `\"`.
fn escape(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

fn float(out: &mut String, f: f64, style: Style) {
    let start = out.len();
    go_format_g(out, f);
    // OpenMetrics: a float always looks like one (`1.0`, not `1`).
    if style == Style::OpenMetrics && f.is_finite() && !out[start..].contains(['.', 'e']) {
        out.push_str(".0");
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (client_golang spells the
/// infinities `+Inf` and `-Inf`): the shortest digits that read back as
/// `f`, in exponent form (`1.048576e+06`, `1e-06`) when the decimal
/// exponent is below -4 or at least 6.
pub(crate) fn go_format_g(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if f == 0.0 {
        // Go's writers test `f == 0`: -0 prints as 0 too.
        out.push('0');
        return;
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `d.ddde±x`.
    let e = format!("{:e}", f.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if f < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}
