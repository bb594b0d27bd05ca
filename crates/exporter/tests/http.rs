//! The HTTP server over a fake source: content negotiation, the landing
//! page, `/maps` under debug, 404s, concurrent scrapes; and the
//! `--web.listen-address` forms.

use bpfkit_exporter::http::{self, ConfigView, Listen, ListenError, ProgramView, Source};
use bpfkit_exporter::metrics::{Family, Sample};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Fake {
    scrapes: AtomicUsize,
}

impl Source for Fake {
    fn scrape(&self) -> Vec<Family> {
        self.scrapes.fetch_add(1, Ordering::SeqCst);
        vec![Family::Counter {
            name: "ebpf_exporter_syscalls_total".to_string(),
            help: "Syscalls by id".to_string(),
            samples: vec![Sample {
                labels: vec![("syscall".to_string(), "read".to_string())],
                value: 42.0,
            }],
        }]
    }

    fn status(&self) -> Vec<ConfigView> {
        vec![
            ConfigView {
                name: "syscalls".to_string(),
                programs: vec![ProgramView {
                    name: "sys_enter".to_string(),
                    section: "raw_tracepoint/sys_enter".to_string(),
                    tag: "0123456789abcdef".to_string(),
                    id: 17,
                    attached: true,
                    error: None,
                }],
                error: None,
            },
            ConfigView {
                name: "<broken>".to_string(),
                programs: vec![],
                error: Some("bad.yaml: metric `x`: size <0>".to_string()),
            },
        ]
    }

