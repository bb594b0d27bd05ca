//! `bpfkit load`: load an object into the kernel, set its globals, attach
//! programs, and print chosen maps every interval until Ctrl-C, SIGTERM or
//! `--duration`; then drop the object (detaching everything) and say so.
//!
//! Output, one line each:
//! - `attached PROGRAM at SPEC` per `--attach`;
//! - `[+SECS] MAP KEY = VALUE` per entry of each `--watch` map, each
//!   interval (and once more on stop): KEY and VALUE are the bytes in hex in
//!   memory order (little endian on x86-64); an 8-byte value is followed by
//!   its decimal u64 in parentheses; per-CPU values are summed when 8 bytes
//!   (`VALUE (N, sum of C CPUs)`), shown as `cpuI:HEX ...` otherwise;
//!   `[+SECS] MAP (empty)` for a map with no entries;
//! - `detached` at the end.

use anyhow::{anyhow, bail, Context, Result};
use bpfkit::{Attach, Engine, Map, Object, XdpMode};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The accepted `--attach` forms, for error messages.
pub const ATTACH_FORMS: &str = "tracepoint:CATEGORY:NAME=PROGRAM, raw_tracepoint:NAME=PROGRAM, \
tp_btf:NAME=PROGRAM, uprobe:PATH[@PID]:SYMBOL=PROGRAM, usdt:PATH[@PID]:PROVIDER:NAME=PROGRAM, xdp:IFACE[:generic|:driver]=PROGRAM, \
tc:IFACE:ingress|egress=PROGRAM, perf_event:FREQ=PROGRAM";

/// Where to attach, owning its strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Tracepoint {
        category: String,
        name: String,
    },
    RawTracepoint {
        name: String,
    },
    BtfTracepoint {
        name: String,
    },
    Uprobe {
        path: PathBuf,
        symbol: String,
        pid: Option<u32>,
    },
    Usdt {
        path: PathBuf,
        provider: String,
        name: String,
        pid: Option<u32>,
    },
    PerfEvent {
        frequency: u64,
    },
    Xdp {
        interface: String,
        mode: XdpMode,
    },
    Tc {
        interface: String,
        ingress: bool,
    },
}

impl Target {
    fn attach(&self) -> Attach<'_> {
        match self {
            Target::Tracepoint { category, name } => Attach::Tracepoint { category, name },
            Target::RawTracepoint { name } => Attach::RawTracepoint { name },
            Target::BtfTracepoint { name } => Attach::BtfTracepoint { name },
            Target::Uprobe { path, symbol, pid } => Attach::Uprobe {
                target: path,
                symbol: Some(symbol),
                offset: 0,
                pid: *pid,
            },
            Target::Usdt {
                path,
                provider,
                name,
                pid,
            } => Attach::Usdt {
                target: path,
                provider,
                name,
                pid: *pid,
                cookie: 0,
            },
            Target::PerfEvent { frequency } => Attach::CpuClock {
                frequency: *frequency,
            },
            Target::Xdp { interface, mode } => Attach::Xdp {
                interface,
                mode: *mode,
            },
            Target::Tc { interface, ingress } => Attach::Tc {
                interface,
                ingress: *ingress,
            },
        }
    }
}

/// One `--attach SPEC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachSpec {
    pub spec: String,
    pub program: String,
    pub target: Target,
}

/// Parses `KIND:...=PROGRAM`; errors name the spec and list the forms.
pub fn parse_attach(spec: &str) -> Result<AttachSpec> {
    parse_attach_inner(spec)
        .map_err(|why| anyhow!("--attach `{spec}`: {why}; accepted forms: {ATTACH_FORMS}"))
}

/// `PATH[@PID]`.
fn path_and_pid(path: &str) -> std::result::Result<(&str, Option<u32>), String> {
    Ok(match path.rsplit_once('@') {
        Some((p, pid)) => (
            p,
            Some(
                pid.parse::<u32>()
                    .map_err(|_| format!("`{pid}` is not a process id"))?,
            ),
        ),
        None => (path, None),
    })
}

