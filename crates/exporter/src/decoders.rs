//! Decoders: map key bytes into label values.
//!
//! The same decoders, with the same output text, as cloudflare/ebpf_exporter's
//! `decoder` package. A label's decoders form a chain: the first gets the
//! label's bytes of the key, each next one gets the previous one's output, and
//! the last output is the label value. `regexp` can reject its input, which
//! drops the whole label set ([`DecodeError::Skip`]).
//!
//! | decoder | input | output |
//! |---|---|---|
//! | `uint` | 1, 2, 4 or 8 bytes, host order | decimal |
//! | `hex` | any bytes | lowercase hex |
//! | `string` | any bytes | up to the first NUL |
//! | `dname` | DNS wire-format name | `example.com` (`.` if empty; the input unchanged if malformed) |
//! | `inet_ip` | 4 or 16 bytes | `1.2.3.4`, `2400:cb00::1` (IPv4-mapped IPv6 prints as IPv4) |
//! | `errno` | decimal | `EPIPE`, `unknown:N` |
//! | `syscall` | decimal | x86-64 name, `unknown_syscall:N` |
//! | `ksym` | 8 bytes (first 8 used), host order | symbol at exactly that address, `unknown_addr:0x..` |
//! | `kstack` | 8-byte addresses, 0 ends | nearest preceding symbols joined by `\n`, `??` if none |
//! | `ifname` | 4 bytes (first 4 used) | interface name, `unknown:N` |
//! | `majorminor` | 4 bytes (first 4 used), kernel `new_encode_dev` | name from /proc/partitions, `unknown:MAJ:MIN` |
//! | `cgroup` | decimal cgroup id | path under /sys/fs/cgroup, `unknown_cgroup_id:N` |
//! | `static_map` | text | mapped, else `unknown:IN` (or `IN` with `allow_unknown`) |
//! | `regexp` | text | first regexp that matches: its only group, or the whole match |
//! | `pci_vendor`, `pci_device`, `pci_class`, `pci_subclass` | decimal | names from pci.ids, `missing pci.ids db` without one |
//!
//! Everything is `Send + Sync`; kallsyms, pci.ids and the cgroup tree are
//! loaded on first use. Decoded label sets are cached by (labels, key) so
//! steady-state scrapes do not decode again; the cache is cleared once it
//! holds [`DecoderOptions::cache_limit`] keys.

pub(crate) mod cgroup;
mod errnos;
mod kallsyms;
mod pci;
mod regexps;
mod simple;
mod syscalls_x86_64;
mod system;

pub use cgroup::cgroup2_root;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// One entry of a label's `decoders:` list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DecoderSpec {
    /// Decoder name, e.g. `uint`.
    pub name: String,
    /// `static_map`'s mapping. Empty behaves as ebpf_exporter's absent
    /// mapping: every value decodes to `empty mapping`.
    pub static_map: BTreeMap<String, String>,
    /// `static_map`: pass unmapped values through instead of `unknown:VALUE`.
    pub allow_unknown: bool,
    /// `regexp`'s expressions, tried in order.
    pub regexps: Vec<String>,
}

/// One label of a map key: `size` bytes, then `padding` bytes skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSpec {
    pub name: String,
    pub size: usize,
    pub padding: usize,
    pub decoders: Vec<DecoderSpec>,
}

/// Why a key did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `regexp` decoder rejected its input: drop this label set (not an
    /// error; not counted in [`Decoders::errors`]).
    #[error("this label set should be skipped")]
    Skip,
    /// Decoding failed. `decoder` is empty when the key as a whole does not fit
    /// the labels; `label` is empty when no single label is at fault.
    #[error("error decoding label {label:?} with decoder {decoder:?}: {message}")]
    Failed {
        label: String,
        decoder: String,
        message: String,
    },
}

