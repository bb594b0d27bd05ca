//! What every kernel test file shares: whether the kernel tests can run here
//! (root, bpf(2), tracefs), where the committed objects are, and reading
//! little-endian-host u64s out of map values.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

/// Prints why a kernel test does not run and returns true; under CI=true a
/// skip is a failure instead.
pub fn skip(reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("kernel test skipped: {reason}\n(CI=true: a skipped kernel test is a failure)");
    }
    let _ = writeln!(std::io::stderr(), "kernel test skipped: {reason}");
    true
}

/// Whether the kernel tests can run here (tracefs too when asked); prints why not.
pub fn available(need_tracefs: bool) -> bool {
    if let Err(e) = bpfkit_kernel::probe() {
        return !skip(&e.to_string());
    }
    if need_tracefs {
        if let Err(e) = bpfkit_kernel::setup::ensure(bpfkit_kernel::setup::Mount::Tracefs) {
            return !skip(&e.to_string());
        }
        if !Path::new("/sys/kernel/tracing/events").exists() {
            return !skip("tracefs at /sys/kernel/tracing has no events directory");
        }
    }
    true
}

/// A committed object of bpf/kernel.
pub fn object(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../bpf/kernel")
        .join(name)
}

/// The i-th u64 of a map value.
pub fn u64_at(bytes: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap())
}
