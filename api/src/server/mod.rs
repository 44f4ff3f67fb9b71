//! `assay serve`: the HTTP API over the engine.
//!
//! [`Application::build`] opens the dataset, binds the listener (port 0 works: tests
//! read the bound address back) and loads the latest run; [`Application::run`] serves
//! until the shutdown future resolves, letting in-flight requests finish.

pub mod dto;
pub mod error;
pub mod feed;
mod http;
pub mod jobs;
mod routes;
pub mod state;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use assay_engine::Engine;
use assay_engine::decision::Policy;
use assay_engine::progress::Progress;
use assay_engine::source::{BadFiles, Dataset};
use assay_engine::storage::s3::S3Settings;
use assay_engine::store::jobs::JobStore;

use crate::auth::{Role, TokenStore};
use crate::connections::ConnectionCap;
use crate::daily::DailyConfig;
use crate::daily::watch::Landing;
use crate::pg::{PgServer, PgTls};
use crate::tls::TlsSettings;
use crate::webhooks::{RetryPolicy, Webhooks};
pub use routes::{Limits, openapi};
use state::{AppState, Records, ReorderSettings};

/// Everything `assay serve` needs, resolved from flags, environment and config file.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// A folder or `s3://bucket/prefix`.
    pub data: String,
    pub listen: SocketAddr,
    /// Where to serve the PostgreSQL wire protocol, if at all.
    pub pg_listen: Option<SocketAddr>,
    /// Where to serve Arrow Flight SQL, if at all.
    pub flight_listen: Option<SocketAddr>,
    pub policy: Policy,
    pub tokens: PathBuf,
    pub limits: Limits,
    /// Limits of analysts' SQL.
    pub sql: assay_engine::sandbox::SandboxLimits,
    /// Where the funnel and rollup queries of decision runs execute.
    pub engine: assay_engine::QueryEngine,
    /// New files taken in and decisions on schedule, without a person.
    pub daily: DailyConfig,
    /// How long and how often webhook deliveries are retried.
    pub webhook_retry: RetryPolicy,
    /// Auto-approval and the export's place.
    pub reorders: ReorderSettings,
    /// Settings of the S3 stores the dataset, the watched prefix and exports use.
    pub s3: S3Settings,
    /// TLS on the pgwire and Flight SQL ports.
    pub tls: Option<TlsSettings>,
}

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    limits: Limits,
    pg: Option<PgServer>,
    flight: Option<TcpListener>,
    /// Flight SQL's TLS: with it the port speaks only TLS (gRPC cannot offer both).
    flight_tls: Option<TlsAcceptor>,
    daily: DailyConfig,
    landing: Option<Landing>,
}

/// The process-wide Prometheus recorder (a recorder can be installed only once: two
/// apps built at once in one process, as tests do, must not both try).
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = &*installed {
        return Ok(h.clone());
    }
    // Job durations as a histogram, so alerts can take quantiles over many servers.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("assay_job_duration_seconds".into()),
            &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0],
        )
        .context("the job duration buckets")?
        .install_recorder()
        .context("installing the Prometheus metrics recorder")?;
    *installed = Some(handle.clone());
    Ok(handle)
}

