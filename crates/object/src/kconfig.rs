//! libbpf's `__kconfig` externs (`extern int LINUX_KERNEL_VERSION __kconfig;`,
//! `extern bool CONFIG_X __kconfig __weak;`, and the `LINUX_HAS_BPF_COOKIE`
//! that `<bpf/usdt.bpf.h>` reads).
//!
//! clang leaves them undefined symbols listed in a `.kconfig` `DATASEC` of
//! the object's BTF. libbpf puts their values in a read-only, frozen array
//! map and points each LDDW at its value. aya-obj 0.3 skips relocations to
//! undefined symbols (the LDDW stays a plain 0), so [`resolve_kconfig`] does
//! libbpf's work before aya-obj sees the object, in a private copy: a new
//! section `.rodata.kconfig` holds the values (aya-obj makes every
//! `.rodata*` section a read-only, frozen array map, as libbpf's `.kconfig`
//! map is), the extern symbols are defined in it, and the `DATASEC` is
//! renamed to match, sized, and its variables laid out and made
//! `GLOBAL_ALLOCATED` (the kernel refuses extern linkage in BTF). The
//! relocations then resolve as for any global variable.
//!
//! Values are libbpf's: from a kernel config line (`y`, `n`, `m`, numbers,
//! quoted strings) into the extern's type (bool, libbpf's tristate enum,
//! char, integers of 1 to 8 bytes, char arrays). A weak extern with no value
//! is zero; a strong one is an error naming it. Nothing here reads the
//! running system: the caller looks values up.

use std::borrow::Cow;

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use crate::btf::{BtfInfo, BtfType};
use crate::ObjectError;

/// The section (and map) the values live in.
pub const KCONFIG_SECTION: &str = ".rodata.kconfig";

/// The C type of a kconfig extern, as libbpf classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KconfigKind {
    /// `bool`: `y` is 1, `n` 0.
    Bool,
    /// `enum libbpf_tristate`: `n` 0, `y` 1, `m` 2.
    Tristate,
    /// `char`: the letter itself (`y`, `n`, `m`) or a number.
    Char,
    /// An integer of 1, 2, 4 or 8 bytes.
    Int { signed: bool },
    /// `char[N]`: a quoted string, NUL-terminated, cut to fit.
    CharArray,
}

/// One `__kconfig` extern the object declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KconfigExtern {
    pub name: String,
    pub kind: KconfigKind,
    /// Bytes.
    pub size: u32,
    /// Declared `__weak`: missing means zero.
    pub weak: bool,
}

/// Where [`resolve_kconfig`] takes values from.
pub enum KconfigValues<'a> {
    /// Every extern is zero (no kernel to ask: the VM, inspection).
    Zeros,
    /// A value as written in a kernel `.config` (`y`, `m`, `250`, `"str"`),
    /// by name; `None` when the kernel has no such option.
    Lookup(&'a dyn Fn(&str) -> Option<String>),
}

fn kerr(name: &str, message: impl Into<String>) -> ObjectError {
    ObjectError::Kconfig {
        name: name.to_owned(),
        message: message.into(),
    }
}

fn elf_err(message: impl Into<String>) -> ObjectError {
    ObjectError::Elf {
        message: message.into(),
    }
}

/// Where things are in the file, for the rewrite.
struct Found {
    externs: Vec<(KconfigExtern, usize)>, // (extern, ELF symbol index)
    /// Type id of the `.kconfig` DATASEC and of each of its VARs, in order.
    datasec: u32,
    vars: Vec<u32>,
    symtab_range: (usize, usize),
}

/// The `__kconfig` externs of an object (empty when it has none).
pub fn kconfig_externs(bytes: &[u8]) -> Result<Vec<KconfigExtern>, ObjectError> {
    Ok(find(bytes)?
        .map(|f| f.externs.into_iter().map(|(e, _)| e).collect())
        .unwrap_or_default())
}

