//! Binds the listeners and wires the state. `Application::build` returns once
//! both ports are bound (port 0 picks a free one), so tests and `main` share
//! one start-up path.

use crate::auth::Authenticator;
use crate::auth::forward::ForwardAuth;
use crate::auth::jwt::JwtVerifier;
use crate::config::{Settings, StoreBackend};
use crate::metrics::{Metrics, method_label};
use crate::routes::{self, ADMIN_ROUTES, API_ROUTES, cors};
use crate::store::{MemoryStore, RedisStore, Store};
use crate::tickets::TicketService;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, Service, ServiceResponse};
use actix_web::http::header;
use actix_web::{App, HttpServer, web};
use std::net::{SocketAddr, TcpListener};
use std::time::Instant;

pub struct Application {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    server: Server,
    admin: Server,
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

fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr, source })
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        warn_about(&settings);
        crate::tls::ensure_crypto_provider();
        let store = match &settings.store.backend {
            StoreBackend::Memory { max_entries } => Store::Memory(MemoryStore::new(*max_entries)),
            StoreBackend::Redis(r) => {
                Store::Redis(RedisStore::new(r).map_err(StartupError::Store)?)
            }
        };
        tracing::info!(store = store.backend(), "ticket store configured");
        let tickets = web::Data::new(TicketService::new(
            settings.tickets,
            store,
            settings.store.key_prefix,
        ));
        let mut auth = Authenticator::new(settings.clients);
        if let Some(jwt) = settings.jwt {
            let verifier = JwtVerifier::new(jwt).map_err(StartupError::Auth)?;
            match verifier.refresh().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(keys = n, "JWKS loaded"),
                // Keep starting: JWT callers get 503 auth_unavailable until
                // the identity provider answers.
                Err(e) => tracing::warn!(error = %e, "JWKS not loaded at start; will retry"),
            }
            verifier.spawn_refresh();
            auth = auth.with_jwt(verifier);
        }
        if let Some(forward) = settings.forward {
            auth = auth.with_forward(ForwardAuth::new(forward).map_err(StartupError::Auth)?);
        }
        let auth = web::Data::new(auth);
        let metrics = web::Data::new(Metrics::new()?);

        let listener = bind(settings.listen)?;
        let admin_listener = bind(settings.admin_listen)?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.admin_listen,
                source,
            })?;

        let api_metrics = metrics.clone();
        let server = HttpServer::new(move || {
            let m = api_metrics.clone();
            let svc = tickets.clone();
            App::new()
                .app_data(tickets.clone())
                .app_data(auth.clone())
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
                    let started = Instant::now();
                    let fut = srv.call(req);
                    async move { observe(&m, fut.await?, started) }
                })
                .configure(|cfg| routes::configure(API_ROUTES, cfg))
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind { addr, source })?
        .shutdown_timeout(10)
        .run();

        let admin_metrics = metrics.clone();
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_metrics.clone())
                .configure(|cfg| routes::configure(ADMIN_ROUTES, cfg))
                .default_service(web::to(routes::not_found))
        })
        .workers(1)
        .listen(admin_listener)
        .map_err(|source| StartupError::Bind {
            addr: admin_addr,
            source,
        })?
        .shutdown_timeout(10)
        .run();

        tracing::info!(%addr, %admin_addr, "wsticket listening");
        Ok(Application {
            addr,
            admin_addr,
            server,
            admin,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_addr.port()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        tokio::try_join!(self.server, self.admin)?;
        Ok(())
    }
}

/// One log line and one counter per request: method, route pattern, status,
/// latency. Never the path, the query string or a header.
fn observe<B: MessageBody>(
    metrics: &Metrics,
    res: ServiceResponse<B>,
    started: Instant,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let req = res.request();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let status = res.status().as_u16();
    metrics.http_request(&route, method, status);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(method, route = %route, status, latency_ms, "request");
    Ok(res)
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
    if settings.clients.is_empty() {
        tracing::warn!("no [[clients]] configured: nobody can mint or redeem tickets");
    }
    if settings.tickets.allowed_origins.is_empty() && !settings.tickets.allow_originless {
        tracing::warn!("tickets.allowed_origins is empty: every mint will be refused");
    }
}
