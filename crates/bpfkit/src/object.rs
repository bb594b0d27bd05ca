//! The engine-neutral object API: open an object, set its globals, load it
//! into an [`Engine`], then reach its maps and attach or run its programs.
//! Nothing here assumes a file descriptor: an engine is reached only through
//! the handles below.

use bpfkit_kernel::maps::KernelMap;
use bpfkit_kernel::object::{KernelObject, ObjectError, ObjectLoader};
use bpfkit_object::{BtfInfo, MapSpec, ObjectFile};
use bpfkit_vm::maps::{BpfMap, MapError};
pub use bpfkit_vm::ExecMode;
use bpfkit_vm::Instance;
use bytemuck::Pod;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

pub use bpfkit_kernel::maps::{BPF_ANY, BPF_EXIST, BPF_NOEXIST};
pub use bpfkit_kernel::object::{Attach, Sample, XdpMode};

/// Where an object runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The Linux kernel, through bpf(2).
    Kernel,
    /// bpfkit's userspace VM.
    Vm,
}

#[derive(Debug, Error)]
pub enum Error {
    // The causes are part of the message (not `#[source]`), so a report that
    // also walks the error chain does not repeat them.
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{object}: {error}")]
    Kernel { object: String, error: ObjectError },
    /// A kernel map operation failed; the message names the map.
    #[error("{0}")]
    KernelMap(String),
    #[error("{object}: {what}")]
    Privilege { object: String, what: String },
    #[error("{object}: {error}")]
    Object {
        object: String,
        error: bpfkit_object::ObjectError,
    },
    #[error("{object}: {error}")]
    Vm {
        object: String,
        error: bpfkit_vm::InstanceError,
    },
    #[error("{object}: {error}")]
    VmRun {
        object: String,
        error: bpfkit_vm::RunError,
    },
    #[error("{object}: {what}")]
    Unsupported { object: String, what: String },
    #[error("map `{map}`: {what}")]
    Map { map: String, what: String },
}

/// An eBPF object (clang-built ELF) not yet loaded.
pub struct Object {
    name: String,
    bytes: Vec<u8>,
    globals: Vec<(String, Vec<u8>)>,
    exec_mode: ExecMode,
}

impl Object {
    pub fn open(path: impl AsRef<Path>) -> Result<Object, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| Error::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(Object {
            name: path.display().to_string(),
            bytes,
            globals: Vec::new(),
            exec_mode: ExecMode::default(),
        })
    }

    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Object {
        Object {
            name: name.to_string(),
            bytes,
            globals: Vec::new(),
            exec_mode: ExecMode::default(),
        }
    }

    /// How the VM engine runs the programs: the JIT where the host has one
    /// (the default), or the interpreter. The kernel engine ignores it.
    pub fn set_exec_mode(&mut self, mode: ExecMode) -> &mut Self {
        self.exec_mode = mode;
        self
    }

    /// Sets a global variable (`.rodata`, `.data`, `.bss`) before load.
    pub fn set_global<T: Pod>(&mut self, name: &str, value: &T) -> &mut Self {
        self.set_global_bytes(name, bytemuck::bytes_of(value))
    }

    pub fn set_global_bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.globals.push((name.to_string(), value.to_vec()));
        self
    }

    /// Creates the object's maps and prepares its programs in `engine`.
    pub fn load(&self, engine: Engine) -> Result<Loaded, Error> {
        match engine {
            Engine::Kernel => {
                if let Err(e) = bpfkit_kernel::probe() {
                    return Err(Error::Privilege {
                        object: self.name.clone(),
                        what: format!(
                            "{e} (loading objects needs root, or CAP_BPF with CAP_PERFMON for tracing programs and CAP_NET_ADMIN for networking ones)"
                        ),
                    });
                }
                let mut loader = ObjectLoader::from_bytes(self.bytes.clone());
                for (n, v) in &self.globals {
                    loader.set_global(n, v);
                }
                let obj = loader.load().map_err(|error| Error::Kernel {
                    object: self.name.clone(),
                    error,
                })?;
                Ok(Loaded {
                    name: self.name.clone(),
                    // For BTF formatting only: the kernel engine does not
                    // need bpfkit's reading of the object to succeed.
                    file: bpfkit_object::parse(&self.bytes).ok(),
                    inner: Inner::Kernel(obj),
                })
            }
            Engine::Vm => {
                let file = self.parse()?;
                let mut instance = Instance::load(&file).map_err(|error| Error::Vm {
                    object: self.name.clone(),
                    error,
                })?;
                instance.set_exec_mode(self.exec_mode);
                Ok(Loaded {
                    name: self.name.clone(),
                    file: Some(file),
                    inner: Inner::Vm(Box::new(instance)),
                })
            }
        }
    }

    /// The object as bpfkit reads it (programs, map definitions, BTF), with
    /// the globals set so far applied.
    pub fn parse(&self) -> Result<ObjectFile, Error> {
        let err = |error| Error::Object {
            object: self.name.clone(),
            error,
        };
        let mut file = bpfkit_object::parse(&self.bytes).map_err(err)?;
        for (n, v) in &self.globals {
            file.set_global(n, v).map_err(err)?;
        }
        Ok(file)
    }
}