fn find(bytes: &[u8]) -> Result<Option<Found>, ObjectError> {
    let Ok(file) = object::File::parse(bytes) else {
        // Not ours to report: the parser proper says what is wrong.
        return Ok(None);
    };
    let undefined: Vec<(String, usize, bool)> = file
        .symbols()
        .filter(|s| s.is_undefined() && s.kind() != object::SymbolKind::Section)
        .filter_map(|s| Some((s.name().ok()?.to_owned(), s.index().0, s.is_weak())))
        .filter(|(n, _, _)| !n.is_empty())
        .collect();
    if undefined.is_empty() {
        return Ok(None);
    }
    let Some(btf_sec) = file.section_by_name(".BTF") else {
        return Ok(None);
    };
    let btf_data = btf_sec
        .data()
        .map_err(|e| elf_err(format!("contents of `.BTF`: {e}")))?;
    let btf = BtfInfo::parse(btf_data).map_err(|message| ObjectError::Btf { message })?;
    let Some((datasec, entries)) = btf.types.iter().enumerate().find_map(|(i, t)| match t {
        BtfType::DataSec { name, vars, .. } if name == ".kconfig" => Some((i as u32, vars)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let mut externs = Vec::new();
    let mut vars = Vec::new();
    for v in entries {
        let Some(BtfType::Var { name, target, .. }) = btf.types.get(v.type_id as usize) else {
            return Err(ObjectError::Btf {
                message: format!("`.kconfig` entry {} is not a variable", v.type_id),
            });
        };
        let Some((_, sym, weak)) = undefined.iter().find(|(n, _, _)| n == name) else {
            return Err(kerr(
                name,
                "listed in the `.kconfig` BTF section but not an undefined symbol",
            ));
        };
        let (kind, size) = classify(&btf, *target).ok_or_else(|| {
            kerr(
                name,
                format!(
                    "type `{}` is not one libbpf reads kconfig values into (bool, tristate, char, integer, char array)",
                    btf.type_name(*target)
                ),
            )
        })?;
        externs.push((
            KconfigExtern {
                name: name.clone(),
                kind,
                size,
                weak: *weak,
            },
            *sym,
        ));
        vars.push(v.type_id);
    }
    let symtab = file
        .section_by_name(".symtab")
        .ok_or_else(|| elf_err("no `.symtab`"))?;
    let range = |s: &object::Section<'_, '_>, what: &str| -> Result<(usize, usize), ObjectError> {
        let (off, len) = s
            .file_range()
            .ok_or_else(|| elf_err(format!("`{what}` has no contents in the file")))?;
        Ok((off as usize, len as usize))
    };
    Ok(Some(Found {
        externs,
        datasec,
        vars,
        symtab_range: range(&symtab, ".symtab")?,
    }))
}

/// libbpf's kconfig types, by the BTF type behind modifiers and typedefs.
fn classify(btf: &BtfInfo, id: u32) -> Option<(KconfigKind, u32)> {
    let mut id = id;
    for _ in 0..32 {
        match btf.types.get(id as usize)? {
            BtfType::Typedef { target, .. }
            | BtfType::Const { target }
            | BtfType::Volatile { target }
            | BtfType::Restrict { target }
            | BtfType::TypeTag { target, .. } => id = *target,
            BtfType::Int {
                size,
                signed,
                char,
                bool,
                ..
            } => {
                return match (size, bool, char) {
                    (1, true, _) => Some((KconfigKind::Bool, 1)),
                    (1, _, true) => Some((KconfigKind::Char, 1)),
                    (1 | 2 | 4 | 8, _, _) => Some((KconfigKind::Int { signed: *signed }, *size)),
                    _ => None,
                }
            }
            BtfType::Enum { name, size, .. }
                if name == "libbpf_tristate" && matches!(size, 1 | 2 | 4 | 8) =>
            {
                return Some((KconfigKind::Tristate, *size))
            }
            BtfType::Enum { size, signed, .. } | BtfType::Enum64 { size, signed, .. }
                if matches!(size, 1 | 2 | 4 | 8) =>
            {
                return Some((KconfigKind::Int { signed: *signed }, *size))
            }
            BtfType::Array { elem, len, .. } => {
                let (kind, _) = classify(btf, *elem)?;
                return matches!(kind, KconfigKind::Char | KconfigKind::Int { .. })
                    .then_some(())
                    .filter(|_| btf.type_size(*elem) == Some(1) && *len > 0)
                    .map(|_| (KconfigKind::CharArray, *len));
            }
            _ => return None,
        }
    }
    None
}

/// A value as a kernel `.config` writes it, in the extern's type and size.
pub fn encode_kconfig_value(ext: &KconfigExtern, raw: &str) -> Result<Vec<u8>, ObjectError> {
    let size = ext.size as usize;
    let bad = |why: &str| kerr(&ext.name, format!("value {raw:?}: {why}"));
    if size == 0 {
        return Err(bad("the extern has no bytes to hold it"));
    }
    let mut out = vec![0u8; size];
    match raw {
        "y" | "n" | "m" => {
            let c = raw.as_bytes()[0];
            out[0] = match (ext.kind, c) {
                (KconfigKind::Bool, b'm') => {
                    return Err(bad("a module (m) value for a bool extern"))
                }
                (KconfigKind::Bool, _) => u8::from(c == b'y'),
                (KconfigKind::Tristate, b'y') => 1,
                (KconfigKind::Tristate, b'm') => 2,
                (KconfigKind::Tristate, _) => 0,
                (KconfigKind::Char, _) => c,
                _ => return Err(bad("a y/n/m value needs a bool, tristate or char extern")),
            };
            Ok(out)
        }
        s if s.starts_with('"') => {
            let inner = s
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .ok_or_else(|| bad("unterminated string"))?;
            if ext.kind != KconfigKind::CharArray {
                return Err(bad("a string needs a char array extern"));
            }
            let take = inner.len().min(size.saturating_sub(1));
            out[..take].copy_from_slice(&inner.as_bytes()[..take]);
            Ok(out)
        }
        s => {
            let (neg, digits) = match s.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, s),
            };
            let magnitude = match digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16),
                None => digits.parse::<u64>(),
            }
            .map_err(|_| bad("not y, n, m, a number or a quoted string"))?;
            let fits = match ext.kind {
                KconfigKind::Bool => !neg && magnitude <= 1,
                KconfigKind::Int { .. } | KconfigKind::Char => {
                    let bits = (size * 8) as u32;
                    if neg {
                        bits == 64 && magnitude <= 1 << 63 || magnitude <= 1 << (bits - 1)
                    } else {
                        bits == 64 || magnitude < 1 << bits
                    }
                }
                _ => false,
            };
            if !fits {
                return Err(bad(&format!(
                    "does not fit the extern's {}-byte {:?} type",
                    size, ext.kind
                )));
            }
            let v = if neg {
                magnitude.wrapping_neg()
            } else {
                magnitude
            };
            out.copy_from_slice(&v.to_le_bytes()[..size]);
            Ok(out)
        }
    }
}

