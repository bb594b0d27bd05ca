//! Our own look at the ELF file, before and beside aya-obj.
//!
//! aya-obj trusts its input: symbols are sliced out of sections without bounds
//! checks, calls to undefined functions hit an `unwrap`, and references to
//! undefined (`extern`) data are silently left unrelocated. So the section,
//! symbol and relocation tables are read here first, checked, and kept for
//! what aya-obj does not expose (symbol offsets for global variables, the
//! original section names).

use std::collections::HashMap;

use object::{
    Architecture, Object as _, ObjectKind, ObjectSection as _, ObjectSymbol as _, RelocationTarget,
    SectionKind, SymbolKind, SymbolSection,
};

use crate::ObjectError;

/// Global data sections larger than this are rejected: aya-obj allocates
/// `.bss` by its header size, and the kernel caps array values far lower.
const MAX_DATA_SECTION: u64 = 1 << 28;

pub(crate) struct SectionInfo {
    pub name: String,
    pub size: u64,
    pub data: Vec<u8>,
    /// `SHF_EXECINSTR` with contents.
    pub is_code: bool,
}

pub(crate) struct SymbolInfo {
    pub name: String,
    pub section: Option<usize>,
    pub undefined: bool,
    pub address: u64,
    pub size: u64,
    pub kind: SymbolKind,
}

pub(crate) struct ElfInfo {
    pub sections: HashMap<usize, SectionInfo>,
    /// By ELF symbol index.
    pub symbols: HashMap<usize, SymbolInfo>,
    /// Code references into map sections: (function, symbol index).
    pub map_refs: Vec<(String, usize)>,
}

fn elf_err(message: impl Into<String>) -> ObjectError {
    ObjectError::Elf {
        message: message.into(),
    }
}

/// What aya-obj files under "data map" for a section name.
pub(crate) fn is_data_section(name: &str) -> bool {
    name.starts_with(".data") || name.starts_with(".rodata") || name.starts_with(".bss")
}

/// Section names aya-obj gives a meaning of its own (never a program).
fn is_special_section(name: &str) -> bool {
    ["license", "version", "maps", ".maps", ".text"]
        .iter()
        .any(|p| name.starts_with(p))
        || is_data_section(name)
        || name == ".BTF"
        || name == ".BTF.ext"
}

/// Whether aya-obj treats this section as a program section.
pub(crate) fn is_program_section(s: &SectionInfo) -> bool {
    s.is_code && s.size > 0 && !is_special_section(&s.name)
}