/// Where a section name says to attach (libbpf's auto-attach names).
pub fn attach_point(section: &str) -> Result<Attach<'_>, String> {
    let (kind, rest) = section.split_once('/').unwrap_or((section, ""));
    let need = |what: &str| {
        if rest.is_empty() {
            Err(format!("the section names no {what}"))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        "tracepoint" | "tp" => {
            let (category, name) = rest
                .split_once('/')
                .filter(|(c, n)| !c.is_empty() && !n.is_empty())
                .ok_or("a tracepoint section is tracepoint/CATEGORY/NAME")?;
            Attach::Tracepoint { category, name }
        }
        "raw_tracepoint" | "raw_tp" => {
            need("tracepoint")?;
            Attach::RawTracepoint { name: rest }
        }
        "tp_btf" => {
            need("tracepoint")?;
            Attach::BtfTracepoint { name: rest }
        }
        "kprobe" | "kretprobe" => {
            need("kernel function")?;
            Attach::Kprobe { function: rest }
        }
        "fentry" | "fexit" => {
            need("kernel function")?;
            Attach::Fentry { function: rest }
        }
        "lsm" => {
            need("LSM hook")?;
            Attach::Lsm { hook: rest }
        }
        "uprobe" | "uretprobe" => {
            let (path, symbol) = rest
                .rsplit_once(':')
                .filter(|(p, s)| !p.is_empty() && !s.is_empty())
                .ok_or("a uprobe section is uprobe/PATH:SYMBOL")?;
            Attach::Uprobe {
                target: Path::new(path),
                symbol: Some(symbol),
                offset: 0,
                pid: None,
            }
        }
        "usdt" => {
            // libbpf's usdt/PATH:PROVIDER:NAME (the path has no ':').
            let mut parts = rest.rsplitn(3, ':');
            let (name, provider, path) = (parts.next(), parts.next(), parts.next());
            match (path, provider, name) {
                (Some(path), Some(provider), Some(name))
                    if !path.is_empty() && !provider.is_empty() && !name.is_empty() && !path.contains(':') =>
                {
                    Attach::Usdt {
                        target: Path::new(path),
                        provider,
                        name,
                        pid: None,
                        cookie: 0,
                    }
                }
                _ => return Err("a usdt section is usdt/PATH:PROVIDER:NAME (bare `usdt` needs attach() with Attach::Usdt)".into()),
            }
        }
        "perf_event" if !rest.is_empty() => perf_event_point(rest)?,
        "xdp" if !rest.is_empty() && !rest.contains('/') => Attach::Xdp {
            interface: rest,
            mode: XdpMode::Default,
        },
        _ => {
            return Err(
                "the section does not say where to attach (an interface, a socket, a cgroup or a sampling period is needed): use attach()"
                    .into(),
            )
        }
    })
}

