//! clang-built eBPF objects as programs, map definitions and BTF.
//!
//! [`parse`] takes the bytes of a `clang -target bpf -O2 -g` object written
//! to libbpf's conventions and returns every program fully linked (its
//! bpf-to-bpf callees from `.text` appended, call offsets fixed, as the kernel
//! receives them), the map definitions (BTF `.maps`, legacy `maps`, and one
//! array map per global data section), and the object's BTF.
//!
//! Parsing and linking are aya-obj's: [`aya_obj::Object::parse`], then
//! `relocate_maps` with each map's index in [`ObjectFile::maps`] standing in
//! for its file descriptor, then `relocate_calls`. So in
//! [`ProgramSpec::insns`] a map reference is the two-slot LDDW (`0x18`) with
//! `src = 1` (`BPF_PSEUDO_MAP_FD`) and `imm` = map index; a global variable
//! reference has `src = 2` (`BPF_PSEUDO_MAP_VALUE`), `imm` = map index and the
//! second slot's `imm` = byte offset in the value; a callback reference
//! (`bpf_loop` and friends) has `src = 4` (`BPF_PSEUDO_FUNC`) and `imm` = the
//! callback's position relative to the LDDW, counted like a call: the
//! callback starts at slot `lddw + imm + 1`, and is linked into the program.
//!
//! `.BTF.ext` is not read (line info and CO-RE records serve loading into a
//! kernel only). Map definitions are reported as written: libbpf's load-time
//! adjustments (per-CPU `max_entries` of perf event arrays, `BPF_F_MMAPABLE`
//! on global data) are the engine's business.
//!
//! CO-RE relocations are not applied: there is no target kernel. The
//! instructions keep the offsets clang computed from the object's own types,
//! which are the layouts the VM uses. Relocations that are not plain field
//! offsets (type existence, enum values from a kernel, ...) keep their local
//! defaults too.
//!
//! libbpf's `__kconfig` externs become a read-only `.rodata.kconfig` map
//! ([`resolve_kconfig`]); [`parse`] gives them zeros (there is no kernel to
//! read), the kernel engine the running kernel's values. Other symbols the
//! object does not define (`extern` maps, functions, `__ksym` variables) are
//! errors: there is no kernel to resolve them against.
//!
//! Nothing here reads the running system (`/sys`, BTF of the kernel).

mod btf;
mod elf;
mod kconfig;
mod kind;

use std::collections::{HashMap, HashSet};

use aya_obj::{maps::PinningType, EbpfSectionKind, Map};
use bpfkit_isa::RawInsn;

pub use btf::{BtfInfo, BtfType, DataSecVar, Member};
pub use kconfig::{
    encode_kconfig_value, kconfig_externs, kernel_object, resolve_kconfig, KconfigExtern,
    KconfigKind, KconfigValues, KCONFIG_SECTION,
};
pub use kind::ProgramKind;

/// `BPF_MAP_TYPE_*` numbers the VM implements.
pub const SUPPORTED_MAP_TYPES: &[u32] = &[
    1,  // HASH
    2,  // ARRAY
    3,  // PROG_ARRAY
    4,  // PERF_EVENT_ARRAY
    5,  // PERCPU_HASH
    6,  // PERCPU_ARRAY
    9,  // LRU_HASH
    10, // LRU_PERCPU_HASH
    11, // LPM_TRIE
    12, // ARRAY_OF_MAPS
    13, // HASH_OF_MAPS
    14, // DEVMAP
    15, // SOCKMAP
    16, // CPUMAP
    17, // XSKMAP
    18, // SOCKHASH
    22, // QUEUE
    23, // STACK
    25, // DEVMAP_HASH
    27, // RINGBUF
];

/// Why an object could not be turned into programs and maps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// Not an ELF file, or a truncated or inconsistent one.
    #[error("malformed ELF object: {message}")]
    Elf { message: String },
    /// A code section whose name names no program type libbpf knows.
    #[error("unknown program section `{section}`")]
    UnknownSection { section: String },
    /// A map type the VM does not implement (see [`SUPPORTED_MAP_TYPES`]).
    #[error("map `{map}` has type {map_type}, which the VM does not support")]
    UnsupportedMapType { map: String, map_type: u32 },
    /// Code refers to a symbol the object does not define.
    #[error("`{program}` refers to `{symbol}`, which the object does not define")]
    MissingSymbol { program: String, symbol: String },
    /// A map definition aya-obj could not read.
    #[error("invalid definition of map `{map}`: {message}")]
    Map { map: String, message: String },
    /// The `.BTF` section could not be read.
    #[error("invalid BTF: {message}")]
    Btf { message: String },
    /// [`ObjectFile::set_global`] with a name no data section defines.
    #[error("no global variable named `{name}`")]
    UnknownGlobal { name: String },
    /// [`ObjectFile::set_global`] with a value of the wrong size.
    #[error("global variable `{name}` is {expected} bytes, got {got}")]
    GlobalSize {
        name: String,
        expected: usize,
        got: usize,
    },
    /// A `__kconfig` extern without a value, or with one its type cannot hold.
    #[error("kconfig extern `{name}`: {message}")]
    Kconfig { name: String, message: String },
    /// Linking a program (map references, calls) failed.
    #[error("relocating `{program}`: {message}")]
    Relocation { program: String, message: String },
}

