//! The object's BTF, for naming types and formatting map keys and values.
//!
//! This parses the raw `.BTF` section itself: aya-obj 0.3 parses BTF too, but
//! keeps the type list, the string lookups and the type accessors
//! `pub(crate)`, so its `Btf` cannot be walked from outside the crate.
//!
//! clang leaves `DATASEC` sizes and variable offsets zero (libbpf fills them
//! in at load time from the ELF symbols); [`BtfInfo::from_section`] takes the
//! section sizes and symbol offsets to do the same.

use std::collections::HashMap;

use serde_json::{Map as JsonMap, Value};

const MAX_DEPTH: usize = 32;
/// Values one `format_value` call formats at most.
const MAX_NODES: usize = 1 << 20;

/// One BTF type; ids are positions in [`BtfInfo::types`] (0 is `void`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BtfType {
    Void,
    Int {
        name: String,
        size: u32,
        signed: bool,
        char: bool,
        bool: bool,
        bit_offset: u32,
        bits: u32,
    },
    Ptr {
        target: u32,
    },
    Array {
        elem: u32,
        index: u32,
        len: u32,
    },
    Struct {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    Union {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        name: String,
        size: u32,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    Fwd {
        name: String,
        union: bool,
    },
    Typedef {
        name: String,
        target: u32,
    },
    Volatile {
        target: u32,
    },
    Const {
        target: u32,
    },
    Restrict {
        target: u32,
    },
    Func {
        name: String,
        proto: u32,
    },
    FuncProto {
        ret: u32,
        params: Vec<(String, u32)>,
    },
    Var {
        name: String,
        target: u32,
        linkage: u32,
    },
    DataSec {
        name: String,
        size: u32,
        vars: Vec<DataSecVar>,
    },
    Float {
        name: String,
        size: u32,
    },
    DeclTag {
        name: String,
        target: u32,
        component: i32,
    },
    TypeTag {
        name: String,
        target: u32,
    },
    Enum64 {
        name: String,
        size: u32,
        signed: bool,
        values: Vec<(String, i128)>,
    },
}

/// A struct or union member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    pub bit_offset: u32,
    /// Non-zero for bitfields (encoded with `kind_flag`).
    pub bitfield_size: u32,
}