/// ebpf_exporter's `perf_event/type=N,config=N,frequency=N` (or
/// `period=N`): `perf_event_attr` fields by number.
fn perf_event_point(spec: &str) -> Result<Attach<'static>, String> {
    let (mut event_type, mut config, mut sample) = (None, None, None);
    for item in spec.split(',') {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("invalid perf_event item {item:?}: expected KEY=NUMBER"))?;
        let n: u64 = value
            .parse()
            .map_err(|_| format!("perf_event item {item:?}: {value:?} is not a whole number"))?;
        match key {
            "type" => {
                event_type = Some(
                    u32::try_from(n)
                        .map_err(|_| format!("perf_event item {item:?}: type is a u32"))?,
                )
            }
            "config" => config = Some(n),
            "frequency" => sample = Some(Sample::Frequency(n)),
            "period" => sample = Some(Sample::Period(n)),
            _ => {
                return Err(format!(
                    "unknown perf_event item {item:?} (type, config, frequency, period)"
                ))
            }
        }
    }
    let sample = match sample {
        Some(Sample::Frequency(0) | Sample::Period(0)) | None => {
            return Err("a perf_event section needs frequency=N or period=N above 0: without it the program never runs".into())
        }
        Some(s) => s,
    };
    Ok(Attach::PerfEvent {
        event_type: event_type.ok_or("a perf_event section needs type=N")?,
        config: config.unwrap_or(0),
        sample,
    })
}

/// What a test run of a program returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutput {
    /// The program's return value (its verdict).
    pub retval: u64,
    /// The packet after the run.
    pub output: Vec<u8>,
    /// Average time per run, as the engine measured it.
    pub duration_ns: u64,
}

enum Inner {
    Kernel(KernelObject),
    Vm(Box<Instance>),
}

/// An object loaded into an engine.
pub struct Loaded {
    name: String,
    /// bpfkit's reading of the object: map definitions and BTF.
    file: Option<ObjectFile>,
    inner: Inner,
}