/// A parsed object.
#[derive(Clone, Debug)]
pub struct ObjectFile {
    /// The `license` section; empty when the object has none (as libbpf).
    pub license: String,
    /// Programs in section order, then by offset in their section.
    pub programs: Vec<ProgramSpec>,
    /// Maps in section order, then by offset in their section; LDDW map
    /// references use indices into this list.
    pub maps: Vec<MapSpec>,
    /// The object's BTF, with `DATASEC`s completed.
    pub btf: Option<BtfInfo>,
}

/// One program, linked.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramSpec {
    /// The C function name.
    pub name: String,
    /// The full ELF section name (`xdp`, `tracepoint/syscalls/sys_enter_openat`).
    pub section: String,
    pub kind: ProgramKind,
    /// The program, then every subprogram it reaches, with map references
    /// and calls relocated (see the crate docs for the LDDW encoding).
    pub insns: Vec<RawInsn>,
}

/// Where a map was defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapSection {
    /// BTF-defined, in `.maps`.
    Maps,
    /// `struct bpf_map_def` in the legacy `maps` section.
    LegacyMaps,
    /// `.data`, `.data.*`.
    Data,
    /// `.rodata`, `.rodata.*` (read-only to programs).
    Rodata,
    /// `.bss`, `.bss.*`.
    Bss,
}

/// A map definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapSpec {
    /// The map's symbol name; for global data, the section name
    /// (`.data`, `.rodata.str1.1`, ...).
    pub name: String,
    /// `BPF_MAP_TYPE_*` (global data maps are `ARRAY`, 2).
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// As defined; `.rodata` maps carry `BPF_F_RDONLY_PROG` (0x80).
    pub map_flags: u32,
    pub section: MapSection,
    /// Global data contents (`value_size` bytes, zeros for `.bss`); empty
    /// for other maps.
    pub initial: Vec<u8>,
    /// The inner map template of a map-in-map (`__array(values, ...)`).
    pub inner: Option<Box<MapSpec>>,
    /// `LIBBPF_PIN_BY_NAME`.
    pub pinning: bool,
    pub btf_key_type_id: Option<u32>,
    /// For global data, the section's `DATASEC`.
    pub btf_value_type_id: Option<u32>,
    /// Global variables in a data section, by offset.
    pub variables: Vec<GlobalVar>,
}

/// A global variable inside a data map's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalVar {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

impl MapSpec {
    /// Whether the VM implements this map's type.
    pub fn is_supported_type(&self) -> bool {
        SUPPORTED_MAP_TYPES.contains(&self.map_type)
    }
}

impl ObjectFile {
    /// The program whose C function is `name`.
    pub fn program(&self, name: &str) -> Option<&ProgramSpec> {
        self.programs.iter().find(|p| p.name == name)
    }

