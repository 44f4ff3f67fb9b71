//! The PostgreSQL wire protocol, for psql, DBeaver, psycopg and pandas: the session the
//! API uses, behind SCRAM-SHA-256 logins against the token store, every statement
//! through `hook::SandboxHook` first.
//!
//! datafusion-postgres's own `serve()` authenticates nobody and does not report its
//! port, so this module owns the listener and builds the handlers itself.

mod auth;
mod hook;

use std::sync::Arc;

use assay_engine::sandbox::Sandbox;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::ScramAuth;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, QueryHook};
use tokio::net::TcpListener;

use crate::auth::{ScramSecret, TokenStore};
use auth::TokenAuthSource;
use hook::SandboxHook;

/// What every connection shares.
pub struct PgServer {
    listener: TcpListener,
    service: Arc<DfSessionService>,
    auth: TokenAuthSource,
    sandbox: Arc<Sandbox>,
}

impl PgServer {
    /// Sets up `pg_catalog` on `ctx` (so psql's `\d` and drivers' introspection work)
    /// and prepares to serve it on `listener`.
    ///
    /// # Errors
    /// `pg_catalog` cannot be registered.
    pub fn new(
        listener: TcpListener,
        ctx: &SessionContext,
        sandbox: Arc<Sandbox>,
        tokens: Arc<TokenStore>,
    ) -> anyhow::Result<Self> {
        let catalog = ctx
            .state()
            .config()
            .options()
            .catalog
            .default_catalog
            .clone();
        setup_pg_catalog(ctx, &catalog, EmptyContextProvider)
            .map_err(|e| anyhow::anyhow!("setting up pg_catalog: {e}"))?;
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(SandboxHook::new(Arc::clone(&sandbox))),
            // datafusion-postgres's own, for SET/SHOW and transactions; every statement
            // that reaches them has passed the sandbox hook.
            Arc::new(datafusion_postgres::hooks::set_show::SetShowHook),
            Arc::new(datafusion_postgres::hooks::transactions::TransactionStatementHook),
        ];
        let service = Arc::new(DfSessionService::new_with_hooks(
            Arc::new(ctx.clone()),
            hooks,
        ));
        Ok(Self {
            listener,
            service,
            auth: TokenAuthSource::new(tokens),
            sandbox,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the task is dropped. Each connection runs on the
    /// sandbox's runtime: its SQL is parsed and planned there, on threads whose stacks
    /// are deep enough for absurd input.
    pub async fn run(self) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("pgwire accept: {e}");
                    continue;
                }
            };
            let handlers = Connection {
                service: Arc::clone(&self.service),
                startup: Arc::new(startup_handler(&self.auth)),
            };
            self.sandbox.handle().spawn(async move {
                if let Err(e) =
                    datafusion_postgres::pgwire::tokio::process_socket(socket, None, handlers).await
                {
                    tracing::info!(%peer, "pgwire connection ended: {e}");
                }
            });
        }
    }
}

type Startup = SASLAuthStartupHandler<DefaultServerParameterProvider>;

/// SCRAM keeps per-connection state in its handler, so each connection gets its own.
fn startup_handler(auth: &TokenAuthSource) -> Startup {
    let mut scram = ScramAuth::new(Arc::new(auth.clone()));
    scram.set_iterations(ScramSecret::ITERATIONS);
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.search_path = "public".into();
    SASLAuthStartupHandler::new(Arc::new(parameters)).with_scram(scram)
}

struct Connection {
    service: Arc<DfSessionService>,
    startup: Arc<Startup>,
}

/// psql's path: refuses DataFusion-only statements before the PostgreSQL parser
/// mistakes them for syntax errors, then hands over to datafusion-postgres.
struct SimpleQueries(Arc<DfSessionService>);

#[async_trait::async_trait]
impl SimpleQueryHandler for SimpleQueries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(what) = hook::datafusion_only_statement(query) {
            return Err(hook::not_allowed(&what));
        }
        SimpleQueryHandler::do_query(self.0.as_ref(), client, query).await
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(SimpleQueries(Arc::clone(&self.service)))
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }
}