impl Loaded {
    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Kernel(_) => Engine::Kernel,
            Inner::Vm(_) => Engine::Vm,
        }
    }

    /// Program names, in the object's order.
    pub fn program_names(&self) -> Vec<String> {
        match &self.inner {
            Inner::Kernel(k) => k.program_names(),
            Inner::Vm(v) => v.programs().iter().map(|p| p.name.clone()).collect(),
        }
    }

    /// Map names (sorted, so both engines list them alike).
    pub fn map_names(&self) -> Vec<String> {
        let mut names = match &self.inner {
            Inner::Kernel(k) => k.map_names(),
            Inner::Vm(v) => v.map_names().map(String::from).collect(),
        };
        names.sort();
        names
    }

    /// The object's BTF, when it has some (to format keys and values).
    pub fn btf(&self) -> Option<&BtfInfo> {
        self.file.as_ref()?.btf.as_ref()
    }

    /// What kind of program `name` is (from its section), when bpfkit could
    /// read the object.
    pub fn program_kind(&self, name: &str) -> Option<bpfkit_object::ProgramKind> {
        let f = self.file.as_ref()?;
        f.programs.iter().find(|p| p.name == name).map(|p| p.kind)
    }

    /// A map's definition as the object declares it.
    pub fn map_spec(&self, name: &str) -> Option<&MapSpec> {
        self.file.as_ref()?.maps.iter().find(|m| m.name == name)
    }

    /// The VM instance underneath, when the engine is the VM.
    pub fn vm(&self) -> Option<&Instance> {
        match &self.inner {
            Inner::Vm(v) => Some(v),
            Inner::Kernel(_) => None,
        }
    }

    /// Stores `program` at `index` of the program array `map` (the target of
    /// bpf_tail_call).
    pub fn set_prog_array(&mut self, map: &str, index: u32, program: &str) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Kernel(k) => {
                k.set_prog_array(map, index, program)
                    .map_err(|error| Error::Kernel {
                        object: self.name.clone(),
                        error,
                    })
            }
            Inner::Vm(v) => v
                .set_prog_array(map, index, program)
                .map_err(|what| Error::Map {
                    map: map.to_string(),
                    what,
                }),
        }
    }

    /// Stores the object's map `inner` at `index` of the array-of-maps `map`.
    pub fn set_map_of_maps(&mut self, map: &str, index: u32, inner: &str) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Kernel(k) => {
                k.set_map_of_maps(map, index, inner)
                    .map_err(|error| Error::Kernel {
                        object: self.name.clone(),
                        error,
                    })
            }
            Inner::Vm(v) => v
                .set_map_of_maps(map, index, inner)
                .map_err(|what| Error::Map {
                    map: map.to_string(),
                    what,
                }),
        }
    }

    /// Every record a ring buffer map holds now, in order, consumed.
    pub fn drain_ringbuf(&mut self, map: &str) -> Result<Vec<Vec<u8>>, Error> {
        match &mut self.inner {
            Inner::Kernel(k) => k.drain_ringbuf(map).map_err(|error| Error::Kernel {
                object: self.name.clone(),
                error,
            }),
            Inner::Vm(v) => {
                let m = v.map(map).ok_or_else(|| Error::Map {
                    map: map.to_string(),
                    what: "no such map in the object".into(),
                })?;
                let rb = m
                    .as_any()
                    .downcast_ref::<bpfkit_vm::maps::RingBuf>()
                    .ok_or_else(|| Error::Map {
                        map: map.to_string(),
                        what: "not a ring buffer".into(),
                    })?;
                Ok(rb.drain())
            }
        }
    }

    /// Loads (verifies) and attaches a program; a verifier rejection carries
    /// the verifier's log in the error.
    pub fn attach(&mut self, program: &str, at: Attach<'_>) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Kernel(k) => k.attach(program, at).map_err(|error| Error::Kernel {
                object: self.name.clone(),
                error,
            }),
            Inner::Vm(_) => Err(Error::Unsupported {
                object: self.name.clone(),
                what: format!(
                    "program `{program}`: the VM has no kernel hooks to attach to; run it with `run`, or load the object with Engine::Kernel"
                ),
            }),
        }
    }

    /// Attaches a program where its section name says, as libbpf's
    /// auto-attach does: `tracepoint/CAT/NAME` (or `tp/`),
    /// `raw_tracepoint/NAME` (or `raw_tp/`), `tp_btf/NAME`,
    /// `kprobe|kretprobe/FUNCTION`, `fentry|fexit/FUNCTION`, `lsm/HOOK`,
    /// `uprobe|uretprobe/PATH:SYMBOL`, `usdt/PATH:PROVIDER:NAME`,
    /// `perf_event/type=N,config=N,frequency=N`, `xdp/IFACE`. Sections that
    /// do not name their target (bare xdp, tc, socket, cgroup, sk_*, bare
    /// usdt) are refused by name.
    pub fn attach_auto(&mut self, program: &str) -> Result<(), Error> {
        let section = self
            .file
            .as_ref()
            .and_then(|f| f.program(program))
            .map(|p| p.section.clone())
            .ok_or_else(|| Error::Unsupported {
                object: self.name.clone(),
                what: format!("no program `{program}` in the object"),
            })?;
        let at = attach_point(&section).map_err(|what| Error::Unsupported {
            object: self.name.clone(),
            what: format!("program `{program}` (section `{section}`): {what}"),
        })?;
        self.attach(program, at)
    }

    /// Runs a packet program (XDP, tc, socket filter) on `input`, `repeat`
    /// times (at least once), and returns its verdict and output packet.
    pub fn run(&mut self, program: &str, input: &[u8], repeat: u32) -> Result<RunOutput, Error> {
        match &mut self.inner {
            Inner::Kernel(k) => {
                let out = k
                    .test_run(program, &bpfkit_kernel::TestRun::new(input).repeat(repeat))
                    .map_err(|error| Error::Kernel {
                        object: self.name.clone(),
                        error,
                    })?;
                Ok(RunOutput {
                    retval: out.retval as u64,
                    output: out.data_out,
                    duration_ns: out.duration_ns as u64,
                })
            }
            Inner::Vm(v) => {
                let err = |error| Error::VmRun {
                    object: self.name.clone(),
                    error,
                };
                let (last, per_run) = v.run_packet_repeat(program, input, repeat).map_err(err)?;
                Ok(RunOutput {
                    retval: last.retval,
                    output: last.output,
                    duration_ns: per_run.as_nanos() as u64,
                })
            }
        }
    }

    /// Runs a program whose context is plain memory once: a raw tracepoint
    /// with its u64 arguments (both engines; the kernel through
    /// BPF_PROG_TEST_RUN with the arguments as its context), or in the VM
    /// any tracing program with its context bytes (a tracepoint record,
    /// pt_regs). Returns r0 and the context after the run.
    pub fn run_context(&mut self, program: &str, ctx: &[u8]) -> Result<RunOutput, Error> {
        match &mut self.inner {
            Inner::Kernel(k) => {
                let run = bpfkit_kernel::TestRun {
                    data_in: &[],
                    data_out_len: Some(0),
                    ctx_in: Some(ctx),
                    ctx_out_len: 0,
                    // Raw tracepoint test runs take no repeat count.
                    repeat: 0,
                    flags: 0,
                };
                let out = k.test_run(program, &run).map_err(|error| Error::Kernel {
                    object: self.name.clone(),
                    error,
                })?;
                Ok(RunOutput {
                    retval: out.retval as u64,
                    output: ctx.to_vec(),
                    duration_ns: out.duration_ns as u64,
                })
            }
            Inner::Vm(v) => {
                let mut mem = ctx.to_vec();
                let start = std::time::Instant::now();
                let out = v
                    .run_memory(program, &mut mem)
                    .map_err(|error| Error::VmRun {
                        object: self.name.clone(),
                        error,
                    })?;
                Ok(RunOutput {
                    retval: out.r0,
                    output: mem,
                    duration_ns: start.elapsed().as_nanos() as u64,
                })
            }
        }
    }

    /// The VM instance underneath, mutably (to set the task facts helpers
    /// report), when the engine is the VM.
    pub fn vm_mut(&mut self) -> Option<&mut Instance> {
        match &mut self.inner {
            Inner::Vm(v) => Some(v),
            Inner::Kernel(_) => None,
        }
    }

    /// A map by name, as bytes.
    pub fn map(&self, name: &str) -> Result<Map, Error> {
        match &self.inner {
            Inner::Kernel(k) => Ok(Map {
                inner: MapInner::Kernel(k.map(name).map_err(|error| Error::Kernel {
                    object: self.name.clone(),
                    error,
                })?),
            }),
            Inner::Vm(v) => {
                let map = v.map(name).ok_or_else(|| Error::Map {
                    map: name.to_string(),
                    what: "no such map in the object".into(),
                })?;
                Ok(Map {
                    inner: MapInner::Vm {
                        name: name.to_string(),
                        map,
                    },
                })
            }
        }
    }

    /// A map by name with typed keys and values.
    pub fn typed_map<K: Pod, V: Pod>(&self, name: &str) -> Result<TypedMap<K, V>, Error> {
        let map = self.map(name)?;
        let (k, v) = (map.key_size(), map.value_size());
        if k != std::mem::size_of::<K>() || v != std::mem::size_of::<V>() {
            return Err(Error::Map {
                map: name.to_string(),
                what: format!(
                    "keys are {k} bytes and values {v} bytes, not {} and {}",
                    std::mem::size_of::<K>(),
                    std::mem::size_of::<V>()
                ),
            });
        }
        Ok(TypedMap {
            map,
            _types: PhantomData,
        })
    }

    /// The kernel object underneath, when the engine is the kernel.
    pub fn kernel(&mut self) -> Option<&mut KernelObject> {
        match &mut self.inner {
            Inner::Kernel(k) => Some(k),
            Inner::Vm(_) => None,
        }
    }
}

