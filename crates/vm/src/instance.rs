//! An object loaded into the VM: its maps created, its programs linked to
//! them, their context accesses rewritten and their helpers bound, ready to
//! run on packets, argument arrays or plain memory.

use crate::context::{self, ContextError, ContextKind, PacketContext};
use crate::env::{HostEnv, Redirect, RunEnv, MAX_TAIL_CALLS};
use crate::helpers::{self, Helpers};
use crate::maps::{self, BpfMap, MapDef, MapError, MapRegistry};
use crate::{Entry, ExecMode, Executor, LoadError, Program, VmError};
use bpfkit_isa::RawInsn;
use bpfkit_object::{MapSpec, ObjectFile, ProgramKind};
use std::sync::{Arc, Condvar, Mutex};
use thiserror::Error;

/// Why an object could not be loaded into the VM. Every variant names the
/// program or map.
#[derive(Debug, Error)]
pub enum InstanceError {
    #[error("map `{map}`: {error}")]
    Map { map: String, error: MapError },
    #[error("program `{program}`: instruction {pc}: {message}")]
    Link {
        program: String,
        pc: usize,
        message: String,
    },
    #[error("program `{program}`: {error}")]
    Context {
        program: String,
        error: ContextError,
    },
    #[error("program `{program}`: {error}")]
    Load { program: String, error: LoadError },
    #[error("program `{program}` calls helper {id} (bpf_{name}) at instruction {pc}, which the VM does not provide")]
    MissingHelper {
        program: String,
        id: u32,
        name: &'static str,
        pc: usize,
    },
}

/// Why a run failed.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("no program `{0}` in the object")]
    NoProgram(String),
    #[error("program `{program}` is a {kind:?} program, which does not run on {what}")]
    WrongInput {
        program: String,
        kind: ProgramKind,
        what: &'static str,
    },
    #[error("program `{program}`: {error}")]
    Vm { program: String, error: VmError },
    #[error("program `{program}`: {error}")]
    Prepare { program: String, error: LoadError },
    /// The packet is one BPF_PROG_TEST_RUN refuses (EINVAL) for this
    /// program type; the VM refuses it the same way.
    #[error("program `{program}`: a {len}-byte packet is refused: {why}")]
    BadPacket {
        program: String,
        len: usize,
        why: &'static str,
    },
}

/// Why the kernel's test run would refuse this packet for this context:
/// every packet needs an Ethernet header, and skb programs a whole IPv4 or
/// IPv6 header when the EtherType says there is one.
fn refused(context: ContextKind, packet: &[u8]) -> Option<&'static str> {
    if packet.len() < 14 {
        return Some("shorter than an Ethernet header");
    }
    if context == ContextKind::Xdp {
        return None;
    }
    match u16::from_be_bytes([packet[12], packet[13]]) {
        0x0800 if packet.len() < 14 + 20 => Some("EtherType IPv4 without a whole IPv4 header"),
        0x86dd if packet.len() < 14 + 40 => Some("EtherType IPv6 without a whole IPv6 header"),
        _ => None,
    }
}

/// A program of a loaded instance.
#[derive(Debug)]
pub struct VmProgram {
    pub name: String,
    pub section: String,
    pub kind: ProgramKind,
    pub context: ContextKind,
    program: Arc<Program>,
}

impl VmProgram {
    /// The linked, rewritten program the interpreter runs.
    pub fn program(&self) -> &Program {
        &self.program
    }
}

/// How a packet run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRun {
    /// The verdict (r0 of the last program of the tail-call chain).
    pub retval: u64,
    /// The packet after the run, as BPF_PROG_TEST_RUN returns it.
    pub output: Vec<u8>,
    /// Instructions executed over the whole tail-call chain.
    pub insns: u64,
    pub tail_calls: u32,
    pub redirect: Option<Redirect>,
}

