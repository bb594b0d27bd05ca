//! Content negotiation as client_golang's
//! `expfmt.NegotiateIncludingOpenMetrics` (with goautoneg's Accept
//! parsing), without the protobuf formats, which are not served.

use super::{encode_openmetrics, encode_text, Family};

/// The exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics text (1.0.0, or 0.0.1 when that version was asked for:
    /// the output is the same).
    OpenMetrics,
}

/// A negotiated format and the `Content-Type` to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub encoding: Encoding,
    /// E.g. `text/plain; version=0.0.4; charset=utf-8; escaping=underscores`.
    pub content_type: String,
}

impl Format {
    /// Writes `families` in this format.
    pub fn encode(&self, families: &[Family], out: &mut String) {
        match self.encoding {
            Encoding::Text => encode_text(families, out),
            Encoding::OpenMetrics => encode_openmetrics(families, out),
        }
    }
}

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_1_0_0: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const OPENMETRICS_0_0_1: &str = "application/openmetrics-text; version=0.0.1; charset=utf-8";

/// One media range of an Accept header.
struct Accept<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> Accept<'a> {
    fn param(&self, name: &str) -> &'a str {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v)
    }
}

/// goautoneg's `ParseAccept`: media ranges sorted by quality, then
/// specific types before wildcards (stable, where Go's sort is not).
fn parse_accept(header: &str) -> Vec<Accept<'_>> {
    let mut accept = Vec::new();
    for part in header.split(',') {
        let part = part.trim_matches(' ');
        let mut pieces = part.split(';');
        let media_range = pieces.next().unwrap_or("");
        let sp: Vec<&str> = media_range.split('/').collect();
        let kind = sp.first().copied().unwrap_or("").trim_matches(' ');
        let subtype = match sp.len() {
            1 if kind == "*" => "*",
            2 => sp.get(1).copied().unwrap_or("").trim_matches(' '),
            _ => continue,
        };
        let mut a = Accept {
            kind,
            subtype,
            q: 1.0,
            params: Vec::new(),
        };
        for param in pieces {
            let Some((token, value)) = param.split_once('=') else {
                continue;
            };
            let token = token.trim_matches(' ');
            if token == "q" {
                // Go ignores the error, leaving 0.
                a.q = value.parse::<f32>().map_or(0.0, f64::from);
            } else {
                a.params.push((token, value.trim_matches(' ')));
            }
        }
        accept.push(a);
    }
    accept.sort_by(|a, b| {
        b.q.total_cmp(&a.q)
            .then_with(|| (a.kind == "*").cmp(&(b.kind == "*")))
            .then_with(|| (a.subtype == "*").cmp(&(b.subtype == "*")))
    });
    accept
}

/// Picks the format for a request's `Accept` header as Prometheus'
/// client_golang does with OpenMetrics enabled: the first acceptable media
/// range in preference order wins; `text/plain` (version 0.0.4 or none)
/// gives the text format, `application/openmetrics-text` (version 1.0.0,
/// 0.0.1 or none) OpenMetrics; anything else, or no header, the text
/// format. The `escaping` parameter (`allow-utf-8`, `underscores`, `dots`,
/// `values`) is echoed, `underscores` by default. Media ranges with `q=0`
/// are not acceptable (goautoneg would still consider them).
pub fn negotiate(accept: Option<&str>) -> Format {
    let mut escaping = "underscores";
    for a in parse_accept(accept.unwrap_or("")) {
        if a.q <= 0.0 {
            continue;
        }
        let e = a.param("escaping");
        if matches!(e, "allow-utf-8" | "underscores" | "dots" | "values") {
            escaping = e;
        }
        let version = a.param("version");
        if a.kind == "text" && a.subtype == "plain" && (version == "0.0.4" || version.is_empty()) {
            return format(Encoding::Text, TEXT, escaping);
        }
        if a.kind == "application" && a.subtype == "openmetrics-text" {
            match version {
                "1.0.0" => return format(Encoding::OpenMetrics, OPENMETRICS_1_0_0, escaping),
                "0.0.1" | "" => return format(Encoding::OpenMetrics, OPENMETRICS_0_0_1, escaping),
                _ => {}
            }
        }
    }
    format(Encoding::Text, TEXT, escaping)
}

fn format(encoding: Encoding, content_type: &str, escaping: &str) -> Format {
    Format {
        encoding,
        content_type: format!("{content_type}; escaping={escaping}"),
    }
}
