//! The running exporter: every config's object loaded into the kernel, its
//! programs attached where their sections say, and its maps read into
//! metric families at each scrape.
//!
//! A config whose object does not load, whose maps do not match its
//! metrics, or whose YAML is broken is reported ([`Exporter::status`] and a
//! log line on stderr) and left out; the other configs keep running. A
//! program the kernel refuses is reported the same way and its config keeps
//! its other programs and its maps. [`Exporter::start`] fails only when no
//! config could be started at all, or, in strict mode, when a config is
//! invalid.

use crate::cgroup_id_map::{self, CgroupIdSync};
use crate::config::{self, Config, ConfigError};
use crate::decoders::{Decoders, LabelSpec};
use crate::metrics::{self, DecoderErrorCounts, Family, MapSnapshot, ProgramInfo, SelfMetrics};
use crate::perf_events::{self, PerfCounter};
use bpfkit::kernel::events::PerfBufReader;
use bpfkit::{Engine, Loaded, Map, Object};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The built-in set: `(name, YAML config, eBPF object)`, from `bpf/exporter`.
pub const BUILTIN: &[(&str, &str, &[u8])] = &[
    (
        "syscalls",
        include_str!("../../../bpf/exporter/syscalls.yaml"),
        include_bytes!("../../../bpf/exporter/syscalls.bpf.o"),
    ),
    (
        "syscall_errors",
        include_str!("../../../bpf/exporter/syscall_errors.yaml"),
        include_bytes!("../../../bpf/exporter/syscall_errors.bpf.o"),
    ),
    (
        "execs",
        include_str!("../../../bpf/exporter/execs.yaml"),
        include_bytes!("../../../bpf/exporter/execs.bpf.o"),
    ),
    (
        "schedlat",
        include_str!("../../../bpf/exporter/schedlat.yaml"),
        include_bytes!("../../../bpf/exporter/schedlat.bpf.o"),
    ),
    (
        "biolatency",
        include_str!("../../../bpf/exporter/biolatency.yaml"),
        include_bytes!("../../../bpf/exporter/biolatency.bpf.o"),
    ),
];

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--config.dir`; `None` runs the built-in set compiled into the binary.
    pub config_dir: Option<PathBuf>,
    /// `--config.names`; empty means every config (every `*.yaml` of the
    /// directory, or the whole built-in set).
    pub config_names: Vec<String>,
    /// Unknown fields (and any other config error) are fatal.
    pub strict: bool,
    /// `--capabilities.keep`: once every program is attached, drop every
    /// capability not in this mask (bits as in `CAP_*`), before any thread
    /// of the exporter's exists. `None` keeps them all.
    pub keep_capabilities: Option<u64>,
}

/// One program of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStatus {
    pub config: String,
    pub name: String,
    /// The ELF section, which says where it attaches.
    pub section: String,
    /// The kernel's program tag (16 hex digits), empty when not loaded.
    pub tag: String,
    /// The kernel's program id, 0 when not loaded.
    pub id: u32,
    pub attached: bool,
    /// Why it is not attached.
    pub error: Option<String>,
}

/// One config, running or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigStatus {
    pub name: String,
    pub programs: Vec<ProgramStatus>,
    /// Why the config is not running (file, metric and field when known).
    pub error: Option<String>,
}

/// Why the exporter did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Strict mode: the configs are invalid.
    #[error("invalid configs:\n  {}", join_errors(.0))]
    Config(Vec<ConfigError>),
    /// Not one config could be started.
    #[error("no config could be started:\n  {}", join_status(.0))]
    NothingLoaded(Vec<ConfigStatus>),
    /// No configs were asked for (an empty directory, say).
    #[error("no configs to run{}", .0.as_ref().map(|d| format!(" in {}", d.display())).unwrap_or_default())]
    NoConfigs(Option<PathBuf>),
    /// `keep_capabilities` could not be applied.
    #[error("dropping capabilities: {0}")]
    Capabilities(#[from] bpfkit::kernel::caps::CapsError),
    /// The thread that reads perf event arrays could not start.
    #[error("starting the perf event reader: {0}")]
    Events(std::io::Error),
    /// The config directory cannot be listed.
    #[error("{}: cannot list configs: {source}", dir.display())]
    ConfigDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn join_status(status: &[ConfigStatus]) -> String {
    status
        .iter()
        .map(|s| match &s.error {
            Some(e) => format!("{}: {e}", s.name),
            None => format!("{}: not started", s.name),
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Which config family a metric belongs to.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter(usize),
    Histogram(usize),
}

/// A metric of a running config and its map, opened once.
struct MetricMap {
    kind: Kind,
    map: Map,
    per_cpu: bool,
}

/// A running config.
struct Running {
    config: Config,
    metrics: Vec<MetricMap>,
    /// Every map of the object, for [`Exporter::maps_json`].
    maps: Vec<Map>,
    programs: Vec<ProgramStatus>,
    /// Counters fed by perf event arrays, in the config's order.
    perf_counters: Vec<Arc<PerfCounter>>,
    /// The config's `cgroup_id_map`, filled; handed to the events thread
    /// to keep in step.
    cgroup_sync: Option<CgroupIdSync>,
    /// Keeps the programs attached; locked to read program stats.
    loaded: Mutex<Loaded>,
}

/// The thread that reads every perf event array, on a tokio runtime of its
/// own so that the exporter works the same inside and outside one.
struct EventThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EventThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The running exporter. Dropping it detaches every program.
pub struct Exporter {
    running: Vec<Running>,
    status: Vec<ConfigStatus>,
    decoders: Arc<Decoders>,
    decoder_errors: Mutex<DecoderErrorCounts>,
    /// Declared last: stops reading events before the programs detach.
    _events: Option<EventThread>,
}

/// The config's name from an error about it (its file's stem).
fn error_config_name(e: &ConfigError) -> String {
    e.file()
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A config and its object's bytes, or why there are none.
type Candidate = (Config, Result<Vec<u8>, String>);

/// Reads the configs the options name: `(candidates, config errors)`.
fn read_configs(opts: &Options) -> Result<(Vec<Candidate>, Vec<ConfigError>), StartError> {
    let mut candidates = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    match &opts.config_dir {
        None => {
            let names: Vec<String> = if opts.config_names.is_empty() {
                BUILTIN.iter().map(|(n, _, _)| n.to_string()).collect()
            } else {
                opts.config_names.clone()
            };
            let mut seen = std::collections::BTreeSet::new();
            for name in &names {
                let file = PathBuf::from(format!("{name}.yaml"));
                if !seen.insert(name.clone()) {
                    errors.push(ConfigError::DuplicateName {
                        file,
                        name: name.clone(),
                    });
                    continue;
                }
                let Some((_, text, object)) = BUILTIN.iter().find(|(n, _, _)| n == name) else {
                    errors.push(ConfigError::MissingConfig {
                        file,
                        name: name.clone(),
                    });
                    continue;
                };
                match config::parse(&file, text, opts.strict) {
                    Ok((c, mut w)) => {
                        warnings.append(&mut w);
                        candidates.push((c, Ok(object.to_vec())));
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        Some(dir) => {
            let names = if opts.config_names.is_empty() {
                yaml_names(dir)?
            } else {
                opts.config_names.clone()
            };
            let (configs, mut errs, mut w) = config::load(dir, &names, opts.strict);
            errors.append(&mut errs);
            warnings.append(&mut w);
            for c in configs {
                let path = c.object_path();
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()));
                candidates.push((c, bytes));
            }
        }
    }
    for w in &warnings {
        eprintln!("ebpf_exporter: warning: {w}");
    }
    Ok((candidates, errors))
}

/// Every `<name>.yaml` in `dir`, sorted.
fn yaml_names(dir: &Path) -> Result<Vec<String>, StartError> {
    let err = |source| StartError::ConfigDir {
        dir: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Why a config was not started.
enum Failure {
    /// The config does not match its object (a strict-mode error).
    Config(Box<ConfigError>),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Config(e) => write!(f, "{e}"),
            Failure::Other(e) => f.write_str(e),
        }
    }
}

/// What [`start_config`] needs to read perf event arrays: the runtime their
/// readers register with (it runs on [`EventThread`]) and the decoders.
struct EventSetup<'a> {
    runtime: &'a tokio::runtime::Runtime,
    decoders: &'a Arc<Decoders>,
}

/// Loads one config's object, checks its maps against its metrics, starts
/// reading its perf event arrays and attaches its programs.
fn start_config(
    config: Config,
    bytes: Vec<u8>,
    events: &EventSetup<'_>,
) -> Result<Running, (Failure, Vec<ProgramStatus>)> {
    let name = config.name.clone();
    let file = config.path.display().to_string();
    let mut object = Object::from_bytes(&name, bytes);
    // `kaddrs`: each symbol's kernel address into the program's
    // `const volatile u64 kaddr_<symbol>`, before load, as ebpf_exporter does.
    for sym in &config.kaddrs {
        let addr = events
            .decoders
            .kernel_address(sym)
            .map_err(|e| format!("{file}: kaddrs: {e}"))
            .and_then(|a| {
                a.ok_or_else(|| {
                    format!("{file}: kaddrs: no kernel symbol `{sym}` in /proc/kallsyms")
                })
            })
            .map_err(|e| (Failure::Other(e), Vec::new()))?;
        object.set_global(&format!("kaddr_{sym}"), &addr);
    }
    let parsed = object.parse().map_err(|e| {
        (
            Failure::Other(format!("{file}: cannot read the eBPF object: {e}")),
            Vec::new(),
        )
    })?;
    let mut programs: Vec<ProgramStatus> = parsed
        .programs
        .iter()
        .map(|p| ProgramStatus {
            config: name.clone(),
            name: p.name.clone(),
            section: p.section.clone(),
            tag: String::new(),
            id: 0,
            attached: false,
            error: None,
        })
        .collect();
    let mut loaded = match object.load(Engine::Kernel) {
        Ok(l) => l,
        Err(e) => {
            return Err((
                Failure::Other(format!("{file}: cannot load the eBPF object: {e}")),
                programs,
            ))
        }
    };

    // Every metric's map, checked before anything is attached.
    let mut metrics = Vec::new();
    let mut perf_counters = Vec::new();
    let wanted = config
        .metrics
        .counters
        .iter()
        .enumerate()
        .map(|(i, c)| (Kind::Counter(i), &c.name, c.perf_event_array))
        .chain(
            config
                .metrics
                .histograms
                .iter()
                .enumerate()
                .map(|(i, h)| (Kind::Histogram(i), &h.name, false)),
        );
    for (kind, metric, perf_event_array) in wanted {
        if let (true, Kind::Counter(i)) = (perf_event_array, kind) {
            let counter = Arc::new(PerfCounter::new(&config.metrics.counters[i]));
            let kernel = loaded.kernel().ok_or_else(|| {
                (
                    Failure::Other(format!("{file}: metric `{metric}`: not a kernel object")),
                    programs.clone(),
                )
            })?;
            // The reader registers with the events runtime, which must be
            // the current one while it is made.
            let reader = {
                let _in = events.runtime.enter();
                PerfBufReader::new(kernel, metric, Some(perf_events::PAGES_PER_CPU))
            }
            .map_err(|e| {
                (
                    Failure::Other(format!("{file}: metric `{metric}`: perf_event_array: {e}")),
                    programs.clone(),
                )
            })?;
            events.runtime.spawn(perf_events::pump(
                name.clone(),
                reader,
                Arc::clone(&counter),
                Arc::clone(events.decoders),
            ));
            perf_counters.push(counter);
            continue;
        }
        let map = loaded.map(metric).map_err(|e| {
            (
                Failure::Other(format!(
                    "{file}: metric `{metric}`: no map `{metric}` in the eBPF object ({e})"
                )),
                programs.clone(),
            )
        })?;
        let per_cpu = bpfkit::compare::is_per_cpu(map.map_type());
        config
            .check_map_key_size(metric, map.key_size(), per_cpu)
            .map_err(|e| (Failure::Config(Box::new(e)), programs.clone()))?;
        metrics.push(MetricMap { kind, map, per_cpu });
    }

    // The cgroup filter is filled before the programs run.
    let cgroup_sync = match &config.cgroup_id_map {
        None => None,
        Some(spec) => {
            let fail = |e: String| {
                (
                    Failure::Other(format!("{file}: cgroup_id_map: {e}")),
                    programs.clone(),
                )
            };
            let map = loaded
                .map(&spec.name)
                .map_err(|e| fail(format!("no map `{}` in the eBPF object ({e})", spec.name)))?;
            let root = crate::decoders::cgroup::cgroup2_root();
            let mut sync = CgroupIdSync::new(&name, spec, map, &root).map_err(fail)?;
            sync.sync().map_err(fail)?;
            Some(sync)
        }
    };

    let mut maps = Vec::new();
    for m in loaded.map_names() {
        match loaded.map(&m) {
            Ok(map) => maps.push(map),
            // Internal maps (.rodata, ...) may not open by name.
            Err(e) => eprintln!("ebpf_exporter: {file}: map `{m}`: {e}"),
        }
    }

    for p in &mut programs {
        match loaded.attach_auto(&p.name) {
            Ok(()) => p.attached = true,
            Err(e) => {
                let msg = format!("{file}: program `{}` ({}): {e}", p.name, p.section);
                eprintln!("ebpf_exporter: {msg}");
                p.error = Some(msg);
            }
        }
        if let Some(info) = loaded
            .kernel()
            .and_then(|k| k.aya().program(&p.name))
            .and_then(|prog| prog.info().ok())
        {
            p.id = info.id();
            p.tag = format!("{:016x}", info.tag());
        }
    }

    Ok(Running {
        config,
        metrics,
        maps,
        programs,
        perf_counters,
        cgroup_sync,
        loaded: Mutex::new(loaded),
    })
}

impl Exporter {
    /// Loads every config and its object into the kernel and attaches every
    /// program by its section. Broken configs and refused programs are
    /// reported in [`Exporter::status`] and on stderr; the others keep
    /// running. Fails when nothing could be started, or in strict mode when
    /// a config is invalid.
    pub fn start(opts: &Options) -> Result<Exporter, StartError> {
        let (candidates, errors) = read_configs(opts)?;
        if opts.strict && !errors.is_empty() {
            return Err(StartError::Config(errors));
        }
        if candidates.is_empty() && errors.is_empty() {
            return Err(StartError::NoConfigs(opts.config_dir.clone()));
        }
        if let Err(e) = bpfkit::kernel::setup::ensure(bpfkit::kernel::setup::Mount::Tracefs) {
            eprintln!("ebpf_exporter: {e}");
        }

        let mut status = Vec::new();
        for e in &errors {
            eprintln!(
                "ebpf_exporter: config `{}` left out: {e}",
                error_config_name(e)
            );
            let name = error_config_name(e);
            // One entry per config: a config with several errors lists all.
            match status
                .iter_mut()
                .find(|s: &&mut ConfigStatus| s.name == name)
            {
                Some(s) => {
                    let prev = s.error.take().unwrap_or_default();
                    s.error = Some(format!("{prev}; {e}"));
                }
                None => status.push(ConfigStatus {
                    name,
                    programs: Vec::new(),
                    error: Some(e.to_string()),
                }),
            }
        }
        let mut running = Vec::new();
        let mut strict_errors = Vec::new();
        let decoders = Arc::new(Decoders::new());
        // A current-thread runtime starts no thread: readers register with
        // it now, and it runs once capabilities are dropped.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(StartError::Events)?;
        let events = EventSetup {
            runtime: &runtime,
            decoders: &decoders,
        };
        for (config, bytes) in candidates {
            let name = config.name.clone();
            let result = match bytes {
                Ok(bytes) => start_config(config, bytes, &events),
                Err(e) => Err((Failure::Other(e), Vec::new())),
            };
            match result {
                Ok(r) => {
                    status.push(ConfigStatus {
                        name,
                        programs: r.programs.clone(),
                        error: None,
                    });
                    running.push(r);
                }
                Err((failure, programs)) => {
                    eprintln!("ebpf_exporter: config `{name}` left out: {failure}");
                    status.push(ConfigStatus {
                        name,
                        programs,
                        error: Some(failure.to_string()),
                    });
                    if let Failure::Config(e) = failure {
                        strict_errors.push(*e);
                    }
                }
            }
        }
        if opts.strict && !strict_errors.is_empty() {
            return Err(StartError::Config(strict_errors));
        }
        if running.is_empty() {
            return Err(StartError::NothingLoaded(status));
        }
        if let Some(keep) = opts.keep_capabilities {
            let had = bpfkit::kernel::caps::keep_only(keep)?;
            eprintln!(
                "ebpf_exporter: dropped capabilities to {} (from {})",
                bpfkit::kernel::caps::names(keep),
                bpfkit::kernel::caps::names(had)
            );
        }
        let cgroup_syncs: Vec<CgroupIdSync> = running
            .iter_mut()
            .filter_map(|r| r.cgroup_sync.take())
            .collect();
        let has_events =
            !cgroup_syncs.is_empty() || running.iter().any(|r| !r.perf_counters.is_empty());
        if !cgroup_syncs.is_empty() {
            runtime.spawn(cgroup_id_map::keep_in_step(
                crate::decoders::cgroup::cgroup2_root(),
                cgroup_syncs,
            ));
        }
        let events = if has_events {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("bpfkit-events".to_string())
                .spawn(move || {
                    // Ends when the sender is dropped; the readers go with
                    // the runtime.
                    let _ = runtime.block_on(stopped);
                })
                .map_err(StartError::Events)?;
            Some(EventThread {
                stop: Some(stop),
                thread: Some(thread),
            })
        } else {
            None
        };
        let decoder_errors =
            DecoderErrorCounts::new(running.iter().map(|r| r.config.name.as_str()));
        Ok(Exporter {
            running,
            status,
            decoders,
            decoder_errors: Mutex::new(decoder_errors),
            _events: events,
        })
    }

    /// Names of the running configs.
    pub fn configs(&self) -> Vec<String> {
        self.running.iter().map(|r| r.config.name.clone()).collect()
    }

    /// One scrape: the self metrics, then every metric of every running
    /// config. A metric whose map cannot be read or decoded is left out of
    /// this scrape (and counted in `decoder_errors_total` when ebpf_exporter
    /// counts it).
    pub fn scrape(&self) -> Vec<Family> {
        let mut families = Vec::new();
        let mut failed = Vec::new();
        for r in &self.running {
            for c in &r.perf_counters {
                families.extend(c.families());
            }
            for m in &r.metrics {
                let entries = match m.map.entries() {
                    Ok(e) => e,
                    Err(e) => {
                        eprintln!(
                            "ebpf_exporter: config `{}`: reading map `{}`: {e}",
                            r.config.name,
                            m.map.name()
                        );
                        continue;
                    }
                };
                let snapshot = MapSnapshot {
                    key_size: m.map.key_size(),
                    value_size: m.map.value_size(),
                    per_cpu: m.per_cpu,
                    entries,
                };
                let family = match m.kind {
                    Kind::Counter(i) => metrics::counter_family(
                        &r.config.metrics.counters[i],
                        &snapshot,
                        &self.decoders,
                    ),
                    Kind::Histogram(i) => metrics::histogram_family(
                        &r.config.metrics.histograms[i],
                        &snapshot,
                        &self.decoders,
                    ),
                };
                match family {
                    Ok(f) => families.push(f),
                    Err(e) => {
                        eprintln!("ebpf_exporter: config `{}`: {e}", r.config.name);
                        failed.push((r.config.name.as_str(), e));
                    }
                }
            }
        }
        let decoder_errors = {
            let mut counts = lock(&self.decoder_errors);
            for (config, e) in &failed {
                counts.record(config, e);
            }
            let mut counts = counts.clone();
            for r in &self.running {
                for c in &r.perf_counters {
                    counts.add(&r.config.name, c.decode_errors());
                }
            }
            counts
        };
        let stats = bpfkit::kernel::stats_enabled();
        let mut programs = Vec::new();
        for r in &self.running {
            let mut loaded = stats.then(|| lock(&r.loaded));
            for p in &r.programs {
                let stats = loaded
                    .as_mut()
                    .and_then(|l| l.kernel())
                    .and_then(|k| k.aya().program(&p.name))
                    .and_then(|prog| prog.info().ok())
                    .map(|info| (info.run_time(), info.run_count()));
                programs.push(ProgramInfo {
                    config: r.config.name.clone(),
                    program: p.name.clone(),
                    tag: p.tag.clone(),
                    id: p.id,
                    attached: p.attached,
                    stats,
                });
            }
        }
        let mut out = metrics::self_metrics(&SelfMetrics {
            configs: self.configs(),
            programs,
            decoder_errors,
        });
        out.append(&mut families);
        out
    }

    /// The map `name` of the running config `config` (for benchmarks and
    /// tests that fill a map from the host).
    pub fn map(&self, config: &str, name: &str) -> Option<&Map> {
        let r = self.running.iter().find(|r| r.config.name == config)?;
        r.maps.iter().find(|m| m.name() == name)
    }

    /// Every config asked for: running ones with their programs, the others
    /// with why not.
    pub fn status(&self) -> Vec<ConfigStatus> {
        self.status.clone()
    }

    /// Every map of every running config, for `--debug`'s `/maps`: keys
    /// and values as hex, and for a metric's map each key's decoded labels.
    pub fn maps_json(&self) -> Value {
        let configs: Vec<Value> = self
            .running
            .iter()
            .map(|r| {
                let maps: Vec<Value> = r.maps.iter().map(|m| self.map_json(r, m)).collect();
                json!({ "name": r.config.name, "maps": maps })
            })
            .collect();
        json!({ "configs": configs })
    }

    fn map_json(&self, r: &Running, m: &Map) -> Value {
        let metric_labels: Option<(&str, Vec<LabelSpec>)> = r
            .config
            .metrics
            .counters
            .iter()
            .map(|c| (&c.name, &c.labels))
            .chain(
                r.config
                    .metrics
                    .histograms
                    .iter()
                    .map(|h| (&h.name, &h.labels)),
            )
            .find(|(n, _)| n.as_str() == m.name())
            .map(|(n, labels)| (n.as_str(), labels.iter().map(LabelSpec::from).collect()));
        let (entries, error) = match m.entries() {
            Ok(e) => (e, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let entries: Vec<Value> = entries
            .iter()
            .map(|(k, v)| {
                let mut entry = json!({ "key": hex(k), "value": hex(v) });
                if let Some((_, labels)) = &metric_labels {
                    let width: usize = labels.iter().map(|l| l.size + l.padding).sum();
                    if width == k.len() {
                        entry["labels"] = match self.decoders.decode_labels(labels, k) {
                            Ok(values) => Value::Object(
                                labels
                                    .iter()
                                    .zip(values)
                                    .map(|(l, v)| (l.name.clone(), Value::String(v)))
                                    .collect(),
                            ),
                            Err(e) => json!({ "error": e.to_string() }),
                        };
                    }
                }
                entry
            })
            .collect();
        json!({
            "name": m.name(),
            "type": m.map_type(),
            "key_size": m.key_size(),
            "value_size": m.value_size(),
            "metric": metric_labels.as_ref().map(|(n, _)| *n),
            "error": error,
            "entries": entries,
        })
    }
}

/// Symbol name to address, from /proc/kallsyms (addresses read as 0 without
/// the privilege to see them, as in the kernel).
#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn exporter_is_send_and_sync() {
        assert_send_sync::<Exporter>();
    }

    #[test]
    fn builtin_configs_parse() {
        for (name, text, object) in BUILTIN {
            let (c, _) = config::parse(Path::new(&format!("{name}.yaml")), text, true)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&c.name, name);
            assert!(!object.is_empty());
        }
    }
}
