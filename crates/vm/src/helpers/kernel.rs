//! The kernel's helper functions, with Linux 6.18's ids and semantics:
//! failures return a negative errno as the kernel does. Pointer arguments
//! the kernel's verifier would have rejected (outside the program's memory)
//! end the run with [`HelperError::Failed`] instead.

use super::ids::helper_name;
use super::{HelperContext, HelperError, Helpers};
use crate::env::MAX_TAIL_CALLS;
use crate::maps::{BpfMap, MapError, ProgArray, RingBuf};
use crate::memory::Regions;
use std::sync::atomic::Ordering;
use std::sync::Arc;

type HelperResult = Result<u64, HelperError>;
type Helper = fn(&mut HelperContext<'_>, [u64; 5]) -> HelperResult;

/// Every helper [`kernel_helpers`] registers, by id.
const TABLE: &[(u32, Helper)] = &[
    (1, map_lookup_elem),
    (2, map_update_elem),
    (3, map_delete_elem),
    (5, ktime_get_ns),
    (6, trace_printk),
    (7, get_prandom_u32),
    (8, get_smp_processor_id),
    (12, tail_call),
    (14, get_current_pid_tgid),
    (15, get_current_uid_gid),
    (16, get_current_comm),
    (42, get_numa_node_id),
    (87, map_push_elem),
    (88, map_pop_elem),
    (89, map_peek_elem),
    (125, ktime_get_boot_ns),
    (130, ringbuf_output),
    (131, ringbuf_reserve),
    (132, ringbuf_submit),
    (133, ringbuf_discard),
    (134, ringbuf_query),
    (160, ktime_get_coarse_ns),
    (165, snprintf),
    (177, trace_vprintk),
    (181, bpf_loop),
    (182, strncmp),
];

/// The kernel helpers the VM implements, registered under their kernel ids
/// and names.
pub fn kernel_helpers() -> Helpers {
    let mut h = Helpers::new();
    for &(id, f) in TABLE {
        h.register(id, helper_name(id).unwrap_or("unknown"), f);
    }
    h
}

const EINVAL: i32 = libc::EINVAL;
const E2BIG: i32 = libc::E2BIG;
const ENOENT: i32 = libc::ENOENT;
const EAGAIN: i32 = libc::EAGAIN;
const ENOSPC: i32 = libc::ENOSPC;

/// A negative errno as the helper's u64 return.
fn neg(errno: i32) -> u64 {
    -(errno as i64) as u64
}

fn status(r: Result<(), MapError>) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => neg(e.errno()),
    }
}

// ---- argument access ---------------------------------------------------

fn map_arg(
    ctx: &HelperContext<'_>,
    handle: u64,
    reg: &str,
) -> Result<Arc<dyn BpfMap>, HelperError> {
    ctx.env
        .map(handle)
        .ok_or_else(|| HelperError::Failed(format!("{reg} is not a map ({handle:#x})")))
}

