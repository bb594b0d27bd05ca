//! `bpfkit exporter`: ebpf_exporter's command line over bpfkit's runtime.
//!
//! Load the configs (the built-in set without `--config.dir`), attach
//! their programs, drop capabilities, then serve metrics over HTTP until
//! SIGINT or SIGTERM; or, with `--config.check`, report and exit; or, with
//! `--once`, print one scrape and exit.

use anyhow::{bail, Context, Result};
use bpfkit::kernel::caps;
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
    let keep = caps::parse_keep(&args.capabilities_keep)
        .map_err(|e| anyhow::anyhow!("--capabilities.keep: {e}"))?;

    let opts = Options {
        config_dir: args.config_dir.clone(),
        config_names: args
            .config_names
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect(),
        strict: args.config_strict,
        // Dropped once the programs are attached, before any thread exists:
        // capabilities are per thread and new threads inherit them.
        keep_capabilities: keep,
    };
    let exporter = Exporter::start(&opts)?;

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