impl Application {
    /// Opens the data, binds the address and loads (or computes) the latest run.
    ///
    /// # Errors
    /// The dataset, token file or override log cannot be opened, the address cannot be
    /// bound, or no run can be computed.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        // One unreadable event file must not stop every buyer: it is set aside,
        // logged and reported by /readyz.
        let dataset = Dataset::open(&config.data, &config.s3)
            .with_context(|| format!("dataset {}", config.data))?;
        // Start-up on millions of events takes a while: say so on a terminal.
        let step = Progress::on_terminal().step(format!("opening {}", config.data));
        let engine = Engine::open_on(dataset, BadFiles::SetAside, &config.engine)
            .await
            .with_context(|| {
                format!(
                    "opening dataset {} on engine {}",
                    config.data, config.engine
                )
            })?;
        step.finish_and_clear();
        engine.progress().show(true);
        // A watched location that cannot be used stops the start, not the first look.
        let landing = match &config.daily.watch {
            Some(watch) => Some(Landing::open(&watch.location, &config.s3)?),
            None => None,
        };
        let tokens = TokenStore::open(&config.tokens)?;
        if tokens.is_empty() {
            let token = tokens.create("admin", Role::Admin)?;
            eprintln!(
                "No API tokens existed, so an admin token was created (shown once, stored hashed in {}):\n  {token}\nCreate more with `assay token create --role ROLE --name NAME`.",
                config.tokens.display()
            );
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let overrides = Arc::clone(engine.overrides());
        let jobs = JobStore::open(engine.dataset().storage.clone(), chrono::Utc::now())
            .context("opening the job log")?;
        let webhooks = Webhooks::open(engine.dataset().storage.clone(), config.webhook_retry)
            .context("opening the webhook outbox")?;
        let state = Arc::new(AppState::new(
            Arc::new(engine),
            Records {
                overrides,
                tokens: Arc::new(tokens),
                jobs,
                webhooks: Arc::new(webhooks),
            },
            config.reorders,
            config.policy,
            metrics_handle()?,
            config.sql,
        ));
        // A policy naming a category the catalog lacks is refused before serving.
        state.engine.check_policy(&state.policy).await?;
        let run = state
            .load_published()
            .await
            .context("loading the published decision run")?;
        state
            .announce_missed_overrides()
            .context("recording webhook events for overrides")?;
        // Serving: refreshes from here on are logged, not drawn between log lines.
        state.engine.progress().show(false);
        tracing::info!(run_id = %run.run_id, as_of = %run.as_of, "loaded decision run");
        // Certificates that cannot be used stop the start, not the first client.
        let pg_tls = match &config.tls {
            Some(tls) => Some(PgTls {
                acceptor: tls.acceptor(crate::tls::PG_ALPN)?,
                required: tls.required,
            }),
            None => None,
        };
        let flight_tls = match &config.tls {
            Some(tls) => Some(tls.acceptor(crate::tls::GRPC_ALPN)?),
            None => None,
        };
        let pg = match config.pg_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the pgwire address {addr}"))?;
                Some(PgServer::new(
                    listener,
                    state.engine.ctx(),
                    Arc::clone(&state.sandbox),
                    Arc::clone(&state.tokens),
                    ConnectionCap::new("pgwire", config.limits.max_connections),
                    pg_tls,
                )?)
            }
            None => None,
        };
        let flight = match config.flight_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the Flight SQL address {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            state,
            limits: config.limits,
            pg,
            flight,
            flight_tls,
            daily: config.daily,
            landing,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The PostgreSQL wire protocol's bound address, when it is served.
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.pg.as_ref().and_then(|pg| pg.local_addr().ok())
    }

    /// Arrow Flight SQL's bound address, when it is served.
    pub fn flight_addr(&self) -> Option<SocketAddr> {
        self.flight.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves; in-flight requests finish first.
    ///
    /// # Errors
    /// The server fails.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // pgwire and Flight SQL connections end with the process: their clients
        // reconnect.
        let max_connections = self.limits.max_connections;
        let header_timeout = self.limits.header_timeout;
        // A run published by `assay decide --publish` is served without a restart.
        tokio::spawn(AppState::follow_publications(
            Arc::downgrade(&self.state),
            PUBLICATION_CHECK,
        ));
        let daily = self.daily.is_on().then(|| {
            tokio::spawn(
                self.daily
                    .clone()
                    .run(Arc::downgrade(&self.state), self.landing),
            )
        });
        let deliveries = self.state.webhooks.spawn_deliveries();
        let pg = self.pg.map(|pg| tokio::spawn(pg.run()));
        let flight = self.flight.map(|listener| {
            crate::flight::serve(
                listener,
                self.state.engine.ctx().clone(),
                Arc::clone(&self.state.sandbox),
                Arc::clone(&self.state.tokens),
                ConnectionCap::new("flight", max_connections),
                self.flight_tls,
            )
        });
        let app = routes::router(self.state, self.limits);
        http::serve(
            self.listener,
            app,
            ConnectionCap::new("http", max_connections),
            header_timeout,
            shutdown,
        )
        .await;
        for task in pg
            .into_iter()
            .chain(flight)
            .chain(daily)
            .chain(std::iter::once(deliveries))
        {
            task.abort();
        }
        Ok(())
    }
}

/// How often the server looks for a run another process published.
const PUBLICATION_CHECK: Duration = Duration::from_secs(5);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 * 1024,
            max_connections: 256,
            // hyper's own default; clients' connection pools should idle for less.
            header_timeout: Duration::from_secs(30),
        }
    }
}