pub(crate) fn inspect(bytes: &[u8]) -> Result<ElfInfo, ObjectError> {
    let file =
        object::File::parse(bytes).map_err(|e| elf_err(format!("not an ELF object: {e}")))?;
    if file.architecture() != Architecture::Bpf {
        return Err(elf_err(format!(
            "not a BPF object (architecture {:?})",
            file.architecture()
        )));
    }

    if file.kind() != ObjectKind::Relocatable {
        return Err(elf_err(format!(
            "not a relocatable object (kind {:?})",
            file.kind()
        )));
    }

    let mut sections = HashMap::new();
    for s in file.sections() {
        let index = s.index().0;
        let name = s
            .name()
            .map_err(|e| elf_err(format!("name of section #{index}: {e}")))?
            .to_owned();
        // Symbols are section offsets only when sections sit at address 0,
        // as in every relocatable object (aya-obj assumes it).
        if s.address() != 0 {
            return Err(elf_err(format!(
                "section `{name}` has load address {:#x}",
                s.address()
            )));
        }
        let kind = s.kind();
        let data = if kind == SectionKind::UninitializedData {
            Vec::new()
        } else {
            s.data()
                .map_err(|e| elf_err(format!("contents of section `{name}`: {e}")))?
                .to_vec()
        };
        if kind != SectionKind::UninitializedData && (data.len() as u64) != s.size() {
            return Err(elf_err(format!(
                "section `{name}` is {} bytes but only {} are in the file",
                s.size(),
                data.len()
            )));
        }
        if is_data_section(&name) && s.size() > MAX_DATA_SECTION {
            return Err(elf_err(format!(
                "data section `{name}` is {} bytes, more than a map value can hold",
                s.size()
            )));
        }
        sections.insert(
            index,
            SectionInfo {
                is_code: kind == SectionKind::Text,
                size: s.size(),
                data,
                name,
            },
        );
    }

    let mut symbols = HashMap::new();
    for sym in file.symbols() {
        let name = sym
            .name()
            .map_err(|e| elf_err(format!("name of symbol #{}: {e}", sym.index().0)))?
            .to_owned();
        let section = match sym.section() {
            SymbolSection::Section(i) => Some(i.0),
            _ => None,
        };
        if let Some(si) = section {
            let Some(sec) = sections.get(&si) else {
                return Err(elf_err(format!(
                    "symbol `{name}` is in section #{si}, which does not exist"
                )));
            };
            let end = sym.address().checked_add(sym.size());
            if end.is_none_or(|end| end > sec.size) {
                return Err(elf_err(format!(
                    "symbol `{name}` ({} bytes at {:#x}) extends past the end of section `{}` ({} bytes)",
                    sym.size(),
                    sym.address(),
                    sec.name,
                    sec.size
                )));
            }
            if sec.is_code
                && sym.kind() == SymbolKind::Text
                && !(sym.address().is_multiple_of(8) && sym.size().is_multiple_of(8))
            {
                return Err(elf_err(format!(
                    "function `{name}` in `{}` is not made of whole instructions",
                    sec.name
                )));
            }
        }
        symbols.insert(
            sym.index().0,
            SymbolInfo {
                undefined: sym.is_undefined(),
                name,
                section,
                address: sym.address(),
                size: sym.size(),
                kind: sym.kind(),
            },
        );
    }

    // References from code to symbols that are not defined in this object:
    // `extern` maps, functions, kconfig/ksym variables. libbpf would resolve
    // some against the kernel; the VM cannot.
    let mut map_refs = Vec::new();
    for s in file.sections() {
        let Some(info) = sections.get(&s.index().0) else {
            continue;
        };
        if !info.is_code {
            continue;
        }
        for (offset, rel) in s.relocations() {
            let RelocationTarget::Symbol(target) = rel.target() else {
                continue;
            };
            let Some(sym) = symbols.get(&target.0) else {
                return Err(elf_err(format!(
                    "relocation at {offset:#x} in `{}` names symbol #{}, which does not exist",
                    info.name, target.0
                )));
            };
            if sym.undefined && sym.kind != SymbolKind::Section {
                let program =
                    function_at(&symbols, s.index().0, offset).unwrap_or_else(|| info.name.clone());
                return Err(ObjectError::MissingSymbol {
                    program,
                    symbol: sym.name.clone(),
                });
            }
            check_code_relocation(info, offset, rel.size(), sym, &sections)?;
            let in_map_section = sym
                .section
                .and_then(|i| sections.get(&i))
                .is_some_and(|t| t.name.starts_with("maps") || t.name.starts_with(".maps"));
            if in_map_section {
                let function =
                    function_at(&symbols, s.index().0, offset).unwrap_or_else(|| info.name.clone());
                map_refs.push((function, target.0));
            }
        }
    }

    Ok(ElfInfo {
        sections,
        symbols,
        map_refs,
    })
}

/// A relocation in code must sit on an instruction, and one that points
/// into code must name a function, or a section plus an in-bounds
/// instruction offset (clang's form for calls to static functions and
/// callback addresses). aya-obj assumes all of this.
fn check_code_relocation(
    info: &SectionInfo,
    offset: u64,
    bits: u8,
    sym: &SymbolInfo,
    sections: &HashMap<usize, SectionInfo>,
) -> Result<(), ObjectError> {
    let at = |what: &str| {
        elf_err(format!(
            "relocation at {offset:#x} in `{}` to `{}`: {what}",
            info.name, sym.name
        ))
    };
    let Some(insn) = usize::try_from(offset)
        .ok()
        .filter(|o| o.is_multiple_of(8))
        .and_then(|o| info.data.get(o..o.checked_add(8)?))
    else {
        return Err(at("not on an instruction"));
    };
    let Some(target) = sym.section.and_then(|i| sections.get(&i)) else {
        return Ok(());
    };
    if target.name.starts_with("maps") || target.name.starts_with(".maps") {
        // Only a map's own symbol may be referenced in a map section.
        return if sym.kind == SymbolKind::Data {
            Ok(())
        } else {
            Err(at("is not a map"))
        };
    }
    if !target.is_code {
        return Ok(());
    }
    let imm = i64::from(i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]));
    let size = target.size as i64;
    match (sym.kind, bits) {
        (SymbolKind::Text, _) => Ok(()),
        // Call: target = symbol + (imm + 1) * 8.
        (SymbolKind::Section, 32) if (imm + 1) >= 0 && (imm + 1) * 8 < size => Ok(()),
        // LDDW of a code address: target = symbol + imm.
        (SymbolKind::Section, 64) if imm >= 0 && imm < size && imm % 8 == 0 => Ok(()),
        _ => Err(at("does not name a function")),
    }
}