fn rd<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    rd(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    rd(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    rd(b, at).map(u64::from_le_bytes)
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    out.get_mut(at..at.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

/// Byte offset (in the BTF data) of every type record, by type id.
fn type_offsets(btf: &[u8]) -> Option<Vec<usize>> {
    let hdr_len = u32_at(btf, 4)? as usize;
    let type_off = u32_at(btf, 8)? as usize;
    let type_len = u32_at(btf, 12)? as usize;
    let start = hdr_len.checked_add(type_off)?;
    let end = start.checked_add(type_len)?;
    if end > btf.len() {
        return None;
    }
    let mut offsets = vec![0]; // id 0: void
    let mut at = start;
    while at < end {
        offsets.push(at);
        let info = u32_at(btf, at + 4)?;
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let extra = match kind {
            1 | 14 | 17 => 4,
            3 => 12,
            4 | 5 | 15 | 19 => vlen * 12,
            6 | 13 => vlen * 8,
            2 | 7..=12 | 16 | 18 => 0,
            _ => return None,
        };
        at = at.checked_add(12 + extra)?;
    }
    Some(offsets)
}

/// The values laid out in DATASEC order, each naturally aligned (so the
/// offsets grow as the kernel's BTF check wants): the section's bytes and
/// each extern's offset.
fn layout(found: &Found, values: &KconfigValues<'_>) -> Result<(Vec<u8>, Vec<usize>), ObjectError> {
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for (ext, _) in &found.externs {
        let align = match ext.kind {
            KconfigKind::CharArray => 1,
            // classify() admits only 1, 2, 4 and 8; never loop on 0.
            _ => (ext.size as usize).max(1),
        };
        while !data.len().is_multiple_of(align) {
            data.push(0);
        }
        offsets.push(data.len());
        let value = match values {
            KconfigValues::Zeros => None,
            KconfigValues::Lookup(f) => f(&ext.name),
        };
        match value {
            Some(raw) => data.extend(encode_kconfig_value(ext, &raw)?),
            None if ext.weak || matches!(values, KconfigValues::Zeros) => {
                data.extend(std::iter::repeat_n(0, ext.size as usize))
            }
            None => {
                return Err(kerr(
                    &ext.name,
                    "this kernel has no such option and the extern is not __weak",
                ))
            }
        }
    }
    while !data.len().is_multiple_of(8) {
        data.push(0);
    }
    Ok((data, offsets))
}

fn layout_err() -> ObjectError {
    elf_err("the ELF or BTF layout is not one bpfkit can rewrite (64-bit little-endian ELF with in-bounds tables)")
}

/// The object with its `__kconfig` externs defined in a `.rodata.kconfig`
/// section (see the module docs); unchanged when it has none.
pub fn resolve_kconfig<'a>(
    bytes: &'a [u8],
    values: KconfigValues<'_>,
) -> Result<Cow<'a, [u8]>, ObjectError> {
    let Some(found) = find(bytes)? else {
        return Ok(Cow::Borrowed(bytes));
    };
    let (data, offsets) = layout(&found, &values)?;
    rewrite(bytes, Some((&found, &data, &offsets)), &[], &[])
        .map(Cow::Owned)
        .ok_or_else(layout_err)
}

/// The object as aya 0.14 needs it to load as libbpf would: ebpf_exporter's
/// `xdp/IFACE` sections renamed in place to `xdp`, libbpf's `usdt` sections
/// (which aya-obj refuses) renamed to the `uprobe` sections they are to the
/// kernel (`usdt/P:V:N` becomes `uprobe/P:V:N`, in the section headers and
/// in the `.BTF.ext` records that name them, so line and function info still
/// pair up), and `__kconfig` externs given `values` (see the module docs).
/// Bytes this does not understand pass unchanged, for aya to report.
pub fn kernel_object<'a>(
    bytes: &'a [u8],
    values: KconfigValues<'_>,
) -> Result<Cow<'a, [u8]>, ObjectError> {
    let named = crate::elf::kernel_section_names(bytes);
    let found = find(&named)?;
    let renames = usdt_renames(&named);
    let hidden = hidden_functions(&named);
    if found.is_none() && renames.is_empty() && hidden.is_empty() {
        return Ok(named);
    }
    let kconfig = match &found {
        Some(f) => Some(layout(f, &values)?),
        None => None,
    };
    let out = rewrite(
        &named,
        found
            .as_ref()
            .zip(kconfig.as_ref())
            .map(|(f, (d, o))| (f, &d[..], &o[..])),
        &renames,
        &hidden,
    )
    .ok_or_else(layout_err)?;
    Ok(Cow::Owned(out))
}

