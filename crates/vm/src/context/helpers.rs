//! The packet helpers, with the kernel's ids, return values and errors.

use super::csum;
use super::packet::{PacketContext, ETH_HLEN, XDP_FRAME_HEADER, XDP_META_MAX, XDP_TAILROOM};
use super::ContextKind;
use crate::env::Redirect;
use crate::helpers::{HelperContext, HelperError, Helpers};
use crate::maps::types;

const EINVAL: i64 = 22;
const EFAULT: i64 = 14;
const EACCES: i64 = 13;

fn neg(errno: i64) -> Result<u64, HelperError> {
    Ok((-errno) as u64)
}

fn packet<'a>(
    ctx: &'a mut HelperContext<'_>,
    name: &str,
) -> Result<&'a mut PacketContext, HelperError> {
    ctx.env
        .packet
        .as_mut()
        .ok_or_else(|| HelperError::Failed(format!("{name}: the run has no packet context")))
}

fn xdp_packet<'a>(
    ctx: &'a mut HelperContext<'_>,
    name: &str,
) -> Result<&'a mut PacketContext, HelperError> {
    let p = packet(ctx, name)?;
    if p.kind != ContextKind::Xdp {
        return Err(HelperError::Failed(format!(
            "{name} is an XDP helper; the context is {:?}",
            p.kind
        )));
    }
    Ok(p)
}

fn skb_packet<'a>(
    ctx: &'a mut HelperContext<'_>,
    name: &str,
) -> Result<&'a mut PacketContext, HelperError> {
    let p = packet(ctx, name)?;
    if p.kind == ContextKind::Xdp {
        return Err(HelperError::Failed(format!(
            "{name} takes an __sk_buff; the context is xdp_md"
        )));
    }
    Ok(p)
}

/// Applies `f` to the packet context, then moves the packet region and
/// shadow pointers to where `f` left data_meta, data and data_end.
fn moving(
    ctx: &mut HelperContext<'_>,
    name: &str,
    f: impl FnOnce(&mut PacketContext) -> i64,
) -> Result<u64, HelperError> {
    let HelperContext { regions, env } = ctx;
    let p = env
        .packet
        .as_mut()
        .filter(|p| p.kind == ContextKind::Xdp)
        .ok_or_else(|| HelperError::Failed(format!("{name} needs an XDP context")))?;
    let old = p.current_region();
    let r = f(p);
    if r == 0 {
        p.moved(regions, old);
    }
    Ok(r as u64)
}

/// bpf_xdp_adjust_head.
fn adjust_head(p: &mut PacketContext, offset: i32) -> i64 {
    let metalen = p.data - p.meta;
    let data_start = XDP_FRAME_HEADER + metalen;
    let data = p.data as i64 + offset as i64;
    if data < data_start as i64 || data > p.end as i64 - ETH_HLEN as i64 {
        return -EINVAL;
    }
    let new_meta = (p.meta as i64 + offset as i64) as usize;
    p.buf.copy_within(p.meta, new_meta, metalen);
    p.meta = new_meta;
    p.data = data as usize;
    0
}

/// bpf_xdp_adjust_meta.
fn adjust_meta(p: &mut PacketContext, offset: i32) -> i64 {
    let meta = p.meta as i64 + offset as i64;
    if meta < XDP_FRAME_HEADER as i64 || meta > p.data as i64 {
        return -EINVAL;
    }
    let metalen = p.data - meta as usize;
    if !metalen.is_multiple_of(4) || metalen > XDP_META_MAX {
        return -EACCES;
    }
    p.meta = meta as usize;
    0
}

/// bpf_xdp_adjust_tail.
fn adjust_tail(p: &mut PacketContext, offset: i32) -> i64 {
    let hard_end = p.buf.len() - XDP_TAILROOM;
    let end = p.end as i64 + offset as i64;
    if end > hard_end as i64 || end < (p.data + ETH_HLEN) as i64 {
        return -EINVAL;
    }
    if offset > 0 {
        p.buf.fill(p.end, offset as usize, 0);
    }
    p.end = end as usize;
    0
}

