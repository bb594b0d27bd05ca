//! The exporter's costs, as root: what a scrape costs for 1,000 and 10,000
//! series, and what the built-in programs add to every syscall.
//!
//! 1. Scrapes: `bpf/bench/exporter_series` (one counter, a HASH map keyed
//!    `{u32 id; u32 op}`, labels decoded by `uint` and `uint` +
//!    `static_map`) is started through `Exporter::start`; the host fills its
//!    map, then times `scrape()` + `encode_text`: the first (cold decoded-label
//!    cache) scrape, then 50 steady-state scrapes (wall time and the thread's
//!    CPU time), then 50 full HTTP scrapes over loopback (`serve_on` on
//!    127.0.0.1:0 in a tokio runtime thread, one `GET /metrics` per
//!    connection from a plain `TcpStream`). A fresh exporter per size, so each
//!    first scrape is cold.
//! 2. Syscall overhead: 2,000,000 `getpid` syscalls, ns per call, median of
//!    5 runs: with nothing attached, with the built-in set attached
//!    (`Options::default()`), and after dropping the exporter.
//!
//! `cargo bench -p bpfkit-exporter --bench exporter`; prints Markdown tables.
//! Nothing is asserted about the numbers.

use bpfkit_exporter::http::{bind, serve_on, Listen, Source};
use bpfkit_exporter::metrics::encode_text;
use bpfkit_exporter::runtime::{Exporter, Options};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONFIG: &str = "exporter_series";
const MAP: &str = "bench_series_total";
const SCRAPES: usize = 50;
const SYSCALLS: u64 = 2_000_000;
const SYSCALL_RUNS: usize = 5;

