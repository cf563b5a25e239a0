//! Binds the listeners and wires the state. `Application::build` returns once
//! both ports are bound (port 0 picks a free one), so tests and `main` share
//! one start-up path. `run_until_stopped` serves until SIGTERM or SIGINT, then
//! drains: `/readyz` answers 503 (for `shutdown_delay_secs` after SIGTERM the
//! server keeps serving, so load balancers notice), then no new connection is
//! accepted, in-flight requests get `shutdown_grace_secs` to finish, and it
//! returns `Ok`.

use crate::auth::forward::{ForwardAuth, ForwardSettings};
use crate::auth::jwt::{JwtSettings, JwtVerifier};
use crate::auth::{ApiClient, Authenticator};
use crate::config::{Settings, StoreBackend};
use crate::metrics::{Metrics, method_label};
use crate::routes::{self, ADMIN_ROUTES, API_ROUTES, cors};
use crate::store::{MemoryStore, RedisStore, Store};
use crate::tickets::TicketService;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, Service, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{App, HttpServer, web};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tracing::Instrument;

/// Shared between the signal handler and `/readyz`.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

pub struct Application {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    server: Server,
    admin: Server,
    lifecycle: web::Data<Lifecycle>,
    shutdown_delay: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Auth(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    Ok((listener, bound))
}

async fn authenticator(
    clients: Vec<ApiClient>,
    jwt: Option<JwtSettings>,
    forward: Option<ForwardSettings>,
) -> Result<Authenticator, StartupError> {
    let mut auth = Authenticator::new(clients);
    if let Some(jwt) = jwt {
        let verifier = JwtVerifier::new(jwt).map_err(StartupError::Auth)?;
        match verifier.refresh().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "JWKS loaded"),
            // Keep starting: JWT callers get 503 auth_unavailable until the
            // identity provider answers.
            Err(e) => tracing::warn!(error = %e, "JWKS not loaded at start; will retry"),
        }
        verifier.spawn_refresh();
        auth = auth.with_jwt(verifier);
    }
    if let Some(forward) = forward {
        auth = auth.with_forward(ForwardAuth::new(forward).map_err(StartupError::Auth)?);
    }
    Ok(auth)
}

impl Application {
    pub async fn build(mut settings: Settings) -> Result<Self, StartupError> {
        warn_about(&settings);
        crate::tls::ensure_crypto_provider();
        // One TicketService per HTTP worker. With Redis each gets its own
        // connection, made on first use from that worker's thread, so the
        // connection's driver runs beside the requests instead of handing
        // every command to another thread and back.
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stores = match &settings.store.backend {
            StoreBackend::Memory { max_entries } => {
                let shared = Arc::new(MemoryStore::new(*max_entries));
                (0..workers)
                    .map(|_| Store::Memory(shared.clone()))
                    .collect::<Vec<_>>()
            }
            StoreBackend::Redis(r) => {
                let mut per_worker = r.clone();
                per_worker.max_in_flight = r.max_in_flight.div_ceil(workers).max(1);
                (0..workers)
                    .map(|_| RedisStore::new(&per_worker).map(|s| Store::Redis(Box::new(s))))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StartupError::Store)?
            }
        };
        tracing::info!(
            store = stores[0].backend(),
            workers,
            "ticket store configured"
        );
        let metrics = Arc::new(Metrics::new(&settings.tickets.audiences)?);
        let clients = std::mem::take(&mut settings.clients);
        let auth = authenticator(clients, settings.jwt.take(), settings.forward.take()).await?;
        let auth = web::Data::new(auth.with_metrics(metrics.clone()));
        let grace = settings.shutdown_grace;
        let shutdown_delay = settings.shutdown_delay;
        let (listener, addr) = bind(settings.listen)?;
        let (admin_listener, admin_addr) = bind(settings.admin_listen)?;
        let services: Vec<web::Data<TicketService>> = stores
            .into_iter()
            .map(|store| {
                web::Data::new(TicketService::new(
                    settings.tickets.clone(),
                    store,
                    settings.store.key_prefix.clone(),
                    metrics.clone(),
                ))
            })
            .collect();
        let next_worker = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let lifecycle = web::Data::new(Lifecycle::default());
        let metrics = web::Data::from(metrics);