fn parse_attach_inner(spec: &str) -> std::result::Result<AttachSpec, String> {
    let (at, program) = spec
        .rsplit_once('=')
        .ok_or("missing `=PROGRAM`".to_string())?;
    if program.is_empty() {
        return Err("empty program name after `=`".into());
    }
    let (kind, rest) = at.split_once(':').ok_or(
        "missing `KIND:` (tracepoint, raw_tracepoint, tp_btf, uprobe, usdt, xdp, tc, perf_event)",
    )?;
    let nonempty = |s: &str, what: &str| {
        if s.is_empty() {
            Err(format!("empty {what}"))
        } else {
            Ok(s.to_string())
        }
    };
    let target = match kind {
        "tracepoint" | "tp" => {
            let (category, name) = rest
                .split_once(':')
                .ok_or("a tracepoint needs CATEGORY:NAME")?;
            Target::Tracepoint {
                category: nonempty(category, "tracepoint category")?,
                name: nonempty(name, "tracepoint name")?,
            }
        }
        "raw_tracepoint" | "raw_tp" => Target::RawTracepoint {
            name: nonempty(rest, "raw tracepoint name")?,
        },
        "tp_btf" => Target::BtfTracepoint {
            name: nonempty(rest, "BTF tracepoint name")?,
        },
        "uprobe" => {
            let (path, symbol) = rest.rsplit_once(':').ok_or("a uprobe needs PATH:SYMBOL")?;
            let (path, pid) = path_and_pid(path)?;
            Target::Uprobe {
                path: PathBuf::from(nonempty(path, "uprobe path")?),
                symbol: nonempty(symbol, "uprobe symbol")?,
                pid,
            }
        }
        "usdt" => {
            let mut parts = rest.rsplitn(3, ':');
            let (name, provider, path) = (parts.next(), parts.next(), parts.next());
            let (Some(name), Some(provider), Some(path)) = (name, provider, path) else {
                return Err("a usdt probe needs PATH:PROVIDER:NAME".into());
            };
            let (path, pid) = path_and_pid(path)?;
            Target::Usdt {
                path: PathBuf::from(nonempty(path, "usdt path")?),
                provider: nonempty(provider, "usdt provider")?,
                name: nonempty(name, "usdt probe name")?,
                pid,
            }
        }
        "xdp" => {
            let (interface, mode) = match rest.split_once(':') {
                None => (rest, XdpMode::Generic),
                Some((i, "generic")) => (i, XdpMode::Generic),
                Some((i, "driver")) => (i, XdpMode::Driver),
                Some((_, m)) => return Err(format!("XDP mode `{m}` is not generic or driver")),
            };
            Target::Xdp {
                interface: nonempty(interface, "interface")?,
                mode,
            }
        }
        "tc" => {
            let (interface, dir) = rest
                .split_once(':')
                .ok_or("tc needs IFACE:ingress or IFACE:egress")?;
            let ingress = match dir {
                "ingress" => true,
                "egress" => false,
                d => return Err(format!("tc direction `{d}` is not ingress or egress")),
            };
            Target::Tc {
                interface: nonempty(interface, "interface")?,
                ingress,
            }
        }
        "perf_event" => {
            let frequency = rest
                .parse::<u64>()
                .ok()
                .filter(|&f| f > 0)
                .ok_or(format!("`{rest}` is not a frequency in Hz"))?;
            Target::PerfEvent { frequency }
        }
        k => return Err(format!("unknown kind `{k}`")),
    };
    Ok(AttachSpec {
        spec: spec.to_string(),
        program: program.to_string(),
        target,
    })
}

