//! Short encodings of the instructions the JIT emits most: loads, stores,
//! `lea` and `mov r32, imm32`; and the multi-byte NOPs that pad code to
//! an alignment.
//!
//! dynasm encodes a memory operand whose base register is chosen at run
//! time with a SIB byte and a 32-bit displacement, and gives every
//! run-time register a REX prefix: `movzx edx, byte [rdi + 1]` takes 9
//! bytes instead of 4. On large programs code size is instruction fetch,
//! so these few forms are encoded here, by the rules of the Intel SDM
//! (vol. 2, 2.1-2.2): no SIB unless there is an index or the base is
//! rsp/r12, no displacement unless it is non-zero or the base is rbp/r13,
//! 8 bits when it fits, REX only when a bit of it is needed.

/// A memory operand: `[base + index * 2^scale + disp]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mem {
    pub base: u8,
    pub index: Option<(u8, u8)>,
    pub disp: i32,
}

impl Mem {
    pub fn at(base: u8, disp: i32) -> Mem {
        Mem {
            base,
            index: None,
            disp,
        }
    }

    pub fn indexed(base: u8, index: u8, scale: u8, disp: i32) -> Mem {
        Mem {
            base,
            index: Some((index, scale)),
            disp,
        }
    }
}

/// One instruction's bytes (the longest here is 13).
pub(super) struct Bytes {
    buf: [u8; 16],
    len: usize,
}

