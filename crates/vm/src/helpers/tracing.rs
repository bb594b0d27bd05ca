//! Tracing helpers, with Linux 6.18's ids, return values and errno.
//!
//! A VM run has no kernel and no current task. "Kernel memory" (and user
//! memory, for the _user variants) is the memory the run owns: the stack,
//! the context, map values, packets. A probe read of anything else faults
//! as the kernel's nofault copies do. Helpers returning a task pointer
//! return NULL, which programs must check anyway.

use super::ids::helper_name;
use super::{HelperContext, HelperError, Helpers};
use crate::maps::{MapError, PerfEventArray};
use crate::memory::Regions;

type HelperResult = Result<u64, HelperError>;
type Helper = fn(&mut HelperContext<'_>, [u64; 5]) -> HelperResult;

const EFAULT: i32 = libc::EFAULT;
const EINVAL: i32 = libc::EINVAL;
const E2BIG: i32 = libc::E2BIG;

/// Every helper [`register_tracing_helpers`] registers, by id.
const TABLE: &[(u32, Helper)] = &[
    (4, probe_read),
    (25, perf_event_output),
    (35, get_current_task),
    (45, probe_read_str),
    (80, get_current_cgroup_id),
    (112, probe_read),
    (113, probe_read),
    (114, probe_read_str),
    (115, probe_read_str),
    (118, jiffies64),
    (158, get_current_task),
    (173, get_func_ip),
    (174, get_attach_cookie),
    (208, ktime_get_tai_ns),
];

/// Registers bpf_probe_read (4), bpf_perf_event_output (25),
/// bpf_get_current_task (35), bpf_probe_read_str (45),
/// bpf_get_current_cgroup_id (80), bpf_probe_read_user (112),
/// bpf_probe_read_kernel (113), bpf_probe_read_user_str (114),
/// bpf_probe_read_kernel_str (115), bpf_jiffies64 (118),
/// bpf_get_current_task_btf (158), bpf_get_func_ip (173),
/// bpf_get_attach_cookie (174) and bpf_ktime_get_tai_ns (208).
pub fn register_tracing_helpers(h: &mut Helpers) {
    for &(id, f) in TABLE {
        h.register(id, helper_name(id).unwrap_or("unknown"), f);
    }
}

fn neg(errno: i32) -> u64 {
    -(errno as i64) as u64
}

/// Fails unless `[addr, addr+len)` is writable program memory: the verifier
/// checks a destination buffer before the helper runs.
fn check_writable(ctx: &HelperContext<'_>, addr: u64, len: usize) -> Result<(), HelperError> {
    if len > 0 && ctx.regions.translate(addr, len, true).is_none() {
        return Err(HelperError::fault(addr, len));
    }
    Ok(())
}

// ---- probe reads ---------------------------------------------------------

/// bpf_probe_read{,_kernel,_user}(dst, size, unsafe_ptr): copies `size`
/// bytes, or zeroes `dst` and returns -EFAULT when the source is not the
/// run's memory.
fn probe_read(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let (dst, size, src) = (a[0], a[1] as u32 as usize, a[2]);
    check_writable(ctx, dst, size)?;
    if size == 0 {
        return Ok(0);
    }
    match ctx.regions.read_bytes(src, size) {
        Some(bytes) => {
            ctx.write(dst, &bytes)?;
            Ok(0)
        }
        None => {
            ctx.write(dst, &vec![0; size])?;
            Ok(neg(EFAULT))
        }
    }
}

/// strncpy_from_{kernel,user}_nofault into `count` bytes: the string with
/// its NUL (truncated to `count - 1` bytes and terminated), or None where
/// the copy would fault before the NUL or the `count`th byte.
fn copy_str(regions: &Regions, addr: u64, count: usize) -> Option<Vec<u8>> {
    let r = regions.iter().find(|r| addr >= r.start && addr < r.end)?;
    let avail = usize::try_from(r.end - addr).unwrap_or(usize::MAX);
    let scan = regions.read_bytes(addr, avail.min(count))?;
    match scan.iter().position(|&b| b == 0) {
        Some(n) => Some(scan[..=n].to_vec()),
        None if scan.len() == count => {
            let mut s = scan;
            s[count - 1] = 0;
            Some(s)
        }
        None => None,
    }
}

/// bpf_probe_read{,_kernel,_user}_str(dst, size, unsafe_ptr): the length
/// copied including the NUL; on a fault the whole of `dst` is zeroed and the
/// result is -EFAULT (bpf_probe_read_kernel_str_common's memset).
fn probe_read_str(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let (dst, size, src) = (a[0], a[1] as u32 as usize, a[2]);
    check_writable(ctx, dst, size)?;
    if size == 0 {
        return Ok(0);
    }
    match copy_str(ctx.regions, src, size) {
        Some(s) => {
            ctx.write(dst, &s)?;
            Ok(s.len() as u64)
        }
        None => {
            ctx.write(dst, &vec![0; size])?;
            Ok(neg(EFAULT))
        }
    }
}

// ---- perf event output ----------------------------------------------------

/// BPF_F_INDEX_MASK, BPF_F_CURRENT_CPU, BPF_F_CTXLEN_MASK.
const INDEX_MASK: u64 = 0xffff_ffff;
const CURRENT_CPU: u64 = INDEX_MASK;
const CTXLEN_MASK: u64 = 0xf_ffff << 32;

/// bpf_perf_event_output(ctx, map, flags, data, size). In packet programs
/// (bpf_skb_event_output, bpf_xdp_event_output) the upper flag bits may ask
/// for that many packet bytes after the data (-EFAULT past the packet's
/// end); elsewhere any bit past the index is -EINVAL. The index is
/// BPF_F_CURRENT_CPU (the run's CPU) or given, -E2BIG past max_entries;
/// a full queue loses the record and returns -ENOSPC, as a full perf ring.
fn perf_event_output(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let (handle, flags, data, size) = (a[1], a[2], a[3], a[4]);
    let map = ctx
        .env
        .map(handle)
        .ok_or_else(|| HelperError::Failed(format!("r2 is not a map ({handle:#x})")))?;
    let Some(array) = map.as_any().downcast_ref::<PerfEventArray>() else {
        return Err(HelperError::Failed(format!(
            "r2 is not a perf event array ({handle:#x})"
        )));
    };
    // ARG_CONST_SIZE_OR_ZERO: the verifier has checked the buffer.
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let mut record = if size == 0 {
        Vec::new()
    } else {
        ctx.read(data, size)?
    };
    let allowed = match ctx.env.packet {
        Some(_) => INDEX_MASK | CTXLEN_MASK,
        None => INDEX_MASK,
    };
    if flags & !allowed != 0 {
        return Ok(neg(EINVAL));
    }
    let ctx_len = ((flags & CTXLEN_MASK) >> 32) as usize;
    if let Some(p) = &ctx.env.packet {
        if ctx_len > p.end.saturating_sub(p.data) {
            return Ok(neg(EFAULT));
        }
        record.extend_from_slice(&p.buf.read(p.data, ctx_len));
    }
    let mut index = flags & INDEX_MASK;
    if index == CURRENT_CPU {
        index = ctx.env.cpu as u64;
    }
    if index >= map.def().max_entries as u64 {
        return Ok(neg(E2BIG));
    }
    Ok(match array.output(index as u32, &record) {
        Ok(()) => 0,
        Err(MapError::TooBig) => neg(E2BIG),
        Err(e) => neg(e.errno()),
    })
}

// ---- the current task --------------------------------------------------------

/// bpf_get_current_task, bpf_get_current_task_btf: no task, NULL.
fn get_current_task(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(0)
}

fn get_current_cgroup_id(ctx: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(ctx.env.host.cgroup_id())
}

/// No attachment: no function address, no cookie.
fn get_func_ip(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(0)
}

fn get_attach_cookie(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(0)
}

// ---- time ----------------------------------------------------------------------

use super::kernel::clock_ns;

fn ktime_get_tai_ns(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(clock_ns(libc::CLOCK_TAI))
}

/// INITIAL_JIFFIES: jiffies start 300 s before wrapping 32 bits.
fn initial_jiffies(hz: u64) -> u64 {
    (1u64 << 32).wrapping_sub(300 * hz)
}

fn jiffies_at(hz: u64, monotonic_ns: u64) -> u64 {
    let ticks = (monotonic_ns as u128 * hz as u128 / 1_000_000_000) as u64;
    initial_jiffies(hz).wrapping_add(ticks)
}

/// The running kernel's CONFIG_HZ: from /boot/config-<release>, else the
/// HZ whose jiffies agree with /proc/timer_list's, else 250.
fn kernel_hz() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| hz_from_config().or_else(hz_from_timer_list).unwrap_or(250))
}

