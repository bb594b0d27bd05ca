//! Sampling shared by the report benches: thread CPU time, how many runs
//! make a sample of about 10 ms (found by a 200 ms warm-up), one sample, and
//! the command line both read.

use std::hint::black_box;
use std::time::{Duration, Instant};

pub const WARMUP: Duration = Duration::from_millis(200);
pub const SAMPLE_NS: f64 = 10e6;

/// Warms `run` up and returns how many runs make one sample.
pub fn reps_per_sample(run: &mut impl FnMut() -> u64) -> u64 {
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < WARMUP {
        black_box(run());
        runs += 1;
    }
    let per_run = WARMUP.as_nanos() as f64 / runs as f64;
    ((SAMPLE_NS / per_run) as u64).max(1)
}

/// CPU time of the calling thread, in nanoseconds.
pub fn thread_ns() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64
}

/// Runs `run` `reps` times; the thread CPU time per run, in nanoseconds.
pub fn sample(run: &mut impl FnMut() -> u64, reps: u64) -> f64 {
    let t = thread_ns();
    for _ in 0..reps {
        black_box(run());
    }
    (thread_ns() - t) / reps as f64
}

/// Workload filters: `cargo bench` passes `--bench`; any other argument
/// picks workloads by substring.
pub fn filters() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

/// Samples per engine: `BPFKIT_BENCH_SAMPLES`, else `default`.
pub fn samples(default: usize) -> usize {
    std::env::var("BPFKIT_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}
