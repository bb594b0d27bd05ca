//! The opcode tables. Every fact about an operation (its encoding, its
//! mnemonic in each text dialect) is written once here; decoding, encoding,
//! validation, the assembler and the disassembler all read these tables.

/// Instruction classes (the low three bits of the opcode).
pub mod class {
    pub const LD: u8 = 0x00;
    pub const LDX: u8 = 0x01;
    pub const ST: u8 = 0x02;
    pub const STX: u8 = 0x03;
    pub const ALU: u8 = 0x04;
    pub const JMP: u8 = 0x05;
    pub const JMP32: u8 = 0x06;
    pub const ALU64: u8 = 0x07;
}

/// Source-operand bit of ALU and JMP opcodes.
pub const SRC_X: u8 = 0x08;

/// Load/store modes (the high three bits of LD/LDX/ST/STX opcodes).
pub mod mode {
    pub const IMM: u8 = 0x00;
    pub const ABS: u8 = 0x20;
    pub const IND: u8 = 0x40;
    pub const MEM: u8 = 0x60;
    pub const MEMSX: u8 = 0x80;
    pub const ATOMIC: u8 = 0xc0;
}

pub mod op {
    pub const NEG: u8 = 0x80;
    pub const END: u8 = 0xd0;
    pub const JA: u8 = 0x00;
    pub const CALL: u8 = 0x80;
    pub const EXIT: u8 = 0x90;
}

macro_rules! table_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $variant:ident = ($($field:expr),* $(,)?) ),* $(,)? }
        fields ( $($fname:ident : $fty:ty),* $(,)? )
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            table_enum!(@getters $name [$($variant = ($($field),*)),*] [$($fname : $fty),*] []);
        }
    };
    (@getters $name:ident [$($variant:ident = ($($field:expr),*)),*] [] [$($done:tt)*]) => {};
    (@getters $name:ident [$($variant:ident = ($first:expr $(, $rest:expr)*)),*]
        [$fname:ident : $fty:ty $(, $rname:ident : $rty:ty)*] [$($done:tt)*]) => {
        pub const fn $fname(self) -> $fty {
            match self { $($name::$variant => $first),* }
        }
        table_enum!(@getters $name [$($variant = ($($rest),*)),*] [$($rname : $rty),*] []);
    };
}

table_enum! {
    /// Binary ALU operations. `code` is the operation nibble, `off` the value the
    /// offset field must hold (cpu v4 uses it to select signed division and
    /// sign-extending moves).
    AluOp {
        Add = (0x00, 0, "add", "+=", true),
        Sub = (0x10, 0, "sub", "-=", true),
        Mul = (0x20, 0, "mul", "*=", true),
        Div = (0x30, 0, "div", "/=", true),
        SDiv = (0x30, 1, "sdiv", "s/=", true),
        Or = (0x40, 0, "or", "|=", true),
        And = (0x50, 0, "and", "&=", true),
        Lsh = (0x60, 0, "lsh", "<<=", true),
        Rsh = (0x70, 0, "rsh", ">>=", true),
        Mod = (0x90, 0, "mod", "%=", true),
        SMod = (0x90, 1, "smod", "s%=", true),
        Xor = (0xa0, 0, "xor", "^=", true),
        Mov = (0xb0, 0, "mov", "=", true),
        MovSx8 = (0xb0, 8, "movsx8", "= (s8)", false),
        MovSx16 = (0xb0, 16, "movsx16", "= (s16)", false),
        MovSx32 = (0xb0, 32, "movsx32", "= (s32)", false),
        Arsh = (0xc0, 0, "arsh", "s>>=", true),
    }
    fields (code: u8, off: i16, mnemonic: &'static str, llvm: &'static str, takes_imm: bool)
}

impl AluOp {
    pub fn from_code(code: u8, off: i16) -> Option<AluOp> {
        AluOp::ALL
            .iter()
            .copied()
            .find(|o| o.code() == code && o.off() == off)
    }

    /// The sign-extending moves exist in ALU32 only from 8 and 16 bits.
    pub const fn valid_in_alu32(self) -> bool {
        !matches!(self, AluOp::MovSx32)
    }
}

table_enum! {
    /// Conditions of conditional jumps.
    JmpCond {
        Eq = (0x10, "jeq", "=="),
        Gt = (0x20, "jgt", ">"),
        Ge = (0x30, "jge", ">="),
        Set = (0x40, "jset", "&"),
        Ne = (0x50, "jne", "!="),
        SGt = (0x60, "jsgt", "s>"),
        SGe = (0x70, "jsge", "s>="),
        Lt = (0xa0, "jlt", "<"),
        Le = (0xb0, "jle", "<="),
        SLt = (0xc0, "jslt", "s<"),
        SLe = (0xd0, "jsle", "s<="),
    }
    fields (code: u8, mnemonic: &'static str, llvm: &'static str)
}