/// Parses `--global NAME=HEX`: HEX is the bytes in memory order.
pub fn parse_global(arg: &str) -> Result<(String, Vec<u8>)> {
    let (name, hex) = arg
        .split_once('=')
        .filter(|(n, h)| !n.is_empty() && !h.is_empty())
        .ok_or_else(|| anyhow!("--global `{arg}`: expected NAME=HEX (bytes in memory order)"))?;
    let bytes = crate::parse_hex(hex).with_context(|| format!("--global `{arg}`"))?;
    Ok((name.to_string(), bytes))
}

fn seconds(what: &str, v: f64) -> Result<Duration> {
    if !v.is_finite() || v <= 0.0 {
        bail!("{what} must be a positive number of seconds, not {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

/// A library error as one message: its Display already includes its source,
/// so `{:#}` on the chain would repeat it.
fn flat(e: bpfkit::Error) -> anyhow::Error {
    anyhow!("{e}")
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa` is fully initialised; the old action is not wanted.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            bail!("sigaction: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn u64_le(b: &[u8]) -> u64 {
    u64::from_ne_bytes(b[..8].try_into().expect("8 bytes"))
}

/// One line per entry of `map`, prefixed with the elapsed time.
fn print_map(map: &Map, elapsed: Duration) -> Result<()> {
    let name = map.name();
    let vsize = map.value_size();
    let stamp = format!("[+{:.3}s]", elapsed.as_secs_f64());
    let keys = map.keys().map_err(flat)?;
    if keys.is_empty() {
        println!("{stamp} {name} (empty)");
    }
    for key in keys {
        let Some(v) = map.lookup(&key).map_err(flat)? else {
            continue; // deleted since listed
        };
        let value = if v.len() > vsize {
            // Per-CPU: one 8-byte-aligned slot per possible CPU.
            let slot = vsize.div_ceil(8) * 8;
            let cpus = v.chunks(slot);
            if vsize == 8 {
                let n = cpus.len();
                let sum = cpus.map(u64_le).fold(0u64, u64::wrapping_add);
                format!("{} ({sum}, sum of {n} CPUs)", hex(&sum.to_ne_bytes()))
            } else {
                cpus.enumerate()
                    .map(|(i, c)| format!("cpu{i}:{}", hex(&c[..vsize])))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        } else if vsize == 8 {
            format!("{} ({})", hex(&v), u64_le(&v))
        } else {
            hex(&v)
        };
        println!("{stamp} {name} {} = {value}", hex(&key));
    }
    Ok(())
}

pub struct LoadArgs {
    pub object: PathBuf,
    pub globals: Vec<String>,
    pub attach: Vec<String>,
    pub watch: Vec<String>,
    pub interval: f64,
    pub duration: Option<f64>,
}

pub fn load(args: LoadArgs) -> Result<()> {
    // Everything that can be checked without the kernel first.
    let specs = args
        .attach
        .iter()
        .map(|s| parse_attach(s))
        .collect::<Result<Vec<_>>>()?;
    let globals = args
        .globals
        .iter()
        .map(|g| parse_global(g))
        .collect::<Result<Vec<_>>>()?;
    let interval = seconds("--interval", args.interval)?;
    let duration = args
        .duration
        .map(|d| seconds("--duration", d))
        .transpose()?;
    let mut object = Object::open(Path::new(&args.object)).map_err(flat)?;
    for (name, value) in &globals {
        object.set_global_bytes(name, value);
    }
    install_signal_handlers()?;

    let mut loaded = object.load(Engine::Kernel).map_err(flat)?;
    let mut programs = loaded.program_names();
    programs.sort();
    if specs.is_empty() {
        bail!(
            "no --attach given; the object's programs: {}",
            programs.join(", ")
        );
    }
    let mut maps = loaded.map_names();
    maps.sort();
    // Opened once: each interval only reads them.
    let mut watched = Vec::with_capacity(args.watch.len());
    for w in &args.watch {
        if !maps.contains(w) {
            bail!(
                "--watch `{w}`: the object has no such map; its maps: {}",
                maps.join(", ")
            );
        }
        match loaded.map(w).and_then(|m| m.keys().map(|_| m)) {
            Ok(m) => watched.push(m),
            Err(e) => bail!("--watch `{w}`: cannot list its entries (is it a ring buffer or perf event array?): {e}"),
        }
    }
    for s in &specs {
        if !programs.contains(&s.program) {
            bail!(
                "--attach `{}`: the object has no program `{}`; its programs: {}",
                s.spec,
                s.program,
                programs.join(", ")
            );
        }
        loaded
            .attach(&s.program, s.target.attach())
            .map_err(|e| anyhow!("--attach `{}`: {e}", s.spec))?;
        println!("attached {} at {}", s.program, s.spec);
    }

    let start = Instant::now();
    let mut next = start + interval;
    let tick = Duration::from_millis(20);
    loop {
        let now = Instant::now();
        let over = duration.is_some_and(|d| now >= start + d);
        if STOP.load(Ordering::SeqCst) || over {
            break;
        }
        if now >= next {
            for m in &watched {
                print_map(m, now - start)?;
            }
            next += interval;
            if next < now {
                next = now + interval;
            }
        }
        let mut wake = next;
        if let Some(d) = duration {
            wake = wake.min(start + d);
        }
        std::thread::sleep(wake.saturating_duration_since(Instant::now()).min(tick));
    }
    // A last look, so the final counts are always shown.
    for m in &watched {
        print_map(m, start.elapsed())?;
    }
    drop(loaded);
    println!("detached");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s = parse_attach("tracepoint:syscalls:sys_enter_openat=count_openat").unwrap();
        assert_eq!(s.program, "count_openat");
        assert_eq!(
            s.target,
            Target::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_openat".into()
            }
        );
        let s = parse_attach("uprobe:/bin/x@42:main=p").unwrap();
        assert_eq!(
            s.target,
            Target::Uprobe {
                path: "/bin/x".into(),
                symbol: "main".into(),
                pid: Some(42)
            }
        );
        let s = parse_attach("usdt:/bin/x@42:prov:probe=p").unwrap();
        assert_eq!(
            s.target,
            Target::Usdt {
                path: PathBuf::from("/bin/x"),
                provider: "prov".into(),
                name: "probe".into(),
                pid: Some(42),
            }
        );
        assert_eq!(
            parse_attach("usdt:./x:p:n=q").unwrap().target,
            Target::Usdt {
                path: PathBuf::from("./x"),
                provider: "p".into(),
                name: "n".into(),
                pid: None,
            }
        );
        for bad in [
            "usdt:/bin/x:probe=p",
            "usdt::p:n=q",
            "usdt:/x:p:=q",
            "usdt:/x@me:p:n=q",
        ] {
            let err = parse_attach(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("usdt:PATH"), "{err}");
        }
        let s = parse_attach("xdp:lo:driver=p").unwrap();
        assert_eq!(
            s.target,
            Target::Xdp {
                interface: "lo".into(),
                mode: XdpMode::Driver
            }
        );
        assert!(matches!(
            parse_attach("tc:eth0:egress=p").unwrap().target,
            Target::Tc { ingress: false, .. }
        ));
        assert_eq!(
            parse_attach("perf_event:99=p").unwrap().target,
            Target::PerfEvent { frequency: 99 }
        );
        for bad in [
            "tracepoint:syscalls=p",
            "tracepoint:a:b",
            "tracepoint:a:b=",
            "kprobe:x=p",
            "xdp:lo:fast=p",
            "tc:lo:sideways=p",
            "perf_event:0=p",
            "nothing",
        ] {
            let e = parse_attach(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("accepted forms"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn globals_parse() {
        assert_eq!(
            parse_global("target_tgid=39300000").unwrap(),
            ("target_tgid".to_string(), vec![0x39, 0x30, 0, 0])
        );
        assert!(parse_global("x").is_err());
        assert!(parse_global("x=zz").is_err());
    }
}