/// An object in the VM.
pub struct Instance {
    maps: Arc<MapRegistry>,
    /// Object map index -> (name, registry id).
    map_ids: Vec<(String, u32)>,
    programs: Vec<VmProgram>,
    helpers: Helpers,
    host: Arc<HostEnv>,
    /// The program type each program array holds (by map id).
    prog_array_owners: Mutex<std::collections::HashMap<u32, ProgramKind>>,
    /// The instance's "CPUs": one runner (interpreters and run state) per
    /// possible CPU, made on first use. A run holds one for its duration,
    /// so at most that many programs run at once, each with its own per-CPU
    /// map slots, as in the kernel; further callers wait for a free one.
    pool: Mutex<Pool>,
    cpu_free: Condvar,
    exec_mode: ExecMode,
}

/// The helpers an object's programs get: the kernel's, by id.
pub fn kernel_helpers() -> Helpers {
    let mut h = helpers::kernel::kernel_helpers();
    context::register_packet_helpers(&mut h);
    helpers::tracing::register_tracing_helpers(&mut h);
    maps::sockmap::register_sockmap_helpers(&mut h);
    h
}

/// The map an object's definition creates, with the adjustments loaders
/// (libbpf, aya) make before BPF_MAP_CREATE, so both engines hold the same
/// maps: a ring buffer's size rounded up to a power-of-two number of pages,
/// a perf event array sized to the CPUs, and DEVMAP values widened to
/// `struct bpf_devmap_val` (ifindex and program id).
fn map_def(spec: &MapSpec) -> MapDef {
    let mut max_entries = spec.max_entries;
    let mut value_size = spec.value_size;
    match spec.map_type {
        maps::types::RINGBUF if max_entries > 0 => {
            // SAFETY: sysconf has no memory-safety preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
            max_entries = max_entries
                .div_ceil(page)
                .checked_next_power_of_two()
                .and_then(|pages| pages.checked_mul(page))
                .unwrap_or(max_entries);
        }
        maps::types::PERF_EVENT_ARRAY if max_entries == 0 => max_entries = maps::possible_cpus(),
        maps::types::DEVMAP | maps::types::DEVMAP_HASH if value_size == 4 => value_size = 8,
        _ => {}
    }
    MapDef {
        name: spec.name.clone(),
        map_type: spec.map_type,
        key_size: spec.key_size,
        value_size,
        max_entries,
        flags: spec.map_flags,
        inner: spec.inner.as_deref().map(|i| Box::new(map_def(i))),
    }
}

/// The context a program kind runs with.
pub fn context_kind(kind: ProgramKind) -> ContextKind {
    match kind {
        ProgramKind::Xdp => ContextKind::Xdp,
        ProgramKind::SchedCls => ContextKind::SchedCls,
        ProgramKind::SocketFilter => ContextKind::SocketFilter,
        ProgramKind::CgroupSkb => ContextKind::CgroupSkb,
        ProgramKind::SkSkbStreamParser | ProgramKind::SkSkbStreamVerdict => ContextKind::SkSkb,
        ProgramKind::Tracepoint => ContextKind::Tracepoint,
        ProgramKind::RawTracepoint | ProgramKind::TpBtf => ContextKind::RawTracepoint,
        ProgramKind::PerfEvent => ContextKind::PerfEvent,
        _ => ContextKind::Plain,
    }
}

impl Instance {
    /// Creates the object's maps (global data with its initial contents)
    /// and prepares every program.
    pub fn load(object: &ObjectFile) -> Result<Instance, InstanceError> {
        Self::load_with(object, kernel_helpers())
    }

