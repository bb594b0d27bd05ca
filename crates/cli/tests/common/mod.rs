//! Helpers shared by the CLI's integration tests (each binary uses a part).
#![allow(dead_code)]

use std::path::PathBuf;

/// Whether the tests run as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// True when a root-only test may run; otherwise prints
/// "TEST: skipped, needs root to WHAT" and returns false, or fails under
/// CI=true, where a skip is a failure.
pub fn privileged(test: &str, what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(&format!("{test}: skipped, needs root to {what}"));
    false
}

/// Says why a test is skipped; under CI=true, where a skip is a failure,
/// fails instead.
pub fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}, and CI=true");
    }
    eprintln!("{why}");
}

/// A fresh, empty directory for one test.
pub fn temp_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