/// The function covering `offset` in a code section.
fn function_at(
    symbols: &HashMap<usize, SymbolInfo>,
    section: usize,
    offset: u64,
) -> Option<String> {
    symbols
        .values()
        .find(|s| {
            s.kind == SymbolKind::Text
                && s.section == Some(section)
                && !s.name.is_empty()
                && offset >= s.address
                && offset - s.address < s.size
        })
        .map(|s| s.name.clone())
}

fn rd<const N: usize>(b: &[u8], at: u64) -> Option<[u8; N]> {
    let at = usize::try_from(at).ok()?;
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Returns a copy of the ELF file in which the given sections carry new
/// names. aya-obj refuses program sections it does not know (`tc`,
/// `tcx/ingress`, ...) though libbpf accepts them; the kind is decided from
/// the original name elsewhere, so aya-obj only needs a name it accepts. A new
/// section-header string table (the old one plus the aliases) is appended to
/// the file and the headers are pointed at it. 64-bit little-endian ELF only,
/// the only layout the VM runs.
pub(crate) fn rename_sections(bytes: &[u8], renames: &[(usize, &str)]) -> Option<Vec<u8>> {
    // e_ident: ELFCLASS64, ELFDATA2LSB.
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return None;
    }
    let shoff = u64::from_le_bytes(rd(bytes, 0x28)?);
    let shentsize = u64::from(u16::from_le_bytes(rd(bytes, 0x3a)?));
    let mut shstrndx = u64::from(u16::from_le_bytes(rd(bytes, 0x3e)?));
    if shentsize < 0x40 {
        return None;
    }
    let header = |i: u64| shoff.checked_add(i.checked_mul(shentsize)?);
    if shstrndx == 0xffff {
        // SHN_XINDEX: the real index is in section 0's sh_link.
        shstrndx = u64::from(u32::from_le_bytes(rd(
            bytes,
            header(0)?.checked_add(0x28)?,
        )?));
    }
    let strhdr = header(shstrndx)?;
    let str_off = u64::from_le_bytes(rd(bytes, strhdr.checked_add(0x18)?)?);
    let str_size = u64::from_le_bytes(rd(bytes, strhdr.checked_add(0x20)?)?);
    let start = usize::try_from(str_off).ok()?;
    let end = start.checked_add(usize::try_from(str_size).ok()?)?;
    let mut strtab = bytes.get(start..end)?.to_vec();

    let mut out = bytes.to_vec();
    for &(index, alias) in renames {
        let name_off = u32::try_from(strtab.len()).ok()?;
        strtab.extend_from_slice(alias.as_bytes());
        strtab.push(0);
        let at = usize::try_from(header(index as u64)?).ok()?;
        out.get_mut(at..at + 4)?
            .copy_from_slice(&name_off.to_le_bytes());
    }
    let new_off = out.len() as u64;
    out.extend_from_slice(&strtab);
    let at = usize::try_from(strhdr).ok()?;
    out.get_mut(at + 0x18..at + 0x20)?
        .copy_from_slice(&new_off.to_le_bytes());
    out.get_mut(at + 0x20..at + 0x28)?
        .copy_from_slice(&(strtab.len() as u64).to_le_bytes());
    Some(out)
}