/// Calls `f` with a copy of `len` bytes the program passed: keys and values
/// are copied so a map may write memory the pointer aliases.
fn with_bytes<R>(
    ctx: &HelperContext<'_>,
    addr: u64,
    len: u32,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, HelperError> {
    let len = len as usize;
    if len == 0 {
        return Ok(f(&[]));
    }
    let src = ctx.slice(addr, len)?;
    if len <= 64 {
        let mut buf = [0u8; 64];
        buf[..len].copy_from_slice(src);
        Ok(f(&buf[..len]))
    } else {
        let v = src.to_vec();
        Ok(f(&v))
    }
}

/// Fails unless `[addr, addr+len)` is writable program memory (what the
/// verifier checks of an output buffer before the helper runs).
fn check_writable(ctx: &HelperContext<'_>, addr: u64, len: usize) -> Result<(), HelperError> {
    if len > 0 && ctx.regions.translate(addr, len, true).is_none() {
        return Err(HelperError::fault(addr, len));
    }
    Ok(())
}

/// The region holding `addr`, as the bytes from `addr` to its end.
fn rest_of_region(regions: &Regions, addr: u64) -> Option<&[u8]> {
    let r = regions.iter().find(|r| addr >= r.start && addr < r.end)?;
    let len = usize::try_from(r.end - addr).ok()?;
    let p = regions.translate(addr, len, false)?;
    // SAFETY: translate checked that [addr, addr+len) lies in a live region;
    // the program is paused while its helper runs.
    Some(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A NUL-terminated string argument (ARG_PTR_TO_CONST_STR), without its NUL,
/// or its first `max` bytes when it is longer.
fn c_str<'c>(
    ctx: &'c HelperContext<'_>,
    addr: u64,
    max: usize,
    what: &str,
) -> Result<&'c [u8], HelperError> {
    let bytes = rest_of_region(ctx.regions, addr).ok_or_else(|| HelperError::fault(addr, 1))?;
    let scan = &bytes[..bytes.len().min(max)];
    match scan.iter().position(|&b| b == 0) {
        Some(n) => Ok(&scan[..n]),
        None if scan.len() == max => Ok(scan),
        None => Err(HelperError::Failed(format!(
            "{what} at {addr:#x} is not NUL-terminated inside the program's memory"
        ))),
    }
}

/// strncpy_from_kernel_nofault into `count` bytes: the string (at most
/// `count - 1` bytes), or None where the kernel would fault.
fn copy_str_nofault(regions: &Regions, addr: u64, count: usize) -> Option<Vec<u8>> {
    if count == 0 {
        return Some(Vec::new());
    }
    let bytes = rest_of_region(regions, addr)?;
    let scan = &bytes[..bytes.len().min(count)];
    match scan.iter().position(|&b| b == 0) {
        Some(n) => Some(scan[..n].to_vec()),
        None if scan.len() == count => Some(scan[..count - 1].to_vec()),
        None => None,
    }
}

// ---- maps --------------------------------------------------------------

fn map_lookup_elem(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let map = map_arg(ctx, a[0], "r1")?;
    let cpu = ctx.env.cpu;
    with_bytes(ctx, a[1], map.def().key_size, |key| {
        map.prog_lookup(key, cpu).unwrap_or(0)
    })
}

/// Fails a write to a map programs may only read (`.rodata`, or created with
/// BPF_F_RDONLY_PROG): the kernel's verifier refuses such programs.
fn writable_map(map: &dyn BpfMap, helper: &str) -> Result<(), HelperError> {
    if map.def().flags & crate::maps::create_flags::RDONLY_PROG != 0 {
        return Err(HelperError::Failed(format!(
            "{helper} on map `{}`, which programs may only read (BPF_F_RDONLY_PROG)",
            map.def().name
        )));
    }
    Ok(())
}

fn map_update_elem(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let map = map_arg(ctx, a[0], "r1")?;
    writable_map(&*map, "bpf_map_update_elem")?;
    let cpu = ctx.env.cpu;
    let def = map.def();
    with_bytes(ctx, a[2], def.value_size, |value| {
        with_bytes(ctx, a[1], def.key_size, |key| {
            status(map.prog_update(key, value, a[3], cpu))
        })
    })?
}

fn map_delete_elem(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let map = map_arg(ctx, a[0], "r1")?;
    writable_map(&*map, "bpf_map_delete_elem")?;
    with_bytes(ctx, a[1], map.def().key_size, |key| {
        status(map.prog_delete(key))
    })
}

fn map_push_elem(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let map = map_arg(ctx, a[0], "r1")?;
    with_bytes(ctx, a[1], map.def().value_size, |value| {
        status(map.push(value, a[2]))
    })
}

fn map_pop_elem(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    take_elem(ctx, a, |m| m.pop())
}

fn map_peek_elem(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    take_elem(ctx, a, |m| m.peek())
}

/// pop/peek: the value goes to r2; an empty queue zeroes it, as the kernel's
/// __queue_map_get and __stack_map_get do.
fn take_elem(
    ctx: &mut HelperContext<'_>,
    a: [u64; 5],
    op: impl FnOnce(&dyn BpfMap) -> Result<Vec<u8>, MapError>,
) -> HelperResult {
    let map = map_arg(ctx, a[0], "r1")?;
    let size = map.def().value_size as usize;
    // Checked first so a bad pointer does not cost the queue an element.
    check_writable(ctx, a[1], size)?;
    match op(&*map) {
        Ok(v) => {
            ctx.write(a[1], &v[..v.len().min(size)])?;
            Ok(0)
        }
        Err(MapError::NotFound) => {
            ctx.write(a[1], &vec![0; size])?;
            Ok(neg(ENOENT))
        }
        Err(e) => Ok(neg(e.errno())),
    }
}

// ---- ring buffers --------------------------------------------------------

fn with_ringbuf(
    ctx: &HelperContext<'_>,
    handle: u64,
    f: impl FnOnce(&RingBuf) -> u64,
) -> HelperResult {
    let map = map_arg(ctx, handle, "r1")?;
    let rb = map
        .as_any()
        .downcast_ref::<RingBuf>()
        .ok_or_else(|| HelperError::Failed(format!("r1 is not a ring buffer map ({handle:#x})")))?;
    Ok(f(rb))
}

/// BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP.
const RB_WAKEUP_FLAGS: u64 = 1 | 2;

fn ringbuf_output(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let flags = a[3];
    let data = ctx.read(a[1], usize::try_from(a[2]).unwrap_or(usize::MAX))?;
    with_ringbuf(ctx, a[0], |rb| {
        if flags & !RB_WAKEUP_FLAGS != 0 {
            return neg(EINVAL);
        }
        match rb.output(&data, flags) {
            Ok(()) => 0,
            Err(MapError::Invalid(_)) => neg(EINVAL),
            // Any failed reservation is EAGAIN in the kernel.
            Err(_) => neg(EAGAIN),
        }
    })
}

fn ringbuf_reserve(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    with_ringbuf(ctx, a[0], |rb| {
        if a[2] != 0 {
            return 0;
        }
        rb.reserve(a[1], a[2]).unwrap_or(0)
    })
}

fn ringbuf_submit(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    reservation_owner(ctx, a[0], |rb| rb.submit(a[0], a[1]))
}

fn ringbuf_discard(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    reservation_owner(ctx, a[0], |rb| rb.discard(a[0], a[1]))
}

/// submit and discard get the sample, not the map: find the ring buffer
/// whose data area holds it.
fn reservation_owner(ctx: &HelperContext<'_>, addr: u64, f: impl FnOnce(&RingBuf)) -> HelperResult {
    let maps = &ctx.env.maps;
    for id in 0..maps.len() as u32 {
        let Some(map) = maps.get(id) else { continue };
        let Some(rb) = map.as_any().downcast_ref::<RingBuf>() else {
            continue;
        };
        if rb.regions().iter().any(|r| addr >= r.start && addr < r.end) {
            f(rb);
            return Ok(0);
        }
    }
    Err(HelperError::Failed(format!(
        "r1 ({addr:#x}) is not a ring buffer reservation"
    )))
}

fn ringbuf_query(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    with_ringbuf(ctx, a[0], |rb| rb.query(a[1]))
}

// ---- tail calls and loops -------------------------------------------------

/// bpf_tail_call(ctx, prog_array, index). A failing tail call returns and
/// the program continues; a taken one ends this run with the target set in
/// the environment. As in the kernel (interpreter and JITs), the count goes
/// up once the index and limit checks pass, even if the slot is empty.
fn tail_call(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let map = map_arg(ctx, a[1], "r2")?;
    let Some(array) = map.as_any().downcast_ref::<ProgArray>() else {
        return Err(HelperError::Failed(format!(
            "r2 is not a program array ({:#x})",
            a[1]
        )));
    };
    let index = a[2] as u32;
    if index >= map.def().max_entries || ctx.env.tail_calls >= MAX_TAIL_CALLS {
        return Ok(0);
    }
    ctx.env.tail_calls += 1;
    let Some(prog) = array.get(index) else {
        return Ok(0);
    };
    if prog >= ctx.env.programs {
        return Err(HelperError::Failed(format!(
            "program array slot {index} holds program {prog}, but the instance has {} programs",
            ctx.env.programs
        )));
    }
    ctx.env.tail_call = Some(prog);
    Err(HelperError::Exit(0))
}

/// BPF_MAX_LOOPS.
const MAX_LOOPS: u32 = 1 << 23;

/// bpf_loop(nr_loops, callback, ctx, flags): the interpreter runs the loop.
fn bpf_loop(_ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    // nr_loops is a u32 in the kernel's signature; flags are checked first.
    let iterations = a[0] as u32;
    if a[3] != 0 {
        return Ok(neg(EINVAL));
    }
    if iterations > MAX_LOOPS {
        return Ok(neg(E2BIG));
    }
    Err(HelperError::Loop {
        callback: a[1],
        iterations,
        ctx: a[2],
    })
}

// ---- time, randomness, CPU, current task ------------------------------------

/// Nanoseconds on `clock` (0 if the clock is unavailable).
pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

fn ktime_get_ns(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(clock_ns(libc::CLOCK_MONOTONIC))
}

fn ktime_get_boot_ns(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(clock_ns(libc::CLOCK_BOOTTIME))
}

fn ktime_get_coarse_ns(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(clock_ns(libc::CLOCK_MONOTONIC_COARSE))
}

/// A splitmix64 step on the shared state: lock-free, and reproducible from a
/// seed when one thread runs.
fn get_prandom_u32(ctx: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut z = ctx
        .env
        .host
        .prandom
        .fetch_add(GAMMA, Ordering::Relaxed)
        .wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Ok(z >> 32)
}

fn get_smp_processor_id(ctx: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(ctx.env.cpu as u64)
}

fn get_numa_node_id(_: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(0)
}

fn get_current_pid_tgid(ctx: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(ctx.env.host.pid_tgid())
}

fn get_current_uid_gid(ctx: &mut HelperContext<'_>, _: [u64; 5]) -> HelperResult {
    Ok(ctx.env.host.uid_gid())
}

/// bpf_get_current_comm(buf, size): strscpy_pad of the task's comm. The
/// verifier rejects size 0, for which the kernel's code writes nothing and
/// returns 0.
fn get_current_comm(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let size = a[1] as u32 as usize;
    if size == 0 {
        return Ok(0);
    }
    check_writable(ctx, a[0], size)?;
    let comm = &ctx.env.host.comm();
    let n = comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(comm.len())
        .min(size - 1);
    let mut buf = vec![0u8; size];
    buf[..n].copy_from_slice(&comm[..n]);
    ctx.write(a[0], &buf)?;
    Ok(0)
}

// ---- strings ---------------------------------------------------------------

/// bpf_strncmp(s1, s1_sz, s2): lib/string.c's strncmp, which returns -1, 0
/// or 1 (x86-64 has no arch version).
fn strncmp(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let n = a[1] as u32 as usize;
    if n == 0 {
        return Ok(0);
    }
    let s1 = ctx.slice(a[0], n)?;
    let s2 = c_str(ctx, a[2], n, "r3 (s2)")?;
    for (i, &c1) in s1.iter().enumerate() {
        let c2 = s2.get(i).copied().unwrap_or(0);
        if c1 != c2 {
            return Ok(if c1 < c2 { -1i64 as u64 } else { 1 });
        }
        if c1 == 0 {
            break;
        }
    }
    Ok(0)
}

// ---- formatted output --------------------------------------------------------

/// MAX_BPRINTF_BUF: trace_printk's output buffer.
const MAX_BPRINTF_BUF: usize = 1024;
/// MAX_BPRINTF_BIN_ARGS: the buffer prepare copies arguments into.
const MAX_BPRINTF_BIN_ARGS: i64 = 512;
/// MAX_BPRINTF_VARARGS: bpf_snprintf's and bpf_trace_vprintk's arguments.
const MAX_BPRINTF_VARARGS: u32 = 12;
/// vsprintf's FIELD_WIDTH_MAX.
const FIELD_WIDTH_MAX: i64 = (1 << 23) - 1;

fn trace_printk(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    trace(ctx, a[0], a[1] as u32, &[a[2], a[3], a[4]])
}

/// bpf_trace_vprintk(fmt, fmt_size, data, data_len).
fn trace_vprintk(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let args = match varargs(ctx, a[2], a[3] as u32)? {
        Ok(v) => v,
        Err(e) => return Ok(neg(e)),
    };
    trace(ctx, a[0], a[1] as u32, &args)
}

/// The u64 argument array of snprintf and trace_vprintk, or the errno the
/// kernel checks for before formatting.
fn varargs(
    ctx: &HelperContext<'_>,
    addr: u64,
    len: u32,
) -> Result<Result<Vec<u64>, i32>, HelperError> {
    if !len.is_multiple_of(8) || len > MAX_BPRINTF_VARARGS * 8 || (len != 0 && addr == 0) {
        return Ok(Err(EINVAL));
    }
    if len == 0 {
        return Ok(Ok(Vec::new()));
    }
    let raw = ctx.slice(addr, len as usize)?;
    Ok(Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()))
}

