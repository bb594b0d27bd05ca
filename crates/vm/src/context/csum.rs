//! The kernel's Internet checksum arithmetic (include/net/checksum.h), on
//! values as they sit in memory (native byte order), as the kernel computes
//! them.

/// csum_add on a 32-bit partial sum.
pub fn add(csum: u32, addend: u32) -> u32 {
    let (r, c) = csum.overflowing_add(addend);
    r.wrapping_add(c as u32)
}

/// csum_sub.
pub fn sub(csum: u32, addend: u32) -> u32 {
    add(csum, !addend)
}

/// csum_fold: a 32-bit partial sum to the 16-bit checksum (complemented).
pub fn fold(csum: u32) -> u16 {
    let mut s = (csum & 0xffff) + (csum >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// csum_from32to16 (no complement).
pub fn from32to16(sum: u32) -> u16 {
    let s = sum.wrapping_add(sum.rotate_right(16));
    (s >> 16) as u16
}

/// csum_partial as x86-64 computes it: 64-bit end-around-carry sums of
/// little-endian words, folded to 32 bits.
pub fn partial(buf: &[u8], seed: u32) -> u32 {
    let mut acc: u64 = seed as u64;
    let add64 = |acc: u64, v: u64| {
        let (r, c) = acc.overflowing_add(v);
        r.wrapping_add(c as u64)
    };
    let mut chunks = buf.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        acc = add64(acc, u64::from_le_bytes(w));
    }
    let mut rest = chunks.remainder();
    if rest.len() >= 4 {
        acc = add64(
            acc,
            u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64,
        );
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc = add64(acc, u16::from_le_bytes([rest[0], rest[1]]) as u64);
        rest = &rest[2..];
    }
    if let Some(&b) = rest.first() {
        acc = add64(acc, b as u64);
    }
    add((acc >> 32) as u32, acc as u32)
}

/// csum_replace_by_diff.
pub fn replace_by_diff(sum: u16, diff: u32) -> u16 {
    fold(add(diff, !(sum as u32)))
}

/// csum_replace4.
pub fn replace4(sum: u16, from: u32, to: u32) -> u16 {
    let tmp = sub(!(sum as u32), from);
    fold(add(tmp, to))
}

fn add16(csum: u16, addend: u16) -> u16 {
    let r = csum.wrapping_add(addend);
    r.wrapping_add((r < addend) as u16)
}

/// csum_replace2.
pub fn replace2(sum: u16, from: u16, to: u16) -> u16 {
    !add16(add16(!sum, !from), to)
}

/// The Internet checksum of `data` from scratch (RFC 1071), big-endian
/// words, as it is stored in a header: for tests and tools.
pub fn internet(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += w as u32;
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}