/// Global or weak functions with hidden (or internal) visibility, such as
/// usdt.bpf.h's `__weak __hidden` helpers: libbpf makes their BTF `FUNC`s
/// static, so the verifier checks them with their callers' context instead
/// of on their own (where `long *res` could be NULL).
fn hidden_functions(bytes: &[u8]) -> Vec<String> {
    let Ok(file) = object::File::parse(bytes) else {
        return Vec::new();
    };
    file.symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && (s.is_global() || s.is_weak()))
        .filter(|s| match s.flags() {
            // STV_INTERNAL (1), STV_HIDDEN (2).
            object::SymbolFlags::Elf { st_other, .. } => matches!(st_other & 3, 1 | 2),
            _ => false,
        })
        .filter_map(|s| s.name().ok().map(str::to_owned))
        .collect()
}

/// `usdt*` program sections: (section index, old name, new name).
fn usdt_renames(bytes: &[u8]) -> Vec<(usize, String, String)> {
    let Ok(file) = object::File::parse(bytes) else {
        return Vec::new();
    };
    file.sections()
        .filter_map(|s| {
            let name = s.name().ok()?;
            let rest = name.strip_prefix("usdt")?;
            (rest.is_empty() || rest.starts_with('/') || rest.starts_with(".s"))
                .then(|| (s.index().0, name.to_owned(), format!("uprobe{rest}")))
        })
        .collect()
}