impl Bytes {
    fn new() -> Bytes {
        Bytes {
            buf: [0; 16],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn extend(&mut self, bs: &[u8]) {
        for &b in bs {
            self.push(b);
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Operand size of an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Width {
    B,
    H,
    W,
    Dw,
}

/// `[66] [REX] opcode ModRM [SIB] [disp]`, `reg` being a register or an
/// opcode extension (/digit). `byte_reg`: `reg` names a byte register,
/// where sil/dil/bpl/spl need a REX prefix to be told from dh/bh/ch/ah.
fn encode(op16: bool, w: bool, byte_reg: bool, opcode: &[u8], reg: u8, m: Mem) -> Bytes {
    let mut out = Bytes::new();
    if op16 {
        out.push(0x66);
    }
    let (index, scale) = m.index.unwrap_or((4, 0));
    debug_assert!(m.index.is_none() || index != 4, "rsp is no index");
    let rex =
        0x40 | (w as u8) << 3 | (reg >> 3 & 1) << 2 | (index >> 3 & 1) << 1 | (m.base >> 3 & 1);
    if rex != 0x40 || (byte_reg && (4..8).contains(&reg)) {
        out.push(rex);
    }
    out.extend(opcode);
    let sib = m.index.is_some() || m.base & 7 == 4;
    let mode = if m.disp == 0 && m.base & 7 != 5 {
        0
    } else if m.disp as i8 as i32 == m.disp {
        1
    } else {
        2
    };
    let rm = if sib { 4 } else { m.base & 7 };
    out.push(mode << 6 | (reg & 7) << 3 | rm);
    if sib {
        out.push(scale << 6 | (index & 7) << 3 | (m.base & 7));
    }
    match mode {
        1 => out.push(m.disp as i8 as u8),
        2 => out.extend(&m.disp.to_le_bytes()),
        _ => {}
    }
    out
}

/// A zero-extending load of `width` into `d` (`movzx`, or `mov` for 32
/// and 64 bits).
pub(super) fn load(d: u8, width: Width, m: Mem) -> Bytes {
    match width {
        Width::B => encode(false, false, false, &[0x0f, 0xb6], d, m),
        Width::H => encode(false, false, false, &[0x0f, 0xb7], d, m),
        Width::W => encode(false, false, false, &[0x8b], d, m),
        Width::Dw => encode(false, true, false, &[0x8b], d, m),
    }
}

/// A sign-extending load into the 64 bits of `d` (8, 16 or 32 bits).
pub(super) fn load_signed(d: u8, width: Width, m: Mem) -> Bytes {
    match width {
        Width::B => encode(false, true, false, &[0x0f, 0xbe], d, m),
        Width::H => encode(false, true, false, &[0x0f, 0xbf], d, m),
        Width::W => encode(false, true, false, &[0x63], d, m),
        Width::Dw => load(d, Width::Dw, m),
    }
}

/// A store of the low `width` of register `s`.
pub(super) fn store(s: u8, width: Width, m: Mem) -> Bytes {
    match width {
        Width::B => encode(false, false, true, &[0x88], s, m),
        Width::H => encode(true, false, false, &[0x89], s, m),
        Width::W => encode(false, false, false, &[0x89], s, m),
        Width::Dw => encode(false, true, false, &[0x89], s, m),
    }
}

/// A store of an immediate (64 bits: sign-extended from 32).
pub(super) fn store_imm(imm: i32, width: Width, m: Mem) -> Bytes {
    let mut out = match width {
        Width::B => encode(false, false, false, &[0xc6], 0, m),
        Width::H => encode(true, false, false, &[0xc7], 0, m),
        Width::W => encode(false, false, false, &[0xc7], 0, m),
        Width::Dw => encode(false, true, false, &[0xc7], 0, m),
    };
    match width {
        Width::B => out.push(imm as u8),
        Width::H => out.extend(&(imm as u16).to_le_bytes()),
        _ => out.extend(&imm.to_le_bytes()),
    }
    out
}

/// `lea d, m` (64 bits).
pub(super) fn lea(d: u8, m: Mem) -> Bytes {
    encode(false, true, false, &[0x8d], d, m)
}

/// `mov d32, imm32` (zero-extends to 64 bits): `B8+r id`, REX.B only for
/// r8-r15.
pub(super) fn mov_imm32(d: u8, imm: u32) -> Bytes {
    let mut out = Bytes::new();
    if d >= 8 {
        out.push(0x41);
    }
    out.push(0xb8 | (d & 7));
    out.extend(&imm.to_le_bytes());
    out
}

/// The longest single NOP [`nop`] gives.
pub(super) const NOP_MAX: usize = 11;

/// A single NOP instruction of `len` bytes (1 to [`NOP_MAX`]): the forms
/// the Intel SDM recommends (vol. 2B, NOP), `nop word [rax + rax + 0]`
/// with extra 66 / 2E prefixes past 9 bytes, as assemblers pad.
pub(super) fn nop(len: usize) -> &'static [u8] {
    const NOPS: [&[u8]; NOP_MAX] = [
        &[0x90],
        &[0x66, 0x90],
        &[0x0f, 0x1f, 0x00],
        &[0x0f, 0x1f, 0x40, 0x00],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[
            0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00,
        ],
    ];
    NOPS[len - 1]
}

#[cfg(test)]
mod tests {
    //! Every encoding decoded back by an independent decoder (iced-x86):
    //! same instruction, operands, and length.
    use super::*;
    use iced_x86::{Code, Decoder, DecoderOptions, Instruction, MemorySize, Register};

    const GPR64: [Register; 16] = [
        Register::RAX,
        Register::RCX,
        Register::RDX,
        Register::RBX,
        Register::RSP,
        Register::RBP,
        Register::RSI,
        Register::RDI,
        Register::R8,
        Register::R9,
        Register::R10,
        Register::R11,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ];

    const GPR8: [Register; 16] = [
        Register::AL,
        Register::CL,
        Register::DL,
        Register::BL,
        Register::SPL,
        Register::BPL,
        Register::SIL,
        Register::DIL,
        Register::R8L,
        Register::R9L,
        Register::R10L,
        Register::R11L,
        Register::R12L,
        Register::R13L,
        Register::R14L,
        Register::R15L,
    ];

    const GPR16: [Register; 16] = [
        Register::AX,
        Register::CX,
        Register::DX,
        Register::BX,
        Register::SP,
        Register::BP,
        Register::SI,
        Register::DI,
        Register::R8W,
        Register::R9W,
        Register::R10W,
        Register::R11W,
        Register::R12W,
        Register::R13W,
        Register::R14W,
        Register::R15W,
    ];

    const GPR32: [Register; 16] = [
        Register::EAX,
        Register::ECX,
        Register::EDX,
        Register::EBX,
        Register::ESP,
        Register::EBP,
        Register::ESI,
        Register::EDI,
        Register::R8D,
        Register::R9D,
        Register::R10D,
        Register::R11D,
        Register::R12D,
        Register::R13D,
        Register::R14D,
        Register::R15D,
    ];

    /// The register `n` of a width.
    fn gpr(width: Width, n: u8) -> Register {
        match width {
            Width::B => GPR8[n as usize],
            Width::H => GPR16[n as usize],
            Width::W => GPR32[n as usize],
            Width::Dw => GPR64[n as usize],
        }
    }

    fn decode(b: &Bytes) -> Instruction {
        let mut d = Decoder::new(64, b.as_slice(), DecoderOptions::NONE);
        let i = d.decode();
        assert_ne!(i.code(), Code::INVALID, "{:02x?}", b.as_slice());
        assert_eq!(
            i.len(),
            b.as_slice().len(),
            "{:02x?}: trailing bytes",
            b.as_slice()
        );
        i
    }

    /// Bases (any register), indexes (any but rsp), scales, and
    /// displacements of every size class.
    fn operands() -> Vec<Mem> {
        let mut v = Vec::new();
        for base in 0..16u8 {
            for disp in [0, 1, -1, 127, -128, 128, -129, 0x1234_5678, i32::MIN] {
                v.push(Mem::at(base, disp));
                for index in (0..16u8).filter(|&i| i != 4) {
                    for scale in 0..4 {
                        if disp == 0 || disp == -129 || scale == 2 {
                            v.push(Mem::indexed(base, index, scale, disp));
                        }
                    }
                }
            }
        }
        v
    }

    fn check_mem(i: &Instruction, m: Mem) {
        assert_eq!(i.memory_base(), GPR64[m.base as usize], "{i:?}");
        match m.index {
            Some((index, scale)) => {
                assert_eq!(i.memory_index(), GPR64[index as usize]);
                assert_eq!(i.memory_index_scale(), 1 << scale);
            }
            None => assert_eq!(i.memory_index(), Register::None),
        }
        assert_eq!(i.memory_displacement64() as i64, m.disp as i64);
    }

    fn minimal_len(m: Mem, prefix_opcode: usize, rex: bool) -> usize {
        let sib = m.index.is_some() || m.base & 7 == 4;
        let disp = if m.disp == 0 && m.base & 7 != 5 {
            0
        } else if m.disp as i8 as i32 == m.disp {
            1
        } else {
            4
        };
        prefix_opcode + rex as usize + 1 + sib as usize + disp
    }

    #[test]
    fn loads_decode_to_themselves() {
        let widths = [
            (Width::B, MemorySize::UInt8, Code::Movzx_r32_rm8),
            (Width::H, MemorySize::UInt16, Code::Movzx_r32_rm16),
            (Width::W, MemorySize::UInt32, Code::Mov_r32_rm32),
            (Width::Dw, MemorySize::UInt64, Code::Mov_r64_rm64),
        ];
        for m in operands() {
            for d in 0..16u8 {
                for (w, size, code) in widths {
                    let i = decode(&load(d, w, m));
                    assert_eq!(i.code(), code);
                    assert_eq!(i.memory_size(), size);
                    let dw = if w == Width::Dw { Width::Dw } else { Width::W };
                    assert_eq!(i.op0_register(), gpr(dw, d));
                    check_mem(&i, m);
                }
                let signed = [
                    (Width::B, Code::Movsx_r64_rm8),
                    (Width::H, Code::Movsx_r64_rm16),
                    (Width::W, Code::Movsxd_r64_rm32),
                ];
                for (w, code) in signed {
                    let i = decode(&load_signed(d, w, m));
                    assert_eq!(i.code(), code);
                    assert_eq!(i.op0_register(), GPR64[d as usize]);
                    check_mem(&i, m);
                }
            }
        }
    }

    #[test]
    fn stores_decode_to_themselves() {
        for m in operands() {
            for s in 0..16u8 {
                let cases = [
                    (Width::B, Code::Mov_rm8_r8),
                    (Width::H, Code::Mov_rm16_r16),
                    (Width::W, Code::Mov_rm32_r32),
                    (Width::Dw, Code::Mov_rm64_r64),
                ];
                for (w, code) in cases {
                    let i = decode(&store(s, w, m));
                    assert_eq!(i.code(), code);
                    // A byte store of sil/dil/bpl/spl, never of ah..bh.
                    assert_eq!(i.op1_register(), gpr(w, s));
                    check_mem(&i, m);
                }
            }
            for imm in [0, 5, -1, 0x7fff_ffff, i32::MIN] {
                let cases = [
                    (Width::B, Code::Mov_rm8_imm8, imm as u8 as u64),
                    (Width::H, Code::Mov_rm16_imm16, imm as u16 as u64),
                    (Width::W, Code::Mov_rm32_imm32, imm as u32 as u64),
                    (Width::Dw, Code::Mov_rm64_imm32, imm as i64 as u64),
                ];
                for (w, code, value) in cases {
                    let i = decode(&store_imm(imm, w, m));
                    assert_eq!(i.code(), code);
                    assert_eq!(i.immediate(1), value);
                    check_mem(&i, m);
                }
            }
        }
    }

    #[test]
    fn lea_and_mov_imm32_decode_to_themselves() {
        for m in operands() {
            for d in 0..16u8 {
                let i = decode(&lea(d, m));
                assert_eq!(i.code(), Code::Lea_r64_m);
                assert_eq!(i.op0_register(), GPR64[d as usize]);
                check_mem(&i, m);
            }
        }
        for d in 0..16u8 {
            for imm in [0, 1, 0x8000_0000, u32::MAX] {
                let i = decode(&mov_imm32(d, imm));
                assert_eq!(i.code(), Code::Mov_r32_imm32);
                assert_eq!(i.op0_register(), gpr(Width::W, d));
                assert_eq!(i.immediate(1), imm as u64);
                assert_eq!(i.len(), 5 + (d >= 8) as usize);
            }
        }
    }

    #[test]
    fn encodings_are_the_shortest() {
        for m in operands() {
            for r in 0..16u8 {
                let rex = r >= 8 || m.base >= 8 || m.index.is_some_and(|(i, _)| i >= 8);
                assert_eq!(
                    load(r, Width::B, m).as_slice().len(),
                    minimal_len(m, 2, rex)
                );
                assert_eq!(
                    load(r, Width::W, m).as_slice().len(),
                    minimal_len(m, 1, rex)
                );
                assert_eq!(
                    load(r, Width::Dw, m).as_slice().len(),
                    minimal_len(m, 1, true)
                );
                let byte_rex = rex || (4..8).contains(&r);
                assert_eq!(
                    store(r, Width::B, m).as_slice().len(),
                    minimal_len(m, 1, byte_rex)
                );
                assert_eq!(
                    store(r, Width::H, m).as_slice().len(),
                    minimal_len(m, 2, rex)
                );
            }
        }
        // The case that prompted this module.
        assert_eq!(
            load(2, Width::B, Mem::at(7, 1)).as_slice(),
            [0x0f, 0xb6, 0x57, 0x01]
        );
    }

    /// Every NOP is one instruction of its length, and a NOP.
    #[test]
    fn nops_are_single_nops_of_their_length() {
        for len in 1..=NOP_MAX {
            let bytes = nop(len);
            assert_eq!(bytes.len(), len);
            let mut d = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
            let i = d.decode();
            assert_eq!(i.len(), len, "{len}-byte nop decodes as {:?}", i.code());
            assert!(
                matches!(i.mnemonic(), iced_x86::Mnemonic::Nop),
                "{len} bytes: {:?}",
                i.mnemonic()
            );
        }
    }
}
