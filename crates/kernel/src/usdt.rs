//! USDT probes (SystemTap `<sys/sdt.h>` notes), attached as libbpf's
//! `bpf_program__attach_usdt` does, for programs written against libbpf's
//! `<bpf/usdt.bpf.h>`:
//!
//! - the target's `.note.stapsdt` notes give each call site of a probe
//!   (provider, name, address, `.stapsdt.base`, semaphore, argument spec);
//! - addresses become file offsets through the `PT_LOAD` segments, after the
//!   `.stapsdt.base` adjustment for prelinked files;
//! - each x86-64 argument spec (`-4@%edi`, `8@-8(%rbp)`, `4@$5`) becomes a
//!   `struct __bpf_usdt_arg_spec` (constant, register, or register
//!   dereference; the register as its offset in `struct pt_regs`; the size
//!   and signedness as a shift), written with the probe's cookie into the
//!   object's `__bpf_usdt_specs` map under a spec id, and the call site's
//!   address into `__bpf_usdt_ip_to_spec_id` where it is known before the
//!   process runs (non-PIE executables), for kernels without BPF cookies;
//! - each call site gets a uprobe whose BPF cookie is the spec id. The
//!   uprobe is opened here with `perf_event_open` (aya 0.14 has no way to
//!   pass a uprobe's `ref_ctr_offset`): for a probe with a semaphore, the
//!   semaphore's file offset is the uprobe's reference counter, so the
//!   kernel increments it in every process that maps the file while the
//!   probe is attached, as libbpf does. The program is attached to the event
//!   with a `BPF_LINK_CREATE` perf-event link carrying the cookie.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _};
use object::{Object as _, ObjectSection as _};
use thiserror::Error;

/// `BPF_USDT_MAX_ARG_CNT` of usdt.bpf.h.
pub const MAX_ARGS: usize = 12;
/// `sizeof(struct __bpf_usdt_spec)` in libbpf's usdt.bpf.h.
pub const SPEC_SIZE: usize = 208;
/// The maps usdt.bpf.h declares.
pub const SPECS_MAP: &str = "__bpf_usdt_specs";
pub const IP_MAP: &str = "__bpf_usdt_ip_to_spec_id";

#[derive(Debug, Error)]
pub enum UsdtError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {message}", path.display())]
    Elf { path: PathBuf, message: String },
    #[error("{}: no USDT probes (no .note.stapsdt section)", path.display())]
    NoNotes { path: PathBuf },
    #[error("{}: no USDT probe {provider}:{name} (probes: {known})", path.display())]
    NoProbe {
        path: PathBuf,
        provider: String,
        name: String,
        known: String,
    },
    #[error("{}: USDT probe {probe}: argument {index} `{arg}`: {message}", path.display())]
    BadArg {
        path: PathBuf,
        probe: String,
        index: usize,
        arg: String,
        message: String,
    },
    #[error("{}: USDT probe {probe}: {message}", path.display())]
    Attach {
        path: PathBuf,
        probe: String,
        message: String,
    },
}

/// One `.note.stapsdt` entry: a call site of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub provider: String,
    pub name: String,
    /// The call site's address, as linked.
    pub pc: u64,
    /// The `.stapsdt.base` address as linked (for prelink adjustment).
    pub base: u64,
    /// The semaphore's address, 0 for none.
    pub semaphore: u64,
    /// The argument spec, e.g. `-4@%edi 8@-8(%rbp)`.
    pub args: String,
}

/// How an argument is found (`enum __bpf_usdt_arg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// `val_off` is the value.
    Const = 0,
    /// The register at `reg_off` in `struct pt_regs`.
    Reg = 1,
    /// User memory at the register's value plus `val_off`.
    RegDeref = 2,
}

/// `struct __bpf_usdt_arg_spec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    pub kind: ArgKind,
    pub val_off: u64,
    pub reg_off: i16,
    pub signed: bool,
    /// 64 minus the argument's size in bits.
    pub bitshift: u8,
}

/// `struct __bpf_usdt_spec`: the arguments and the user's cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub args: Vec<ArgSpec>,
    pub cookie: u64,
}

