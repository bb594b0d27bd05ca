//! `bpfkit exporter`: ebpf_exporter's command line over bpfkit's runtime.
//!
//! Load the configs (the built-in set without `--config.dir`), attach
//! their programs, drop capabilities, then serve metrics over HTTP until
//! SIGINT or SIGTERM; or, with `--config.check`, report and exit; or, with
//! `--once`, print one scrape and exit.

use anyhow::{bail, Context, Result};
use bpfkit_exporter::http::{self, Listen};
use bpfkit_exporter::runtime::{Exporter, Options};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The flags, named as ebpf_exporter's.
#[derive(clap::Args)]
pub struct ExporterArgs {
    /// Config dir path (default: the built-in configs).
    #[arg(long = "config.dir", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Comma separated names of configs to load (default: every config).
    #[arg(long = "config.names", value_name = "NAMES", value_delimiter = ',')]
    pub config_names: Vec<String>,
    /// Check whether configs load and attach, then exit.
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Make sure every config is valid and every probe attached.
    #[arg(long = "config.strict")]
    pub config_strict: bool,
    /// The address to listen on for HTTP requests (fd://0 for systemd
    /// activation).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9435"
    )]
    pub listen_address: String,
    /// Path under which to expose metrics.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,
    /// Comma separated list of capabilities to keep (cap_syslog, cap_bpf,
    /// etc.), 'all' or 'none'.
    #[arg(long = "capabilities.keep", value_name = "CAPS", default_value = "all")]
    pub capabilities_keep: String,
    /// Enable debug: raw maps as JSON on /maps.
    #[arg(long)]
    pub debug: bool,
    /// Print one scrape to stdout and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: print OpenMetrics instead of the text format 0.0.4.
    #[arg(long, requires = "once")]
    pub openmetrics: bool,
}

pub fn run(args: ExporterArgs) -> Result<()> {
    // Argument errors before anything is loaded.
    let listen: Listen = args.listen_address.parse()?;
    if !args.telemetry_path.starts_with('/') {
        bail!(
            "--web.telemetry-path {:?}: must start with '/'",
            args.telemetry_path
        );
    }
    let keep = caps::parse_keep(&args.capabilities_keep)?;

    let opts = Options {
        config_dir: args.config_dir.clone(),
        config_names: args
            .config_names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        strict: args.config_strict,
    };
    let exporter = Exporter::start(&opts)?;

    // Before any other thread exists: capabilities are per thread, and the
    // server's threads inherit the main thread's.
    if let Some(keep) = keep {
        caps::keep_only(keep).context("dropping capabilities")?;
    }

    let status = exporter.status();
    let programs: usize = status.iter().map(|c| c.programs.len()).sum();
    let config_errors: Vec<String> = status
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.name)))
        .collect();
    let missed: Vec<String> = status
        .iter()
        .flat_map(|c| c.programs.iter())
        .filter(|p| !p.attached)
        .map(|p| {
            let why = p.error.as_deref().unwrap_or("not attached");
            format!("{}:{} ({why})", p.config, p.name)
        })
        .collect();
    eprintln!(
        "ebpf_exporter: started {} configs, {programs} programs",
        exporter.configs().len()
    );
    if args.config_strict && !missed.is_empty() {
        bail!("missed attachments (config:program): {}", missed.join(", "));
    }
    if args.config_check {
        if !config_errors.is_empty() {
            bail!("config check failed:\n  {}", config_errors.join("\n  "));
        }
        eprintln!("ebpf_exporter: config check successful, exiting");
        return Ok(());
    }
    if args.once {
        let text = http::once(&exporter, args.openmetrics);
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(());
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let source: Arc<dyn http::Source> = Arc::new(exporter);
    let telemetry_path = args.telemetry_path.clone();
    let debug = args.debug;
    rt.block_on(async move {
        let listener = http::bind(&listen).await?;
        match listener.local_addr() {
            Ok(addr) => eprintln!("ebpf_exporter: listening on {listen} ({addr})"),
            Err(_) => eprintln!("ebpf_exporter: listening on {listen}"),
        }
        if debug {
            eprintln!("ebpf_exporter: debug enabled, exporting raw maps on /maps");
        }
        http::serve_on(listener, source, &telemetry_path, debug, shutdown_signal()).await?;
        eprintln!("ebpf_exporter: stopping, detaching programs");
        Ok::<(), anyhow::Error>(())
    })
}

/// Completes on SIGINT or SIGTERM (or never, if neither can be watched).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        (Ok(mut s), Err(e)) | (Err(e), Ok(mut s)) => {
            eprintln!("ebpf_exporter: cannot watch a signal: {e}");
            s.recv().await;
        }
        (Err(e), Err(_)) => {
            eprintln!("ebpf_exporter: cannot watch signals: {e}");
            std::future::pending::<()>().await;
        }
    }
}

/// `--capabilities.keep`: capability names as libcap spells them.
mod caps {
    use anyhow::{bail, Result};
    use std::io;