enum MapInner {
    Kernel(KernelMap),
    Vm { name: String, map: Arc<dyn BpfMap> },
}

/// A map entry as bytes: (key, value).
pub type Entry = (Vec<u8>, Vec<u8>);

/// A map of a loaded object, addressed by bytes. Per-CPU maps return one
/// 8-byte-aligned value slot per possible CPU.
pub struct Map {
    inner: MapInner,
}

impl Map {
    pub fn name(&self) -> &str {
        match &self.inner {
            MapInner::Kernel(m) => &m.name,
            MapInner::Vm { name, .. } => name,
        }
    }
    /// The BPF_MAP_TYPE_* number.
    pub fn map_type(&self) -> u32 {
        match &self.inner {
            MapInner::Kernel(m) => m.map_type,
            MapInner::Vm { map, .. } => map.def().map_type,
        }
    }
    pub fn key_size(&self) -> usize {
        match &self.inner {
            MapInner::Kernel(m) => m.key_size,
            MapInner::Vm { map, .. } => map.def().key_size as usize,
        }
    }
    pub fn value_size(&self) -> usize {
        match &self.inner {
            MapInner::Kernel(m) => m.value_size,
            MapInner::Vm { map, .. } => map.def().value_size as usize,
        }
    }
    pub fn max_entries(&self) -> u32 {
        match &self.inner {
            MapInner::Kernel(m) => m.max_entries,
            MapInner::Vm { map, .. } => map.def().max_entries,
        }
    }
    // Kernel map errors already name the map.
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::KernelMap(e.to_string())
    }
    fn vm_err(&self, e: MapError) -> Error {
        Error::Map {
            map: self.name().to_string(),
            what: format!("{e} (errno {})", e.errno()),
        }
    }
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.lookup(key).map_err(|e| self.err(e)),
            MapInner::Vm { map, .. } => match map.lookup(key) {
                Ok(v) => Ok(Some(v)),
                Err(MapError::NotFound) => Ok(None),
                Err(e) => Err(self.vm_err(e)),
            },
        }
    }
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.update(key, value, flags).map_err(|e| self.err(e)),
            MapInner::Vm { map, .. } => map.update(key, value, flags).map_err(|e| self.vm_err(e)),
        }
    }
    pub fn delete(&self, key: &[u8]) -> Result<bool, Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.delete(key).map_err(|e| self.err(e)),
            MapInner::Vm { map, .. } => match map.delete(key) {
                Ok(()) => Ok(true),
                Err(MapError::NotFound) => Ok(false),
                Err(e) => Err(self.vm_err(e)),
            },
        }
    }
    /// Every key, in the engine's iteration order (bpf_map_get_next_key).
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.keys().map_err(|e| self.err(e)),
            MapInner::Vm { map, .. } => {
                let mut keys: Vec<Vec<u8>> = Vec::new();
                loop {
                    match map.get_next_key(keys.last().map(|k| k.as_slice())) {
                        Ok(k) => keys.push(k),
                        Err(MapError::NotFound) => return Ok(keys),
                        Err(e) => return Err(self.vm_err(e)),
                    }
                    // A map changing under iteration could cycle; a map
                    // never holds more keys than max_entries.
                    if keys.len() > map.def().max_entries as usize {
                        return Ok(keys);
                    }
                }
            }
        }
    }

    /// Removes and returns the next element of a queue or stack (None when
    /// it is empty).
    pub fn pop(&self) -> Result<Option<Vec<u8>>, Error> {
        match &self.inner {
            MapInner::Kernel(m) => match m.lookup_and_delete(&[]) {
                Ok(v) => Ok(Some(v)),
                Err(libc::ENOENT) => Ok(None),
                Err(e) => Err(self.err(format!(
                    "map `{}`: pop: {}",
                    m.name,
                    std::io::Error::from_raw_os_error(e)
                ))),
            },
            MapInner::Vm { map, .. } => match map.lookup_and_delete(&[]) {
                Ok(v) => Ok(Some(v)),
                Err(MapError::NotFound) => Ok(None),
                Err(e) => Err(self.vm_err(e)),
            },
        }
    }

    /// Every (key, value) pair, sorted by key bytes, so two engines' maps
    /// compare equal when their contents are.
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        for k in self.keys()? {
            if let Some(v) = self.lookup(&k)? {
                out.push((k, v));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A map with plain-old-data keys and values.
pub struct TypedMap<K, V> {
    map: Map,
    _types: PhantomData<(K, V)>,
}

impl<K: Pod, V: Pod> TypedMap<K, V> {
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        Ok(self
            .map
            .lookup(bytemuck::bytes_of(key))?
            .map(|b| bytemuck::pod_read_unaligned(&b[..std::mem::size_of::<V>()])))
    }
    pub fn insert(&self, key: &K, value: &V, flags: u64) -> Result<(), Error> {
        self.map
            .update(bytemuck::bytes_of(key), bytemuck::bytes_of(value), flags)
    }
    pub fn remove(&self, key: &K) -> Result<bool, Error> {
        self.map.delete(bytemuck::bytes_of(key))
    }
    pub fn keys(&self) -> Result<Vec<K>, Error> {
        Ok(self
            .map
            .keys()?
            .iter()
            .map(|k| bytemuck::pod_read_unaligned(k))
            .collect())
    }
    pub fn bytes(&self) -> &Map {
        &self.map
    }
}