/// Where the decoders read the system's tables, and cache bounds.
#[derive(Debug, Clone)]
pub struct DecoderOptions {
    /// `ksym` / `kstack` symbols. Default `/proc/kallsyms`.
    pub kallsyms: PathBuf,
    /// pci.ids candidates, first existing one wins. Default
    /// `/usr/share/hwdata/pci.ids`, `/usr/share/misc/pci.ids`.
    pub pci_ids: Vec<PathBuf>,
    /// Walked for `cgroup`. Default: the cgroup v2 hierarchy,
    /// `/sys/fs/cgroup` (or `/sys/fs/cgroup/unified` on hybrid hosts).
    pub cgroup_root: PathBuf,
    /// `majorminor`'s device names. Default `/proc/partitions`.
    pub partitions: PathBuf,
    /// Keys whose decoded labels are kept before the cache is cleared.
    /// Default 100 000; 0 disables the cache.
    pub cache_limit: usize,
    /// Least time between two re-reads of kallsyms, or two walks of the
    /// cgroup tree, on a lookup miss. Default 5 s.
    pub refresh_interval: Duration,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        DecoderOptions {
            kallsyms: PathBuf::from("/proc/kallsyms"),
            pci_ids: vec![
                PathBuf::from("/usr/share/hwdata/pci.ids"),
                PathBuf::from("/usr/share/misc/pci.ids"),
            ],
            cgroup_root: cgroup::cgroup2_root(),
            partitions: PathBuf::from("/proc/partitions"),
            cache_limit: 100_000,
            refresh_interval: Duration::from_secs(5),
        }
    }
}

/// Every decoder name ebpf_exporter knows.
pub const DECODER_NAMES: &[&str] = &[
    "cgroup",
    "dname",
    "errno",
    "hex",
    "ifname",
    "inet_ip",
    "kstack",
    "ksym",
    "majorminor",
    "pci_class",
    "pci_device",
    "pci_subclass",
    "pci_vendor",
    "regexp",
    "static_map",
    "string",
    "syscall",
    "uint",
];

/// What one decoder step produced.
pub(crate) enum StepError {
    Skip,
    Failed(String),
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError::Failed(message)
    }
}

type Step = Result<Vec<u8>, StepError>;

#[derive(Clone)]
enum Cached {
    Values(Vec<String>),
    Skip,
}

#[derive(Default)]
struct LabelCache {
    groups: HashMap<Vec<LabelSpec>, HashMap<Vec<u8>, Cached>>,
    entries: usize,
}

/// All decoders, with their lazily loaded tables and caches.
pub struct Decoders {
    options: DecoderOptions,
    kallsyms: kallsyms::Kallsyms,
    cgroups: cgroup::Cgroups,
    pci: pci::Pci,
    regexps: regexps::Regexps,
    ifnames: system::IfNames,
    partitions: system::Partitions,
    cache: RwLock<LabelCache>,
    errors: AtomicU64,
}

impl Default for Decoders {
    fn default() -> Self {
        Decoders::new()
    }
}

impl std::fmt::Debug for Decoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoders")
            .field("options", &self.options)
            .field("errors", &self.errors())
            .finish_non_exhaustive()
    }
}

impl Decoders {
    /// Decoders reading the system's default paths.
    pub fn new() -> Decoders {
        Decoders::with_options(DecoderOptions::default())
    }

    /// Decoders reading the given paths.
    pub fn with_options(options: DecoderOptions) -> Decoders {
        Decoders {
            kallsyms: kallsyms::Kallsyms::new(options.kallsyms.clone(), options.refresh_interval),
            cgroups: cgroup::Cgroups::new(options.cgroup_root.clone(), options.refresh_interval),
            pci: pci::Pci::new(options.pci_ids.clone()),
            regexps: regexps::Regexps::default(),
            ifnames: system::IfNames::default(),
            partitions: system::Partitions::new(options.partitions.clone()),
            cache: RwLock::new(LabelCache::default()),
            errors: AtomicU64::new(0),
            options,
        }
    }

    /// The kernel address of `symbol` from kallsyms (`None` when the kernel
    /// has no such symbol), for ebpf_exporter's `kaddrs`.
    pub fn kernel_address(&self, symbol: &str) -> Result<Option<u64>, String> {
        self.kallsyms.address_of(symbol)
    }