/// The bytes [offset, offset + len) of the packet from data, if they exist.
fn skb_range(p: &PacketContext, offset: u64, len: u64) -> Option<usize> {
    let avail = (p.end - p.data) as u64;
    (offset.checked_add(len)? <= avail).then_some(p.data + offset as usize)
}

fn read_u16(p: &PacketContext, at: usize) -> u16 {
    let b = p.buf.read(at, 2);
    u16::from_ne_bytes([
        b.first().copied().unwrap_or(0),
        b.get(1).copied().unwrap_or(0),
    ])
}

/// Clears `len` bytes at `to` (the helpers' error path), checking the
/// destination before allocating anything.
fn clear(ctx: &HelperContext<'_>, to: u64, len: usize) -> Result<(), HelperError> {
    if ctx.regions.translate(to, len, true).is_none() {
        return Err(HelperError::fault(to, len));
    }
    ctx.write(to, &vec![0u8; len])
}

fn write_u16(p: &mut PacketContext, at: usize, v: u16) {
    p.buf.write(at, &v.to_ne_bytes());
}

/// The checks bpf_l3_csum_replace and bpf_l4_csum_replace share: where the
/// checksum is, or the error.
fn csum_field(p: &PacketContext, offset: u64) -> Result<usize, i64> {
    if offset > 0xffff || offset & 1 != 0 {
        return Err(-EFAULT);
    }
    skb_range(p, offset, 2).ok_or(-EFAULT)
}

const BPF_F_HDR_FIELD_MASK: u64 = 0xf;
const BPF_F_PSEUDO_HDR: u64 = 1 << 4;
const BPF_F_MARK_MANGLED_0: u64 = 1 << 5;
const BPF_F_MARK_ENFORCE: u64 = 1 << 6;
const BPF_F_IPV6: u64 = 1 << 7;
const BPF_F_RECOMPUTE_CSUM: u64 = 1;
const BPF_F_INVALIDATE_HASH: u64 = 2;
const BPF_F_INGRESS: u64 = 1;
const BPF_F_BROADCAST: u64 = 1 << 3;
const BPF_F_EXCLUDE_INGRESS: u64 = 1 << 4;

