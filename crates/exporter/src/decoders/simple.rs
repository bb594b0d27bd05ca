//! Decoders that need no system state: uint, hex, string, dname, inet_ip,
//! errno, syscall, static_map.

use super::{errnos::ERRNOS, parse_go_int, parse_go_uint, syscalls_x86_64::SYSCALLS};
use super::{DecoderSpec, Step, StepError};
use std::fmt::Write as _;

/// Go's `%#v` of a `[]byte`, for error messages.
pub(crate) fn go_bytes(input: &[u8]) -> String {
    let mut out = String::from("[]byte{");
    for (i, b) in input.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{b:#x}");
    }
    out.push('}');
    out
}

/// `uint`: 1, 2, 4 or 8 bytes in host byte order, as decimal.
pub(crate) fn uint(input: &[u8]) -> Step {
    let n = match *input {
        [a] => u64::from(a),
        [a, b] => u64::from(u16::from_ne_bytes([a, b])),
        [a, b, c, d] => u64::from(u32::from_ne_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => u64::from_ne_bytes([a, b, c, d, e, f, g, h]),
        _ => {
            return Err(StepError::Failed(format!(
                "unknown value length {} for {}",
                input.len(),
                go_bytes(input)
            )))
        }
    };
    Ok(n.to_string().into_bytes())
}

/// `hex`: lowercase hex of every byte.
pub(crate) fn hex(input: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(input.len() * 2);
    for b in input {
        let _ = write!(out, "{b:02x}");
    }
    out.into_bytes()
}

/// `string`: the bytes up to the first NUL (all of them if none).
pub(crate) fn string(input: &[u8]) -> Vec<u8> {
    let end = input.iter().position(|&b| b == 0).unwrap_or(input.len());
    input[..end].to_vec()
}

/// `dname`: a DNS name in wire format (length-prefixed labels) as dotted
/// text. Every length byte becomes a `.` and the leading one is dropped, so a
/// terminating zero-length label leaves a trailing `.`; empty input is `.`;
/// a label running past the end returns the input unchanged.
pub(crate) fn dname(input: &[u8]) -> Vec<u8> {
    if input.is_empty() {
        return b".".to_vec();
    }
    let mut out = vec![0u8; input.len()];
    let mut off = 0;
    while off < input.len() {
        let n = usize::from(input[off]);
        out[off] = b'.';
        off += 1;
        if off + n > input.len() {
            return input.to_vec();
        }
        out[off..off + n].copy_from_slice(&input[off..off + n]);
        off += n;
    }
    out.split_off(1)
}

/// `inet_ip`: Go's `net.IP.String()`. 4 bytes: dotted quad; 16 bytes: IPv6
/// (RFC 5952: lowercase, longest run of two or more zero groups as `::`, the
/// first on ties), except IPv4-mapped `::ffff:a.b.c.d`, which prints as
/// `a.b.c.d`; any other length: `?` and the hex bytes.
pub(crate) fn inet_ip(input: &[u8]) -> Vec<u8> {
    format_ip(input).into_bytes()
}

fn format_ip(input: &[u8]) -> String {
    if input.is_empty() {
        return "<nil>".to_string();
    }
    if let Ok(v4) = <[u8; 4]>::try_from(input) {
        return format!("{}.{}.{}.{}", v4[0], v4[1], v4[2], v4[3]);
    }
    let Ok(v6) = <[u8; 16]>::try_from(input) else {
        return format!("?{}", String::from_utf8_lossy(&hex(input)));
    };
    if v6[..10].iter().all(|&b| b == 0) && v6[10] == 0xff && v6[11] == 0xff {
        return format!("{}.{}.{}.{}", v6[12], v6[13], v6[14], v6[15]);
    }
    let groups: Vec<u16> = v6
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut zero_start, mut zero_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        let mut j = i;
        while j < 8 && groups[j] == 0 {
            j += 1;
        }
        if j - i >= 2 && j - i > zero_len {
            zero_start = i;
            zero_len = j - i;
        }
        i = j.max(i + 1);
    }
    let mut out = String::with_capacity(39);
    let mut i = 0;
    while i < 8 {
        if i == zero_start {
            out.push_str("::");
            i += zero_len;
            continue;
        }
        if i > 0 && !out.ends_with(':') {
            out.push(':');
        }
        let _ = write!(out, "{:x}", groups[i]);
        i += 1;
    }
    out
}

/// `errno`: a decimal errno as its Linux name, `unknown:N` if it has none.
pub(crate) fn errno(input: &[u8]) -> Step {
    let n = parse_go_uint(input)?;
    Ok(match ERRNOS.binary_search_by_key(&n, |&(num, _)| num) {
        Ok(i) => ERRNOS[i].1.as_bytes().to_vec(),
        Err(_) => format!("unknown:{n}").into_bytes(),
    })
}

/// `syscall`: a decimal x86-64 syscall number as its name,
/// `unknown_syscall:N` if it has none (negative numbers wrap to u64 as in Go).
pub(crate) fn syscall(input: &[u8]) -> Step {
    let n = parse_go_int(input)? as u64;
    Ok(match SYSCALLS.binary_search_by_key(&n, |&(num, _)| num) {
        Ok(i) => SYSCALLS[i].1.as_bytes().to_vec(),
        Err(_) => format!("unknown_syscall:{n}").into_bytes(),
    })
}

/// `static_map`: the mapped value; unmapped values become `unknown:VALUE`,
/// or stay as they are with `allow_unknown`; without a mapping everything is
/// `empty mapping`.
pub(crate) fn static_map(input: &[u8], spec: &DecoderSpec) -> Vec<u8> {
    if spec.static_map.is_empty() {
        return b"empty mapping".to_vec();
    }
    let found = std::str::from_utf8(input)
        .ok()
        .and_then(|s| spec.static_map.get(s));
    match found {
        Some(value) => value.as_bytes().to_vec(),
        None if spec.allow_unknown => input.to_vec(),
        None => {
            let mut out = b"unknown:".to_vec();
            out.extend_from_slice(input);
            out
        }
    }
}
