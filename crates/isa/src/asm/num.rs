//! Number parsing shared by both dialects, with the range checks of the
//! fields numbers go into.

/// Parses a decimal or `0x` hexadecimal integer with an optional sign.
pub fn parse_int(s: &str) -> Result<i128, String> {
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        // from_str_radix would accept a sign after the prefix (`0x-5`).
        if h.starts_with(['+', '-']) {
            return Err(format!("`{s}` is not a number"));
        }
        i128::from_str_radix(h, 16)
    } else {
        body.parse::<i128>()
    }
    .map_err(|_| format!("`{s}` is not a number"))?;
    if body.starts_with('+') || body.starts_with('-') {
        return Err(format!("`{s}` is not a number"));
    }
    Ok(if neg { -v } else { v })
}

/// A 32-bit immediate: any value from i32::MIN to u32::MAX (bit patterns
/// are written naturally in hex).
pub fn imm32(s: &str) -> Result<i32, String> {
    let v = parse_int(s)?;
    if v < i32::MIN as i128 || v > u32::MAX as i128 {
        return Err(format!("immediate {s} does not fit in 32 bits"));
    }
    Ok(v as i64 as i32)
}

/// A 64-bit immediate: i64::MIN to u64::MAX.
pub fn imm64(s: &str) -> Result<i64, String> {
    let v = parse_int(s)?;
    if v < i64::MIN as i128 || v > u64::MAX as i128 {
        return Err(format!("immediate {s} does not fit in 64 bits"));
    }
    Ok(v as i64)
}

/// A 16-bit signed offset (hex bit patterns up to 0xffff accepted).
pub fn off16(s: &str) -> Result<i16, String> {
    let v = parse_int(s)?;
    if v < i16::MIN as i128 || v > u16::MAX as i128 || (v > i16::MAX as i128 && !is_hex(s)) {
        return Err(format!("offset {s} does not fit in 16 bits"));
    }
    Ok(v as i64 as i16)
}

fn is_hex(s: &str) -> bool {
    s.trim().trim_start_matches(['-', '+']).starts_with("0x")
}