/// The trace_printk family: format into MAX_BPRINTF_BUF bytes, record the
/// line, return bstr_printf's result (the untruncated length).
fn trace(ctx: &mut HelperContext<'_>, fmt: u64, fmt_size: u32, args: &[u64]) -> HelperResult {
    if fmt_size == 0 {
        return Ok(neg(EINVAL));
    }
    let raw = ctx.slice(fmt, fmt_size as usize)?;
    let Some(end) = raw.iter().position(|&b| b == 0) else {
        return Ok(neg(EINVAL));
    };
    let pieces = match prepare(&raw[..end], args, ctx.regions) {
        Ok(p) => p,
        Err(e) => return Ok(neg(e)),
    };
    let (text, len) = render(&pieces, MAX_BPRINTF_BUF - 1);
    let line = String::from_utf8_lossy(&text).into_owned();
    ctx.env
        .host
        .trace
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(line);
    Ok(len)
}

/// bpf_snprintf(str, str_size, fmt, data, data_len): writes the NUL-terminated,
/// possibly truncated result and returns the length the whole string needs,
/// NUL included.
fn snprintf(ctx: &mut HelperContext<'_>, a: [u64; 5]) -> HelperResult {
    let (out, size) = (a[0], a[1] as u32);
    let args = match varargs(ctx, a[3], a[4] as u32)? {
        Ok(v) => v,
        Err(e) => return Ok(neg(e)),
    };
    let fmt = c_str(ctx, a[2], usize::MAX, "r3 (the format)")?;
    let pieces = match prepare(fmt, &args, ctx.regions) {
        Ok(p) => p,
        Err(e) => return Ok(neg(e)),
    };
    // bstr_printf refuses sizes past INT_MAX and returns 0.
    if size > i32::MAX as u32 {
        return Ok(1);
    }
    check_writable(ctx, out, size as usize)?;
    if size == 0 {
        let (_, len) = render(&pieces, 0);
        return Ok(len + 1);
    }
    let (mut text, len) = render(&pieces, size as usize - 1);
    text.push(0);
    ctx.write(out, &text)?;
    Ok(len + 1)
}