/// Registers the packet helpers: bpf_skb_store_bytes (9),
/// bpf_l3_csum_replace (10), bpf_l4_csum_replace (11), bpf_redirect (23),
/// bpf_skb_load_bytes (26), bpf_csum_diff (28), bpf_xdp_adjust_head (44),
/// bpf_redirect_map (51), bpf_xdp_adjust_meta (54), bpf_xdp_adjust_tail
/// (65), bpf_skb_load_bytes_relative (68).
pub fn register_packet_helpers(h: &mut Helpers) {
    h.register(44, "bpf_xdp_adjust_head", |ctx, a| {
        moving(ctx, "bpf_xdp_adjust_head", |p| adjust_head(p, a[1] as i32))
    });
    h.register(54, "bpf_xdp_adjust_meta", |ctx, a| {
        moving(ctx, "bpf_xdp_adjust_meta", |p| adjust_meta(p, a[1] as i32))
    });
    h.register(65, "bpf_xdp_adjust_tail", |ctx, a| {
        moving(ctx, "bpf_xdp_adjust_tail", |p| adjust_tail(p, a[1] as i32))
    });

    // As bpf_xdp_pointer: offsets and lengths past 16 bits are -EFAULT,
    // ranges past data_end -EINVAL; the buffer is left alone on error.
    h.register(189, "bpf_xdp_load_bytes", |ctx, a| {
        let (offset, to, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64);
        let p = xdp_packet(ctx, "bpf_xdp_load_bytes")?;
        if offset > 0xffff || len > 0xffff {
            return neg(EFAULT);
        }
        let Some(at) = skb_range(p, offset, len) else {
            return neg(EINVAL);
        };
        let b = p.buf.read(at, len as usize);
        ctx.write(to, &b)?;
        Ok(0)
    });
    h.register(190, "bpf_xdp_store_bytes", |ctx, a| {
        let (offset, from, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64);
        let src = ctx.read(from, len as usize)?;
        let p = xdp_packet(ctx, "bpf_xdp_store_bytes")?;
        if offset > 0xffff || len > 0xffff {
            return neg(EFAULT);
        }
        let Some(at) = skb_range(p, offset, len) else {
            return neg(EINVAL);
        };
        p.buf.write(at, &src);
        Ok(0)
    });

    h.register(26, "bpf_skb_load_bytes", |ctx, a| {
        let (offset, to, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as usize);
        let p = skb_packet(ctx, "bpf_skb_load_bytes")?;
        let bytes = if offset > i32::MAX as u64 {
            None
        } else {
            skb_range(p, offset, len as u64).map(|at| p.buf.read(at, len))
        };
        match bytes {
            Some(b) => {
                ctx.write(to, &b)?;
                Ok(0)
            }
            None => {
                clear(ctx, to, len)?;
                neg(EFAULT)
            }
        }
    });

    h.register(68, "bpf_skb_load_bytes_relative", |ctx, a| {
        let (offset, to, len, start) =
            (a[1] as u32 as u64, a[2], a[3] as u32 as usize, a[4] as u32);
        let p = skb_packet(ctx, "bpf_skb_load_bytes_relative")?;
        let base = match start {
            0 => Some(p.mac),
            1 => Some(p.net),
            _ => None,
        };
        let bytes = base
            .filter(|_| offset <= 0xffff)
            .map(|b| b + offset as usize)
            .filter(|at| at.saturating_add(len) <= p.end)
            .map(|at| p.buf.read(at, len));
        match bytes {
            Some(b) => {
                ctx.write(to, &b)?;
                Ok(0)
            }
            None => {
                clear(ctx, to, len)?;
                neg(EFAULT)
            }
        }
    });

    h.register(9, "bpf_skb_store_bytes", |ctx, a| {
        let (offset, from, len, flags) = (a[1] as u32 as u64, a[2], a[3] as u32 as usize, a[4]);
        if flags & !(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH) != 0 {
            return neg(EINVAL);
        }
        let src = ctx.read(from, len)?;
        let p = skb_packet(ctx, "bpf_skb_store_bytes")?;
        if offset > i32::MAX as u64 {
            return neg(EFAULT);
        }
        let Some(at) = skb_range(p, offset, len as u64) else {
            return neg(EFAULT);
        };
        // The test run's skb has no checksum to recompute (CHECKSUM_NONE)
        // and no hash to clear.
        p.buf.write(at, &src);
        Ok(0)
    });

    h.register(10, "bpf_l3_csum_replace", |ctx, a| {
        let (offset, from, to, flags) = (a[1] as u32 as u64, a[2], a[3], a[4]);
        let p = skb_packet(ctx, "bpf_l3_csum_replace")?;
        if flags & !BPF_F_HDR_FIELD_MASK != 0 {
            return neg(EINVAL);
        }
        let at = match csum_field(p, offset) {
            Ok(at) => at,
            Err(e) => return Ok(e as u64),
        };
        let sum = read_u16(p, at);
        let new = match flags & BPF_F_HDR_FIELD_MASK {
            0 if from != 0 => return neg(EINVAL),
            0 => csum::replace_by_diff(sum, to as u32),
            2 => csum::replace2(sum, from as u16, to as u16),
            4 => csum::replace4(sum, from as u32, to as u32),
            _ => return neg(EINVAL),
        };
        write_u16(p, at, new);
        Ok(0)
    });

    h.register(11, "bpf_l4_csum_replace", |ctx, a| {
        let (offset, from, to, flags) = (a[1] as u32 as u64, a[2], a[3], a[4]);
        let p = skb_packet(ctx, "bpf_l4_csum_replace")?;
        let known = BPF_F_MARK_MANGLED_0
            | BPF_F_MARK_ENFORCE
            | BPF_F_PSEUDO_HDR
            | BPF_F_HDR_FIELD_MASK
            | BPF_F_IPV6;
        if flags & !known != 0 {
            return neg(EINVAL);
        }
        let at = match csum_field(p, offset) {
            Ok(at) => at,
            Err(e) => return Ok(e as u64),
        };
        let mmzero = flags & BPF_F_MARK_MANGLED_0 != 0;
        let sum = read_u16(p, at);
        if mmzero && flags & BPF_F_MARK_ENFORCE == 0 && sum == 0 {
            return Ok(0);
        }
        // The test run's skb is CHECKSUM_NONE: the pseudo-header flag
        // changes nothing, the field is updated as an L3 checksum.
        let mut new = match flags & BPF_F_HDR_FIELD_MASK {
            0 if from != 0 => return neg(EINVAL),
            0 => csum::replace_by_diff(sum, to as u32),
            2 => csum::replace2(sum, from as u16, to as u16),
            4 => csum::replace4(sum, from as u32, to as u32),
            _ => return neg(EINVAL),
        };
        if mmzero && new == 0 {
            new = 0xffff; // CSUM_MANGLED_0
        }
        write_u16(p, at, new);
        Ok(0)
    });

    h.register(28, "bpf_csum_diff", |ctx, a| {
        let (from, from_size, to, to_size, seed) =
            (a[0], a[1] as u32, a[2], a[3] as u32, a[4] as u32);
        let f = if from_size > 0 {
            ctx.read(from, from_size as usize)?
        } else {
            Vec::new()
        };
        let t = if to_size > 0 {
            ctx.read(to, to_size as usize)?
        } else {
            Vec::new()
        };
        let ret = if from_size > 0 && to_size > 0 {
            csum::sub(csum::partial(&t, seed), csum::partial(&f, 0))
        } else if to_size > 0 {
            csum::partial(&t, seed)
        } else if from_size > 0 {
            !csum::partial(&f, !seed)
        } else {
            seed
        };
        Ok(csum::from32to16(ret) as u64)
    });

    h.register(23, "bpf_redirect", |ctx, a| {
        let (ifindex, flags) = (a[0] as u32, a[1]);
        let kind = packet(ctx, "bpf_redirect")?.kind;
        if kind == ContextKind::Xdp {
            if flags != 0 {
                return Ok(0); // XDP_ABORTED
            }
            ctx.env.redirect = Some(Redirect::Ifindex { ifindex, flags });
            Ok(4) // XDP_REDIRECT
        } else {
            if flags & !BPF_F_INGRESS != 0 {
                return Ok(2); // TC_ACT_SHOT
            }
            ctx.env.redirect = Some(Redirect::Ifindex { ifindex, flags });
            Ok(7) // TC_ACT_REDIRECT
        }
    });

    h.register(51, "bpf_redirect_map", |ctx, a| {
        let (handle, key, flags) = (a[0], a[1], a[2]);
        xdp_packet(ctx, "bpf_redirect_map")?;
        let map = ctx.env.map(handle).ok_or_else(|| {
            HelperError::Failed(format!("bpf_redirect_map: {handle:#x} is not a map"))
        })?;
        let def = map.def();
        let flag_mask = match def.map_type {
            types::DEVMAP | types::DEVMAP_HASH => BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS,
            _ => 0,
        };
        // XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX: returned when the key
        // is missing.
        let action_mask = 3;
        if flags & !(action_mask | flag_mask) != 0 {
            return Ok(0);
        }
        let kb = (key as u32).to_ne_bytes();
        let found = def.key_size == 4 && map.prog_lookup(&kb, ctx.env.cpu).is_some();
        if !found && flags & BPF_F_BROADCAST == 0 {
            ctx.env.redirect = None;
            return Ok(flags & action_mask);
        }
        ctx.env.redirect = Some(Redirect::Map {
            map: handle as u32,
            key: key as u32 as u64,
            flags,
        });
        Ok(4)
    });
}
