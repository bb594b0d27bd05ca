//! Per-thread capabilities, for [`crate::Privilege::BpfOnly`].

use std::io;

const CAP_NET_ADMIN: u32 = 12;
const CAP_BPF: u32 = 39;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

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

/// The effective set the calling thread keeps: CAP_BPF and CAP_NET_ADMIN
/// where it has them, nothing else.
pub(crate) fn bpf_only_mask(effective: u64) -> u64 {
    effective & ((1 << CAP_BPF) | (1 << CAP_NET_ADMIN))
}

/// Reduces the calling thread's effective capabilities to CAP_BPF and
/// CAP_NET_ADMIN. The raw capset(2) changes only the calling thread (glibc's
/// wrapper would do the same; there is no process-wide broadcast), so call it
/// from a thread made for the purpose.
pub(crate) fn keep_only_bpf() -> io::Result<()> {
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and two data words as capget(2) expects for version 3.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let eff = data[0].effective as u64 | (data[1].effective as u64) << 32;
    let keep = bpf_only_mask(eff);
    data[0].effective = keep as u32;
    data[1].effective = (keep >> 32) as u32;
    hdr.pid = 0;
    // SAFETY: as above; lowering the effective set is always permitted.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
}
