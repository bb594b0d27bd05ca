//! The filesystems the kernel engine needs: bpffs for pinning, tracefs for
//! tracepoints. Mounted when missing and this process may; otherwise the
//! error says exactly which mount is missing and how to add it.

use std::ffi::CString;
use std::path::Path;
use thiserror::Error;

/// A filesystem the kernel engine may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mount {
    /// bpffs at /sys/fs/bpf (pinning).
    Bpffs,
    /// tracefs at /sys/kernel/tracing (tracepoints).
    Tracefs,
}

impl Mount {
    pub fn path(self) -> &'static str {
        match self {
            Mount::Bpffs => "/sys/fs/bpf",
            Mount::Tracefs => "/sys/kernel/tracing",
        }
    }
    fn fstype(self) -> &'static str {
        match self {
            Mount::Bpffs => "bpf",
            Mount::Tracefs => "tracefs",
        }
    }
    /// The statfs magic of the filesystem.
    fn magic(self) -> i64 {
        match self {
            Mount::Bpffs => 0xcafe4a11,
            Mount::Tracefs => 0x74726163,
        }
    }
}

#[derive(Debug, Error)]
#[error("{fstype} is not mounted at {path} and mounting it failed ({reason}); as root run: mount -t {fstype} {fstype} {path}")]
pub struct MountError {
    pub fstype: &'static str,
    pub path: &'static str,
    pub reason: String,
}

/// The statfs `f_type` (magic) of the filesystem holding `path`.
pub(crate) fn fs_type(path: &Path) -> std::io::Result<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated and st a valid pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by target
    Ok(st.f_type as i64)
}

/// Whether `path` is on a filesystem with this statfs magic.
fn is_mounted(path: &Path, magic: i64) -> bool {
    fs_type(path).is_ok_and(|t| t == magic)
}

/// Makes sure the filesystem is mounted at its usual place, mounting it if
/// it is missing and the process may.
pub fn ensure(m: Mount) -> Result<(), MountError> {
    ensure_at(m, m.path())
}

fn ensure_at(m: Mount, at: &'static str) -> Result<(), MountError> {
    let path = Path::new(at);
    if is_mounted(path, m.magic()) {
        return Ok(());
    }
    let fail = |reason: String| MountError {
        fstype: m.fstype(),
        path: at,
        reason,
    };
    if !path.is_dir() {
        return Err(fail(format!("{at} does not exist")));
    }
    let src = CString::new(m.fstype()).expect("no NUL");
    let dst = CString::new(at).expect("no NUL");
    // SAFETY: valid C strings; no mount data.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(fail(std::io::Error::last_os_error().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_mount_and_the_command() {
        let e = MountError {
            fstype: "tracefs",
            path: "/sys/kernel/tracing",
            reason: "Operation not permitted".into(),
        };
        assert_eq!(
            e.to_string(),
            "tracefs is not mounted at /sys/kernel/tracing and mounting it failed (Operation not permitted); as root run: mount -t tracefs tracefs /sys/kernel/tracing"
        );
    }

    /// As root: mounts bpffs on an empty directory, sees it mounted, and a
    /// second call leaves it be. Not root: the error names the command.
    #[test]
    fn mounts_what_is_missing() {
        let dir = format!("/tmp/bpfkit-setup-test-{}", std::process::id());
        std::fs::create_dir_all(&dir).unwrap();
        let at: &'static str = Box::leak(dir.clone().into_boxed_str());
        let r = ensure_at(Mount::Bpffs, at);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            r.unwrap();
            assert!(is_mounted(Path::new(at), Mount::Bpffs.magic()));
            ensure_at(Mount::Bpffs, at).unwrap();
            let c = CString::new(at).unwrap();
            // SAFETY: valid C string.
            unsafe { libc::umount(c.as_ptr()) };
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains(&format!("mount -t bpf bpf {at}")), "{e}");
        }
        let _ = std::fs::remove_dir(&dir);
        let e = ensure_at(Mount::Tracefs, "/nonexistent-bpfkit").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-bpfkit does not exist"),
            "{e}"
        );
    }

    #[test]
    fn proc_is_not_bpffs() {
        assert!(!is_mounted(Path::new("/proc"), Mount::Bpffs.magic()));
        assert!(!is_mounted(
            Path::new("/nonexistent"),
            Mount::Tracefs.magic()
        ));
    }
}