fn cpu_time(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn thread_cpu() -> Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn process_cpu() -> Duration {
    cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// The `q`-quantile (nearest rank) of `samples`, sorted in place.
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench_options() -> Options {
    Options {
        config_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/bench")),
        config_names: vec![CONFIG.to_string()],
        strict: true,
        keep_capabilities: None,
    }
}

/// Fills the benchmark map with `n` keys: ids 0.., 8 operations each.
fn fill(exporter: &Exporter, n: usize) {
    let map = exporter
        .map(CONFIG, MAP)
        .expect("the benchmark config's map");
    for i in 0..n {
        let (id, op) = ((i / 8) as u32, (i % 8) as u32);
        let mut key = [0u8; 8];
        key[..4].copy_from_slice(&id.to_ne_bytes());
        key[4..].copy_from_slice(&op.to_ne_bytes());
        let value = (i as u64 * 37 + 1).to_ne_bytes();
        map.update(&key, &value, 0).expect("filling the map");
    }
}

/// One scrape and its encoding: (wall, thread CPU, bytes).
fn scrape_once(exporter: &Exporter) -> (Duration, Duration, usize) {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let families = exporter.scrape();
    let mut out = String::new();
    encode_text(&families, &mut out);
    let r = (wall.elapsed(), thread_cpu() - cpu, out.len());
    std::hint::black_box(out);
    r
}

/// One `GET /metrics` on a new connection: the response's length.
fn http_get(addr: SocketAddr) -> usize {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut body = Vec::new();
    s.read_to_end(&mut body).expect("receive");
    assert!(body.starts_with(b"HTTP/1.1 200"), "GET /metrics failed");
    body.len()
}

struct ScrapeRow {
    series: usize,
    bytes: usize,
    cold_ms: f64,
    cold_cpu_ms: f64,
    wall_med: f64,
    wall_p90: f64,
    cpu_med: f64,
    cpu_p90: f64,
    http_med: f64,
    http_p90: f64,
    http_cpu_med: f64,
}

fn scrape_bench(series: usize) -> ScrapeRow {
    let exporter =
        Arc::new(Exporter::start(&bench_options()).expect("starting the benchmark config"));
    fill(&exporter, series);

    let (cold, cold_cpu, bytes) = scrape_once(&exporter);
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..SCRAPES {
        let (w, c, _) = scrape_once(&exporter);
        wall.push(ms(w));
        cpu.push(ms(c));
    }

    // The HTTP server in its own runtime thread, as the exporter runs it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let listen: Listen = "127.0.0.1:0".parse().expect("listen address");
    let listener = rt.block_on(bind(&listen)).expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let source: Arc<dyn Source> = exporter.clone();
    let server = std::thread::spawn(move || {
        rt.block_on(serve_on(listener, source, "/metrics", false, async {
            let _ = stopped.await;
        }))
        .expect("serving");
    });
    http_get(addr); // warm the connection path
    let (mut http, mut http_cpu) = (Vec::new(), Vec::new());
    for _ in 0..SCRAPES {
        let (w, c) = (Instant::now(), process_cpu());
        std::hint::black_box(http_get(addr));
        http.push(ms(w.elapsed()));
        http_cpu.push(ms(process_cpu() - c));
    }
    let _ = stop.send(());
    server.join().expect("server thread");

    ScrapeRow {
        series,
        bytes,
        cold_ms: ms(cold),
        cold_cpu_ms: ms(cold_cpu),
        wall_med: quantile(&mut wall, 0.5),
        wall_p90: quantile(&mut wall, 0.9),
        cpu_med: quantile(&mut cpu, 0.5),
        cpu_p90: quantile(&mut cpu, 0.9),
        http_med: quantile(&mut http, 0.5),
        http_p90: quantile(&mut http, 0.9),
        http_cpu_med: quantile(&mut http_cpu, 0.5),
    }
}

/// ns per `getpid` syscall: (wall median, thread CPU median, thread CPU
/// best) over the runs.
fn getpid_ns() -> (f64, f64, f64) {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..SYSCALL_RUNS {
        let (w, c) = (Instant::now(), thread_cpu());
        for _ in 0..SYSCALLS {
            // SAFETY: getpid takes no arguments and cannot fail.
            std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
        }
        let (w, c) = (w.elapsed(), thread_cpu() - c);
        wall.push(w.as_nanos() as f64 / SYSCALLS as f64);
        cpu.push(c.as_nanos() as f64 / SYSCALLS as f64);
    }
    let best = quantile(&mut cpu, 0.0);
    (quantile(&mut wall, 0.5), quantile(&mut cpu, 0.5), best)
}

fn main() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("exporter bench: needs root (loads programs into the kernel); skipped");
        return;
    }

    println!("### Scrape cost ({SCRAPES} scrapes each; ms)\n");
    println!(
        "| series | text bytes | first scrape wall / CPU | scrape+encode wall median / p90 | CPU median / p90 | HTTP GET wall median / p90 | HTTP process CPU median |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for series in [1_000, 10_000] {
        let r = scrape_bench(series);
        println!(
            "| {} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} |",
            r.series,
            r.bytes,
            r.cold_ms,
            r.cold_cpu_ms,
            r.wall_med,
            r.wall_p90,
            r.cpu_med,
            r.cpu_p90,
            r.http_med,
            r.http_p90,
            r.http_cpu_med,
        );
    }

    println!("\n### getpid cost ({SYSCALLS} calls, median of {SYSCALL_RUNS} runs; ns per call)\n");
    println!("| programs | wall ns/call | CPU ns/call | CPU best of {SYSCALL_RUNS} | added CPU ns/call (median) |");
    println!("|---|---:|---:|---:|---:|");
    let (base_wall, base_cpu, base_best) = getpid_ns();
    println!("| none attached | {base_wall:.1} | {base_cpu:.1} | {base_best:.1} | |");
    let exporter = Exporter::start(&Options::default()).expect("starting the built-in set");
    let attached: Vec<String> = exporter
        .status()
        .iter()
        .flat_map(|c| {
            c.programs
                .iter()
                .filter(|p| p.attached)
                .map(|p| p.name.clone())
        })
        .collect();
    let (wall, cpu, best) = getpid_ns();
    println!(
        "| built-in set ({} programs attached) | {wall:.1} | {cpu:.1} | {best:.1} | {:+.1} |",
        attached.len(),
        cpu - base_cpu
    );
    drop(exporter);
    let (wall, cpu, best) = getpid_ns();
    println!(
        "| after drop (detached) | {wall:.1} | {cpu:.1} | {best:.1} | {:+.1} |",
        cpu - base_cpu
    );
    println!("\nattached: {}", attached.join(", "));
}