    /// Like [`Self::load`] with another helper set.
    pub fn load_with(object: &ObjectFile, helpers: Helpers) -> Result<Instance, InstanceError> {
        let maps = MapRegistry::new();
        let mut map_ids = Vec::with_capacity(object.maps.len());
        for spec in &object.maps {
            let map_err = |error| InstanceError::Map {
                map: spec.name.clone(),
                error,
            };
            let id = maps.create(&map_def(spec)).map_err(map_err)?;
            if !spec.initial.is_empty() {
                let map = maps.get(id).expect("just created");
                map.update(&0u32.to_le_bytes(), &spec.initial, maps::BPF_ANY)
                    .map_err(map_err)?;
            }
            map_ids.push((spec.name.clone(), id));
        }
        let mut programs = Vec::with_capacity(object.programs.len());
        let mut owners = std::collections::HashMap::new();
        for spec in &object.programs {
            let (slots, used) = link(&spec.name, &spec.insns, &maps, &map_ids)?;
            // A program array belongs to the type of the first program
            // that uses it, as the kernel records its owner.
            for i in used {
                let (_, id) = map_ids[i];
                if maps
                    .get(id)
                    .is_some_and(|m| m.def().map_type == maps::types::PROG_ARRAY)
                {
                    owners.entry(id).or_insert(spec.kind);
                }
            }
            let context = context_kind(spec.kind);
            let slots =
                context::rewrite(context, &slots).map_err(|error| InstanceError::Context {
                    program: spec.name.clone(),
                    error,
                })?;
            let program = Program::new(&slots).map_err(|error| InstanceError::Load {
                program: spec.name.clone(),
                error,
            })?;
            for &(pc, id) in program.helper_calls() {
                if helpers.get(id).is_none() {
                    return Err(InstanceError::MissingHelper {
                        program: spec.name.clone(),
                        id,
                        name: helpers::ids::helper_name(id).unwrap_or("unknown"),
                        pc,
                    });
                }
            }
            programs.push(VmProgram {
                name: spec.name.clone(),
                section: spec.section.clone(),
                kind: spec.kind,
                context,
                program: Arc::new(program),
            });
        }
        Ok(Instance {
            maps,
            map_ids,
            programs,
            helpers,
            host: Arc::new(HostEnv::default()),
            prog_array_owners: Mutex::new(owners),
            pool: Mutex::new(Pool::default()),
            cpu_free: Condvar::new(),
            exec_mode: ExecMode::default(),
        })
    }

    /// How programs run: the JIT where the host has one (the default), or
    /// the interpreter. Programs are compiled on their first run.
    pub fn set_exec_mode(&mut self, mode: ExecMode) {
        self.exec_mode = mode;
        let pool = self.pool.get_mut().unwrap_or_else(|e| e.into_inner());
        for r in &mut pool.idle {
            r.execs.iter_mut().for_each(|e| *e = None);
        }
    }

    pub fn exec_mode(&self) -> ExecMode {
        self.exec_mode
    }

    pub fn programs(&self) -> &[VmProgram] {
        &self.programs
    }