    fn maps_json(&self) -> serde_json::Value {
        serde_json::json!({ "syscalls": { "counts": [[1, 42]] } })
    }
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), http::HttpError>>>,
    source: Arc<Fake>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(debug: bool) -> Server {
    let source = Arc::new(Fake {
        scrapes: AtomicUsize::new(0),
    });
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let s: Arc<dyn Source> = source.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listen: Listen = "127.0.0.1:0".parse()?;
            let listener = http::bind(&listen).await?;
            let _ = addr_tx.send(listener.local_addr().expect("local addr"));
            http::serve_on(listener, s, "/metrics", debug, async move {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server did not bind");
    Server {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
        source,
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 client: one request, `Connection: close`, read to EOF.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[])
}

#[test]
fn metrics_text_format_without_accept() {
    let server = start(false);
    let r = get(server.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    assert_eq!(
        r.body,
        "# HELP ebpf_exporter_syscalls_total Syscalls by id\n\
         # TYPE ebpf_exporter_syscalls_total counter\n\
         ebpf_exporter_syscalls_total{syscall=\"read\"} 42\n"
    );
    assert_eq!(server.source.scrapes.load(Ordering::SeqCst), 1);
}

#[test]
fn metrics_openmetrics_when_asked() {
    let server = start(false);
    let r = request(
        server.addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores")
    );
    assert!(r.body.ends_with("# EOF\n"), "{}", r.body);
    assert!(
        r.body
            .contains("# TYPE ebpf_exporter_syscalls counter\nebpf_exporter_syscalls_total{syscall=\"read\"} 42"),
        "{}",
        r.body
    );
}

#[test]
fn head_has_no_body_and_post_is_not_allowed() {
    let server = start(false);
    let r = request(server.addr, "HEAD", "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = request(server.addr, "POST", "/metrics", &[("Content-Length", "0")]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn landing_page_lists_configs_escaped() {
    let server = start(false);
    let r = get(server.addr, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let b = &r.body;
    assert!(b.contains("<a href=\"/metrics\">Metrics</a>"), "{b}");
    assert!(b.contains("<h3>syscalls</h3>"), "{b}");
    assert!(b.contains("<td>sys_enter</td>"), "{b}");
    assert!(b.contains("<td>raw_tracepoint/sys_enter</td>"), "{b}");
    assert!(b.contains("<td>17</td><td>0123456789abcdef</td>"), "{b}");
    assert!(b.contains("attached"), "{b}");
    assert!(b.contains("<h3>&lt;broken&gt;</h3>"), "{b}");
    assert!(b.contains("bad.yaml: metric `x`: size &lt;0&gt;"), "{b}");
    assert!(!b.contains("/maps"), "no /maps link without debug: {b}");
}

#[test]
fn maps_only_with_debug() {
    let server = start(false);
    assert_eq!(get(server.addr, "/maps").status, 404);
    drop(server);

    let server = start(true);
    let r = get(server.addr, "/maps");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({ "syscalls": { "counts": [[1, 42]] } })
    );
    assert!(get(server.addr, "/").body.contains("<a href=\"/maps\">"));
}

#[test]
fn unknown_path_is_404() {
    let server = start(true);
    for path in ["/nope", "/metrics/", "/metricsx", "/maps/x"] {
        let r = get(server.addr, path);
        assert_eq!(r.status, 404, "{path}");
    }
}

#[test]
fn concurrent_scrapes() {
    let server = start(false);
    let addr = server.addr;
    let threads: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || get(addr, "/metrics")))
        .collect();
    for t in threads {
        let r = t.join().expect("client thread");
        assert_eq!(r.status, 200);
        assert!(r
            .body
            .contains("ebpf_exporter_syscalls_total{syscall=\"read\"} 42"));
    }
    assert_eq!(server.source.scrapes.load(Ordering::SeqCst), 16);
}

#[test]
fn serve_stops_on_shutdown() {
    let mut server = start(false);
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
    let result = server.thread.take().expect("thread").join().expect("join");
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn bad_telemetry_path_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let source: Arc<dyn Source> = Arc::new(Fake {
        scrapes: AtomicUsize::new(0),
    });
    let err = rt
        .block_on(http::serve(
            source,
            "127.0.0.1:0".parse().expect("addr"),
            "metrics",
            false,
            async {},
        ))
        .expect_err("relative telemetry path");
    assert!(err.to_string().contains("must start with '/'"), "{err}");
}

#[test]
fn once_writes_either_format() {
    let fake = Fake {
        scrapes: AtomicUsize::new(0),
    };
    let text = http::once(&fake, false);
    assert!(text.starts_with("# HELP ebpf_exporter_syscalls_total"));
    assert!(!text.contains("# EOF"));
    let om = http::once(&fake, true);
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn listen_addresses() {
    let tcp = |host: Option<&str>, port| Listen::Tcp {
        host: host.map(str::to_string),
        port,
    };
    let good = [
        (":9435", tcp(None, 9435)),
        ("0.0.0.0:9435", tcp(Some("0.0.0.0"), 9435)),
        ("127.0.0.1:0", tcp(Some("127.0.0.1"), 0)),
        ("localhost:8080", tcp(Some("localhost"), 8080)),
        ("[::1]:9435", tcp(Some("::1"), 9435)),
        ("[::]:1", tcp(Some("::"), 1)),
        ("fd://0", Listen::Fd(0)),
        ("fd://3", Listen::Fd(3)),
    ];
    for (s, want) in good {
        let got: Listen = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(got, want, "{s}");
        assert_eq!(got.to_string(), s, "round trip");
    }
    type Is = fn(&ListenError) -> bool;
    let bad: [(&str, Is); 10] = [
        ("9435", |e| matches!(e, ListenError::MissingPort(_))),
        ("localhost", |e| matches!(e, ListenError::MissingPort(_))),
        ("host:notaport", |e| {
            matches!(e, ListenError::BadPort { .. })
        }),
        ("host:", |e| matches!(e, ListenError::BadPort { .. })),
        ("host:65536", |e| matches!(e, ListenError::BadPort { .. })),
        ("host:+80", |e| matches!(e, ListenError::BadPort { .. })),
        ("::1:9435", |e| matches!(e, ListenError::TooManyColons(_))),
        ("[nope]:9435", |e| matches!(e, ListenError::BadIpv6(..))),
        ("fd://x", |e| matches!(e, ListenError::BadFd { .. })),
        ("fd://", |e| matches!(e, ListenError::BadFd { .. })),
    ];
    for (s, is) in bad {
        match s.parse::<Listen>() {
            Ok(l) => panic!("{s}: parsed as {l:?}"),
            Err(e) => {
                assert!(is(&e), "{s}: wrong error {e:?}");
                assert!(e.to_string().contains(s), "{s}: message {e}");
            }
        }
    }
}

#[test]
fn fd_listener_without_activation_env() {
    use std::os::fd::IntoRawFd;
    if std::env::var_os("LISTEN_FDS").is_some() {
        eprintln!("fd_listener_without_activation_env: skipped, LISTEN_FDS is set");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A listening socket serves; a connected or closed fd is refused.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = std_listener.local_addr().expect("addr");
    let fd = std_listener.into_raw_fd();
    let listen = Listen::Fd(u32::try_from(fd).expect("fd"));
    let listener = rt.block_on(http::bind(&listen)).expect("fd listener");
    assert_eq!(listener.local_addr().expect("addr"), addr);

    let file = std::fs::File::open("/dev/null").expect("open");
    let fd = u32::try_from(std::os::fd::AsRawFd::as_raw_fd(&file)).expect("fd");
    let err = rt
        .block_on(http::bind(&Listen::Fd(fd)))
        .expect_err("not a socket");
    assert!(matches!(err, ListenError::NotListening { .. }), "{err:?}");
}

#[test]
fn bind_reports_address_in_use() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let err = rt
        .block_on(http::bind(&addr.parse().expect("addr")))
        .expect_err("in use");
    assert!(matches!(err, ListenError::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr), "{err}");
}
