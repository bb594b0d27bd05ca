//! clang-built eBPF objects in the kernel, on aya: globals set before load,
//! programs loaded and attached by name, maps reached by name.

use crate::error_chain;
use crate::maps::{KernelMap, MapError};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy};
use aya::programs::{
    BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, FEntry, KProbe, Lsm,
    PerfEvent, RawTracePoint, SchedClassifier, SkMsg, SkSkb, SocketFilter, TcAttachType,
    TracePoint, UProbe, Xdp,
};
use aya::{Btf, Ebpf, EbpfLoader};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ObjectError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading the object: {0}")]
    Load(String),
    /// Preparing the object for the kernel (its `__kconfig` externs).
    #[error("loading the object: {0}")]
    Prepare(bpfkit_object::ObjectError),
    #[error("program `{program}`: {error}")]
    Usdt {
        program: String,
        error: Box<crate::usdt::UsdtError>,
    },
    #[error("the object has no program `{0}`")]
    NoProgram(String),
    #[error("the object has no map `{0}`")]
    NoMap(String),
    #[error("program `{program}` is a {actual} program, not a {wanted} program")]
    WrongType {
        program: String,
        actual: String,
        wanted: &'static str,
    },
    #[error("program `{program}`: {action}: {message}")]
    Program {
        program: String,
        action: &'static str,
        message: String,
    },
    #[error("program `{program}`: this kernel refused the {kind} program ({message}); it needs {feature}")]
    Unsupported {
        program: String,
        kind: String,
        feature: &'static str,
        message: String,
    },
    #[error("program `{}`: the verifier rejected it ({}): {}{}\n{}", .0.program, .0.errno, .0.reason, .0.at_text(), .0.log)]
    Rejected(Box<Rejection>),
    #[error("program `{program}`: test run: {message}")]
    TestRun { program: String, message: String },
    #[error(transparent)]
    Map(#[from] MapError),
}

/// What the verifier said about a program it refused.
#[derive(Debug)]
pub struct Rejection {
    pub program: String,
    pub errno: String,
    /// The verifier's complaint.
    pub reason: String,
    /// The instruction it stopped at, disassembled by bpfkit.
    pub at: Option<(usize, String)>,
    /// The whole verifier log.
    pub log: String,
}

impl Rejection {
    fn at_text(&self) -> String {
        self.at
            .as_ref()
            .map(|(pc, text)| format!(" at instruction {pc}: {text}"))
            .unwrap_or_default()
    }
}