    /// A program's id: its index, which is also what a program array holds.
    pub fn program_id(&self, name: &str) -> Option<u32> {
        self.programs
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u32)
    }

    pub fn map_names(&self) -> impl Iterator<Item = &str> {
        self.map_ids.iter().map(|(n, _)| n.as_str())
    }

    /// A map of the object by name.
    pub fn map(&self, name: &str) -> Option<Arc<dyn BpfMap>> {
        let (_, id) = self.map_ids.iter().find(|(n, _)| n == name)?;
        self.maps.get(*id)
    }

    /// Every map of the instance, including inner maps the host created.
    pub fn registry(&self) -> &Arc<MapRegistry> {
        &self.maps
    }

    /// The facts helpers report about "the current task", and the
    /// trace_printk lines.
    pub fn host(&self) -> &Arc<HostEnv> {
        &self.host
    }

    /// Replaces the host facts (before runs that read them).
    pub fn set_host(&mut self, host: HostEnv) {
        self.host = Arc::new(host);
    }

    /// Stores `program` at `index` of the program array `map`.
    pub fn set_prog_array(&self, map: &str, index: u32, program: &str) -> Result<(), String> {
        let m = self
            .map(map)
            .ok_or_else(|| format!("no map `{map}` in the object"))?;
        if m.def().map_type != maps::types::PROG_ARRAY {
            return Err(format!("map `{map}` is not a program array"));
        }
        let id = self
            .program_id(program)
            .ok_or_else(|| format!("no program `{program}` in the object"))?;
        // As bpf_prog_map_compatible: one program type per array.
        let kind = self.programs[id as usize].kind;
        let (_, map_id) = self
            .map_ids
            .iter()
            .find(|(n, _)| n == map)
            .expect("the map exists");
        let mut owners = self
            .prog_array_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let owner = *owners.entry(*map_id).or_insert(kind);
        if owner != kind {
            return Err(format!(
                "program `{program}` is a {kind:?} program; program array `{map}` holds {owner:?} programs"
            ));
        }
        m.update(&index.to_le_bytes(), &id.to_le_bytes(), maps::BPF_ANY)
            .map_err(|e| format!("map `{map}`: {e}"))
    }

    /// Stores the object's map `inner` at `index` of the map-in-map `map`.
    pub fn set_map_of_maps(&self, map: &str, index: u32, inner: &str) -> Result<(), String> {
        let outer = self
            .map(map)
            .ok_or_else(|| format!("no map `{map}` in the object"))?;
        let (_, id) = self
            .map_ids
            .iter()
            .find(|(n, _)| n == inner)
            .ok_or_else(|| format!("no map `{inner}` in the object"))?;
        outer
            .update(&index.to_le_bytes(), &id.to_le_bytes(), maps::BPF_ANY)
            .map_err(|e| format!("map `{map}`: index {index} <- map `{inner}`: {e}"))
    }

    fn id(&self, program: &str) -> Result<u32, RunError> {
        self.program_id(program)
            .ok_or_else(|| RunError::NoProgram(program.to_string()))
    }

    /// Runs a packet program (XDP, tc, socket filter, cgroup_skb, sk_skb) on
    /// `packet` as BPF_PROG_TEST_RUN would, following its tail calls.
    pub fn run_packet(&self, program: &str, packet: &[u8]) -> Result<PacketRun, RunError> {
        self.run_packet_repeat(program, packet, 1)
            .map(|(run, _)| run)
    }

    /// Runs a packet program `repeat` times (at least once) on one context
    /// built from `packet`, as BPF_PROG_TEST_RUN's `repeat` does (the packet
    /// is not restored between runs); returns the last run and the time per
    /// run, setup excluded.
    pub fn run_packet_repeat(
        &self,
        program: &str,
        packet: &[u8],
        repeat: u32,
    ) -> Result<(PacketRun, std::time::Duration), RunError> {
        let id = self.id(program)?;
        let p = &self.programs[id as usize];
        if p.context.is_packet() {
            if let Some(why) = refused(p.context, packet) {
                return Err(RunError::BadPacket {
                    program: program.into(),
                    len: packet.len(),
                    why,
                });
            }
        }
        let ctx = match p.context {
            ContextKind::Xdp => PacketContext::xdp(packet),
            ContextKind::SchedCls
            | ContextKind::SocketFilter
            | ContextKind::CgroupSkb
            | ContextKind::SkSkb => PacketContext::skb(p.context, packet),
            _ => {
                return Err(RunError::WrongInput {
                    program: program.into(),
                    kind: p.kind,
                    what: "packets",
                })
            }
        };
        let mut runner = self.runner();
        runner.env.packet = Some(ctx);
        let repeat = repeat.max(1);
        // Compiling is not running: the program is ready before the clock
        // starts (programs it tail-calls are made on first use).
        executor(&mut runner.execs, self, id)?;
        let start = std::time::Instant::now();
        let mut result = Ok(crate::Outcome { r0: 0, insns: 0 });
        for _ in 0..repeat {
            // Each run starts its own tail-call count, as each run of the
            // kernel's test loop does.
            runner.env.tail_calls = 0;
            runner.env.redirect = None;
            result = runner.chain(self, id, |env, regions| match env.packet.as_mut() {
                // SAFETY: the context stays in the runner's environment
                // until the run ends.
                Some(ctx) => unsafe { ctx.enter(regions) },
                None => Entry::default(),
            });
            if result.is_err() {
                break;
            }
        }
        let per_run = start.elapsed() / repeat;
        let ctx = runner.env.packet.take();
        let redirect = runner.env.redirect.take();
        let tail_calls = runner.env.tail_calls;
        drop(runner);
        let out = result?;
        let run = PacketRun {
            retval: out.r0,
            output: ctx.map(|c| c.output()).unwrap_or_default(),
            insns: out.insns,
            tail_calls,
            redirect,
        };
        Ok((run, per_run))
    }

    /// Runs a program with r1 pointing at `mem` (plain memory, a tracepoint
    /// record, or a raw tracepoint's u64 arguments) and r2 its length.
    pub fn run_memory(&self, program: &str, mem: &mut [u8]) -> Result<crate::Outcome, RunError> {
        let id = self.id(program)?;
        let mut runner = self.runner();
        let (ptr, len) = (mem.as_mut_ptr(), mem.len());
        let result = runner.chain(self, id, |_, regions| {
            let addr = if len == 0 {
                0
            } else {
                // SAFETY: `mem` is borrowed for the whole run.
                unsafe { regions.add_rw(ptr, len) }
            };
            Entry {
                args: [addr, len as u64, 0, 0, 0],
                packet: (addr, len as u64),
            }
        });
        drop(runner);
        result
    }

    fn runner(&self) -> Lease<'_> {
        let want = maps::current_cpu();
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = loop {
            // The calling thread's own CPU when it is free, else any.
            if let Some(i) = pool.idle.iter().position(|r| r.env.cpu == want) {
                break pool.idle.swap_remove(i);
            }
            if !pool.made_cpu(want) {
                pool.made_cpus.push(want);
                break self.new_runner(want);
            }
            if let Some(r) = pool.idle.pop() {
                break r;
            }
            if (pool.made_cpus.len() as u32) < maps::possible_cpus() {
                let cpu = (0..maps::possible_cpus())
                    .find(|c| !pool.made_cpu(*c))
                    .expect("a CPU not yet made");
                pool.made_cpus.push(cpu);
                break self.new_runner(cpu);
            }
            pool = self.cpu_free.wait(pool).unwrap_or_else(|e| e.into_inner());
        };
        drop(pool);
        r.env.maps = self.maps.clone();
        r.env.host = self.host.clone();
        r.env.programs = self.programs.len() as u32;
        r.env.tail_call = None;
        r.env.tail_calls = 0;
        r.env.redirect = None;
        r.env.packet = None;
        Lease {
            inst: self,
            runner: Some(r),
        }
    }

    fn new_runner(&self, cpu: u32) -> Runner {
        let env = RunEnv {
            cpu,
            ..RunEnv::default()
        };
        Runner {
            execs: (0..self.programs.len()).map(|_| None).collect(),
            env,
        }
    }

    fn give_back(&self, r: Runner) {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .idle
            .push(r);
        self.cpu_free.notify_one();
    }
}

