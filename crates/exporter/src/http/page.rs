//! The landing page at `/`.

use super::ConfigView;
use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page: links, then a table of every config's programs.
pub(crate) fn landing(configs: &[ConfigView], telemetry_path: &str, debug: bool) -> String {
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>eBPF Exporter</title>\n\
         <style>body{font-family:sans-serif}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\
         .ok{color:#070}.err{color:#b00}</style></head>\n<body>\n<h1>eBPF Exporter</h1>\n",
    );
    let _ = writeln!(
        h,
        "<p><a href=\"{0}\">Metrics</a></p>",
        escape(telemetry_path)
    );
    if debug {
        h.push_str("<p><a href=\"/maps\">Maps</a> (debug)</p>\n");
    }
    let _ = writeln!(h, "<h2>Configs ({})</h2>", configs.len());
    if configs.is_empty() {
        h.push_str("<p>No configs loaded.</p>\n");
    }
    for config in configs {
        let _ = writeln!(h, "<h3>{}</h3>", escape(&config.name));
        if let Some(err) = &config.error {
            let _ = writeln!(h, "<p class=\"err\">error: {}</p>", escape(err));
        }
        if config.programs.is_empty() {
            h.push_str("<p>No programs.</p>\n");
            continue;
        }
        h.push_str(
            "<table>\n<tr><th>program</th><th>section</th><th>id</th><th>tag</th><th>state</th></tr>\n",
        );
        for p in &config.programs {
            let state = match (&p.error, p.attached) {
                (Some(err), _) => format!("<span class=\"err\">error: {}</span>", escape(err)),
                (None, true) => "<span class=\"ok\">attached</span>".to_string(),
                (None, false) => "not attached".to_string(),
            };
            let id = if p.id == 0 {
                String::new()
            } else {
                p.id.to_string()
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.name),
                escape(&p.section),
                id,
                escape(&p.tag),
                state
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
