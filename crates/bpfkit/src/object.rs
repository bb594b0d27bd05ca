//! The engine-neutral object API: open an object, set its globals, load it
//! into an [`Engine`], then reach its maps and attach or run its programs.
//! Nothing here assumes a file descriptor: an engine is reached only through
//! the handles below.

use bpfkit_kernel::maps::KernelMap;
use bpfkit_kernel::object::{KernelObject, ObjectError, ObjectLoader};
use bytemuck::Pod;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use bpfkit_kernel::maps::{BPF_ANY, BPF_EXIST, BPF_NOEXIST};
pub use bpfkit_kernel::object::{Attach, XdpMode};

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
    #[error("{object}: the {engine:?} engine cannot load ELF objects yet")]
    EngineUnavailable { object: String, engine: Engine },
    #[error("map `{map}`: {what}")]
    Map { map: String, what: String },
}

/// An eBPF object (clang-built ELF) not yet loaded.
pub struct Object {
    name: String,
    bytes: Vec<u8>,
    globals: Vec<(String, Vec<u8>)>,
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
        })
    }

    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Object {
        Object {
            name: name.to_string(),
            bytes,
            globals: Vec::new(),
        }
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
                    inner: Inner::Kernel(obj),
                })
            }
            Engine::Vm => Err(Error::EngineUnavailable {
                object: self.name.clone(),
                engine,
            }),
        }
    }
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
}

/// An object loaded into an engine.
pub struct Loaded {
    name: String,
    inner: Inner,
}

impl Loaded {
    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Kernel(_) => Engine::Kernel,
        }
    }

    pub fn program_names(&self) -> Vec<String> {
        match &self.inner {
            Inner::Kernel(k) => k.program_names(),
        }
    }

    pub fn map_names(&self) -> Vec<String> {
        match &self.inner {
            Inner::Kernel(k) => k.map_names(),
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
        }
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
        }
    }
}

enum MapInner {
    Kernel(KernelMap),
}

/// A map of a loaded object, addressed by bytes. Per-CPU maps return one
/// 8-byte-aligned value slot per possible CPU.
pub struct Map {
    inner: MapInner,
}

impl Map {
    pub fn name(&self) -> &str {
        match &self.inner {
            MapInner::Kernel(m) => &m.name,
        }
    }
    pub fn key_size(&self) -> usize {
        match &self.inner {
            MapInner::Kernel(m) => m.key_size,
        }
    }
    pub fn value_size(&self) -> usize {
        match &self.inner {
            MapInner::Kernel(m) => m.value_size,
        }
    }
    // Kernel map errors already name the map.
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::KernelMap(e.to_string())
    }
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.lookup(key).map_err(|e| self.err(e)),
        }
    }
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<(), Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.update(key, value, flags).map_err(|e| self.err(e)),
        }
    }
    pub fn delete(&self, key: &[u8]) -> Result<bool, Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.delete(key).map_err(|e| self.err(e)),
        }
    }
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, Error> {
        match &self.inner {
            MapInner::Kernel(m) => m.keys().map_err(|e| self.err(e)),
        }
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