#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
}

#[derive(Debug)]
enum Conv {
    Int {
        value: u64,
        signed: bool,
        hex: bool,
        upper: bool,
    },
    Char(u8),
    Str(Vec<u8>),
    /// %p, %px, %pK: the pointer in hex (the VM does not hash %p).
    Ptr(u64),
    /// %ps, %pS: the VM has no symbols, so the address as "0x...", as the
    /// kernel prints an address it cannot resolve.
    Sym(u64),
    /// Text prepare formats itself (%pks, %pus, %pB, %pI4, ...); bstr_printf
    /// copies it without applying the width.
    Pre(Vec<u8>),
}

#[derive(Debug)]
enum Piece<'f> {
    Lit(&'f [u8]),
    Conv {
        flags: Flags,
        width: i64,
        conv: Conv,
    },
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t'..=b'\r')
}

fn is_punct(c: u8) -> bool {
    c.is_ascii_punctuation()
}

/// bpf_bprintf_prepare: checks `fmt` (without its NUL) against the kernel's
/// rules and binds each conversion to its argument, reading strings and IP
/// addresses from program memory as the kernel copies them into its
/// 512-byte argument buffer (whose overflow is ENOSPC). Returns the errno on
/// failure.
fn prepare<'f>(fmt: &'f [u8], args: &[u64], regions: &Regions) -> Result<Vec<Piece<'f>>, i32> {
    let at = |i: usize| fmt.get(i).copied().unwrap_or(0);
    // No argument buffer without arguments (then no conversion is valid).
    let has_bin = !args.is_empty();
    let mut bin: i64 = 0;
    let fixed = |bin: &mut i64, size: i64| -> Result<(), i32> {
        if has_bin {
            *bin = (*bin + 3) & !3;
            if MAX_BPRINTF_BIN_ARGS - *bin < size {
                return Err(ENOSPC);
            }
            *bin += size;
        }
        Ok(())
    };
    let mut pieces = Vec::new();
    let mut lit = 0usize;
    let mut num_spec = 0usize;
    let mut i = 0usize;
    while i < fmt.len() {
        let c = fmt[i];
        if !(c.is_ascii_graphic() || is_space(c)) {
            return Err(EINVAL);
        }
        if c != b'%' {
            i += 1;
            continue;
        }
        if at(i + 1) == b'%' {
            pieces.push(Piece::Lit(&fmt[lit..=i]));
            i += 2;
            lit = i;
            continue;
        }
        if num_spec >= args.len() {
            return Err(EINVAL);
        }
        if lit < i {
            pieces.push(Piece::Lit(&fmt[lit..i]));
        }
        let arg = args[num_spec];
        i += 1;
        let mut flags = Flags::default();
        loop {
            match at(i) {
                b'0' => flags.zero = true,
                b'+' => flags.plus = true,
                b'-' => flags.left = true,
                b' ' => flags.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = -1i64;
        if matches!(at(i), b'1'..=b'9') {
            width = 0;
            while at(i).is_ascii_digit() {
                width = (width * 10 + (at(i) - b'0') as i64).min(FIELD_WIDTH_MAX);
                i += 1;
            }
        }
        let conv = match at(i) {
            b'p' => {
                let p = i;
                let n1 = at(i + 1);
                let conv = if n1 == 0 || is_space(n1) || is_punct(n1) {
                    fixed(&mut bin, 8)?;
                    Conv::Ptr(arg)
                } else if (n1 == b'k' || n1 == b'u') && at(i + 2) == b's' {
                    i += 2;
                    Conv::Pre(string_arg(fmt, i, arg, has_bin, &mut bin, regions)?)
                } else if matches!(n1, b'K' | b'x' | b's' | b'S') {
                    i += 1;
                    fixed(&mut bin, 8)?;
                    if matches!(n1, b's' | b'S') {
                        Conv::Sym(arg)
                    } else {
                        Conv::Ptr(arg)
                    }
                } else if n1 == b'B' {
                    i += 1;
                    let text = format!("0x{arg:x}").into_bytes();
                    Conv::Pre(preformatted(text, has_bin, &mut bin))
                } else {
                    // Only %pI4, %pi4, %pI6 and %pi6 remain.
                    let n2 = at(i + 2);
                    if !matches!(n1, b'i' | b'I') || !matches!(n2, b'4' | b'6') {
                        return Err(EINVAL);
                    }
                    i += 2;
                    let size = if n2 == b'4' { 4 } else { 16 };
                    if has_bin && MAX_BPRINTF_BIN_ARGS - bin < size {
                        return Err(ENOSPC);
                    }
                    let ip = regions
                        .read_bytes(arg, size as usize)
                        .unwrap_or_else(|| vec![0; size as usize]);
                    Conv::Pre(preformatted(ip_string(&ip, n1 == b'I'), has_bin, &mut bin))
                };
                // bstr_printf skips the letters and digits after %p.
                lit = p + 1;
                while at(lit).is_ascii_alphanumeric() {
                    lit += 1;
                }
                conv
            }
            b's' => {
                lit = i + 1;
                Conv::Str(string_arg(fmt, i, arg, has_bin, &mut bin, regions)?)
            }
            b'c' => {
                if has_bin {
                    if bin == MAX_BPRINTF_BIN_ARGS {
                        return Err(ENOSPC);
                    }
                    bin += 1;
                }
                lit = i + 1;
                Conv::Char(arg as u8)
            }
            _ => {
                let mut size = 4;
                if at(i) == b'l' {
                    size = 8;
                    i += 1;
                }
                if at(i) == b'l' {
                    i += 1;
                }
                let k = at(i);
                if !matches!(k, b'i' | b'd' | b'u' | b'x' | b'X') {
                    return Err(EINVAL);
                }
                fixed(&mut bin, size)?;
                lit = i + 1;
                let signed = matches!(k, b'i' | b'd');
                let value = match (size, signed) {
                    (4, true) => arg as u32 as i32 as i64 as u64,
                    (4, false) => arg as u32 as u64,
                    _ => arg,
                };
                Conv::Int {
                    value,
                    signed,
                    hex: matches!(k, b'x' | b'X'),
                    upper: k == b'X',
                }
            }
        };
        pieces.push(Piece::Conv { flags, width, conv });
        num_spec += 1;
        i += 1;
    }
    if lit < fmt.len() {
        pieces.push(Piece::Lit(&fmt[lit..]));
    }
    Ok(pieces)
}

/// A %s / %pks / %pus argument: `fmt[i]` is the `s`. The string is copied
/// into what is left of the argument buffer; one that cannot be read prints
/// as the empty string, as in the kernel.
fn string_arg(
    fmt: &[u8],
    i: usize,
    arg: u64,
    has_bin: bool,
    bin: &mut i64,
    regions: &Regions,
) -> Result<Vec<u8>, i32> {
    let next = fmt.get(i + 1).copied().unwrap_or(0);
    if next != 0 && !is_space(next) && !is_punct(next) {
        return Err(EINVAL);
    }
    if !has_bin {
        return Ok(Vec::new());
    }
    if *bin == MAX_BPRINTF_BIN_ARGS {
        return Err(ENOSPC);
    }
    let room = (MAX_BPRINTF_BIN_ARGS - *bin).max(0) as usize;
    match copy_str_nofault(regions, arg, room) {
        Some(s) => {
            *bin += if room == 0 { 0 } else { s.len() as i64 + 1 };
            Ok(s)
        }
        None => {
            *bin += 1;
            Ok(Vec::new())
        }
    }
}

/// Text prepare snprintf()s into the argument buffer: truncated to the room
/// left, while the buffer position moves by the full length.
fn preformatted(mut text: Vec<u8>, has_bin: bool, bin: &mut i64) -> Vec<u8> {
    if has_bin {
        let room = MAX_BPRINTF_BIN_ARGS - *bin;
        *bin += text.len() as i64 + 1;
        text.truncate((room - 1).max(0) as usize);
    }
    text
}

/// %pI4 / %pi4 / %pI6 / %pi6 (lowercase: zero-padded IPv4, IPv6 without
/// colons).
fn ip_string(ip: &[u8], upper: bool) -> Vec<u8> {
    let s = if ip.len() == 4 {
        let parts: Vec<String> = ip
            .iter()
            .map(|b| {
                if upper {
                    b.to_string()
                } else {
                    format!("{b:03}")
                }
            })
            .collect();
        parts.join(".")
    } else {
        let groups: Vec<String> = ip
            .chunks(2)
            .map(|g| format!("{:02x}{:02x}", g[0], g.get(1).copied().unwrap_or(0)))
            .collect();
        groups.join(if upper { ":" } else { "" })
    };
    s.into_bytes()
}

/// Output capped at `cap` bytes that still counts every byte.
struct Out {
    buf: Vec<u8>,
    cap: usize,
    len: u64,
}

impl Out {
    fn put(&mut self, s: &[u8]) {
        let room = self.cap - self.buf.len();
        self.buf.extend_from_slice(&s[..s.len().min(room)]);
        self.len += s.len() as u64;
    }

    fn pad(&mut self, c: u8, n: i64) {
        if n <= 0 {
            return;
        }
        let room = (self.cap - self.buf.len()) as u64;
        let k = (n as u64).min(room) as usize;
        self.buf.resize(self.buf.len() + k, c);
        self.len += n as u64;
    }
}

/// bstr_printf over prepared pieces: the first `cap` bytes and the full
/// length.
fn render(pieces: &[Piece<'_>], cap: usize) -> (Vec<u8>, u64) {
    let mut out = Out {
        buf: Vec::with_capacity(cap.min(256)),
        cap,
        len: 0,
    };
    for p in pieces {
        match p {
            Piece::Lit(s) => out.put(s),
            Piece::Conv { flags, width, conv } => match conv {
                Conv::Int {
                    value,
                    signed,
                    hex,
                    upper,
                } => number(&mut out, *value, *signed, *hex, *upper, *flags, *width),
                Conv::Ptr(v) => {
                    // pointer_string: 16 zero-padded digits unless a width is given.
                    let (f, w) = if *width == -1 {
                        (
                            Flags {
                                zero: true,
                                ..*flags
                            },
                            16,
                        )
                    } else {
                        (*flags, *width)
                    };
                    number(&mut out, *v, false, true, false, f, w)
                }
                Conv::Char(c) => {
                    if !flags.left {
                        out.pad(b' ', width - 1);
                    }
                    out.put(&[*c]);
                    if flags.left {
                        out.pad(b' ', width - 1);
                    }
                }
                Conv::Str(s) => widen(&mut out, s, *flags, *width),
                Conv::Sym(v) => widen(&mut out, format!("0x{v:x}").as_bytes(), *flags, *width),
                Conv::Pre(s) => out.put(s),
            },
        }
    }
    (out.buf, out.len)
}

/// A string padded with spaces to `width` (vsprintf's widen_string).
fn widen(out: &mut Out, s: &[u8], flags: Flags, width: i64) {
    let pad = width - s.len() as i64;
    if !flags.left {
        out.pad(b' ', pad);
    }
    out.put(s);
    if flags.left {
        out.pad(b' ', pad);
    }
}

/// vsprintf's number() without precision or '#'.
fn number(out: &mut Out, num: u64, signed: bool, hex: bool, upper: bool, flags: Flags, width: i64) {
    let zero = flags.zero && !flags.left;
    let mut num = num;
    let mut fw = width;
    let mut sign = None;
    if signed {
        if (num as i64) < 0 {
            sign = Some(b'-');
            num = (num as i64).wrapping_neg() as u64;
        } else if flags.plus {
            sign = Some(b'+');
        } else if flags.space {
            sign = Some(b' ');
        }
        if sign.is_some() {
            fw -= 1;
        }
    }
    let digits = match (hex, upper) {
        (false, _) => num.to_string(),
        (true, false) => format!("{num:x}"),
        (true, true) => format!("{num:X}"),
    };
    fw -= digits.len() as i64;
    if !zero && !flags.left {
        out.pad(b' ', fw);
        fw = 0;
    }
    if let Some(s) = sign {
        out.put(&[s]);
    }
    if !flags.left {
        out.pad(if zero { b'0' } else { b' ' }, fw);
        fw = 0;
    }
    out.put(digits.as_bytes());
    out.pad(b' ', fw);
}