/// A runner taken from the pool; it goes back when dropped, even when a run
/// unwinds, so the instance never runs out of CPUs.
struct Lease<'a> {
    inst: &'a Instance,
    runner: Option<Runner>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Runner;
    fn deref(&self) -> &Runner {
        self.runner.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Runner {
        self.runner.as_mut().expect("held until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(mut r) = self.runner.take() {
            // A context left by a run that unwound is dropped here, after
            // the run, not under a later one.
            r.env.packet = None;
            self.inst.give_back(r);
        }
    }
}

/// The runners of an instance: those idle, and the CPUs made so far.
#[derive(Default)]
struct Pool {
    idle: Vec<Runner>,
    made_cpus: Vec<u32>,
}

impl Pool {
    fn made_cpu(&self, cpu: u32) -> bool {
        self.made_cpus.contains(&cpu)
    }
}

/// Executors (interpreters or compiled code) for every program of an
/// instance, made on first use, and the environment of the current run.
struct Runner {
    execs: Vec<Option<Executor<'static>>>,
    env: RunEnv,
}

impl Runner {
    /// Runs program `id`, then each program it tail-calls, entering each with
    /// the same context.
    fn chain(
        &mut self,
        inst: &Instance,
        mut id: u32,
        mut enter: impl FnMut(&mut RunEnv, &mut crate::memory::Regions) -> Entry,
    ) -> Result<crate::Outcome, RunError> {
        let mut insns = 0u64;
        loop {
            let p = &inst.programs[id as usize];
            let interp = executor(&mut self.execs, inst, id)?;
            let out = interp
                .run_in(&mut self.env, &mut enter)
                .map_err(|error| RunError::Vm {
                    program: p.name.clone(),
                    error,
                })?;
            insns += out.insns;
            match self.env.tail_call.take() {
                Some(next) if next < inst.programs.len() as u32 => {
                    debug_assert!(self.env.tail_calls <= MAX_TAIL_CALLS);
                    id = next;
                }
                _ => return Ok(crate::Outcome { r0: out.r0, insns }),
            }
        }
    }
}