fn hz_from_config() -> Option<u64> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let config = std::fs::read_to_string(format!("/boot/config-{}", release.trim())).ok()?;
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&hz| hz > 0)
}

fn hz_from_timer_list() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/timer_list").ok()?;
    let field = |prefix: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
    };
    let now = field("now at ")?;
    let jiffies = field("jiffies: ")?;
    // Within a second of ticks: the two lines are read a moment apart.
    [100u64, 250, 300, 1000]
        .into_iter()
        .find(|&hz| jiffies_at(hz, now).abs_diff(jiffies) <= hz)
}

/// bpf_jiffies64: get_jiffies_64(), from CLOCK_MONOTONIC (jiffies stop
/// during suspend, as it does).
fn jiffies64(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(jiffies_at(kernel_hz(), clock_ns(libc::CLOCK_MONOTONIC)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jiffies_follow_the_kernel() {
        assert_eq!(initial_jiffies(250), 4_294_892_296);
        assert_eq!(jiffies_at(250, 4_000_000_000), 4_294_892_296 + 1000);
        // Where /proc/timer_list is readable, the kernel's jiffies agree.
        if let Some(hz) = hz_from_timer_list() {
            assert_eq!(kernel_hz(), hz_from_config().unwrap_or(hz));
        }
    }
}
