//! Memory soak for the exporter: runs the built-in configs, a steady
//! syscall workload, and two scrapers (scrape + encode every 100 ms each),
//! printing RSS and the series count every 30 s, then a verdict comparing
//! the last RSS with the one at 1 minute.
//!
//! `cargo run --release -p bpfkit-exporter --example soak -- --minutes 10`
//! (needs root).

use bpfkit_exporter::metrics::{self, Family};
use bpfkit_exporter::runtime::{Exporter, Options};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// VmRSS (kB) from /proc/self/status.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Samples in one encoded scrape (lines that are not comments).
fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// A steady mix: successful and failing openat, reads, getpid, and an exec
/// of /bin/true every second.
fn workload(stop: &AtomicBool, ops: &AtomicU64) {
    let mut last_exec = Instant::now();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..200 {
            let _ = std::fs::File::open("/nonexistent/soak");
            if let Ok(f) = std::fs::File::open("/proc/self/stat") {
                use std::io::Read;
                let _ = (&f).read(&mut buf);
            }
            // SAFETY: getpid has no preconditions.
            unsafe { libc::getpid() };
        }
        ops.fetch_add(600, Ordering::Relaxed);
        if last_exec.elapsed() >= Duration::from_secs(1) {
            let _ = std::process::Command::new("/bin/true").status();
            last_exec = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let mut minutes = 10.0_f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => {
                minutes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--minutes N");
            }
            other => {
                eprintln!("usage: soak [--minutes N] (unknown argument {other:?})");
                std::process::exit(2);
            }
        }
    }
    let exporter = match Exporter::start(&Options::default()) {
        Ok(e) => Arc::new(e),
        Err(e) => {
            eprintln!("soak: cannot start the exporter: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "soak: {minutes} min, configs {:?}, rss at start {} kB",
        exporter.configs(),
        rss_kb()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let scrapes = Arc::new(AtomicU64::new(0));
    let last_series = Arc::new(AtomicUsize::new(0));
    let last_bytes = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    {
        let (stop, ops) = (Arc::clone(&stop), Arc::clone(&ops));
        threads.push(std::thread::spawn(move || workload(&stop, &ops)));
    }
    for i in 0..2 {
        let exporter = Arc::clone(&exporter);
        let stop = Arc::clone(&stop);
        let scrapes = Arc::clone(&scrapes);
        let last_series = Arc::clone(&last_series);
        let last_bytes = Arc::clone(&last_bytes);
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let families: Vec<Family> = exporter.scrape();
                let mut out = String::new();
                // Alternate the two formats, one per scraper and turn.
                if (n + i) & 1 == 0 {
                    metrics::encode_text(&families, &mut out);
                } else {
                    metrics::encode_openmetrics(&families, &mut out);
                }
                last_series.store(series(&out), Ordering::Relaxed);
                last_bytes.store(out.len(), Ordering::Relaxed);
                scrapes.fetch_add(1, Ordering::Relaxed);
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    let start = Instant::now();
    let total = Duration::from_secs_f64(minutes * 60.0);
    let mut at_one_minute = None;
    let mut next = Duration::from_secs(30);
    let mut last = rss_kb();
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_millis(200));
        let t = start.elapsed();
        if t < next && t < total {
            continue;
        }
        next += Duration::from_secs(30);
        last = rss_kb();
        if at_one_minute.is_none() && t >= Duration::from_secs(60) {
            at_one_minute = Some(last);
        }
        println!(
            "t={:>4}s rss={} kB series={} bytes={} scrapes={} workload_ops={}",
            t.as_secs(),
            last,
            last_series.load(Ordering::Relaxed),
            last_bytes.load(Ordering::Relaxed),
            scrapes.load(Ordering::Relaxed),
            ops.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    match at_one_minute {
        Some(base) => {
            let growth = last as f64 - base as f64;
            let pct = 100.0 * growth / base.max(1) as f64;
            let verdict = if pct <= 5.0 { "STABLE" } else { "GROWING" };
            println!(
                "verdict: {verdict}: rss {base} kB at 1 min -> {last} kB at end ({growth:+} kB, {pct:+.1}%)"
            );
        }
        None => println!("verdict: run shorter than 1 minute, no comparison (last rss {last} kB)"),
    }
}