    /// Checks one decoder entry: a known name, and for `regexp` at least one
    /// expression, each of which compiles.
    pub fn check(&self, spec: &DecoderSpec) -> Result<(), String> {
        if !DECODER_NAMES.contains(&spec.name.as_str()) {
            return Err(format!("unknown decoder {:?}", spec.name));
        }
        if spec.name == "regexp" {
            if spec.regexps.is_empty() {
                return Err("no regexps defined in config".to_string());
            }
            for expr in &spec.regexps {
                self.regexps.get(expr)?;
            }
        }
        Ok(())
    }

    /// Checks labels as [`Decoders::decode_labels`] needs them: each with a
    /// non-zero size, at least one decoder, and every decoder passing
    /// [`Decoders::check`].
    pub fn check_labels(&self, labels: &[LabelSpec]) -> Result<(), String> {
        for label in labels {
            if label.size == 0 {
                return Err(format!(
                    "error decoding label {:?}: size is zero or not set",
                    label.name
                ));
            }
            if label.decoders.is_empty() {
                return Err(format!(
                    "error decoding label {:?}: no decoders set",
                    label.name
                ));
            }
            for spec in &label.decoders {
                self.check(spec)
                    .map_err(|e| format!("label {:?}: {e}", label.name))?;
            }
        }
        Ok(())
    }