impl JmpCond {
    pub fn from_code(code: u8) -> Option<JmpCond> {
        JmpCond::ALL.iter().copied().find(|c| c.code() == code)
    }
}

table_enum! {
    /// Access sizes of loads, stores and atomics.
    Size {
        W = (0x00, 4, "w", "u32", "s32"),
        H = (0x08, 2, "h", "u16", "s16"),
        B = (0x10, 1, "b", "u8", "s8"),
        DW = (0x18, 8, "dw", "u64", "s64"),
    }
    fields (code: u8, bytes: usize, suffix: &'static str, llvm: &'static str, llvm_signed: &'static str)
}

impl Size {
    pub fn from_code(code: u8) -> Size {
        match code & 0x18 {
            0x00 => Size::W,
            0x08 => Size::H,
            0x10 => Size::B,
            _ => Size::DW,
        }
    }
    pub fn from_bytes(bytes: usize) -> Option<Size> {
        Size::ALL.iter().copied().find(|s| s.bytes() == bytes)
    }
}

table_enum! {
    /// Atomic operations (the immediate of a BPF_ATOMIC store). `llvm` is the
    /// operator of the non-fetching form, or the function name of the fetching
    /// and special forms in the LLVM dialect.
    AtomicOp {
        Add = (0x00, "add", "+=", "atomic_fetch_add"),
        Or = (0x40, "or", "|=", "atomic_fetch_or"),
        And = (0x50, "and", "&=", "atomic_fetch_and"),
        Xor = (0xa0, "xor", "^=", "atomic_fetch_xor"),
        FetchAdd = (0x01, "fetch add", "", "atomic_fetch_add"),
        FetchOr = (0x41, "fetch or", "", "atomic_fetch_or"),
        FetchAnd = (0x51, "fetch and", "", "atomic_fetch_and"),
        FetchXor = (0xa1, "fetch xor", "", "atomic_fetch_xor"),
        Xchg = (0xe1, "xchg", "", "xchg"),
        CmpXchg = (0xf1, "cmpxchg", "", "cmpxchg"),
        LoadAcquire = (0x100, "load_acquire", "", "load_acquire"),
        StoreRelease = (0x110, "store_release", "", "store_release"),
    }
    fields (imm: i32, mnemonic: &'static str, llvm: &'static str, llvm_fn: &'static str)
}

impl AtomicOp {
    pub fn from_imm(imm: i32) -> Option<AtomicOp> {
        AtomicOp::ALL.iter().copied().find(|o| o.imm() == imm)
    }
    /// Read-modify-write operations exist for 32 and 64 bits; load-acquire and
    /// store-release for every size.
    pub const fn valid_size(self, size: Size) -> bool {
        match self {
            AtomicOp::LoadAcquire | AtomicOp::StoreRelease => true,
            _ => matches!(size, Size::W | Size::DW),
        }
    }
    /// Whether the old memory value is written back into a register.
    pub const fn fetches(self) -> bool {
        self.imm() & 1 == 1
    }
}

table_enum! {
    /// The `src` field of a 64-bit immediate load: how the loader interprets it.
    Pseudo {
        Imm64 = (0, "", ""),
        MapFd = (1, "map_fd", "map_fd"),
        MapValue = (2, "map_value", "map_value"),
        BtfId = (3, "btf_id", "btf_id"),
        Func = (4, "func", "func"),
        MapIdx = (5, "map_idx", "map_idx"),
        MapIdxValue = (6, "map_idx_value", "map_idx_value"),
    }
    fields (src: u8, mnemonic: &'static str, llvm: &'static str)
}

impl Pseudo {
    pub fn from_src(src: u8) -> Option<Pseudo> {
        Pseudo::ALL.iter().copied().find(|p| p.src() == src)
    }
}

table_enum! {
    /// What the immediate of a CALL names, by its `src` field.
    CallKind {
        Helper = (0, "helper"),
        Local = (1, "local"),
        Kfunc = (2, "runtime"),
    }
    fields (src: u8, mnemonic: &'static str)
}

impl CallKind {
    pub fn from_src(src: u8) -> Option<CallKind> {
        CallKind::ALL.iter().copied().find(|k| k.src() == src)
    }
}