/// For the kernel: program sections ebpf_exporter attaches by a name
/// libbpf and aya-obj refuse, renamed in place to one they read as the same
/// program type:
/// `xdp/IFACE` becomes `xdp` (the '/' turned into a NUL). The attach point
/// is taken from the original name, which bpfkit reads itself.
///
/// Section names are in the section-header string table and, for the
/// function and line info, in the .BTF string table: both are patched in
/// place, so aya-obj still pairs each program with its `.BTF.ext` info
/// (which [`rename_sections`] hides, the VM having no use for it). A file
/// this does not understand is passed on unchanged for aya to report.
pub(crate) fn kernel_section_names(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let patches = section_renames(bytes).unwrap_or_default();
    if patches.is_empty() {
        return std::borrow::Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for at in patches {
        out[at] = 0;
    }
    std::borrow::Cow::Owned(out)
}

/// File offsets of the bytes to clear; `None` for anything but a
/// little-endian ELF64 whose tables are in bounds.
fn section_renames(b: &[u8]) -> Option<Vec<usize>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(rd(b, o as u64)?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(rd(b, o as u64)?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(rd(b, o as u64)?));
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let shstrndx = usize::from(u16_at(0x3e)?);
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    // (name offset, flags, file offset, size) of section i.
    let section = |i: usize| -> Option<(usize, u64, usize, usize)> {
        let h = header(i)?;
        Some((
            u32_at(h)? as usize,
            u64_at(h + 8)?,
            usize::try_from(u64_at(h + 0x18)?).ok()?,
            usize::try_from(u64_at(h + 0x20)?).ok()?,
        ))
    };
    let (_, _, strtab, strtab_size) = section(shstrndx)?;
    let strings = b.get(strtab..strtab.checked_add(strtab_size)?)?;
    let name_at = |off: usize| -> Option<&[u8]> {
        let rest = strings.get(off..)?;
        Some(&rest[..rest.iter().position(|&c| c == 0)?])
    };
    const SHF_EXECINSTR: u64 = 0x4;
    let mut patches = Vec::new();
    let mut renamed: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut btf = None;
    for i in 0..shnum {
        let (name_off, flags, off, size) = section(i)?;
        let name = name_at(name_off)?;
        if name == b".BTF" {
            btf = Some((off, size));
        }
        if flags & SHF_EXECINSTR == 0 {
            continue;
        }
        if let Some(iface) = name.strip_prefix(b"xdp/") {
            if !iface.is_empty() && !iface.contains(&b'/') {
                patches.push(strtab + name_off + 3);
                renamed.push((name.to_vec(), 3));
            }
        }
    }
    // The same names in .BTF's string table (after its 24-byte header).
    if let Some((off, size)) = btf {
        let data = b.get(off..off.checked_add(size)?)?;
        let str_off = u32_at(off + 16)? as usize;
        let str_len = u32_at(off + 20)? as usize;
        let hdr_len = u32_at(off + 4)? as usize;
        let start = hdr_len.checked_add(str_off)?;
        let table = data.get(start..start.checked_add(str_len)?)?;
        let mut pos = 0;
        for s in table.split(|&c| c == 0) {
            if let Some((_, at)) = renamed.iter().find(|(n, _)| n.as_slice() == s) {
                patches.push(off + start + pos + at);
            }
            pos += s.len() + 1;
        }
    }
    Some(patches)
}

#[cfg(test)]
mod kernel_section_name_tests {
    use super::*;

    fn testdata(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../bpf/testdata/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn xdp_iface_sections_are_renamed_in_both_string_tables() {
        let bytes = testdata("exporter_attach.bpf.o");
        let patches = section_renames(&bytes).unwrap();
        // The section-header name and the .BTF name.
        assert_eq!(patches.len(), 2, "{patches:?}");
        for &at in &patches {
            assert_eq!(&bytes[at - 3..at + 3], b"xdp/lo");
        }
        let renamed = kernel_section_names(&bytes);
        aya_obj::Object::parse(&renamed).expect("aya-obj reads the renamed object");
        assert!(aya_obj::Object::parse(&bytes).is_err());
    }

    #[test]
    fn other_objects_and_non_elf_bytes_pass_unchanged() {
        let bytes = testdata("exporter_kaddrs.bpf.o");
        assert!(matches!(
            kernel_section_names(&bytes),
            std::borrow::Cow::Borrowed(_)
        ));
        for junk in [&b""[..], b"\x7fELF\x02\x01", &[0xff; 64]] {
            assert!(matches!(
                kernel_section_names(junk),
                std::borrow::Cow::Borrowed(_)
            ));
        }
        // Truncated: the section table is out of bounds.
        let cut = &bytes[..bytes.len() / 2];
        assert!(matches!(
            kernel_section_names(cut),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