    /// Names by number (`CAP_CHOWN` = 0 … `CAP_CHECKPOINT_RESTORE` = 40).
    const NAMES: [&str; 41] = [
        "cap_chown",
        "cap_dac_override",
        "cap_dac_read_search",
        "cap_fowner",
        "cap_fsetid",
        "cap_kill",
        "cap_setgid",
        "cap_setuid",
        "cap_setpcap",
        "cap_linux_immutable",
        "cap_net_bind_service",
        "cap_net_broadcast",
        "cap_net_admin",
        "cap_net_raw",
        "cap_ipc_lock",
        "cap_ipc_owner",
        "cap_sys_module",
        "cap_sys_rawio",
        "cap_sys_chroot",
        "cap_sys_ptrace",
        "cap_sys_pacct",
        "cap_sys_admin",
        "cap_sys_boot",
        "cap_sys_nice",
        "cap_sys_resource",
        "cap_sys_time",
        "cap_sys_tty_config",
        "cap_mknod",
        "cap_lease",
        "cap_audit_write",
        "cap_audit_control",
        "cap_setfcap",
        "cap_mac_override",
        "cap_mac_admin",
        "cap_syslog",
        "cap_wake_alarm",
        "cap_block_suspend",
        "cap_audit_read",
        "cap_perfmon",
        "cap_bpf",
        "cap_checkpoint_restore",
    ];

    /// `all` → `None` (keep everything); `none` → the empty set; otherwise
    /// the listed capabilities as a bit mask.
    pub fn parse_keep(spec: &str) -> Result<Option<u64>> {
        match spec.trim() {
            "all" => return Ok(None),
            "none" => return Ok(Some(0)),
            _ => {}
        }
        let mut mask = 0u64;
        for name in spec.split(',') {
            let lower = name.trim().to_ascii_lowercase();
            let Some(bit) = NAMES.iter().position(|n| *n == lower) else {
                bail!(
                    "--capabilities.keep: unknown capability {:?} (expected names like cap_bpf, or 'all' or 'none')",
                    name.trim()
                );
            };
            mask |= 1 << bit;
        }
        Ok(Some(mask))
    }

    fn names(mask: u64) -> String {
        let v: Vec<&str> = NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(",")
        }
    }

    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    /// `_LINUX_CAPABILITY_VERSION_3`.
    const VERSION_3: u32 = 0x2008_0522;

    fn capget() -> io::Result<[Data; 2]> {
        let mut hdr = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: a version-3 header and two data words, as capget(2) expects.
        let r =
            unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) };
        if r == 0 {
            Ok(data)
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn last_cap() -> u32 {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
            .min(63)
    }

    /// Drops every capability not in `keep` from the calling thread's
    /// bounding, ambient, inheritable, permitted and effective sets (threads
    /// created afterwards inherit them). Keeping a capability the process
    /// does not have is an error, as with ebpf_exporter.
    pub fn keep_only(keep: u64) -> Result<()> {
        let before = capget()?;
        let permitted = u64::from(before[0].permitted) | u64::from(before[1].permitted) << 32;
        if keep & !permitted != 0 {
            bail!(
                "cannot keep {}: not permitted (permitted: {})",
                names(keep & !permitted),
                names(permitted)
            );
        }
        // The bounding set first: dropping from it needs CAP_SETPCAP, which
        // the capset below may remove.
        for cap in 0..=last_cap() {
            if keep & (1 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments.
            let in_bounding = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
            if in_bounding != 1 {
                continue;
            }
            // SAFETY: as above.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                let e = io::Error::last_os_error();
                // Without CAP_SETPCAP the bounding set stays; the process
                // can still not regain what it drops below.
                if e.raw_os_error() != Some(libc::EPERM) {
                    bail!("dropping {} from the bounding set: {e}", names(1 << cap));
                }
            }
        }
        // SAFETY: prctl with integer arguments; EINVAL on kernels without
        // ambient capabilities is fine.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
        let mut hdr = Header {
            version: VERSION_3,
            pid: 0,
        };
        let data = [
            Data {
                effective: keep as u32,
                permitted: keep as u32,
                inheritable: 0,
            },
            Data {
                effective: (keep >> 32) as u32,
                permitted: (keep >> 32) as u32,
                inheritable: 0,
            },
        ];
        // SAFETY: as in capget; lowering the sets is always allowed.
        let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
        if r != 0 {
            bail!("capset to {}: {}", names(keep), io::Error::last_os_error());
        }
        eprintln!(
            "ebpf_exporter: dropped capabilities to {} (from {})",
            names(keep),
            names(permitted)
        );
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_keep_lists() {
            assert_eq!(parse_keep("all").ok(), Some(None));
            assert_eq!(parse_keep("none").ok(), Some(Some(0)));
            assert_eq!(
                parse_keep("cap_bpf,CAP_SYSLOG").ok(),
                Some(Some((1 << 39) | (1 << 34)))
            );
            assert_eq!(parse_keep("cap_perfmon").ok(), Some(Some(1 << 38)));
            assert!(parse_keep("cap_nope").is_err());
            assert!(parse_keep("").is_err());
        }

        #[test]
        fn names_round_trip() {
            assert_eq!(names(0), "none");
            assert_eq!(names((1 << 39) | (1 << 21)), "cap_sys_admin,cap_bpf");
        }
    }
}