/// Where to attach a program.
#[derive(Clone, Debug)]
pub enum Attach<'a> {
    /// `tracepoint/CATEGORY/NAME` (needs tracefs).
    Tracepoint { category: &'a str, name: &'a str },
    /// `raw_tracepoint/NAME`.
    RawTracepoint { name: &'a str },
    /// `tp_btf/NAME`: typed through the kernel's BTF.
    BtfTracepoint { name: &'a str },
    /// `uprobe` / `uretprobe`: a function of an executable or library, by
    /// symbol or by file offset, in every process or only in `pid`.
    Uprobe {
        target: &'a Path,
        symbol: Option<&'a str>,
        offset: u64,
        pid: Option<u32>,
    },
    /// `usdt`: every call site of the USDT probe `provider:name` in an
    /// executable or library, in every process or only in `pid`, as libbpf's
    /// `bpf_program__attach_usdt` (for programs using `<bpf/usdt.bpf.h>`);
    /// `cookie` is what `bpf_usdt_cookie()` returns. Probes guarded by a
    /// semaphore have it counted while attached.
    Usdt {
        target: &'a Path,
        provider: &'a str,
        name: &'a str,
        pid: Option<u32>,
        cookie: u64,
    },
    /// `perf_event`: CPU-clock sampling at `frequency` Hz on every online CPU.
    CpuClock { frequency: u64 },
    /// `perf_event`: any perf event (`perf_event_attr.type` and `.config`,
    /// as ebpf_exporter's `perf_event/type=N,config=N,frequency=N`),
    /// sampled on every online CPU.
    PerfEvent {
        event_type: u32,
        config: u64,
        sample: Sample,
    },
    /// `xdp` on an interface of the calling thread's network namespace.
    Xdp { interface: &'a str, mode: XdpMode },
    /// `tc` (SCHED_CLS) on an interface: tcx where the kernel has it (6.6+),
    /// a clsact qdisc otherwise (aya chooses).
    Tc { interface: &'a str, ingress: bool },
    /// `sk_skb/stream_parser` or `sk_skb/stream_verdict` on a sockmap or
    /// sockhash of this object.
    SkSkb { map: &'a str },
    /// `sk_msg` on a sockmap or sockhash of this object.
    SkMsg { map: &'a str },
    /// `socket`: a socket filter on one socket.
    SocketFilter { socket: BorrowedFd<'a> },
    /// `cgroup_skb/ingress` or `cgroup_skb/egress` on a cgroup v2 directory.
    CgroupSkb { cgroup: &'a Path, egress: bool },
    /// `kprobe` / `kretprobe` on a kernel function (needs CONFIG_KPROBES).
    Kprobe { function: &'a str },
    /// `fentry` / `fexit` on a kernel function (needs BPF trampolines).
    Fentry { function: &'a str },
    /// `lsm/HOOK` (needs BPF trampolines and the bpf LSM enabled).
    Lsm { hook: &'a str },
}

/// The kernel feature a program kind depends on, for errors when the running
/// kernel refuses it.
fn needed_feature(kind: &str) -> &'static str {
    match kind {
        "kprobe" => "kprobes (CONFIG_KPROBES, with /sys/kernel/tracing/kprobe_events)",
        "fentry" => "BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and a JIT that supports them)",
        _ => "the BPF LSM (CONFIG_BPF_LSM, with \"bpf\" in the lsm= boot parameter) and BPF trampolines",
    }
}

/// `PERF_TYPE_SOFTWARE` and its `PERF_COUNT_SW_CPU_CLOCK`, from
/// linux/perf_event.h.
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;

/// How often a perf event runs its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample {
    /// About this many times a second.
    Frequency(u64),
    /// Once every this many events.
    Period(u64),
}

/// How an XDP program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Whichever the kernel chooses: in the driver where it has XDP, else
    /// generic (libbpf's default).
    Default,
    /// In the driver (native XDP).
    Driver,
    /// Generic XDP, in the network stack, for any interface.
    Generic,
}

/// An object before load: its bytes and the globals to set.
pub struct ObjectLoader {
    bytes: Vec<u8>,
    globals: Vec<(String, Vec<u8>)>,
}

impl ObjectLoader {
    pub fn open(path: &Path) -> Result<Self, ObjectError> {
        let bytes = std::fs::read(path).map_err(|source| ObjectError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        ObjectLoader {
            bytes,
            globals: Vec::new(),
        }
    }

    /// Sets a global (`const volatile` in .rodata, or .data/.bss) before load.
    pub fn set_global(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.globals.push((name.to_string(), value.to_vec()));
        self
    }

    /// Creates the maps and relocates the programs (nothing is verified yet:
    /// programs load when attached or through [`KernelObject::load_program`]).
    /// `__kconfig` externs get the running kernel's values
    /// ([`crate::kconfig`]).
    pub fn load(&self) -> Result<KernelObject, ObjectError> {
        let mut loader = EbpfLoader::new();
        for (name, value) in &self.globals {
            loader.override_global(name.as_str(), value.as_slice(), true);
        }
        let config = |name: &str| crate::kconfig::KernelConfig::running().get(name);
        let bytes = bpfkit_object::kernel_object(
            &self.bytes,
            bpfkit_object::KconfigValues::Lookup(&config),
        )
        .map_err(ObjectError::Prepare)?;
        let ebpf = loader
            .load(&bytes)
            .map_err(|e| ObjectError::Load(error_chain(&e)))?;
        Ok(KernelObject {
            ebpf,
            bytes: bytes.into_owned(),
            usdt: Usdt::default(),
        })
    }
}

/// A loaded object. Dropping it detaches its programs and frees its maps.
pub struct KernelObject {
    /// USDT uprobes, detached before the programs and maps go.
    usdt: Usdt,
    ebpf: Ebpf,
    /// The ELF as loaded, to show a rejected program's instructions with
    /// bpfkit's own disassembler.
    bytes: Vec<u8>,
}

/// The USDT attachments of an object: links, and the spec ids handed out
/// (one per distinct argument spec and cookie, as libbpf shares them).
#[derive(Default)]
struct Usdt {
    links: Vec<crate::usdt::Link>,
    specs: Vec<[u8; crate::usdt::SPEC_SIZE]>,
}

/// Turns aya's error for `action` on `program` into ours: a verifier
/// refusal with its log named by instruction, anything else with its chain.
fn program_failed<'a>(
    bytes: &'a [u8],
    program: &'a str,
    action: &'static str,
) -> impl Fn(aya::programs::ProgramError) -> ObjectError + 'a {
    move |e| match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => rejected(bytes, program, &io_error, &verifier_log.to_string()),
        e => ObjectError::Program {
            program: program.to_string(),
            action,
            message: error_chain(&e),
        },
    }
}

/// A verifier rejection: the log, and the instruction it stopped at as
/// bpfkit's disassembler shows it (from the object's own bytes; map loads
/// show before relocation).
fn rejected(bytes: &[u8], program: &str, errno: &std::io::Error, log: &str) -> ObjectError {
    let log = crate::VerifierLog::new(log);
    let at = log.failing_insn().and_then(|pc| {
        let slots = program_slots(bytes, program)?;
        // The log counts the linked program, subprograms included; only
        // the function's own slots are at hand here.
        if pc >= slots.len() {
            return None;
        }
        let insn = bpfkit_isa::Instruction::decode(&slots, pc).ok()?;
        Some((
            pc,
            bpfkit_isa::disasm::format_insn(&insn, bpfkit_isa::Dialect::Llvm),
        ))
    });
    ObjectError::Rejected(Box::new(Rejection {
        program: program.to_string(),
        errno: errno.to_string(),
        reason: log.error_line().to_string(),
        at,
        log: log.as_str().to_string(),
    }))
}

/// The instruction slots of a program's function in the ELF.
fn program_slots(bytes: &[u8], program: &str) -> Option<Vec<bpfkit_isa::RawInsn>> {
    let obj = aya_obj::Object::parse(bytes).ok()?;
    let f = obj.functions.values().find(|f| f.name == program)?;
    Some(
        f.instructions
            .iter()
            .map(|i| {
                // SAFETY: bpf_insn is the 8-byte kernel instruction layout.
                let b: [u8; 8] = unsafe { std::mem::transmute_copy(i) };
                bpfkit_isa::RawInsn::from_bytes(b)
            })
            .collect(),
    )
}

/// The error for a program kind the running kernel may not support: aya's
/// reason, and the feature that is probably missing.
fn unsupported_msg(program: &str, kind: &str, e: &dyn std::error::Error) -> ObjectError {
    ObjectError::Unsupported {
        program: program.to_string(),
        kind: kind.to_string(),
        feature: needed_feature(kind),
        message: error_chain(e),
    }
}

fn unsupported<'a>(
    program: &'a str,
    kind: &'a str,
) -> impl Fn(aya::programs::ProgramError) -> ObjectError + 'a {
    move |e| unsupported_msg(program, kind, &e)
}

/// Every kind of aya map wraps the same `MapData`.
fn map_data(m: &aya::maps::Map) -> &aya::maps::MapData {
    use aya::maps::Map::*;
    match m {
        Array(d)
        | ArrayOfMaps(d)
        | BloomFilter(d)
        | CgroupArray(d)
        | CgroupStorage(d)
        | CgrpStorage(d)
        | CpuMap(d)
        | DevMap(d)
        | DevMapHash(d)
        | HashMap(d)
        | HashOfMaps(d)
        | InodeStorage(d)
        | LpmTrie(d)
        | LruHashMap(d)
        | PerCpuArray(d)
        | PerCpuCgroupStorage(d)
        | PerCpuHashMap(d)
        | PerCpuLruHashMap(d)
        | PerfEventArray(d)
        | ProgramArray(d)
        | Queue(d)
        | ReusePortSockArray(d)
        | RingBuf(d)
        | SockHash(d)
        | SockMap(d)
        | SkStorage(d)
        | Stack(d)
        | StackTraceMap(d)
        | Unsupported(d)
        | XskMap(d) => d,
    }
}

macro_rules! program_as {
    ($self:ident, $name:ident, $ty:ty, $wanted:literal) => {{
        let p = $self
            .ebpf
            .program_mut($name)
            .ok_or_else(|| ObjectError::NoProgram($name.to_string()))?;
        let actual = format!("{:?}", p.prog_type());
        let p: &mut $ty = p.try_into().map_err(|_| ObjectError::WrongType {
            program: $name.to_string(),
            actual,
            wanted: $wanted,
        })?;
        p
    }};
}

impl KernelObject {
    /// Program names, in the object's order.
    pub fn program_names(&self) -> Vec<String> {
        self.ebpf.programs().map(|(n, _)| n.to_string()).collect()
    }

    /// Map names (global data sections appear as `.data`, `.rodata`, `.bss`).
    pub fn map_names(&self) -> Vec<String> {
        self.ebpf.maps().map(|(n, _)| n.to_string()).collect()
    }

    /// Loads (verifies) and attaches a program.
    pub fn attach(&mut self, program: &str, at: Attach<'_>) -> Result<(), ObjectError> {
        let bytes = &self.bytes;
        let fail = |action: &'static str| program_failed(bytes, program, action);
        match at {
            Attach::Tracepoint { category, name } => {
                crate::setup::ensure(crate::setup::Mount::Tracefs).map_err(|e| {
                    ObjectError::Program {
                        program: program.to_string(),
                        action: "attach",
                        message: e.to_string(),
                    }
                })?;
                let p = program_as!(self, program, TracePoint, "tracepoint");
                p.load().map_err(fail("load"))?;
                p.attach(category, name).map_err(fail("attach"))?;
            }
            Attach::RawTracepoint { name } => {
                let p = program_as!(self, program, RawTracePoint, "raw tracepoint");
                p.load().map_err(fail("load"))?;
                p.attach(name).map_err(fail("attach"))?;
            }
            Attach::BtfTracepoint { name } => {
                let btf = Btf::from_sys_fs().map_err(|e| ObjectError::Program {
                    program: program.to_string(),
                    action: "read kernel BTF",
                    message: error_chain(&e),
                })?;
                let p = program_as!(self, program, BtfTracePoint, "tp_btf");
                p.load(name, &btf).map_err(fail("load"))?;
                p.attach().map_err(fail("attach"))?;
            }
            Attach::Uprobe {
                target,
                symbol,
                offset,
                pid,
            } => {
                let p = program_as!(self, program, UProbe, "uprobe");
                p.load().map_err(fail("load"))?;
                let scope = match pid.and_then(std::num::NonZeroU32::new) {
                    Some(pid) => aya::programs::uprobe::UProbeScope::OneProcess(pid),
                    None => aya::programs::uprobe::UProbeScope::AllProcesses,
                };
                match symbol {
                    Some(sym) => p.attach(sym, target, scope),
                    None => p.attach(offset, target, scope),
                }
                .map_err(fail("attach"))?;
            }
            Attach::Usdt {
                target,
                provider,
                name,
                pid,
                cookie,
            } => return self.attach_usdt(program, target, provider, name, pid, cookie),
            Attach::CpuClock { frequency } => {
                return self.attach(
                    program,
                    Attach::PerfEvent {
                        event_type: PERF_TYPE_SOFTWARE,
                        config: PERF_COUNT_SW_CPU_CLOCK,
                        sample: Sample::Frequency(frequency),
                    },
                );
            }
            Attach::PerfEvent {
                event_type,
                config,
                sample,
            } => {
                let cpus = aya::util::online_cpus().map_err(|(what, e)| ObjectError::Program {
                    program: program.to_string(),
                    action: "list online CPUs",
                    message: format!("{what}: {e}"),
                })?;
                let p = program_as!(self, program, PerfEvent, "perf_event");
                p.load().map_err(fail("load"))?;
                let policy = match sample {
                    Sample::Frequency(f) => SamplePolicy::Frequency(f),
                    Sample::Period(p) => SamplePolicy::Period(p),
                };
                for cpu in cpus {
                    // `Pmu` passes type and config through unchanged, so
                    // every event type is reachable by number.
                    p.attach(
                        PerfEventConfig::Pmu {
                            pmu_type: event_type,
                            config,
                        },
                        PerfEventScope::AllProcessesOneCpu { cpu },
                        policy,
                        false,
                    )
                    .map_err(|e| ObjectError::Program {
                        program: program.to_string(),
                        action: "attach",
                        message: format!(
                            "perf event type {event_type} config {config} on CPU {cpu}: {}",
                            crate::error_chain(&e)
                        ),
                    })?;
                }
            }
            Attach::Xdp { interface, mode } => {
                let p = program_as!(self, program, Xdp, "xdp");
                p.load().map_err(fail("load"))?;
                let mode = match mode {
                    XdpMode::Default => aya::programs::xdp::XdpMode::Default,
                    XdpMode::Driver => aya::programs::xdp::XdpMode::Driver,
                    XdpMode::Generic => aya::programs::xdp::XdpMode::Skb,
                };
                p.attach(interface, mode).map_err(fail("attach"))?;
            }
            Attach::Tc { interface, ingress } => {
                // tcx needs no qdisc; older kernels need clsact, which may
                // already be there.
                let _ = aya::programs::tc::qdisc_add_clsact(interface);
                let p = program_as!(self, program, SchedClassifier, "tc");
                p.load().map_err(fail("load"))?;
                let at = if ingress {
                    TcAttachType::Ingress
                } else {
                    TcAttachType::Egress
                };
                p.attach(interface, at).map_err(fail("attach"))?;
            }
            Attach::SkSkb { map } => {
                let fd = self.sock_map_fd(map)?;
                let p = program_as!(self, program, SkSkb, "sk_skb");
                p.load().map_err(fail("load"))?;
                p.attach(&fd).map_err(fail("attach"))?;
            }
            Attach::SkMsg { map } => {
                let fd = self.sock_map_fd(map)?;
                let p = program_as!(self, program, SkMsg, "sk_msg");
                p.load().map_err(fail("load"))?;
                p.attach(&fd).map_err(fail("attach"))?;
            }
            Attach::SocketFilter { socket } => {
                let p = program_as!(self, program, SocketFilter, "socket filter");
                p.load().map_err(fail("load"))?;
                p.attach(socket).map_err(fail("attach"))?;
            }
            Attach::CgroupSkb { cgroup, egress } => {
                let dir = std::fs::File::open(cgroup).map_err(|e| ObjectError::Program {
                    program: program.to_string(),
                    action: "open cgroup",
                    message: format!("{}: {e}", cgroup.display()),
                })?;
                let p = program_as!(self, program, CgroupSkb, "cgroup_skb");
                p.load().map_err(fail("load"))?;
                let at = if egress {
                    CgroupSkbAttachType::Egress
                } else {
                    CgroupSkbAttachType::Ingress
                };
                p.attach(dir, at, CgroupAttachMode::Single)
                    .map_err(fail("attach"))?;
            }
            Attach::Kprobe { function } => {
                let unsupported = unsupported(program, "kprobe");
                let p = program_as!(self, program, KProbe, "kprobe");
                p.load().map_err(&unsupported)?;
                p.attach(function, 0).map_err(&unsupported)?;
            }
            Attach::Fentry { function } => {
                let unsupported = unsupported(program, "fentry");
                let btf = Btf::from_sys_fs().map_err(|e| unsupported_msg(program, "fentry", &e))?;
                let p = program_as!(self, program, FEntry, "fentry");
                p.load(function, &btf).map_err(&unsupported)?;
                p.attach().map_err(&unsupported)?;
            }
            Attach::Lsm { hook } => {
                let unsupported = unsupported(program, "lsm");
                let btf = Btf::from_sys_fs().map_err(|e| unsupported_msg(program, "lsm", &e))?;
                let p = program_as!(self, program, Lsm, "lsm");
                p.load(hook, &btf).map_err(&unsupported)?;
                p.attach().map_err(&unsupported)?;
            }
        }
        Ok(())
    }

    /// [`Attach::Usdt`]: see [`crate::usdt`].
    fn attach_usdt(
        &mut self,
        program: &str,
        target: &Path,
        provider: &str,
        name: &str,
        pid: Option<u32>,
        cookie: u64,
    ) -> Result<(), ObjectError> {
        use crate::usdt::{Probes, Spec, UsdtError, IP_MAP, SPECS_MAP, SPEC_SIZE};
        let usdt_err = |error| ObjectError::Usdt {
            program: program.to_string(),
            error: Box::new(error),
        };
        let probe = format!("{provider}:{name}");
        let fail = |message: String| {
            usdt_err(UsdtError::Attach {
                path: target.to_path_buf(),
                probe: probe.clone(),
                message,
            })
        };
        // The kernel resolves the path as given; one absolute path for the
        // notes and the uprobes.
        let path = std::fs::canonicalize(target).map_err(|source| {
            usdt_err(UsdtError::Read {
                path: target.to_path_buf(),
                source,
            })
        })?;
        let sites = Probes::read(&path)
            .and_then(|p| p.targets(provider, name))
            .map_err(|e| {
                // Name the path as the caller wrote it.
                usdt_err(match e {
                    UsdtError::Read { source, .. } => UsdtError::Read {
                        path: target.to_path_buf(),
                        source,
                    },
                    e => e,
                })
            })?;
        let specs = self.map(SPECS_MAP).map_err(|_| {
            fail(format!(
                "the object has no `{SPECS_MAP}` map: is the program written with <bpf/usdt.bpf.h>?"
            ))
        })?;
        if specs.value_size != SPEC_SIZE {
            return Err(fail(format!(
                "`{SPECS_MAP}` values are {} bytes, not the {SPEC_SIZE} of the usdt.bpf.h bpfkit knows",
                specs.value_size
            )));
        }
        let ips = self.map(IP_MAP).ok();
        let has_cookie = crate::kconfig::KernelConfig::running()
            .get("LINUX_HAS_BPF_COOKIE")
            .as_deref()
            == Some("y");

        let bytes = &self.bytes;
        let p = program_as!(self, program, UProbe, "uprobe");
        if p.fd().is_err() {
            p.load().map_err(program_failed(bytes, program, "load"))?;
        }
        let prog_fd = p
            .fd()
            .map_err(|e| fail(error_chain(&e)))?
            .try_clone()
            .map_err(|e| fail(e.to_string()))?;
        let mut links = Vec::new();
        for site in sites {
            let spec = Spec {
                args: site.args.clone(),
                cookie,
            }
            .to_bytes();
            let id = match self.usdt.specs.iter().position(|s| *s == spec) {
                Some(id) => id,
                None => {
                    let id = self.usdt.specs.len();
                    if id >= specs.max_entries as usize {
                        return Err(fail(format!(
                            "`{SPECS_MAP}` is full ({} specs; raise BPF_USDT_MAX_SPEC_CNT)",
                            specs.max_entries
                        )));
                    }
                    specs
                        .update(&(id as u32).to_ne_bytes(), &spec, 0)
                        .map_err(|e| fail(format!("writing spec {id}: {e}")))?;
                    self.usdt.specs.push(spec);
                    id
                }
            };
            match (site.ip, &ips) {
                (Some(ip), Some(ips)) => ips
                    .update(&ip.to_ne_bytes(), &(id as u32).to_ne_bytes(), 0)
                    .map_err(|e| fail(format!("writing `{IP_MAP}`: {e}")))?,
                _ if !has_cookie => {
                    return Err(fail(
                        "this kernel has no BPF cookies and the call site's address is only known at run time (a PIE or library)".into(),
                    ))
                }
                _ => {}
            }
            let link = crate::usdt::attach_uprobe(
                std::os::fd::AsFd::as_fd(&prog_fd),
                &path,
                site.offset,
                site.semaphore_offset,
                pid,
                id as u64,
            )
            .map_err(|e| fail(format!("call site at file offset {:#x}: {e}", site.offset)))?;
            links.push(link);
        }
        self.usdt.links.extend(links);
        Ok(())
    }

    /// Runs a networking program (XDP, tc, socket filter) once or `repeat`
    /// times on a packet with BPF_PROG_TEST_RUN, loading it first if needed.
    pub fn test_run(
        &mut self,
        program: &str,
        run: &crate::TestRun<'_>,
    ) -> Result<crate::TestRunOutput, ObjectError> {
        let fail = |message: String| ObjectError::TestRun {
            program: program.to_string(),
            message,
        };
        let p = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| ObjectError::NoProgram(program.to_string()))?;
        if p.fd().is_err() {
            let loaded = match p {
                aya::programs::Program::Xdp(x) => x.load(),
                aya::programs::Program::SchedClassifier(x) => x.load(),
                aya::programs::Program::SocketFilter(x) => x.load(),
                aya::programs::Program::RawTracePoint(x) => x.load(),
                other => {
                    return Err(fail(format!(
                        "{:?} programs cannot be test-run here (XDP, tc, socket filters and raw tracepoints can)",
                        other.prog_type()
                    )))
                }
            };
            loaded.map_err(|e| ObjectError::Program {
                program: program.to_string(),
                action: "load",
                message: error_chain(&e),
            })?;
        }
        let fd = p.fd().map_err(|e| fail(error_chain(&e)))?;
        crate::test_run_fd(std::os::fd::AsFd::as_fd(fd), run).map_err(|e| fail(e.to_string()))
    }

    /// A descriptor of a sockmap or sockhash, to attach SK_SKB/SK_MSG to.
    fn sock_map_fd(&self, name: &str) -> Result<aya::maps::sock::SockMapFd, ObjectError> {
        use aya::maps::{Map, SockHash, SockMap};
        let m = self
            .ebpf
            .map(name)
            .ok_or_else(|| ObjectError::NoMap(name.to_string()))?;
        let not_sock = |message: String| ObjectError::Program {
            program: name.to_string(),
            action: "use as a sockmap",
            message,
        };
        let fd = match m {
            Map::SockMap(_) => SockMap::try_from(m)
                .map_err(|e| not_sock(error_chain(&e)))?
                .fd()
                .try_clone(),
            Map::SockHash(_) => SockHash::<_, u32>::try_from(m)
                .map_err(|e| not_sock(error_chain(&e)))?
                .fd()
                .try_clone(),
            _ => return Err(not_sock("not a sockmap or sockhash".into())),
        };
        fd.map_err(|e| not_sock(e.to_string()))
    }

    /// A map by name, for byte-level access.
    pub fn map(&self, name: &str) -> Result<KernelMap, ObjectError> {
        let m = self
            .ebpf
            .map(name)
            .ok_or_else(|| ObjectError::NoMap(name.to_string()))?;
        let info = map_data(m).info().map_err(|e| ObjectError::Program {
            program: name.to_string(),
            action: "map info",
            message: error_chain(&e),
        })?;
        let map_type = info.map_type().map(|t| t as u32).unwrap_or(0);
        Ok(KernelMap::from_id(
            name,
            info.id(),
            map_type,
            info.key_size() as usize,
            info.value_size() as usize,
            info.max_entries(),
        )?)
    }

    /// The underlying aya object, for what this API does not cover yet.
    pub fn aya(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// Map plumbing a program cannot do itself: tail-call tables, maps of maps,
/// ring buffers.
impl KernelObject {
    /// Loads (verifies) a packet program if it is not loaded yet.
    fn ensure_loaded(&mut self, program: &str) -> Result<(), ObjectError> {
        let bytes = &self.bytes;
        let p = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| ObjectError::NoProgram(program.to_string()))?;
        if p.fd().is_ok() {
            return Ok(());
        }
        let loaded = match p {
            aya::programs::Program::Xdp(x) => x.load(),
            aya::programs::Program::SchedClassifier(x) => x.load(),
            aya::programs::Program::SocketFilter(x) => x.load(),
            other => {
                return Err(ObjectError::Program {
                    program: program.to_string(),
                    action: "load",
                    message: format!(
                        "{:?} programs cannot be loaded here (XDP, tc and socket filters can)",
                        other.prog_type()
                    ),
                })
            }
        };
        loaded.map_err(program_failed(bytes, program, "load"))
    }

    /// Puts `program` (loading it first if needed) at `index` of the
    /// PROG_ARRAY `map`, for `bpf_tail_call`.
    pub fn set_prog_array(
        &mut self,
        map: &str,
        index: u32,
        program: &str,
    ) -> Result<(), ObjectError> {
        self.ensure_loaded(program)?;
        let fail = |message: String| ObjectError::Program {
            program: program.to_string(),
            action: "put into a program array",
            message,
        };
        let fd = self
            .ebpf
            .program(program)
            .ok_or_else(|| ObjectError::NoProgram(program.to_string()))?
            .fd()
            .map_err(|e| fail(error_chain(&e)))?
            .try_clone()
            .map_err(|e| fail(e.to_string()))?;
        let m = self
            .ebpf
            .map_mut(map)
            .ok_or_else(|| ObjectError::NoMap(map.to_string()))?;
        let mut array = aya::maps::ProgramArray::try_from(m)
            .map_err(|e| fail(format!("map `{map}`: {}", error_chain(&e))))?;
        array
            .set(index, &fd, 0)
            .map_err(|e| fail(format!("map `{map}` index {index}: {}", error_chain(&e))))
    }

    /// Puts the object's map `inner` at `index` of the ARRAY_OF_MAPS `map`.
    pub fn set_map_of_maps(
        &mut self,
        map: &str,
        index: u32,
        inner: &str,
    ) -> Result<(), ObjectError> {
        let fail = |message: String| ObjectError::Program {
            program: map.to_string(),
            action: "set an inner map",
            message: format!("map `{map}`: {message}"),
        };
        let inner_id = map_data(
            self.ebpf
                .map(inner)
                .ok_or_else(|| ObjectError::NoMap(inner.to_string()))?,
        )
        .info()
        .map_err(|e| fail(format!("map `{inner}`: {}", error_chain(&e))))?
        .id();
        let inner_data = aya::maps::MapData::from_id(inner_id)
            .map_err(|e| fail(format!("map `{inner}`: {}", error_chain(&e))))?;
        let m = self
            .ebpf
            .map_mut(map)
            .ok_or_else(|| ObjectError::NoMap(map.to_string()))?;
        let mut outer: aya::maps::ArrayOfMaps<&mut aya::maps::MapData, aya::maps::MapData> =
            aya::maps::ArrayOfMaps::try_from(m).map_err(|e| fail(error_chain(&e)))?;
        outer.set(index, &inner_data, 0).map_err(|e| {
            fail(format!(
                "index {index} <- map `{inner}`: {}",
                error_chain(&e)
            ))
        })
    }

    /// Every record the RINGBUF `map` holds now, oldest first; reading
    /// consumes them.
    pub fn drain_ringbuf(&mut self, map: &str) -> Result<Vec<Vec<u8>>, ObjectError> {
        let m = self
            .ebpf
            .map_mut(map)
            .ok_or_else(|| ObjectError::NoMap(map.to_string()))?;
        let mut ring = aya::maps::RingBuf::try_from(m).map_err(|e| ObjectError::Program {
            program: map.to_string(),
            action: "read a ring buffer",
            message: format!("map `{map}`: {}", error_chain(&e)),
        })?;
        let mut records = Vec::new();
        while let Some(item) = ring.next() {
            records.push(item.to_vec());
        }
        Ok(records)
    }
}