/// The string at `off` of a NUL-separated table.
fn str_at(table: &[u8], off: usize) -> Option<&[u8]> {
    let rest = table.get(off..)?;
    Some(&rest[..rest.iter().position(|&c| c == 0)?])
}

type Kconfig<'a> = Option<(&'a Found, &'a [u8], &'a [usize])>;

fn rewrite(
    bytes: &[u8],
    kconfig: Kconfig<'_>,
    renames: &[(usize, String, String)],
    hidden: &[String],
) -> Option<Vec<u8>> {
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(bytes, 0x28)?).ok()?;
    let shentsize = usize::from(u16_at(bytes, 0x3a)?);
    let shnum = usize::from(u16_at(bytes, 0x3c)?);
    let shstrndx = usize::from(u16_at(bytes, 0x3e)?);
    // Extended numbering (0 / SHN_XINDEX) is not handled, nor a new index
    // in the reserved range.
    if shentsize < 0x40 || shnum == 0 || shnum + 1 >= 0xff00 || shstrndx >= shnum {
        return None;
    }
    let mut headers = bytes
        .get(shoff..shoff.checked_add(shnum.checked_mul(shentsize)?)?)?
        .to_vec();
    let section = |headers: &[u8], i: usize| -> Option<(usize, usize)> {
        let h = i.checked_mul(shentsize)?;
        Some((
            usize::try_from(u64_at(headers, h + 0x18)?).ok()?,
            usize::try_from(u64_at(headers, h + 0x20)?).ok()?,
        ))
    };
    let set_section = |headers: &mut [u8], i: usize, off: usize, len: usize| -> Option<()> {
        put(headers, i * shentsize + 0x18, &(off as u64).to_le_bytes())?;
        put(headers, i * shentsize + 0x20, &(len as u64).to_le_bytes())
    };
    let find_section = |headers: &[u8], strtab: &[u8], name: &[u8]| -> Option<usize> {
        (0..shnum).find(|&i| {
            u32_at(headers, i * shentsize)
                .and_then(|n| str_at(strtab, n as usize))
                .is_some_and(|n| n == name)
        })
    };

    let mut out = bytes.to_vec();
    let pad8 = |out: &mut Vec<u8>| {
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
    };

    // The section-header string table, with the new names.
    let (str_off, str_size) = section(&headers, shstrndx)?;
    let old_strtab = bytes.get(str_off..str_off.checked_add(str_size)?)?;
    let mut strtab = old_strtab.to_vec();
    let add_name = |strtab: &mut Vec<u8>, name: &str| -> Option<u32> {
        let off = u32::try_from(strtab.len()).ok()?;
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
        Some(off)
    };
    for (index, _, new) in renames {
        let off = add_name(&mut strtab, new)?;
        put(
            &mut headers,
            index.checked_mul(shentsize)?,
            &off.to_le_bytes(),
        )?;
    }
    let kconfig_name = match kconfig {
        Some(_) => Some(add_name(&mut strtab, KCONFIG_SECTION)?),
        None => None,
    };
    let new_str_off = out.len();
    out.extend_from_slice(&strtab);
    set_section(&mut headers, shstrndx, new_str_off, strtab.len())?;

    // BTF: new strings for the renamed sections (and the kconfig DATASEC,
    // renamed, sized and laid out, its VARs allocated).
    let btf_index = find_section(&headers, old_strtab, b".BTF");
    let mut btf_names: Vec<(Vec<u8>, u32)> = Vec::new();
    if let Some(bi) = btf_index {
        let (btf_off, btf_len) = section(&headers, bi)?;
        let btf = bytes.get(btf_off..btf_off.checked_add(btf_len)?)?;
        let hdr_len = u32_at(btf, 4)? as usize;
        let type_off = u32_at(btf, 8)? as usize;
        let type_len = u32_at(btf, 12)? as usize;
        let s_off = u32_at(btf, 16)? as usize;
        let s_len = u32_at(btf, 20)? as usize;
        let base = hdr_len.checked_add(type_off)?;
        let mut types = btf.get(base..base.checked_add(type_len)?)?.to_vec();
        let s_start = hdr_len.checked_add(s_off)?;
        let mut strings = btf.get(s_start..s_start.checked_add(s_len)?)?.to_vec();
        for (_, old, new) in renames {
            let off = add_name(&mut strings, new)?;
            btf_names.push((old.as_bytes().to_vec(), off));
        }
        let types_at = type_offsets(btf)?;
        for &at in types_at.iter().skip(1) {
            let rel = at.checked_sub(base)?;
            let info = u32_at(&types, rel + 4)?;
            let name = str_at(&strings, u32_at(&types, rel)? as usize)?;
            // BTF_KIND_FUNC, whose vlen is its linkage: BTF_FUNC_STATIC.
            if (info >> 24) & 0x1f == 12 && hidden.iter().any(|h| h.as_bytes() == name) {
                put(&mut types, rel + 4, &(info & !0xffff).to_le_bytes())?;
            }
        }
        if let Some((found, data, offsets)) = kconfig {
            let new_name = add_name(&mut strings, KCONFIG_SECTION)?;
            let ds = types_at.get(found.datasec as usize)?.checked_sub(base)?;
            put(&mut types, ds, &new_name.to_le_bytes())?;
            put(
                &mut types,
                ds + 8,
                &u32::try_from(data.len()).ok()?.to_le_bytes(),
            )?;
            for (i, ((ext, _), &off)) in found.externs.iter().zip(offsets).enumerate() {
                let entry = ds + 12 + i * 12;
                put(
                    &mut types,
                    entry + 4,
                    &u32::try_from(off).ok()?.to_le_bytes(),
                )?;
                put(&mut types, entry + 8, &ext.size.to_le_bytes())?;
                let var = types_at
                    .get(*found.vars.get(i)? as usize)?
                    .checked_sub(base)?;
                // BTF_VAR_GLOBAL_ALLOCATED.
                put(&mut types, var + 12, &1u32.to_le_bytes())?;
            }
        }
        let mut new_btf = btf.get(..hdr_len)?.to_vec();
        put(&mut new_btf, 8, &0u32.to_le_bytes())?;
        put(
            &mut new_btf,
            16,
            &u32::try_from(types.len()).ok()?.to_le_bytes(),
        )?;
        put(
            &mut new_btf,
            20,
            &u32::try_from(strings.len()).ok()?.to_le_bytes(),
        )?;
        new_btf.extend_from_slice(&types);
        new_btf.extend_from_slice(&strings);
        pad8(&mut out);
        let new_btf_off = out.len();
        out.extend_from_slice(&new_btf);
        set_section(&mut headers, bi, new_btf_off, new_btf.len())?;

        // .BTF.ext: records naming a renamed section get its new name.
        let ext_index = find_section(&headers, old_strtab, b".BTF.ext");
        if let (Some(ei), false) = (ext_index, btf_names.is_empty()) {
            let old_strings = btf.get(s_start..s_start + s_len)?;
            let (e_off, e_len) = section(&headers, ei)?;
            let mut ext = bytes.get(e_off..e_off.checked_add(e_len)?)?.to_vec();
            let e_hdr = u32_at(&ext, 4)? as usize;
            // (offset, length) fields of func_info, line_info, core_relo.
            for field in [8, 16, 24] {
                if field + 8 > e_hdr {
                    break;
                }
                let start = e_hdr.checked_add(u32_at(&ext, field)? as usize)?;
                let len = u32_at(&ext, field + 4)? as usize;
                if len == 0 {
                    continue;
                }
                let end = start.checked_add(len)?;
                let rec_size = u32_at(&ext, start)? as usize;
                let mut pos = start + 4;
                while pos < end {
                    let name_off = u32_at(&ext, pos)? as usize;
                    let count = u32_at(&ext, pos + 4)? as usize;
                    let name = str_at(old_strings, name_off)?;
                    if let Some((_, new)) = btf_names.iter().find(|(old, _)| old == name) {
                        put(&mut ext, pos, &new.to_le_bytes())?;
                    }
                    pos = pos
                        .checked_add(8)?
                        .checked_add(count.checked_mul(rec_size)?)?;
                }
                if pos != end {
                    return None;
                }
            }
            pad8(&mut out);
            let new_ext_off = out.len();
            out.extend_from_slice(&ext);
            set_section(&mut headers, ei, new_ext_off, ext.len())?;
        }
    }

    // The values, in a section of their own.
    let mut new_shnum = shnum;
    if let (Some((found, data, offsets)), Some(name_off)) = (kconfig, kconfig_name) {
        pad8(&mut out);
        let data_off = out.len();
        out.extend_from_slice(data);
        let mut h = vec![0u8; shentsize];
        put(&mut h, 0, &name_off.to_le_bytes())?;
        put(&mut h, 4, &1u32.to_le_bytes())?; // SHT_PROGBITS
        put(&mut h, 8, &2u64.to_le_bytes())?; // SHF_ALLOC
        put(&mut h, 0x18, &(data_off as u64).to_le_bytes())?;
        put(&mut h, 0x20, &(data.len() as u64).to_le_bytes())?;
        put(&mut h, 0x30, &8u64.to_le_bytes())?; // sh_addralign
        headers.extend_from_slice(&h);
        new_shnum += 1;

        // The symbols: defined in the new section, as data objects.
        let (sym_off, sym_len) = found.symtab_range;
        for ((ext, index), &off) in found.externs.iter().zip(offsets) {
            let at = index.checked_mul(24)?;
            if at + 24 > sym_len {
                return None;
            }
            let at = sym_off + at;
            let bind = bytes.get(at + 4)? >> 4;
            put(&mut out, at + 4, &[(bind << 4) | 1])?; // STT_OBJECT
            put(&mut out, at + 6, &u16::try_from(shnum).ok()?.to_le_bytes())?;
            put(&mut out, at + 8, &(off as u64).to_le_bytes())?;
            put(&mut out, at + 16, &u64::from(ext.size).to_le_bytes())?;
        }
    }

    // The section headers, moved to the end.
    pad8(&mut out);
    let new_shoff = out.len();
    out.extend_from_slice(&headers);
    put(&mut out, 0x28, &(new_shoff as u64).to_le_bytes())?;
    put(
        &mut out,
        0x3c,
        &u16::try_from(new_shnum).ok()?.to_le_bytes(),
    )?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usdt_object() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bpf/kernel/usdt_count.bpf.o"
        ))
        .unwrap()
    }

    fn ext(kind: KconfigKind, size: u32) -> KconfigExtern {
        KconfigExtern {
            name: "CONFIG_X".into(),
            kind,
            size,
            weak: false,
        }
    }

    #[test]
    fn zero_sized_externs_are_refused_not_indexed() {
        for kind in [
            KconfigKind::Tristate,
            KconfigKind::Bool,
            KconfigKind::CharArray,
        ] {
            let e = encode_kconfig_value(&ext(kind, 0), "y").unwrap_err();
            assert!(e.to_string().contains("CONFIG_X"), "{e}");
        }
    }

    #[test]
    fn usdt_objects_declare_linux_has_bpf_cookie() {
        let externs = kconfig_externs(&usdt_object()).unwrap();
        assert_eq!(
            externs,
            vec![KconfigExtern {
                name: "LINUX_HAS_BPF_COOKIE".into(),
                kind: KconfigKind::Bool,
                size: 1,
                weak: false,
            }]
        );
    }

    #[test]
    fn resolved_externs_become_a_rodata_map_with_their_values() {
        let bytes = usdt_object();
        let lookup = |n: &str| (n == "LINUX_HAS_BPF_COOKIE").then(|| "y".to_string());
        let out = resolve_kconfig(&bytes, KconfigValues::Lookup(&lookup)).unwrap();
        let file = crate::parse(&out).unwrap();
        let map = file.map(KCONFIG_SECTION).expect("the kconfig map");
        assert_eq!(map.section, crate::MapSection::Rodata);
        assert_eq!(map.initial, vec![1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(map.variables[0].name, "LINUX_HAS_BPF_COOKIE");
        // For the kernel, the `usdt` section is also renamed to one aya-obj
        // reads, and its function info still pairs up with it.
        assert!(aya_obj::Object::parse(&out).is_err());
        let kernel = kernel_object(&bytes, KconfigValues::Lookup(&lookup)).unwrap();
        let obj = aya_obj::Object::parse(&kernel).unwrap();
        let prog = &obj.programs["on_konst"];
        assert!(matches!(
            prog.section,
            aya_obj::ProgramSection::UProbe { sleepable: false }
        ));
        let f = &obj.functions[&prog.function_key()];
        assert!(!f.func_info.func_info.is_empty(), "function info lost");
        assert!(f.line_info.line_info.len() > 1, "line info lost");
        assert_eq!(obj.maps[KCONFIG_SECTION].data(), &[1, 0, 0, 0, 0, 0, 0, 0]);
        // Without a kernel, zeros.
        let zero = crate::parse(&bytes).unwrap();
        assert_eq!(zero.map(KCONFIG_SECTION).unwrap().initial, vec![0; 8]);
    }

    #[test]
    fn a_strong_extern_without_a_value_is_an_error_naming_it() {
        let bytes = usdt_object();
        let err = resolve_kconfig(&bytes, KconfigValues::Lookup(&|_| None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kconfig extern `LINUX_HAS_BPF_COOKIE`: this kernel has no such option and the extern is not __weak"
        );
    }

    #[test]
    fn objects_without_externs_pass_unchanged() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../bpf/kernel/uprobe_count.bpf.o"
        ))
        .unwrap();
        assert!(matches!(
            resolve_kconfig(&bytes, KconfigValues::Zeros).unwrap(),
            Cow::Borrowed(_)
        ));
        for junk in [&b""[..], b"\x7fELF\x02\x01", &[0xff; 64]] {
            assert!(matches!(
                resolve_kconfig(junk, KconfigValues::Zeros).unwrap(),
                Cow::Borrowed(_)
            ));
        }
    }

    #[test]
    fn config_values_are_encoded_as_libbpf_does() {
        use KconfigKind::*;
        let enc = |kind, size, raw: &str| encode_kconfig_value(&ext(kind, size), raw);
        assert_eq!(enc(Bool, 1, "y").unwrap(), [1]);
        assert_eq!(enc(Bool, 1, "n").unwrap(), [0]);
        assert!(enc(Bool, 1, "m").is_err());
        assert_eq!(enc(Tristate, 4, "m").unwrap(), [2, 0, 0, 0]);
        assert_eq!(enc(Char, 1, "m").unwrap(), [b'm']);
        assert_eq!(
            enc(Int { signed: false }, 4, "250").unwrap(),
            [250, 0, 0, 0]
        );
        assert_eq!(enc(Int { signed: true }, 2, "-2").unwrap(), [0xfe, 0xff]);
        assert_eq!(
            enc(Int { signed: false }, 8, "0x10").unwrap(),
            [16, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(enc(Int { signed: false }, 1, "256").is_err());
        assert!(enc(Int { signed: false }, 4, "y").is_err());
        assert_eq!(enc(CharArray, 4, "\"abcdef\"").unwrap(), *b"abc\0");
        assert!(enc(CharArray, 4, "\"abc").is_err());
        assert!(enc(Int { signed: false }, 4, "\"abc\"").is_err());
        let err = enc(Int { signed: false }, 4, "lots")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONFIG_X") && err.contains("lots"), "{err}");
    }
}