    /// Splits `key` by the labels' sizes and paddings and decodes each; the
    /// result is cached by (labels, key bytes) so steady-state scrapes do not
    /// re-decode. Failures are not cached.
    pub fn decode_labels(
        &self,
        labels: &[LabelSpec],
        key: &[u8],
    ) -> Result<Vec<String>, DecodeError> {
        if self.options.cache_limit == 0 {
            return self.decode_labels_uncached(labels, key);
        }
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.groups.get(labels).and_then(|g| g.get(key)) {
                return match hit {
                    Cached::Values(values) => Ok(values.clone()),
                    Cached::Skip => Err(DecodeError::Skip),
                };
            }
        }
        let result = self.decode_labels_uncached(labels, key);
        let cached = match &result {
            Ok(values) => Cached::Values(values.clone()),
            Err(DecodeError::Skip) => Cached::Skip,
            Err(DecodeError::Failed { .. }) => return result,
        };
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.entries >= self.options.cache_limit {
            cache.groups.clear();
            cache.entries = 0;
        }
        let inserted = match cache.groups.get_mut(labels) {
            Some(group) => group.insert(key.to_vec(), cached).is_none(),
            None => {
                let mut group = HashMap::new();
                group.insert(key.to_vec(), cached);
                cache.groups.insert(labels.to_vec(), group);
                true
            }
        };
        if inserted {
            cache.entries += 1;
        }
        result
    }

    /// [`Decoders::decode_labels`] without the label cache (ebpf_exporter
    /// uses this for tracing spans). The decoders' own tables still cache.
    pub fn decode_labels_uncached(
        &self,
        labels: &[LabelSpec],
        key: &[u8],
    ) -> Result<Vec<String>, DecodeError> {
        let result = self.split_and_decode(labels, key);
        if matches!(result, Err(DecodeError::Failed { .. })) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Runs one label's decoder chain over `input` (no splitting, no cache,
    /// not counted in [`Decoders::errors`]).
    pub fn decode_label(&self, label: &LabelSpec, input: &[u8]) -> Result<String, DecodeError> {
        let mut value = input.to_vec();
        for spec in &label.decoders {
            value = match self.step(spec, &value) {
                Ok(out) => out,
                Err(StepError::Skip) => return Err(DecodeError::Skip),
                Err(StepError::Failed(message)) => {
                    return Err(DecodeError::Failed {
                        label: label.name.clone(),
                        decoder: spec.name.clone(),
                        message,
                    })
                }
            };
        }
        Ok(match String::from_utf8(value) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Decoder failures so far (label sets that failed to decode; skips are
    /// not failures). ebpf_exporter's `ebpf_exporter_decoder_errors_total` is
    /// labelled by `config` (the config name), not by decoder, and counts
    /// failed map reads: the caller, which knows the config, does that.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// How many keys the label cache holds now.
    pub fn cached_keys(&self) -> usize {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).entries
    }

    fn split_and_decode(
        &self,
        labels: &[LabelSpec],
        key: &[u8],
    ) -> Result<Vec<String>, DecodeError> {
        let mut total: usize = 0;
        for label in labels {
            if label.size == 0 {
                return Err(DecodeError::Failed {
                    label: label.name.clone(),
                    decoder: String::new(),
                    message: "size is zero or not set".to_string(),
                });
            }
            total = total
                .saturating_add(label.size)
                .saturating_add(label.padding);
        }
        if total != key.len() {
            return Err(DecodeError::Failed {
                label: String::new(),
                decoder: String::new(),
                message: format!(
                    "total size of key is {} bytes, but we have labels to decode {}",
                    key.len(),
                    total
                ),
            });
        }
        let mut values = Vec::with_capacity(labels.len());
        let mut off = 0;
        for label in labels {
            if label.decoders.is_empty() {
                return Err(DecodeError::Failed {
                    label: label.name.clone(),
                    decoder: String::new(),
                    message: "no decoders set".to_string(),
                });
            }
            // In bounds: the sizes add up to the key's length.
            let input = key.get(off..off + label.size).unwrap_or_default();
            values.push(self.decode_label(label, input)?);
            off += label.size + label.padding;
        }
        Ok(values)
    }

    fn step(&self, spec: &DecoderSpec, input: &[u8]) -> Step {
        match spec.name.as_str() {
            "uint" => simple::uint(input),
            "hex" => Ok(simple::hex(input)),
            "string" => Ok(simple::string(input)),
            "dname" => Ok(simple::dname(input)),
            "inet_ip" => Ok(simple::inet_ip(input)),
            "errno" => simple::errno(input),
            "syscall" => simple::syscall(input),
            "static_map" => Ok(simple::static_map(input, spec)),
            "regexp" => self.regexps.decode(input, &spec.regexps),
            "ksym" => self.kallsyms.ksym(input),
            "kstack" => self.kallsyms.kstack(input),
            "ifname" => self.ifnames.decode(input),
            "majorminor" => self.partitions.decode(input),
            "cgroup" => self.cgroups.decode(input),
            "pci_vendor" => self.pci.vendor(input),
            "pci_device" => self.pci.device(input),
            "pci_class" => self.pci.class(input),
            "pci_subclass" => self.pci.subclass(input),
            other => Err(StepError::Failed(format!("unknown decoder {other:?}"))),
        }
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`: ASCII digits only, no sign.
pub(crate) fn parse_go_uint(input: &[u8]) -> Result<u64, String> {
    let s = std::str::from_utf8(input).map_err(|_| format!("error parsing {input:?} as uint"))?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("error parsing {s:?} as uint"));
    }
    s.parse::<u64>()
        .map_err(|_| format!("error parsing {s:?} as uint"))
}

/// Go's `strconv.Atoi` on 64-bit: optional `+`/`-`, then ASCII digits.
pub(crate) fn parse_go_int(input: &[u8]) -> Result<i64, String> {
    let s = std::str::from_utf8(input)
        .map_err(|_| format!("strconv.Atoi: parsing {input:?}: invalid syntax"))?;
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

/// Go's `fmt.Sprintf("%0Nx", n)` for a signed int: zero-padded to `width`
/// including the sign, lowercase.
pub(crate) fn go_hex(n: i64, width: usize) -> String {
    if n < 0 {
        format!("-{:0w$x}", n.unsigned_abs(), w = width.saturating_sub(1))
    } else {
        format!("{:0width$x}", n)
    }
}

/// The first `N` bytes of `input` as a host-order array, if there are that many.
pub(crate) fn first_bytes<const N: usize>(input: &[u8]) -> Option<[u8; N]> {
    input.get(..N).and_then(|b| b.try_into().ok())
}