        let (api_metrics, api_lifecycle) = (metrics.clone(), lifecycle.clone());
        let server = HttpServer::new(move || {
            let m = api_metrics.clone();
            let i = next_worker.fetch_add(1, Ordering::Relaxed) % services.len();
            let tickets = services[i].clone();
            let svc = tickets.clone();
            App::new()
                .app_data(tickets.clone())
                .app_data(auth.clone())
                .app_data(api_lifecycle.clone())
                .wrap_fn(move |req, srv| {
                    let svc = svc.clone();
                    let origin = req.headers().get(header::ORIGIN).cloned();
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        if res.request().match_pattern().as_deref() == Some(cors::CORS_ROUTE) {
                            cors::decorate(&svc, origin.as_ref(), res.headers_mut());
                        }
                        Ok(res)
                    }
                })
                .wrap_fn(move |req, srv| {
                    let m = m.clone();
                    let id = request_id(req.headers().get(X_REQUEST_ID));
                    let span = tracing::info_span!("request", request_id = %id);
                    let started = Instant::now();
                    let fut = srv.call(req).instrument(span.clone());
                    async move { observe(&m, fut.await?, started, &id).instrument(span).await }
                })
                .configure(|cfg| routes::configure(API_ROUTES, cfg))
                .default_service(web::to(routes::not_found))
        })
        .disable_signals()
        .workers(workers)
        .listen(listener)
        .map_err(|source| StartupError::Bind { addr, source })?
        .shutdown_timeout(grace.as_secs())
        .run();

        let admin = HttpServer::new(move || {
            App::new()
                .app_data(metrics.clone())
                .wrap_fn(|req, srv| {
                    let id = request_id(req.headers().get(X_REQUEST_ID));
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        set_request_id(&mut res, &id);
                        Ok(res)
                    }
                })
                .configure(|cfg| routes::configure(ADMIN_ROUTES, cfg))
                .default_service(web::to(routes::not_found))
        })
        .disable_signals()
        .workers(1)
        .listen(admin_listener)
        .map_err(|source| StartupError::Bind {
            addr: admin_addr,
            source,
        })?
        .shutdown_timeout(grace.as_secs())
        .run();

        tracing::info!(%addr, %admin_addr, "wsticket listening");
        Ok(Application {
            addr,
            admin_addr,
            server,
            admin,
            lifecycle,
            shutdown_delay,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_addr.port()
    }

    /// Serve until SIGTERM/SIGINT, then drain and return.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (api, admin) = (self.server.handle(), self.admin.handle());
        let lifecycle = self.lifecycle.clone();
        let delay = self.shutdown_delay;
        let stopper = tokio::spawn(async move {
            let signal = match shutdown_signal().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for signals; stop the process with SIGKILL");
                    return;
                }
            };
            lifecycle.start_draining();
            if signal == Signal::Term && !delay.is_zero() {
                // Kubernetes keeps routing to a pod for a moment after
                // SIGTERM: keep serving (readyz 503) while it catches up.
                tracing::info!(
                    delay_secs = delay.as_secs(),
                    "SIGTERM: readyz answers 503; still serving during shutdown_delay_secs"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!("draining: no new connections; in-flight requests may finish");
            // Stop accepting and let in-flight requests finish, up to the
            // grace period; the admin listener (metrics) goes last.
            api.stop(true).await;
            admin.stop(true).await;
            tracing::info!("drained; exiting");
        });
        let result = tokio::try_join!(self.server, self.admin);
        stopper.abort();
        result.map(|_| ())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Term,
    Int,
}

/// SIGTERM (an orchestrator stopping us) or SIGINT (Ctrl-C: no delay).
async fn shutdown_signal() -> std::io::Result<Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => Signal::Term,
        _ = int.recv() => Signal::Int,
    })
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is a sane token (and not something
/// that looks like a ticket or a key, which must never reach a log), else a
/// fresh random one.
fn request_id(given: Option<&HeaderValue>) -> String {
    let usable = |s: &str| {
        (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
            && !["wst_", "wsk_"]
                .iter()
                .any(|p| s.get(..4).is_some_and(|h| h.eq_ignore_ascii_case(p)))
    };
    match given.and_then(|v| v.to_str().ok()) {
        Some(s) if usable(s) => s.to_owned(),
        _ => {
            use rand::RngCore;
            let mut bytes = [0u8; 16];
            rand::rng().fill_bytes(&mut bytes);
            hex::encode(bytes)
        }
    }
}

/// One log line and one observation per request: method, route pattern,
/// status, latency, request id. Never the path, the query string or a header.
async fn observe<B: MessageBody>(
    metrics: &Metrics,
    mut res: ServiceResponse<B>,
    started: Instant,
    id: &str,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let took = started.elapsed();
    let req = res.request();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let status = res.status().as_u16();
    metrics.http_request(&route, method, status, took);
    tracing::info!(
        target: "wsticket::access",
        method,
        route = %route,
        status,
        latency_ms = took.as_secs_f64() * 1000.0,
        "request"
    );
    set_request_id(&mut res, id);
    Ok(res)
}

fn set_request_id<B>(res: &mut ServiceResponse<B>, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
}

fn warn_about(settings: &Settings) {
    if settings.dev_mode {
        tracing::warn!(
            "DEV MODE: in-memory store, a throw-away ticket secret and PUBLIC demo API keys. \
             NOT FOR PRODUCTION: anyone who read the README can mint and redeem tickets."
        );
    } else if settings.tickets.secrets_generated {
        tracing::warn!(
            "no tickets.secrets configured: generated one for this process; \
             tickets will not survive a restart (make one with `wsticket keygen`)"
        );
    }
    if settings.clients.is_empty() && settings.jwt.is_none() && settings.forward.is_none() {
        tracing::warn!(
            "no [[clients]] and no frontend auth configured: nobody can mint or redeem tickets"
        );
    }
    if settings.tickets.allowed_origins.is_empty() && !settings.tickets.allow_originless {
        tracing::warn!("tickets.allowed_origins is empty: every mint will be refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_safe() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(request_id(Some(&v("abc-123_x.y:z"))), "abc-123_x.y:z");
        for bad in [
            "",
            "has space",
            "wst_k1_AAAA",
            "WSK_abc",
            &"a".repeat(129),
            "a/b",
        ] {
            let id = request_id(Some(&v(bad)));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32);
        }
        assert_ne!(request_id(None), request_id(None));
    }
}
