//! Binds the listeners and wires the state. `Application::build` returns once
//! both ports are bound (port 0 picks a free one), so tests and `main` share
//! one start-up path. `run_until_stopped` serves until SIGTERM or SIGINT, then
//! drains: `/readyz` answers 503 (for `shutdown_delay_secs` after SIGTERM the
//! server keeps serving, so load balancers notice), then no new connection is
//! accepted, in-flight requests get `shutdown_grace_secs` to finish, and it
//! returns `Ok`.

use crate::auth::Authenticator;
use crate::auth::forward::ForwardAuth;
use crate::auth::jwt::{JwtSettings, JwtVerifier};
use crate::config::Settings;
use crate::core::{EventHub, StoreFailedRedeems, TicketCore};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::routes::wire::ProblemIo;
use crate::routes::{self, ADMIN_ROUTES, API_ROUTES, middleware};
use crate::store::Store;
use actix_http::HttpService;
use actix_http::error::DispatchError;
use actix_server::ServerBuilder;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::{AppConfig, Server};
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpServer, web};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    settings: &mut Settings,
    metrics: Arc<Metrics>,
) -> Result<Authenticator, StartupError> {
    let clients = std::mem::take(&mut settings.clients);
    let mut auth = Authenticator::new(clients, metrics);
    if let Some(jwt) = settings.jwt.take() {
        let scope = jwt.audiences.clone();
        let verifier = jwt_verifier(jwt).await?;
        auth = auth.with_jwt(verifier, scope);
    }
    if let Some(forward) = settings.forward.take() {
        let scope = forward.audiences.clone();
        let forward = ForwardAuth::new(forward).map_err(StartupError::Auth)?;
        auth = auth.with_forward(forward, scope);
    }
    Ok(auth)
}

async fn jwt_verifier(settings: JwtSettings) -> Result<Arc<JwtVerifier>, StartupError> {
    let verifier = JwtVerifier::new(settings).map_err(StartupError::Auth)?;
    match verifier.refresh().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(keys = n, "JWKS loaded"),
        // Keep starting: JWT callers get 503 auth_unavailable until the
        // identity provider answers.
        Err(e) => tracing::warn!(error = %e, "JWKS not loaded at start; will retry"),
    }
    verifier.spawn_refresh();
    Ok(verifier)
}

impl Application {
    pub async fn build(mut settings: Settings) -> Result<Self, StartupError> {
        for warning in settings.warnings() {
            tracing::warn!("{warning}");
        }
        crate::tls::ensure_crypto_provider();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stores =
            Store::per_worker(&settings.store.backend, workers).map_err(StartupError::Store)?;
        tracing::info!(
            store = stores[0].backend(),
            workers,
            "ticket store configured"
        );
        let metrics = Arc::new(Metrics::new(&settings.tickets.audiences)?);
        if let Store::Memory(shared) = &stores[0] {
            metrics.watch_memory_store(shared.clone())?;
        }
        let auth = web::Data::new(authenticator(&mut settings, metrics.clone()).await?);
        let grace = settings.shutdown_grace;
        let shutdown_delay = settings.shutdown_delay;
        let (listener, addr) = bind(settings.listen)?;
        let (admin_listener, admin_addr) = bind(settings.admin_listen)?;
        let policy = Arc::new(settings.tickets);
        let limits = Arc::new(settings.limits);
        let key_prefix: Arc<str> = settings.store.key_prefix.into();
        let store_failed = Arc::new(StoreFailedRedeems::default());
        let hub = EventHub::new(
            stores[0]
                .for_events(&settings.store.backend)
                .map_err(StartupError::Store)?,
            &key_prefix,
            settings.events,
        );
        tokio::spawn(hub.clone().run());
        let hub = web::Data::from(hub);
        let backlog = settings.events.backlog;
        let cores: Vec<web::Data<TicketCore>> = stores
            .into_iter()
            .map(|store| {
                web::Data::new(TicketCore::new(
                    policy.clone(),
                    limits.clone(),
                    store,
                    key_prefix.clone(),
                    metrics.clone(),
                    store_failed.clone(),
                    backlog,
                ))
            })
            .collect();
        let next_worker = Arc::new(AtomicUsize::new(0));
        let lifecycle = web::Data::new(Lifecycle::default());
        let metrics = web::Data::from(metrics);

        let (api_metrics, api_lifecycle) = (metrics.clone(), lifecycle.clone());
        // The public listener is assembled from actix's parts rather than
        // with HttpServer, to put routes::wire under each connection: it
        // turns the HTTP parser's bare 400 into problem+json.
        let builder = ServerBuilder::default();
        let shutdown = builder.graceful_shutdown_signal();
        let server = builder
            .disable_signals()
            .workers(workers)
            .shutdown_timeout(grace.as_secs())
            .listen("wsticket-api", listener, move || {
                let core = cores[next_worker.fetch_add(1, Ordering::Relaxed) % cores.len()].clone();
                let (m, c) = (api_metrics.clone(), core.clone());
                let app = App::new()
                    .app_data(core)
                    .app_data(auth.clone())
                    .app_data(api_lifecycle.clone())
                    .app_data(api_metrics.clone())
                    .app_data(hub.clone())
                    .wrap_fn(move |req, srv| middleware::cors(&c, req, srv))
                    .wrap_fn(move |req, srv| middleware::observe(&m, req, srv))
                    .configure(|cfg| routes::configure(API_ROUTES, cfg))
                    .default_service(web::to(routes::not_found));
                let shutdown = shutdown.clone();
                let http = HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let signal = shutdown.clone();
                        async move { signal.notified().await }
                    })
                    // HttpServer's defaults for what HttpService does not
                    // default the same.
                    .client_disconnect_timeout(std::time::Duration::from_secs(1))
                    .local_addr(addr)
                    .h1(map_config(
                        app.into_factory()
                            .map_err(|e: actix_web::Error| e.error_response()),
                        |_| AppConfig::default(),
                    ));
                fn_service(|io: TcpStream| {
                    let peer = io.peer_addr().ok();
                    std::future::ready(Ok::<_, DispatchError>((ProblemIo::new(io), peer)))
                })
                .and_then(http)
            })
            .map_err(|source| StartupError::Bind { addr, source })?
            .run();

        let admin = HttpServer::new(move || {
            App::new()
                .app_data(metrics.clone())
                .wrap_fn(middleware::request_id_only)
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
