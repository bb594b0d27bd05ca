//! The exporter's HTTP server, as ebpf_exporter's `main.go` sets it up:
//!
//! * `GET <telemetry path>` (`/metrics` by default): one scrape, in the
//!   format the `Accept` header negotiates ([`metrics::negotiate`]): the
//!   Prometheus text format 0.0.4 unless OpenMetrics is asked for.
//! * `GET /`: a landing page with the configs, their programs and whether
//!   each attached, linking to the telemetry path (and `/maps` under
//!   `--debug`).
//! * `GET /maps`, only with `--debug`: the raw contents of the maps as JSON.
//!
//! Anything else is `404 Not Found` (ebpf_exporter's Go mux answers every
//! unknown path with the landing page instead). Scrapes read maps through
//! syscalls, so they run on tokio's blocking pool.
//!
//! The listen address is ebpf_exporter's `--web.listen-address` ([`Listen`]):
//! `:9435`, `HOST:PORT`, `[V6]:PORT` or `fd://N` for socket activation.

mod listen;
mod page;

pub use listen::{bind, Listen, ListenError, Listener};

use crate::metrics::{self, Family};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use std::future::Future;
use std::sync::Arc;

/// What the server shows: the runtime's exporter implements it; tests use
/// a fake.
pub trait Source: Send + Sync + 'static {
    /// One scrape: every metric family, self-metrics included.
    fn scrape(&self) -> Vec<Family>;
    /// The configs and their programs, for the landing page.
    fn status(&self) -> Vec<ConfigView>;
    /// The raw contents of the maps, for `/maps` under `--debug`.
    fn maps_json(&self) -> serde_json::Value;
}

/// A config as the landing page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigView {
    pub name: String,
    pub programs: Vec<ProgramView>,
    /// Why the config did not load, if it did not.
    pub error: Option<String>,
}

/// A program of a config as the landing page shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgramView {
    pub name: String,
    /// The ELF section, e.g. `tp_btf/sched_switch`.
    pub section: String,
    /// The kernel's program tag (hex), empty when not loaded.
    pub tag: String,
    /// The kernel's program id, 0 when not loaded.
    pub id: u32,
    pub attached: bool,
    /// Why the program did not load or attach, if it did not.
    pub error: Option<String>,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The telemetry path does not start with `/`.
    #[error("--web.telemetry-path {0:?}: must start with '/'")]
    TelemetryPath(String),
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

struct App {
    source: Arc<dyn Source>,
    telemetry_path: String,
    debug: bool,
}

/// Binds `listen` and serves until `shutdown` completes.
pub async fn serve(
    source: Arc<dyn Source>,
    listen: Listen,
    telemetry_path: &str,
    debug: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    check_telemetry_path(telemetry_path)?;
    let listener = bind(&listen).await?;
    serve_on(listener, source, telemetry_path, debug, shutdown).await
}

/// Serves on a listener from [`bind`] (whose [`Listener::local_addr`] tells
/// the port when bound to port 0) until `shutdown` completes; requests in
/// flight are finished first.
pub async fn serve_on(
    listener: Listener,
    source: Arc<dyn Source>,
    telemetry_path: &str,
    debug: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    check_telemetry_path(telemetry_path)?;
    let app = Arc::new(App {
        source,
        telemetry_path: telemetry_path.to_string(),
        debug,
    });
    let router = Router::new().fallback(handle).with_state(app);
    axum::serve(listener.into_tokio(), router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HttpError::Serve)
}

fn check_telemetry_path(path: &str) -> Result<(), HttpError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(HttpError::TelemetryPath(path.to_string()))
    }
}

/// One scrape written out, for `--once`: OpenMetrics with `openmetrics`,
/// the text format 0.0.4 otherwise.
pub fn once(source: &dyn Source, openmetrics: bool) -> String {
    let families = source.scrape();
    let mut out = String::new();
    if openmetrics {
        metrics::encode_openmetrics(&families, &mut out);
    } else {
        metrics::encode_text(&families, &mut out);
    }
    out
}

/// Every request: routed by hand, so that any telemetry path is accepted
/// as it is (axum's router rejects some paths by panicking).
async fn handle(State(app): State<Arc<App>>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path();
    let route = if path == app.telemetry_path {
        Route::Metrics
    } else if path == "/" {
        Route::Landing
    } else if path == "/maps" && app.debug {
        Route::Maps
    } else {
        return plain(StatusCode::NOT_FOUND, "404 page not found\n");
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match route {
        Route::Metrics => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            metrics_response(app, accept).await
        }
        Route::Landing => {
            let source = Arc::clone(&app.source);
            match tokio::task::spawn_blocking(move || source.status()).await {
                Ok(status) => {
                    let html = page::landing(&status, &app.telemetry_path, app.debug);
                    typed(StatusCode::OK, "text/html; charset=utf-8", html)
                }
                Err(e) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("reading status failed: {e}\n"),
                ),
            }
        }
        Route::Maps => {
            let source = Arc::clone(&app.source);
            match tokio::task::spawn_blocking(move || source.maps_json()).await {
                Ok(json) => {
                    let mut body = json.to_string();
                    body.push('\n');
                    typed(StatusCode::OK, "application/json", body)
                }
                Err(e) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("reading maps failed: {e}\n"),
                ),
            }
        }
    }
}

enum Route {
    Metrics,
    Landing,
    Maps,
}

async fn metrics_response(app: Arc<App>, accept: Option<String>) -> Response<Body> {
    let source = Arc::clone(&app.source);
    let scraped = tokio::task::spawn_blocking(move || {
        let format = metrics::negotiate(accept.as_deref());
        let families = source.scrape();
        let mut body = String::new();
        format.encode(&families, &mut body);
        (format.content_type, body)
    })
    .await;
    match scraped {
        Ok((content_type, body)) => typed(StatusCode::OK, &content_type, body),
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("scrape failed: {e}\n"),
        ),
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    typed(status, "text/plain; charset=utf-8", text.to_string())
}

fn typed(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let value = HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    resp.headers_mut().insert(header::CONTENT_TYPE, value);
    resp
}

impl Source for crate::runtime::Exporter {
    fn scrape(&self) -> Vec<Family> {
        crate::runtime::Exporter::scrape(self)
    }

    fn status(&self) -> Vec<ConfigView> {
        crate::runtime::Exporter::status(self)
            .into_iter()
            .map(|c| ConfigView {
                name: c.name,
                programs: c
                    .programs
                    .into_iter()
                    .map(|p| ProgramView {
                        name: p.name,
                        section: p.section,
                        tag: p.tag,
                        id: p.id,
                        attached: p.attached,
                        error: p.error,
                    })
                    .collect(),
                error: c.error,
            })
            .collect()
    }

    fn maps_json(&self) -> serde_json::Value {
        crate::runtime::Exporter::maps_json(self)
    }
}
