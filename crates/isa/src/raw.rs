//! The 8-byte wire form of one instruction slot.

/// One 64-bit instruction slot exactly as it is laid out in memory and in ELF
/// sections (little-endian host order, as the kernel loads it on x86-64).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    pub code: u8,
    /// Low nibble of the second byte.
    pub dst: u8,
    /// High nibble of the second byte.
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl RawInsn {
    pub const SIZE: usize = 8;

    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    pub fn from_bytes(b: [u8; 8]) -> Self {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn to_bytes(self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0x0f) | (self.src << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    /// The slot as the little-endian 64-bit integer the conformance `-- raw`
    /// sections use.
    pub fn to_u64(self) -> u64 {
        u64::from_le_bytes(self.to_bytes())
    }

    pub fn from_u64(v: u64) -> Self {
        Self::from_bytes(v.to_le_bytes())
    }
}

impl std::fmt::Debug for RawInsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RawInsn {{ code: {:#04x}, dst: {}, src: {}, off: {}, imm: {} }}",
            self.code, self.dst, self.src, self.off, self.imm
        )
    }
}

/// Splits a byte buffer into instruction slots. The length must be a multiple
/// of eight.
pub fn slots_from_bytes(bytes: &[u8]) -> Result<Vec<RawInsn>, crate::DecodeError> {
    if !bytes.len().is_multiple_of(RawInsn::SIZE) {
        return Err(crate::DecodeError::new(
            bytes.len() / RawInsn::SIZE,
            crate::DecodeErrorKind::TruncatedProgram { len: bytes.len() },
        ));
    }
    Ok(bytes
        .chunks_exact(RawInsn::SIZE)
        .map(|c| RawInsn::from_bytes(c.try_into().expect("chunk of 8")))
        .collect())
}

/// Serialises slots back to bytes.
pub fn slots_to_bytes(slots: &[RawInsn]) -> Vec<u8> {
    slots.iter().flat_map(|s| s.to_bytes()).collect()
}