impl Spec {
    /// The bytes of `struct __bpf_usdt_spec` (x86-64 layout of usdt.bpf.h).
    pub fn to_bytes(&self) -> [u8; SPEC_SIZE] {
        let mut b = [0u8; SPEC_SIZE];
        for (i, a) in self.args.iter().take(MAX_ARGS).enumerate() {
            let at = i * 16;
            b[at..at + 8].copy_from_slice(&a.val_off.to_ne_bytes());
            b[at + 8..at + 12].copy_from_slice(&(a.kind as u32).to_ne_bytes());
            b[at + 12..at + 14].copy_from_slice(&a.reg_off.to_ne_bytes());
            b[at + 14] = u8::from(a.signed);
            b[at + 15] = a.bitshift;
        }
        b[192..200].copy_from_slice(&self.cookie.to_ne_bytes());
        b[200..202].copy_from_slice(&(self.args.len().min(MAX_ARGS) as i16).to_ne_bytes());
        b
    }
}

/// x86-64 register names (64/32/16/8-bit) and their offset in `struct
/// pt_regs`, as libbpf's table.
const REGS: &[([&str; 4], i16)] = &[
    (["rip", "eip", "", ""], 128),
    (["rax", "eax", "ax", "al"], 80),
    (["rbx", "ebx", "bx", "bl"], 40),
    (["rcx", "ecx", "cx", "cl"], 88),
    (["rdx", "edx", "dx", "dl"], 96),
    (["rsi", "esi", "si", "sil"], 104),
    (["rdi", "edi", "di", "dil"], 112),
    (["rbp", "ebp", "bp", "bpl"], 32),
    (["rsp", "esp", "sp", "spl"], 152),
    (["r8", "r8d", "r8w", "r8b"], 72),
    (["r9", "r9d", "r9w", "r9b"], 64),
    (["r10", "r10d", "r10w", "r10b"], 56),
    (["r11", "r11d", "r11w", "r11b"], 48),
    (["r12", "r12d", "r12w", "r12b"], 24),
    (["r13", "r13d", "r13w", "r13b"], 16),
    (["r14", "r14d", "r14w", "r14b"], 8),
    (["r15", "r15d", "r15w", "r15b"], 0),
];

fn reg_off(name: &str) -> Result<i16, String> {
    REGS.iter()
        .find(|(names, _)| !name.is_empty() && names.contains(&name))
        .map(|&(_, off)| off)
        .ok_or_else(|| format!("unknown x86-64 register `%{name}`"))
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = match digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        Some(h) => i64::from_str_radix(h, 16).ok()?,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        None => return None,
    };
    Some(if neg { v.checked_neg()? } else { v })
}

/// One x86-64 argument spec: `SIZE@LOCATION`, SIZE one of ±1, ±2, ±4, ±8
/// (negative: signed), LOCATION `%reg`, `OFF(%reg)`, `(%reg)` or `$CONST`.
pub fn parse_arg(arg: &str) -> Result<ArgSpec, String> {
    let (size, loc) = arg
        .split_once('@')
        .ok_or("expected SIZE@LOCATION".to_string())?;
    let size: i32 = size
        .parse()
        .map_err(|_| format!("size `{size}` is not a number"))?;
    let bytes = size.unsigned_abs();
    if !matches!(bytes, 1 | 2 | 4 | 8) {
        return Err(format!("size {size}: an argument is 1, 2, 4 or 8 bytes"));
    }
    let (kind, val_off, reg) = if let Some(c) = loc.strip_prefix('$') {
        let v = parse_int(c).ok_or_else(|| format!("constant `{c}` is not a number"))?;
        (ArgKind::Const, v as u64, None)
    } else if let Some(r) = loc.strip_prefix('%') {
        (ArgKind::Reg, 0, Some(r))
    } else if let Some((off, rest)) = loc.split_once('(') {
        let inner = rest
            .strip_suffix(')')
            .ok_or_else(|| format!("`{loc}`: no closing parenthesis"))?;
        if inner.contains(',') {
            return Err(format!(
                "`{loc}`: indexed addressing is not supported by this usdt.bpf.h"
            ));
        }
        let r = inner
            .strip_prefix('%')
            .ok_or_else(|| format!("`{loc}`: expected a register in the parentheses"))?;
        let off = if off.is_empty() {
            0
        } else {
            parse_int(off).ok_or_else(|| format!("offset `{off}` is not a number"))?
        };
        (ArgKind::RegDeref, off as u64, Some(r))
    } else {
        return Err(format!("location `{loc}` is not %REG, OFF(%REG) or $CONST"));
    };
    Ok(ArgSpec {
        kind,
        val_off,
        reg_off: match reg {
            Some(r) => reg_off(r)?,
            None => 0,
        },
        signed: size < 0,
        bitshift: (64 - bytes * 8) as u8,
    })
}