    /// Index in [`ObjectFile::maps`] of the map named `name`.
    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }

    /// The map named `name`.
    pub fn map(&self, name: &str) -> Option<&MapSpec> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// Replaces the initial value of the global variable `name` (in `.data`,
    /// `.rodata`, `.bss` or a `.data.*` / `.rodata.*` section), e.g. to set
    /// `const volatile` configuration before running.
    pub fn set_global(&mut self, name: &str, value: &[u8]) -> Result<(), ObjectError> {
        let found = self.maps.iter_mut().find_map(|m| {
            let var = m.variables.iter().find(|v| v.name == name)?.clone();
            Some((m, var))
        });
        let Some((map, var)) = found else {
            return Err(ObjectError::UnknownGlobal {
                name: name.to_owned(),
            });
        };
        if value.len() != var.size as usize {
            return Err(ObjectError::GlobalSize {
                name: name.to_owned(),
                expected: var.size as usize,
                got: value.len(),
            });
        }
        let start = var.offset as usize;
        match map.initial.get_mut(start..start + value.len()) {
            Some(dst) => {
                dst.copy_from_slice(value);
                Ok(())
            }
            None => Err(ObjectError::Elf {
                message: format!("global `{name}` lies outside section `{}`", map.name),
            }),
        }
    }

    /// Checks every map (and inner map template) against
    /// [`SUPPORTED_MAP_TYPES`].
    pub fn check_map_types(&self) -> Result<(), ObjectError> {
        for m in &self.maps {
            for spec in std::iter::once(m).chain(m.inner.as_deref()) {
                if !spec.is_supported_type() {
                    return Err(ObjectError::UnsupportedMapType {
                        map: spec.name.clone(),
                        map_type: spec.map_type,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Parses and links an object. Never panics: malformed input is an
/// [`ObjectError`]. The checks made before aya-obj runs are meant to keep it
/// from panicking; should one slip through, it is caught here and reported as
/// [`ObjectError::Elf`] (the default panic hook still prints it).
pub fn parse(bytes: &[u8]) -> Result<ObjectFile, ObjectError> {
    // aya-obj indexes and unwraps in places the checks in `elf::inspect` may
    // not anticipate; a panic there is a malformed object, not a crash.
    match std::panic::catch_unwind(|| parse_inner(bytes)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ObjectError::Elf {
                message: format!("inconsistent object ({what})"),
            })
        }
    }
}

/// The error and its sources, joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}

fn parse_error(e: aya_obj::ParseError) -> ObjectError {
    use aya_obj::ParseError as P;
    match &e {
        P::InvalidProgramSection { section } => ObjectError::UnknownSection {
            section: section.clone(),
        },
        P::InvalidMapDefinition { name } => ObjectError::Map {
            map: name.clone(),
            message: "definition shorter than five 32-bit fields".to_owned(),
        },
        P::BtfError(b) => ObjectError::Btf { message: chain(b) },
        P::ElfError(inner) => ObjectError::Elf {
            message: inner.to_string(),
        },
        P::SectionError { index, error } => ObjectError::Elf {
            message: format!("section #{index}: {error}"),
        },
        _ => ObjectError::Elf { message: chain(&e) },
    }
}

fn relocation_error(e: aya_obj::relocation::EbpfRelocationError) -> ObjectError {
    // The function name is private to the error; its message is
    // "error relocating `name`".
    let top = e.to_string();
    let program = top.split('`').nth(1).map(str::to_owned).unwrap_or_default();
    let message = std::error::Error::source(&e).map(chain).unwrap_or(top);
    ObjectError::Relocation { program, message }
}

fn parse_inner(bytes: &[u8]) -> Result<ObjectFile, ObjectError> {
    let resolved = resolve_kconfig(bytes, KconfigValues::Zeros)?;
    let bytes = &resolved[..];
    let info = elf::inspect(bytes)?;

    // BTF, with DATASECs completed from the ELF. Read before aya-obj sees
    // it: this reader checks every offset, aya-obj's does not.
    let btf = match info.sections.values().find(|s| s.name == ".BTF") {
        None => None,
        Some(s) => {
            let sizes: HashMap<String, u64> = info
                .sections
                .values()
                .map(|s| (s.name.clone(), s.size))
                .collect();
            let offsets: HashMap<(String, String), u64> = info
                .symbols
                .values()
                .filter_map(|sym| {
                    let sec = info.sections.get(&sym.section?)?;
                    Some(((sec.name.clone(), sym.name.clone()), sym.address))
                })
                .collect();
            Some(
                BtfInfo::from_section(&s.data, &sizes, &offsets)
                    .map_err(|message| ObjectError::Btf { message })?,
            )
        }
    };

    // Decide every program section's kind from its original name, and give
    // aya-obj an alias for those it would refuse.
    let mut kinds = HashMap::new();
    let mut renames = Vec::new();
    // `.BTF.ext` (line info, CO-RE records) is of no use without a kernel to
    // load into, and aya-obj's reader of it trusts every count and offset:
    // hide it.
    let mut hide = Vec::new();
    let mut indices: Vec<&usize> = info.sections.keys().collect();
    indices.sort();
    for &index in indices {
        let s = &info.sections[&index];
        if s.name == ".BTF.ext" {
            hide.push((index, ".BTF.ext.unused"));
        }
        if !elf::is_program_section(s) {
            continue;
        }
        let kind =
            ProgramKind::from_section(&s.name).ok_or_else(|| ObjectError::UnknownSection {
                section: s.name.clone(),
            })?;
        kinds.insert(index, kind);
        if s.name.parse::<aya_obj::ProgramSection>().is_err() {
            renames.push((index, "classifier"));
        }
    }
    let renamed;
    let bytes = if renames.is_empty() && hide.is_empty() {
        bytes
    } else {
        let all: Vec<_> = renames.iter().chain(&hide).copied().collect();
        match elf::rename_sections(bytes, &all) {
            Some(b) => {
                renamed = b;
                &renamed[..]
            }
            None if renames.is_empty() => bytes,
            None => {
                return Err(ObjectError::UnknownSection {
                    section: info.sections[&renames[0].0].name.clone(),
                })
            }
        }
    };

    let mut obj = aya_obj::Object::parse(bytes).map_err(parse_error)?;

    // Maps in a stable order: by section, then by offset.
    let position = |m: &Map| {
        let address = m
            .symbol_index()
            .and_then(|i| info.symbols.get(&i))
            .map_or(0, |s| s.address);
        (m.section_index(), address)
    };
    let mut maps: Vec<(String, Map)> = obj
        .maps
        .iter()
        .map(|(n, m)| (n.clone(), m.clone()))
        .collect();
    maps.sort_by_key(|(n, m)| (position(m), n.clone()));

    // aya-obj would pick some other map in the same section for a symbol
    // that is not a map.
    let map_symbols: HashSet<usize> = maps.iter().filter_map(|(_, m)| m.symbol_index()).collect();
    if let Some((program, sym)) = info.map_refs.iter().find(|(_, s)| !map_symbols.contains(s)) {
        let name = info
            .symbols
            .get(sym)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        return Err(ObjectError::Relocation {
            program: program.clone(),
            message: format!("`{name}` is in a map section but is not a map"),
        });
    }

    let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    obj.relocate_maps(
        maps.iter()
            .enumerate()
            .map(|(i, (n, m))| (n.as_str(), i as i32, m)),
        &text_sections,
    )
    .map_err(relocation_error)?;
    obj.relocate_calls(&text_sections)
        .map_err(relocation_error)?;

    let mut programs: Vec<_> = obj.programs.iter().collect();
    programs.sort_by_key(|(_, p)| (p.section_index, p.address));
    let programs = programs
        .into_iter()
        .map(|(name, p)| {
            let function =
                obj.functions
                    .get(&p.function_key())
                    .ok_or_else(|| ObjectError::Relocation {
                        program: name.clone(),
                        message: "program function missing after linking".to_owned(),
                    })?;
            let section = info
                .sections
                .get(&p.section_index)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let kind = kinds.get(&p.section_index).copied().ok_or_else(|| {
                ObjectError::UnknownSection {
                    section: section.clone(),
                }
            })?;
            Ok(ProgramSpec {
                name: name.clone(),
                section,
                kind,
                insns: function
                    .instructions
                    .iter()
                    .map(|i| RawInsn::new(i.code, i.dst_reg(), i.src_reg(), i.off, i.imm))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, ObjectError>>()?;

    let maps = maps
        .iter()
        .map(|(name, m)| map_spec(name, m, &info, btf.as_ref()))
        .collect();

    // libbpf hands the kernel an empty license when the section is absent;
    // aya-obj substitutes "GPL", which would wrongly unlock GPL-only helpers.
    let license = if info.sections.values().any(|s| s.name == "license") {
        obj.license.to_string_lossy().into_owned()
    } else {
        String::new()
    };

    Ok(ObjectFile {
        license,
        programs,
        maps,
        btf,
    })
}

fn map_spec(name: &str, m: &Map, info: &elf::ElfInfo, btf: Option<&BtfInfo>) -> MapSpec {
    let section = match (m, m.section_kind()) {
        (Map::Btf(_), _) => MapSection::Maps,
        (_, EbpfSectionKind::Data) => MapSection::Data,
        (_, EbpfSectionKind::Rodata) => MapSection::Rodata,
        (_, EbpfSectionKind::Bss) => MapSection::Bss,
        _ => MapSection::LegacyMaps,
    };
    let is_data = matches!(
        section,
        MapSection::Data | MapSection::Rodata | MapSection::Bss
    );
    let nonzero = |id: u32| (id != 0).then_some(id);
    let (btf_key_type_id, btf_value_type_id) = match m {
        Map::Btf(b) => (
            nonzero(b.def.btf_key_type_id),
            nonzero(b.def.btf_value_type_id),
        ),
        Map::Legacy(_) if is_data => (None, btf.and_then(|b| b.find(name))),
        Map::Legacy(_) => (None, None),
    };
    let mut variables: Vec<GlobalVar> = if is_data {
        info.symbols
            .values()
            .filter(|s| {
                s.section == Some(m.section_index())
                    && s.kind == object::SymbolKind::Data
                    && !s.name.is_empty()
                    && !s.name.starts_with(".L")
            })
            .map(|s| GlobalVar {
                name: s.name.clone(),
                offset: s.address as u32,
                size: s.size as u32,
            })
            .collect()
    } else {
        Vec::new()
    };
    variables.sort_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
    MapSpec {
        name: name.to_owned(),
        map_type: m.map_type(),
        key_size: m.key_size(),
        value_size: m.value_size(),
        max_entries: m.max_entries(),
        map_flags: m.map_flags(),
        section,
        initial: if is_data {
            m.data().to_vec()
        } else {
            Vec::new()
        },
        inner: m
            .inner()
            .map(|i| Box::new(map_spec(&format!("{name}.inner"), &i, info, btf))),
        pinning: m.pinning() == PinningType::ByName,
        btf_key_type_id,
        btf_value_type_id,
        variables,
    }
}