/// A variable placed in a `DATASEC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSecVar {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// Parsed BTF of an object.
#[derive(Clone, Debug, Default)]
pub struct BtfInfo {
    /// Indexed by type id; entry 0 is [`BtfType::Void`].
    pub types: Vec<BtfType>,
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, String> {
        let b = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| format!("type data truncated at byte {}", self.pos))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn field(bytes: &[u8], at: usize, n: usize) -> Option<&[u8]> {
    bytes.get(at..at.checked_add(n)?)
}

fn le_u128(b: &[u8]) -> u128 {
    b.iter()
        .rev()
        .fold(0u128, |acc, &x| (acc << 8) | u128::from(x))
}

fn sign_extend(v: u128, bits: u32) -> i128 {
    if bits == 0 || bits >= 128 {
        return v as i128;
    }
    let shift = 128 - bits;
    ((v << shift) as i128) >> shift
}

fn int_json(v: u128, bits: u32, signed: bool) -> Value {
    if signed {
        let s = sign_extend(v, bits);
        match i64::try_from(s) {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(s.to_string()),
        }
    } else {
        match u64::try_from(v) {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(v.to_string()),
        }
    }
}

impl BtfInfo {
    /// Parses a little-endian `.BTF` section.
    pub fn parse(data: &[u8]) -> Result<BtfInfo, String> {
        let hdr = |at: usize| -> Result<u32, String> {
            field(data, at, 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| "header truncated".to_owned())
        };
        let magic = field(data, 0, 2).ok_or("header truncated")?;
        if magic != [0x9f, 0xeb] {
            return Err(format!(
                "bad magic {magic:02x?} (only little-endian BTF is read)"
            ));
        }
        let hdr_len = hdr(4)? as usize;
        let (type_off, type_len) = (hdr(8)? as usize, hdr(12)? as usize);
        let (str_off, str_len) = (hdr(16)? as usize, hdr(20)? as usize);
        let section = |off: usize, len: usize, what: &str| {
            hdr_len
                .checked_add(off)
                .and_then(|s| field(data, s, len))
                .ok_or_else(|| format!("{what} section out of bounds"))
        };
        let type_data = section(type_off, type_len, "type")?;
        let strings = section(str_off, str_len, "string")?;
        let string = |off: u32| -> Result<String, String> {
            let rest = strings
                .get(off as usize..)
                .ok_or_else(|| format!("string offset {off} out of bounds"))?;
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        };

        let mut types = vec![BtfType::Void];
        let mut r = Reader {
            data: type_data,
            pos: 0,
        };
        while r.pos < type_data.len() {
            let id = types.len();
            let name_off = r.u32()?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let vlen = info & 0xffff;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let name = string(name_off)?;
            let t = match kind {
                1 => {
                    let enc = r.u32()?;
                    BtfType::Int {
                        name,
                        size: size_or_type,
                        signed: (enc >> 24) & 1 != 0,
                        char: (enc >> 24) & 2 != 0,
                        bool: (enc >> 24) & 4 != 0,
                        bit_offset: (enc >> 16) & 0xff,
                        bits: enc & 0xff,
                    }
                }
                2 => BtfType::Ptr {
                    target: size_or_type,
                },
                3 => BtfType::Array {
                    elem: r.u32()?,
                    index: r.u32()?,
                    len: r.u32()?,
                },
                4 | 5 => {
                    let mut members = Vec::new();
                    for _ in 0..vlen {
                        let mname = string(r.u32()?)?;
                        let type_id = r.u32()?;
                        let off = r.u32()?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (off & 0xff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        members.push(Member {
                            name: mname,
                            type_id,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    if kind == 4 {
                        BtfType::Struct {
                            name,
                            size: size_or_type,
                            members,
                        }
                    } else {
                        BtfType::Union {
                            name,
                            size: size_or_type,
                            members,
                        }
                    }
                }
                6 => {
                    let mut values = Vec::new();
                    for _ in 0..vlen {
                        let vname = string(r.u32()?)?;
                        let raw = r.u32()?;
                        let v = if kind_flag {
                            i64::from(raw as i32)
                        } else {
                            i64::from(raw)
                        };
                        values.push((vname, v));
                    }
                    BtfType::Enum {
                        name,
                        size: size_or_type,
                        signed: kind_flag,
                        values,
                    }
                }
                7 => BtfType::Fwd {
                    name,
                    union: kind_flag,
                },
                8 => BtfType::Typedef {
                    name,
                    target: size_or_type,
                },
                9 => BtfType::Volatile {
                    target: size_or_type,
                },
                10 => BtfType::Const {
                    target: size_or_type,
                },
                11 => BtfType::Restrict {
                    target: size_or_type,
                },
                12 => BtfType::Func {
                    name,
                    proto: size_or_type,
                },
                13 => {
                    let mut params = Vec::new();
                    for _ in 0..vlen {
                        let pname = string(r.u32()?)?;
                        params.push((pname, r.u32()?));
                    }
                    BtfType::FuncProto {
                        ret: size_or_type,
                        params,
                    }
                }
                14 => BtfType::Var {
                    name,
                    target: size_or_type,
                    linkage: r.u32()?,
                },
                15 => {
                    let mut vars = Vec::new();
                    for _ in 0..vlen {
                        vars.push(DataSecVar {
                            type_id: r.u32()?,
                            offset: r.u32()?,
                            size: r.u32()?,
                        });
                    }
                    BtfType::DataSec {
                        name,
                        size: size_or_type,
                        vars,
                    }
                }
                16 => BtfType::Float {
                    name,
                    size: size_or_type,
                },
                17 => BtfType::DeclTag {
                    name,
                    target: size_or_type,
                    component: r.u32()? as i32,
                },
                18 => BtfType::TypeTag {
                    name,
                    target: size_or_type,
                },
                19 => {
                    let mut values = Vec::new();
                    for _ in 0..vlen {
                        let vname = string(r.u32()?)?;
                        let lo = u64::from(r.u32()?);
                        let hi = u64::from(r.u32()?);
                        let raw = (hi << 32) | lo;
                        let v = if kind_flag {
                            i128::from(raw as i64)
                        } else {
                            i128::from(raw)
                        };
                        values.push((vname, v));
                    }
                    BtfType::Enum64 {
                        name,
                        size: size_or_type,
                        signed: kind_flag,
                        values,
                    }
                }
                k => return Err(format!("type #{id} has unknown kind {k}")),
            };
            types.push(t);
        }
        Ok(BtfInfo { types })
    }

    /// Parses `.BTF` and fills in `DATASEC` sizes and variable offsets the
    /// way libbpf does: `section_sizes` by section name, `symbol_offsets` by
    /// (section name, symbol name).
    pub(crate) fn from_section(
        data: &[u8],
        section_sizes: &HashMap<String, u64>,
        symbol_offsets: &HashMap<(String, String), u64>,
    ) -> Result<BtfInfo, String> {
        let mut btf = Self::parse(data)?;
        let var_names: Vec<String> = btf
            .types
            .iter()
            .map(|t| match t {
                BtfType::Var { name, .. } => name.clone(),
                _ => String::new(),
            })
            .collect();
        for t in &mut btf.types {
            let BtfType::DataSec { name, size, vars } = t else {
                continue;
            };
            if *size == 0 {
                if let Some(&s) = section_sizes.get(name.as_str()) {
                    *size = u32::try_from(s).unwrap_or(u32::MAX);
                }
            }
            for v in vars.iter_mut() {
                let Some(var) = var_names.get(v.type_id as usize) else {
                    continue;
                };
                let exact = symbol_offsets.get(&(name.clone(), var.clone()));
                // Function-local statics are `func.var` in the symbol table
                // and `var` in BTF.
                let suffixed = || {
                    symbol_offsets
                        .iter()
                        .find(|((sec, sym), _)| {
                            sec == name
                                && sym
                                    .strip_suffix(var.as_str())
                                    .is_some_and(|p| p.ends_with('.'))
                        })
                        .map(|(_, off)| off)
                };
                if let Some(&off) = exact.or_else(suffixed) {
                    v.offset = u32::try_from(off).unwrap_or(u32::MAX);
                }
            }
        }
        Ok(btf)
    }

    fn get(&self, id: u32) -> Option<&BtfType> {
        self.types.get(id as usize)
    }

    /// The first type with this name (structs, typedefs, datasecs, ...).
    pub fn find(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| Self::name_of(t) == Some(name))
            .map(|i| i as u32)
    }

    fn name_of(t: &BtfType) -> Option<&str> {
        match t {
            BtfType::Int { name, .. }
            | BtfType::Struct { name, .. }
            | BtfType::Union { name, .. }
            | BtfType::Enum { name, .. }
            | BtfType::Enum64 { name, .. }
            | BtfType::Fwd { name, .. }
            | BtfType::Typedef { name, .. }
            | BtfType::Func { name, .. }
            | BtfType::Var { name, .. }
            | BtfType::DataSec { name, .. }
            | BtfType::Float { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Follows typedef, const, volatile, restrict and type tags.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_DEPTH {
            match self.get(id) {
                Some(
                    BtfType::Typedef { target, .. }
                    | BtfType::Const { target }
                    | BtfType::Volatile { target }
                    | BtfType::Restrict { target }
                    | BtfType::TypeTag { target, .. },
                ) => id = *target,
                _ => return id,
            }
        }
        id
    }

    /// Size in bytes of a value of this type.
    pub fn type_size(&self, id: u32) -> Option<u64> {
        self.size_at(id, 0)
    }

    fn size_at(&self, id: u32, depth: usize) -> Option<u64> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.get(self.resolve(id))? {
            BtfType::Int { size, .. }
            | BtfType::Struct { size, .. }
            | BtfType::Union { size, .. }
            | BtfType::Enum { size, .. }
            | BtfType::Enum64 { size, .. }
            | BtfType::DataSec { size, .. }
            | BtfType::Float { size, .. } => Some(u64::from(*size)),
            BtfType::Ptr { .. } => Some(8),
            BtfType::Array { elem, len, .. } => {
                self.size_at(*elem, depth + 1)?.checked_mul(u64::from(*len))
            }
            BtfType::Var { target, .. } => self.size_at(*target, depth + 1),
            _ => None,
        }
    }

    /// A C-like name for a type: `int`, `struct flow`, `u32`, `char[16]`,
    /// `const u64 *`.
    pub fn type_name(&self, type_id: u32) -> String {
        self.name_at(type_id, 0)
    }

    fn name_at(&self, id: u32, depth: usize) -> String {
        if depth > MAX_DEPTH {
            return "...".to_owned();
        }
        let or_anon = |n: &str| {
            if n.is_empty() {
                "<anon>".to_owned()
            } else {
                n.to_owned()
            }
        };
        let Some(t) = self.get(id) else {
            return format!("<invalid type {id}>");
        };
        match t {
            BtfType::Void => "void".to_owned(),
            BtfType::Int { name, .. } | BtfType::Float { name, .. } => name.clone(),
            BtfType::Ptr { target } => format!("{} *", self.name_at(*target, depth + 1)),
            BtfType::Array { elem, len, .. } => {
                format!("{}[{len}]", self.name_at(*elem, depth + 1))
            }
            BtfType::Struct { name, .. } => format!("struct {}", or_anon(name)),
            BtfType::Union { name, .. } => format!("union {}", or_anon(name)),
            BtfType::Enum { name, .. } | BtfType::Enum64 { name, .. } => {
                format!("enum {}", or_anon(name))
            }
            BtfType::Fwd { name, union } => {
                format!("{} {name}", if *union { "union" } else { "struct" })
            }
            BtfType::Typedef { name, .. }
            | BtfType::Func { name, .. }
            | BtfType::Var { name, .. }
            | BtfType::DataSec { name, .. } => name.clone(),
            BtfType::Volatile { target } => {
                format!("volatile {}", self.name_at(*target, depth + 1))
            }
            BtfType::Const { target } => format!("const {}", self.name_at(*target, depth + 1)),
            BtfType::Restrict { target } => {
                format!("{} restrict", self.name_at(*target, depth + 1))
            }
            BtfType::TypeTag { target, .. } | BtfType::DeclTag { target, .. } => {
                self.name_at(*target, depth + 1)
            }
            BtfType::FuncProto { ret, params } => {
                let ps: Vec<String> = params
                    .iter()
                    .map(|(_, t)| self.name_at(*t, depth + 1))
                    .collect();
                format!("{} (*)({})", self.name_at(*ret, depth + 1), ps.join(", "))
            }
        }
    }

    /// Formats `bytes` (little-endian, as the map stores them) as a value of
    /// `type_id`: integers as numbers (wider than 64 bits as decimal
    /// strings), `char` arrays as strings when printable, structs and unions
    /// as objects by member name (anonymous members flattened), arrays as
    /// arrays, enums by name when a value matches, bitfields extracted,
    /// typedef/const/volatile resolved, a `DATASEC` as an object of variable
    /// name → value. Parts that fall outside `bytes` are `null`.
    pub fn format_value(&self, type_id: u32, bytes: &[u8]) -> Value {
        // A bound on the values formatted: nested aggregates in a crafted
        // BTF could otherwise multiply into billions of calls.
        let budget = std::cell::Cell::new(MAX_NODES);
        self.fmt_at(type_id, bytes, 0, &budget)
    }

    fn fmt_at(
        &self,
        id: u32,
        bytes: &[u8],
        depth: usize,
        budget: &std::cell::Cell<usize>,
    ) -> Value {
        if depth > MAX_DEPTH || budget.get() == 0 {
            return Value::Null;
        }
        budget.set(budget.get() - 1);
        let id = self.resolve(id);
        let Some(t) = self.get(id) else {
            return Value::Null;
        };
        match t {
            BtfType::Int {
                size,
                signed,
                bool,
                bit_offset,
                bits,
                ..
            } => {
                let Some(b) = field(bytes, 0, *size as usize).filter(|_| *size <= 16) else {
                    return Value::Null;
                };
                let mut v = le_u128(b) >> bit_offset.min(&127);
                let bits = if *bits == 0 || *bits > 128 {
                    size * 8
                } else {
                    *bits
                };
                if bits < 128 {
                    v &= (1u128 << bits) - 1;
                }
                if *bool {
                    Value::Bool(v != 0)
                } else {
                    int_json(v, bits, *signed)
                }
            }
            BtfType::Ptr { .. } => field(bytes, 0, 8)
                .map(|b| Value::from(le_u128(b) as u64))
                .unwrap_or(Value::Null),
            BtfType::Float { size, .. } => {
                let f = match *size {
                    4 => field(bytes, 0, 4)
                        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
                    8 => field(bytes, 0, 8).map(|b| f64::from_bits(le_u128(b) as u64)),
                    _ => None,
                };
                f.and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
            BtfType::Enum {
                size,
                signed,
                values,
                ..
            } => self.fmt_enum(
                bytes,
                *size,
                *signed,
                values.iter().map(|(n, v)| (n, i128::from(*v))),
            ),
            BtfType::Enum64 {
                size,
                signed,
                values,
                ..
            } => self.fmt_enum(bytes, *size, *signed, values.iter().map(|(n, v)| (n, *v))),
            BtfType::Array { elem, len, .. } => {
                let Some(esize) = self.size_at(*elem, depth + 1) else {
                    return Value::Null;
                };
                if let Some(s) = self.char_string(*elem, esize, *len, bytes) {
                    return Value::String(s);
                }
                let esize = esize as usize;
                // Never more elements than the bytes can start (a corrupt
                // length must not allocate).
                let n = (*len as usize).min(bytes.len().checked_div(esize).map_or(0, |q| q + 1));
                Value::Array(
                    (0..n)
                        .map(|i| match bytes.get(i * esize..) {
                            Some(b) => self.fmt_at(*elem, b, depth + 1, budget),
                            None => Value::Null,
                        })
                        .collect(),
                )
            }
            BtfType::Struct { members, .. } | BtfType::Union { members, .. } => {
                let mut obj = JsonMap::new();
                self.fmt_members(members, bytes, depth, &mut obj, budget);
                Value::Object(obj)
            }
            BtfType::Var { target, .. } => self.fmt_at(*target, bytes, depth + 1, budget),
            BtfType::DataSec { vars, .. } => {
                let mut obj = JsonMap::new();
                for v in vars {
                    let name = match self.get(v.type_id) {
                        Some(BtfType::Var { name, .. }) => name.clone(),
                        _ => continue,
                    };
                    let value = match field(bytes, v.offset as usize, v.size as usize) {
                        Some(b) => self.fmt_at(v.type_id, b, depth + 1, budget),
                        None => Value::Null,
                    };
                    obj.insert(name, value);
                }
                Value::Object(obj)
            }
            _ => Value::Null,
        }
    }

    fn fmt_enum<'a>(
        &self,
        bytes: &[u8],
        size: u32,
        signed: bool,
        mut values: impl Iterator<Item = (&'a String, i128)>,
    ) -> Value {
        let Some(b) = field(bytes, 0, size as usize).filter(|_| size <= 16) else {
            return Value::Null;
        };
        let raw = le_u128(b);
        let v = if signed {
            sign_extend(raw, size * 8)
        } else {
            raw as i128
        };
        match values.find(|(_, x)| *x == v) {
            Some((name, _)) => Value::String(name.clone()),
            None => int_json(raw, size * 8, signed),
        }
    }

    fn fmt_members(
        &self,
        members: &[Member],
        bytes: &[u8],
        depth: usize,
        obj: &mut JsonMap<String, Value>,
        budget: &std::cell::Cell<usize>,
    ) {
        for m in members {
            let value = if m.bitfield_size > 0 || self.is_legacy_bitfield(m) {
                self.fmt_bitfield(m, bytes)
            } else {
                match bytes.get(m.bit_offset as usize / 8..) {
                    Some(b) => self.fmt_at(m.type_id, b, depth + 1, budget),
                    None => Value::Null,
                }
            };
            if m.name.is_empty() {
                // Anonymous struct/union members: their fields belong to us.
                if let Value::Object(inner) = value {
                    obj.extend(inner);
                    continue;
                }
            }
            obj.insert(m.name.clone(), value);
        }
    }

    /// Bitfields without `kind_flag` are ints whose BTF says fewer bits.
    fn is_legacy_bitfield(&self, m: &Member) -> bool {
        match self.get(self.resolve(m.type_id)) {
            Some(BtfType::Int { size, bits, .. }) => {
                *bits != size * 8 || !m.bit_offset.is_multiple_of(8)
            }
            _ => false,
        }
    }

    fn fmt_bitfield(&self, m: &Member, bytes: &[u8]) -> Value {
        let target = self.get(self.resolve(m.type_id));
        let (signed, enum_values, width) = match target {
            Some(BtfType::Int { signed, bits, .. }) => (*signed, None, *bits),
            Some(BtfType::Enum { signed, values, .. }) => (*signed, Some(values), 0),
            _ => (false, None, 0),
        };
        let width = if m.bitfield_size > 0 {
            m.bitfield_size
        } else {
            width
        };
        if width == 0 || width > 64 {
            return Value::Null;
        }
        let first = m.bit_offset as usize / 8;
        let last = (m.bit_offset as usize + width as usize).div_ceil(8);
        let Some(b) = bytes.get(first..last).filter(|b| b.len() <= 16) else {
            return Value::Null;
        };
        let v = (le_u128(b) >> (m.bit_offset % 8)) & ((1u128 << width) - 1);
        if let Some(values) = enum_values {
            let sv = if signed {
                i64::try_from(sign_extend(v, width)).unwrap_or(0)
            } else {
                v as i64
            };
            if let Some((name, _)) = values.iter().find(|(_, x)| *x == sv) {
                return Value::String(name.clone());
            }
        }
        int_json(v, width, signed)
    }

    /// A `char[N]` whose contents are printable text followed by NULs.
    fn char_string(&self, elem: u32, esize: u64, len: u32, bytes: &[u8]) -> Option<String> {
        // Only plain `char`: `unsigned char` (`__u8`) arrays are usually
        // bytes (addresses, hashes), not text.
        let is_char =
            matches!(self.get(self.resolve(elem))?, BtfType::Int { name, .. } if name == "char");
        if !is_char || esize != 1 {
            return None;
        }
        let b = field(bytes, 0, len as usize)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let (text, tail) = b.split_at(end);
        let printable = text
            .iter()
            .all(|&c| (0x20..0x7f).contains(&c) || c == b'\t' || c == b'\n');
        (printable && tail.iter().all(|&c| c == 0))
            .then(|| String::from_utf8_lossy(text).into_owned())
    }
}