/// A whole argument spec string (arguments separated by spaces).
pub fn parse_args(spec: &str) -> Result<Vec<ArgSpec>, (usize, String, String)> {
    let args: Vec<&str> = spec.split_whitespace().collect();
    if args.len() > MAX_ARGS {
        return Err((
            MAX_ARGS,
            args[MAX_ARGS].to_string(),
            format!("more than {MAX_ARGS} arguments (usdt.bpf.h's limit)"),
        ));
    }
    args.iter()
        .enumerate()
        .map(|(i, a)| parse_arg(a).map_err(|m| (i, a.to_string(), m)))
        .collect()
}

/// A `PT_LOAD` segment.
#[derive(Clone, Copy, Debug)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    exec: bool,
}

/// A file's probes: its notes and what is needed to place them.
pub struct Probes {
    pub path: PathBuf,
    pub notes: Vec<Note>,
    /// `.stapsdt.base`'s address, when the file has it.
    base: Option<u64>,
    segments: Vec<Segment>,
    /// `ET_EXEC`: addresses are the run-time addresses.
    fixed: bool,
}

/// One call site, ready to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The call site's file offset (where the uprobe goes).
    pub offset: u64,
    /// The run-time address, for non-PIE executables.
    pub ip: Option<u64>,
    /// The semaphore's file offset, 0 for none.
    pub semaphore_offset: u64,
    pub args: Vec<ArgSpec>,
}

