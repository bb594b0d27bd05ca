//! Helpers shared by the integration tests (each test binary uses a part).
#![allow(dead_code)]

pub mod packets;

/// Whether kernel tests can run here; prints why not otherwise, and under
/// CI=true a skip is a failure.
pub fn available() -> bool {
    match bpfkit::kernel::probe() {
        Ok(()) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("kernel test skipped: {e}\n(CI=true: a skipped kernel test is a failure)")
        }
        Err(e) => {
            eprintln!("kernel test skipped: {e}");
            false
        }
    }
}
