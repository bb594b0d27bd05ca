//! Per-thread capabilities: [`crate::Privilege::BpfOnly`]'s drop to
//! CAP_BPF and CAP_NET_ADMIN, and [`keep_only`], which drops every
//! capability not asked for (the exporter's `--capabilities.keep`).
//!
//! The raw capget(2)/capset(2) change only the calling thread (glibc's
//! wrappers would do the same; there is no process-wide broadcast): threads
//! created afterwards inherit the sets.

use std::io;
use thiserror::Error;

const CAP_NET_ADMIN: u32 = 12;
const CAP_BPF: u32 = 39;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

/// Names by number, as libcap spells them (`CAP_CHOWN` = 0 …
/// `CAP_CHECKPOINT_RESTORE` = 40).
const NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[derive(Debug, Error)]
pub enum CapsError {
    #[error("unknown capability {0:?} (expected names like cap_bpf, or 'all' or 'none')")]
    Unknown(String),
    #[error("cannot keep {keep}: not permitted (permitted: {permitted})")]
    NotPermitted { keep: String, permitted: String },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn sys_error(what: impl Into<String>) -> CapsError {
    CapsError::Sys {
        what: what.into(),
        source: io::Error::last_os_error(),
    }
}

fn capget() -> io::Result<[Data; 2]> {
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a version-3 header and two data words, as capget(2) expects.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) };
    if r == 0 {
        Ok(data)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn capset(data: &[Data; 2]) -> io::Result<()> {
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: as in capget; lowering the sets is always allowed.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn split(mask: u64) -> (u32, u32) {
    (mask as u32, (mask >> 32) as u32)
}

/// `all` → `None` (keep everything); `none` → the empty set; otherwise the
/// comma-separated capability names (any case) as a bit mask.
pub fn parse_keep(spec: &str) -> Result<Option<u64>, CapsError> {
    match spec.trim() {
        "all" => return Ok(None),
        "none" => return Ok(Some(0)),
        _ => {}
    }
    let mut mask = 0u64;
    for name in spec.split(',') {
        let lower = name.trim().to_ascii_lowercase();
        let Some(bit) = NAMES.iter().position(|n| *n == lower) else {
            return Err(CapsError::Unknown(name.trim().to_string()));
        };
        mask |= 1 << bit;
    }
    Ok(Some(mask))
}

/// The names of the capabilities in `mask`, comma-separated (`none`).
pub fn names(mask: u64) -> String {
    let v: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(",")
    }
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
        .min(63)
}

/// Drops every capability not in `keep` from the calling thread's bounding,
/// ambient, inheritable, permitted and effective sets, and returns the
/// permitted set it had. Keeping a capability the thread does not have is
/// an error, as with ebpf_exporter.
pub fn keep_only(keep: u64) -> Result<u64, CapsError> {
    let before = capget().map_err(|source| CapsError::Sys {
        what: "capget".to_string(),
        source,
    })?;
    let permitted = u64::from(before[0].permitted) | u64::from(before[1].permitted) << 32;
    if keep & !permitted != 0 {
        return Err(CapsError::NotPermitted {
            keep: names(keep & !permitted),
            permitted: names(permitted),
        });
    }
    // The bounding set first: dropping from it needs CAP_SETPCAP, which the
    // capset below may remove.
    for cap in 0..=last_cap() {
        if keep & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let in_bounding = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
        if in_bounding != 1 {
            continue;
        }
        // SAFETY: as above.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            let e = io::Error::last_os_error();
            // Without CAP_SETPCAP the bounding set stays; the thread can
            // still not regain what it drops below.
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(CapsError::Sys {
                    what: format!("dropping {} from the bounding set", names(1 << cap)),
                    source: e,
                });
            }
        }
    }
    // SAFETY: prctl with integer arguments; EINVAL on kernels without
    // ambient capabilities is fine.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    let (lo, hi) = split(keep);
    let data = [
        Data {
            effective: lo,
            permitted: lo,
            inheritable: 0,
        },
        Data {
            effective: hi,
            permitted: hi,
            inheritable: 0,
        },
    ];
    capset(&data).map_err(|_| sys_error(format!("capset to {}", names(keep))))?;
    Ok(permitted)
}

/// The effective set the calling thread keeps: CAP_BPF and CAP_NET_ADMIN
/// where it has them, nothing else.
pub(crate) fn bpf_only_mask(effective: u64) -> u64 {
    effective & ((1 << CAP_BPF) | (1 << CAP_NET_ADMIN))
}

/// Reduces the calling thread's effective capabilities to CAP_BPF and
/// CAP_NET_ADMIN; call it from a thread made for the purpose.
pub(crate) fn keep_only_bpf() -> io::Result<()> {
    let mut data = capget()?;
    let eff = data[0].effective as u64 | (data[1].effective as u64) << 32;
    let (lo, hi) = split(bpf_only_mask(eff));
    data[0].effective = lo;
    data[1].effective = hi;
    capset(&data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_bpf_and_net_admin() {
        assert_eq!(bpf_only_mask(u64::MAX), (1 << 39) | (1 << 12));
        assert_eq!(bpf_only_mask(1 << 21), 0);
    }

    #[test]
    fn dropping_capabilities_in_a_thread_leaves_the_process_alone() {
        let before = std::fs::read_to_string("/proc/self/status").unwrap();
        let eff = |s: &str| crate::probe::effective_caps(s);
        let in_thread = std::thread::spawn(|| {
            keep_only_bpf().unwrap();
            std::fs::read_to_string("/proc/thread-self/status").unwrap()
        })
        .join()
        .unwrap();
        let after = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(eff(&before), eff(&after));
        assert_eq!(eff(&in_thread), eff(&before).map(bpf_only_mask));
    }

    #[test]
    fn parses_keep_lists() {
        assert_eq!(parse_keep("all").ok(), Some(None));
        assert_eq!(parse_keep("none").ok(), Some(Some(0)));
        assert_eq!(
            parse_keep("cap_bpf,CAP_SYSLOG").ok(),
            Some(Some((1 << 39) | (1 << 34)))
        );
        assert_eq!(parse_keep("cap_perfmon").ok(), Some(Some(1 << 38)));
        assert!(matches!(parse_keep("cap_nope"), Err(CapsError::Unknown(n)) if n == "cap_nope"));
        assert!(parse_keep("").is_err());
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(names(0), "none");
        assert_eq!(names((1 << 39) | (1 << 21)), "cap_sys_admin,cap_bpf");
    }

    #[test]
    fn keep_only_drops_the_rest_in_the_calling_thread() {
        let eff = |s: &str| crate::probe::effective_caps(s);
        let before = std::fs::read_to_string("/proc/self/status").unwrap();
        let Some(had) = eff(&before) else { return };
        if had & (1 << 39) == 0 {
            eprintln!("skipped: the process has no CAP_BPF to keep");
            return;
        }
        let in_thread = std::thread::spawn(|| {
            keep_only(1 << 39).unwrap();
            let after = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            // Asking for one it no longer has is refused, naming it.
            let e = keep_only(1 << 21).unwrap_err().to_string();
            (after, e)
        })
        .join()
        .unwrap();
        assert_eq!(eff(&in_thread.0), Some(1 << 39));
        assert!(
            in_thread.1.contains("cannot keep cap_sys_admin"),
            "{}",
            in_thread.1
        );
        let after = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(eff(&after), Some(had));
    }
}