fn elf_err(path: &Path, message: impl Into<String>) -> UsdtError {
    UsdtError::Elf {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Probes {
    /// Reads the USDT notes of an ELF file.
    pub fn read(path: &Path) -> Result<Probes, UsdtError> {
        let data = std::fs::read(path).map_err(|source| UsdtError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Probes::parse(path, &data)
    }

    pub fn parse(path: &Path, data: &[u8]) -> Result<Probes, UsdtError> {
        let elf = ElfFile64::<object::Endianness>::parse(data)
            .map_err(|e| elf_err(path, format!("not a 64-bit ELF file: {e}")))?;
        let endian = elf.endian();
        let header = elf.elf_header();
        let fixed = header.e_type(endian) == object::elf::ET_EXEC;
        let segments = elf
            .elf_program_headers()
            .iter()
            .filter(|p| p.p_type(endian) == object::elf::PT_LOAD)
            .map(|p| Segment {
                vaddr: p.p_vaddr(endian),
                memsz: p.p_memsz(endian),
                offset: p.p_offset(endian),
                exec: p.p_flags(endian) & object::elf::PF_X != 0,
            })
            .collect();
        let base = elf.section_by_name(".stapsdt.base").map(|s| s.address());
        let Some(notes) = elf.section_by_name(".note.stapsdt") else {
            return Err(UsdtError::NoNotes {
                path: path.to_path_buf(),
            });
        };
        let bytes = notes
            .data()
            .map_err(|e| elf_err(path, format!(".note.stapsdt: {e}")))?;
        let notes =
            parse_notes(endian, bytes).map_err(|m| elf_err(path, format!(".note.stapsdt: {m}")))?;
        Ok(Probes {
            path: path.to_path_buf(),
            notes,
            base,
            segments,
            fixed,
        })
    }

    fn segment(&self, addr: u64, exec: bool) -> Option<Segment> {
        self.segments
            .iter()
            .filter(|s| !exec || s.exec)
            .find(|s| s.vaddr <= addr && addr - s.vaddr < s.memsz)
            .copied()
    }

    /// Every call site of `provider:name`.
    pub fn targets(&self, provider: &str, name: &str) -> Result<Vec<Target>, UsdtError> {
        let probe = format!("{provider}:{name}");
        let sites: Vec<&Note> = self
            .notes
            .iter()
            .filter(|n| n.provider == provider && n.name == name)
            .collect();
        if sites.is_empty() {
            let mut known: Vec<String> = self
                .notes
                .iter()
                .map(|n| format!("{}:{}", n.provider, n.name))
                .collect();
            known.sort();
            known.dedup();
            return Err(UsdtError::NoProbe {
                path: self.path.clone(),
                provider: provider.into(),
                name: name.into(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let fail = |message: String| UsdtError::Attach {
            path: self.path.clone(),
            probe: probe.clone(),
            message,
        };
        sites
            .into_iter()
            .map(|n| {
                let args =
                    parse_args(&n.args).map_err(|(index, arg, message)| UsdtError::BadArg {
                        path: self.path.clone(),
                        probe: probe.clone(),
                        index,
                        arg,
                        message,
                    })?;
                // Prelinked files moved .stapsdt.base; the notes did not move.
                let pc = match self.base {
                    Some(base) if n.base != 0 => n.pc.wrapping_add(base).wrapping_sub(n.base),
                    _ => n.pc,
                };
                let seg = self.segment(pc, true).ok_or_else(|| {
                    fail(format!(
                        "address {pc:#x} is in no executable PT_LOAD segment"
                    ))
                })?;
                let semaphore_offset = if n.semaphore == 0 {
                    0
                } else {
                    let s = self.segment(n.semaphore, false).ok_or_else(|| {
                        fail(format!(
                            "semaphore address {:#x} is in no PT_LOAD segment",
                            n.semaphore
                        ))
                    })?;
                    n.semaphore - s.vaddr + s.offset
                };
                Ok(Target {
                    offset: pc - seg.vaddr + seg.offset,
                    ip: self.fixed.then_some(pc),
                    semaphore_offset,
                    args,
                })
            })
            .collect()
    }
}

/// The `stapsdt` notes (type 3) of a `.note.stapsdt` section, read with the
/// file's byte order (the `object` crate walks the note records).
pub fn parse_notes(endian: object::Endianness, b: &[u8]) -> Result<Vec<Note>, String> {
    use object::read::elf::NoteIterator;
    use object::Endian;
    let mut iter = NoteIterator::<object::elf::FileHeader64<object::Endianness>>::new(endian, 4, b)
        .map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    while let Some(note) = iter.next().map_err(|e| e.to_string())? {
        if note.n_type(endian) != 3 || note.name() != b"stapsdt" {
            continue;
        }
        let desc = note.desc();
        if desc.len() < 24 {
            return Err("stapsdt note shorter than its three addresses".into());
        }
        let addr = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&desc[i * 8..i * 8 + 8]);
            endian.read_u64(w)
        };
        let mut strings = desc[24..].split(|&c| c == 0);
        let mut next = |what: &str| -> Result<String, String> {
            strings
                .next()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .ok_or_else(|| format!("stapsdt note without {what}"))
        };
        let provider = next("a provider")?;
        let name = next("a name")?;
        let args = next("an argument spec").unwrap_or_default();
        notes.push(Note {
            provider,
            name,
            pc: addr(0),
            base: addr(1),
            semaphore: addr(2),
            args,
        });
    }
    Ok(notes)
}

/// `PERF_UPROBE_REF_CTR_OFFSET_SHIFT` of the kernel's uprobe PMU.
const REF_CTR_SHIFT: u32 = 32;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PERF_EVENT: u32 = 41;

/// A uprobe attached with its link; dropping it detaches.
pub struct Link {
    _link: OwnedFd,
    _event: OwnedFd,
}

fn uprobe_pmu_type() -> io::Result<u32> {
    // Read once: every call site of every probe needs it.
    static TYPE: std::sync::OnceLock<Result<u32, (io::ErrorKind, String)>> =
        std::sync::OnceLock::new();
    TYPE.get_or_init(|| read_uprobe_pmu_type().map_err(|e| (e.kind(), e.to_string())))
        .clone()
        .map_err(|(kind, msg)| io::Error::new(kind, msg))
}

fn read_uprobe_pmu_type() -> io::Result<u32> {
    let path = "/sys/bus/event_source/devices/uprobe/type";
    std::fs::read_to_string(path)
        .and_then(|s| {
            s.trim()
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {s:?}")))
        })
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{path}: {e} (is CONFIG_UPROBE_EVENTS on?)"),
            )
        })
}

/// A uprobe at `offset` of `path` (every process, or `pid`), with the
/// semaphore at `ref_ctr_offset` counted (0: none), running `prog` with the
/// BPF cookie `cookie`.
pub fn attach_uprobe(
    prog: BorrowedFd<'_>,
    path: &Path,
    offset: u64,
    ref_ctr_offset: u64,
    pid: Option<u32>,
    cookie: u64,
) -> io::Result<Link> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // struct perf_event_attr (PERF_ATTR_SIZE_VER7, 128 bytes).
    let mut attr = [0u64; 16];
    let size: u32 = 128;
    // The kernel takes the semaphore's offset in config's upper 32 bits.
    let ref_ctr = u32::try_from(ref_ctr_offset).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: semaphore at file offset {ref_ctr_offset:#x} is past the 4 GiB a uprobe can count",
                path.display()
            ),
        )
    })?;
    attr[0] = u64::from(uprobe_pmu_type()?) | (u64::from(size) << 32);
    attr[1] = u64::from(ref_ctr) << REF_CTR_SHIFT; // config (bit 0: retprobe)
    attr[7] = c_path.as_ptr() as u64; // config1: uprobe_path
    attr[8] = offset; // config2: probe_offset
    let (pid, cpu) = match pid {
        Some(p) => (p as libc::c_int, -1),
        None => (-1, 0),
    };
    // SAFETY: attr is a perf_event_attr of `size` bytes; the path it points
    // to lives until the call returns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            pid,
            cpu as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("perf_event_open (uprobe): {e}"),
        ));
    }
    // SAFETY: a new descriptor we own.
    let event = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // union bpf_attr.link_create: prog_fd, target_fd, attach_type, flags,
    // perf_event.bpf_cookie.
    let mut la = [0u32; 8];
    la[0] = prog.as_raw_fd() as u32;
    la[1] = event.as_raw_fd() as u32;
    la[2] = BPF_PERF_EVENT;
    la[4] = cookie as u32;
    la[5] = (cookie >> 32) as u32;
    // SAFETY: la is the link_create attribute, sized as passed.
    let link = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            la.as_mut_ptr(),
            std::mem::size_of_val(&la) as libc::c_long,
        )
    };
    if link < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("BPF_LINK_CREATE (perf event): {e}"),
        ));
    }
    // SAFETY: a new descriptor we own.
    let link = unsafe { OwnedFd::from_raw_fd(link as i32) };
    // SAFETY: an ioctl without argument on our perf event.
    if unsafe { libc::ioctl(event.as_raw_fd(), PERF_EVENT_IOC_ENABLE as _, 0) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("enabling the uprobe: {e}"),
        ));
    }
    Ok(Link {
        _link: link,
        _event: event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(kind: ArgKind, val_off: i64, reg_off: i16, signed: bool, bytes: u8) -> ArgSpec {
        ArgSpec {
            kind,
            val_off: val_off as u64,
            reg_off,
            signed,
            bitshift: 64 - bytes * 8,
        }
    }

    #[test]
    fn x86_64_argument_specs_parse_as_libbpf_parses_them() {
        use ArgKind::*;
        let rows: &[(&str, ArgSpec)] = &[
            ("-4@%edi", arg(Reg, 0, 112, true, 4)),
            ("8@%rax", arg(Reg, 0, 80, false, 8)),
            ("-1@%r8b", arg(Reg, 0, 72, true, 1)),
            ("2@%r11w", arg(Reg, 0, 48, false, 2)),
            ("1@%sil", arg(Reg, 0, 104, false, 1)),
            ("8@-8(%rbp)", arg(RegDeref, -8, 32, false, 8)),
            ("-2@-18(%rsp)", arg(RegDeref, -18, 152, true, 2)),
            ("8@(%rsp)", arg(RegDeref, 0, 152, false, 8)),
            ("4@16(%r15)", arg(RegDeref, 16, 0, false, 4)),
            ("4@$5", arg(Const, 5, 0, false, 4)),
            ("-4@$-7", arg(Const, -7, 0, true, 4)),
            ("8@$0x10", arg(Const, 16, 0, false, 8)),
        ];
        for (text, want) in rows {
            assert_eq!(parse_arg(text).as_ref(), Ok(want), "{text}");
        }
        assert_eq!(
            parse_args("-4@%edi 8@-8(%rbp) 4@$5").unwrap(),
            vec![rows[0].1, rows[5].1, rows[9].1]
        );
        assert_eq!(parse_args("").unwrap(), vec![]);
    }

    #[test]
    fn malformed_argument_specs_are_errors_naming_the_argument() {
        for (text, why) in [
            ("4", "SIZE@LOCATION"),
            ("3@%eax", "1, 2, 4 or 8"),
            ("x@%eax", "not a number"),
            ("4@%xyz", "unknown x86-64 register `%xyz`"),
            ("4@%", "unknown x86-64 register"),
            ("4@$abc", "constant `abc`"),
            ("4@-8(%rbp", "no closing parenthesis"),
            ("4@-8(rbp)", "expected a register"),
            ("4@z(%rbp)", "offset `z`"),
            ("4@-4(%rbp,%rax,8)", "indexed addressing"),
            ("8@8+0(%rip)", "offset `8+0`"),
            ("4@eax", "is not %REG"),
        ] {
            let err = parse_arg(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let (index, arg, _) = parse_args("4@%eax 4@%nope").unwrap_err();
        assert_eq!((index, arg.as_str()), (1, "4@%nope"));
        let many = vec!["4@%eax"; 13].join(" ");
        assert!(parse_args(&many).unwrap_err().2.contains("more than 12"));
    }

    #[test]
    fn specs_have_the_layout_of_usdt_bpf_h() {
        let spec = Spec {
            args: vec![
                parse_arg("-4@-20(%rbp)").unwrap(),
                parse_arg("8@$3").unwrap(),
            ],
            cookie: 0x1122,
        };
        let b = spec.to_bytes();
        assert_eq!(i64::from_ne_bytes(b[0..8].try_into().unwrap()), -20);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 2);
        assert_eq!(i16::from_ne_bytes(b[12..14].try_into().unwrap()), 32);
        assert_eq!((b[14], b[15]), (1, 32));
        assert_eq!(u64::from_ne_bytes(b[16..24].try_into().unwrap()), 3);
        assert_eq!((b[30], b[31]), (0, 0));
        assert_eq!(u64::from_ne_bytes(b[192..200].try_into().unwrap()), 0x1122);
        assert_eq!(i16::from_ne_bytes(b[200..202].try_into().unwrap()), 2);
    }

    #[test]
    fn notes_parse_and_bad_notes_are_errors() {
        let mut desc = Vec::new();
        for v in [0x1234u64, 0x2000, 0x4038] {
            desc.extend_from_slice(&v.to_ne_bytes());
        }
        desc.extend_from_slice(b"prov\0probe\0-4@%edi\0");
        let mut note = Vec::new();
        note.extend_from_slice(&8u32.to_ne_bytes());
        note.extend_from_slice(&(desc.len() as u32).to_ne_bytes());
        note.extend_from_slice(&3u32.to_ne_bytes());
        note.extend_from_slice(b"stapsdt\0");
        note.extend_from_slice(&desc);
        while note.len() % 4 != 0 {
            note.push(0);
        }
        let native = if cfg!(target_endian = "little") {
            object::Endianness::Little
        } else {
            object::Endianness::Big
        };
        let notes = parse_notes(native, &note).unwrap();
        assert_eq!(
            notes,
            vec![Note {
                provider: "prov".into(),
                name: "probe".into(),
                pc: 0x1234,
                base: 0x2000,
                semaphore: 0x4038,
                args: "-4@%edi".into(),
            }]
        );
        // Cuts into the header, the name and the description (the padding
        // after the last note may be missing).
        for cut in [1, 11, 20, note.len() - 2] {
            assert!(parse_notes(native, &note[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Probes::parse(Path::new("junk"), b"not an elf").is_err());
    }
}