/// Program `id`'s executor in a runner, made (for the JIT: compiled) on
/// first use.
fn executor<'a>(
    execs: &'a mut [Option<Executor<'static>>],
    inst: &Instance,
    id: u32,
) -> Result<&'a mut Executor<'static>, RunError> {
    let p = &inst.programs[id as usize];
    Ok(match &mut execs[id as usize] {
        Some(i) => i,
        slot => slot.insert(
            Executor::shared(p.program.clone(), &inst.helpers, inst.exec_mode).map_err(
                |error| RunError::Prepare {
                    program: p.name.clone(),
                    error,
                },
            )?,
        ),
    })
}

/// Resolves an object's LDDW pseudo loads for the VM: a map reference
/// becomes the map's handle, a global variable reference the host address
/// of the variable inside its array map's value. Also returns the indices
/// of the maps referenced.
fn link(
    program: &str,
    insns: &[RawInsn],
    maps: &MapRegistry,
    map_ids: &[(String, u32)],
) -> Result<(Vec<RawInsn>, Vec<usize>), InstanceError> {
    let mut out = insns.to_vec();
    let mut used = Vec::new();
    let err = |pc: usize, message: String| InstanceError::Link {
        program: program.to_string(),
        pc,
        message,
    };
    let mut pc = 0;
    while pc < out.len() {
        let insn = out[pc];
        if insn.code != 0x18 {
            pc += 1;
            continue;
        }
        if pc + 1 >= out.len() {
            return Err(err(pc, "LDDW is missing its second slot".into()));
        }
        let src = insn.src;
        let map_at = |idx: i32| -> Result<(u32, Arc<dyn BpfMap>), InstanceError> {
            let (_, id) = map_ids.get(idx as u32 as usize).ok_or_else(|| {
                err(
                    pc,
                    format!("reference to map #{idx}, which the object does not define"),
                )
            })?;
            Ok((*id, maps.get(*id).expect("registered")))
        };
        let value: Option<u64> = match src {
            0 | 4 => None,
            // BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_IDX
            1 | 5 => {
                used.push(insn.imm as u32 as usize);
                Some(MapRegistry::handle(map_at(insn.imm)?.0))
            }
            // BPF_PSEUDO_MAP_VALUE / BPF_PSEUDO_MAP_IDX_VALUE
            2 | 6 => {
                let (_, map) = map_at(insn.imm)?;
                let off = out[pc + 1].imm as u32;
                let def = map.def();
                if def.map_type != maps::types::ARRAY {
                    return Err(err(
                        pc,
                        format!("a direct value load needs an array map; `{}` is type {}", def.name, def.map_type),
                    ));
                }
                if off >= def.value_size {
                    return Err(err(
                        pc,
                        format!("offset {off} is past the {}-byte value of `{}`", def.value_size, def.name),
                    ));
                }
                let base = map
                    .prog_lookup(&0u32.to_le_bytes(), 0)
                    .ok_or_else(|| err(pc, format!("map `{}` has no element 0", def.name)))?;
                Some(base + off as u64)
            }
            other => {
                return Err(err(
                    pc,
                    format!("LDDW pseudo source {other} (BTF ids, kernel symbols) is not supported by the VM"),
                ))
            }
        };
        if let Some(v) = value {
            out[pc].src = 0;
            out[pc].imm = v as u32 as i32;
            out[pc + 1].imm = (v >> 32) as u32 as i32;
        }
        pc += 2;
    }
    Ok((out, used))
}
