//! The PostgreSQL wire protocol, for psql, DBeaver, psycopg and pandas: the session the
//! API uses, behind SCRAM-SHA-256 logins against the token store, every statement
//! through `hook::SandboxHook` first.
//!
//! datafusion-postgres's own `serve()` authenticates nobody and does not report its
//! port, and pgwire's `process_socket` buffers any message up to 1 GiB before anyone
//! can look at it, so this module owns the listener, the connection loop and the
//! handlers.

mod auth;
mod cancel;
mod catalog_rewrite;
mod cursors;
mod extended;
mod framing;
mod functions;
mod hook;
mod pg_index;

use std::sync::Arc;

use assay_engine::sandbox::Sandbox;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::ScramAuth;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, QueryHook};

use cancel::{CancelKeys, CancelQueries};
use cursors::Cursors;
use std::time::Duration;

use assay_engine::ErrorKind;
use datafusion_postgres::pgwire::api::{NoopHandler, PgWireConnectionState};
use datafusion_postgres::pgwire::error::ErrorInfo;
use datafusion_postgres::pgwire::messages::PgWireFrontendMessage;
use datafusion_postgres::pgwire::tokio::server::{
    MaybeTls, PgWireMessageServerCodec, negotiate_tls, process_error, process_message,
};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Framed, FramedParts};

use crate::auth::{ScramSecret, TokenStore};
use crate::connections::{Admitted, ConnectionCap};
use crate::error_codes::codes;
use auth::TokenAuthSource;
use extended::ExtendedQueries;
use framing::{Framing, Oversize};
use hook::SandboxHook;

/// What every connection shares.
pub struct PgServer {
    listener: TcpListener,
    service: Arc<DfSessionService>,
    auth: TokenAuthSource,
    sandbox: Arc<Sandbox>,
    /// Every connection's server-side cursors, ended with the connection.
    cursors: Arc<Cursors>,
    /// Every connection's cancel key.
    cancel_keys: Arc<CancelKeys>,
    cap: ConnectionCap,
    tls: Option<PgTls>,
}

/// TLS on the port: offered to clients that ask (`SSLRequest`, or PostgreSQL 17's
/// direct TLS), and when `required`, the only way in.
#[derive(Clone)]
pub struct PgTls {
    pub acceptor: TlsAcceptor,
    pub required: bool,
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
        cap: ConnectionCap,
        tls: Option<PgTls>,
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
        pg_index::replace_pg_index(ctx, &catalog)
            .map_err(|e| anyhow::anyhow!("setting up pg_catalog.pg_index: {e}"))?;
        functions::register_functions(ctx);
        let cursors = Arc::new(Cursors::default());
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(SandboxHook::new(Arc::clone(&sandbox), Arc::clone(&cursors))),
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
            cursors,
            cancel_keys: Arc::default(),
            cap,
            tls,
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
            // As pgwire's own loop does: a reply's last small frame must not wait for
            // the client's delayed ACK.
            let _ = socket.set_nodelay(true);
            let place = self.cap.admit();
            let handlers = Connection {
                simple: Arc::new(SimpleQueries {
                    service: Arc::clone(&self.service),
                    sandbox: Arc::clone(&self.sandbox),
                    syntax: hook::SyntaxCheck::new(),
                }),
                extended: Arc::new(ExtendedQueries::new(
                    Arc::clone(&self.service),
                    Arc::clone(&self.sandbox),
                    Arc::clone(&self.cursors),
                )),
                startup: Arc::new(startup_handler(&self.auth)),
                cancel: Arc::new(CancelQueries {
                    keys: Arc::clone(&self.cancel_keys),
                    sandbox: Arc::clone(&self.sandbox),
                }),
                id: self.cancel_keys.next_connection(),
            };
            let (id, cancel_keys) = (handlers.id, Arc::clone(&self.cancel_keys));
            let limit = max_message_bytes(self.sandbox.limits().max_sql_bytes);
            let max_connections = self.cap.max();
            let tls = self.tls.clone();
            let cursors = Arc::clone(&self.cursors);
            self.sandbox.handle().spawn(async move {
                let served = match place {
                    Some(place) => serve_connection(socket, place, limit, tls, handlers).await,
                    None => turn_away(socket, max_connections, tls).await,
                };
                // Its cursors end with it, and their queries stop.
                let _ = cursors.close(peer, None);
                cancel_keys.forget(id);
                if let Err(e) = served {
                    tracing::info!(%peer, "pgwire connection ended: {e}");
                }
            });
        }
    }
}

/// The longest message a connection may send. The SQL limit itself is checked before
/// parsing, with an ERROR that keeps the connection; this bound, well above it, only
/// keeps a client from making the server buffer a message of any size (pgwire's own
/// bound is 1 GiB), and ends the connection.
fn max_message_bytes(max_sql_bytes: usize) -> usize {
    (max_sql_bytes + 64 * 1024).max(1024 * 1024)
}

/// A client gets this long to finish its startup and login, as in pgwire.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

type Negotiated = Framed<Framing<Admitted<MaybeTls>>, PgWireMessageServerCodec<Statement>>;
type Statement = <ExtendedQueries as ExtendedQueryHandler>::Statement;

/// pgwire's connection loop (`process_socket`), with every message's length checked
/// as its header arrives.
async fn serve_connection(
    socket: TcpStream,
    place: OwnedSemaphorePermit,
    max_message: usize,
    tls: Option<PgTls>,
    handlers: Connection,
) -> std::io::Result<()> {
    let startup_deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_deadline);
    let required = tls.as_ref().is_some_and(|t| t.required);
    let Some((mut socket, encrypted)) = (tokio::select! {
        () = &mut startup_deadline => return Ok(()),
        negotiated = negotiate(socket, place, max_message, tls) => negotiated?,
    }) else {
        return Ok(());
    };
    if required && !encrypted {
        return refuse_after_startup(
            &mut socket,
            fatal(
                "28000",
                "this server accepts only TLS connections: connect with sslmode=require \
                 (or verify-full)"
                    .into(),
            ),
        )
        .await;
    }
    let Connection {
        simple,
        extended,
        startup,
        cancel,
        id,
    } = handlers;
    let mut cancellable = false;
    let nothing = Arc::new(NoopHandler);
    loop {
        let logging_in = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = if logging_in {
            tokio::select! {
                () = &mut startup_deadline => None,
                next = socket.next() => next,
            }
        } else {
            socket.next().await
        };
        let message = match next {
            None | Some(Ok(PgWireFrontendMessage::Terminate(_))) => return Ok(()),
            Some(Ok(message)) => message,
            Some(Err(PgWireError::IoError(e))) => {
                if let Some(oversize) = Oversize::of(&e) {
                    let refusal = fatal(codes(ErrorKind::TooLarge).sqlstate, oversize.to_string());
                    let _ = socket
                        .send(PgWireBackendMessage::ErrorResponse(refusal.into()))
                        .await;
                    // A client still sending would meet a reset instead of the refusal.
                    discard(socket.get_mut(), oversize.body_left).await;
                }
                return Err(e);
            }
            // A message pgwire cannot decode: it has nothing more to say.
            Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
        };
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let processed = assay_engine::sandbox::CONNECTION
            .scope(
                id,
                process_message(
                    message,
                    &mut socket,
                    Arc::clone(&startup),
                    Arc::clone(&simple),
                    Arc::clone(&extended),
                    Arc::clone(&nothing),
                    Arc::clone(&cancel),
                ),
            )
            .await;
        if let Err(e) = processed {
            let e = name_the_user(e, &socket);
            process_error(&mut socket, e, is_extended).await?;
        }
        // Logged in: the key the login sent the client now cancels this connection's
        // queries.
        if !cancellable && matches!(socket.state(), PgWireConnectionState::ReadyForQuery) {
            let (pid, key) = socket.pid_and_secret_key();
            cancel.keys.register(pid, &key, id);
            cancellable = true;
        }
    }
}

/// A failed login says whose: SCRAM's own message carries no user name (libpq leaves it
/// empty and names the user at startup), so pgwire's refusal named nobody.
fn name_the_user(e: PgWireError, client: &impl ClientInfo) -> PgWireError {
    match e {
        PgWireError::InvalidPassword(name) if name.is_empty() => {
            PgWireError::InvalidPassword(client.metadata().get("user").cloned().unwrap_or_default())
        }
        other => other,
    }
}

/// Reads and drops up to `bytes` of what the client is still sending, for at most 5 s.
async fn discard(io: &mut Framing<Admitted<MaybeTls>>, mut bytes: usize) {
    use tokio::io::AsyncReadExt;
    let mut scratch = vec![0; 64 * 1024];
    let draining = async {
        while bytes > 0 {
            match io.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(n) => bytes = bytes.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), draining).await;
}

/// TLS negotiation (offered when configured), then the length check under pgwire's
/// codec. Says whether the connection is encrypted.
async fn negotiate(
    socket: TcpStream,
    place: OwnedSemaphorePermit,
    max_message: usize,
    tls: Option<PgTls>,
) -> std::io::Result<Option<(Negotiated, bool)>> {
    let acceptor = tls.map(|t| t.acceptor);
    let Some(negotiated) = negotiate_tls::<Statement>(socket, acceptor).await? else {
        return Ok(None);
    };
    let parts = negotiated.into_parts();
    let encrypted = matches!(parts.io, MaybeTls::Tls(_));
    let mut io = Framing::new(Admitted::new(parts.io, place), max_message);
    // The startup packet's first bytes may already have been read.
    io.observe(&parts.read_buf);
    let mut framed = FramedParts::new(io, parts.codec);
    framed.read_buf = parts.read_buf;
    framed.write_buf = parts.write_buf;
    Ok(Some((Framed::from_parts(framed), encrypted)))
}

/// Past the connection cap: PostgreSQL's answer, after the client has said who it is
/// (over TLS when it asked: a client that requires TLS reads nothing in plaintext).
async fn turn_away(
    socket: TcpStream,
    max_connections: usize,
    tls: Option<PgTls>,
) -> std::io::Result<()> {
    let refusing = async {
        let acceptor = tls.map(|t| t.acceptor);
        let Some(mut socket) = negotiate_tls::<Statement>(socket, acceptor).await? else {
            return Ok(());
        };
        let refusal = fatal(
            "53300",
            format!("sorry, too many clients already ({max_connections} connections are open)"),
        );
        refuse_after_startup(&mut socket, refusal).await
    };
    tokio::time::timeout(Duration::from_secs(5), refusing)
        .await
        .unwrap_or(Ok(()))
}

/// Reads the client's startup message, answers it with `refusal` and closes.
async fn refuse_after_startup<S>(socket: &mut S, refusal: ErrorInfo) -> std::io::Result<()>
where
    S: futures::Stream + futures::Sink<PgWireBackendMessage, Error = std::io::Error> + Unpin,
{
    let _startup = socket.next().await;
    socket
        .send(PgWireBackendMessage::ErrorResponse(refusal.into()))
        .await?;
    socket.close().await
}

fn fatal(code: &str, message: String) -> ErrorInfo {
    ErrorInfo::new("FATAL".into(), code.into(), message)
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

/// One connection's handlers. COPY is not served and cancel requests are ignored
/// (queries stop at their time limit), as before.
struct Connection {
    simple: Arc<SimpleQueries>,
    extended: Arc<ExtendedQueries>,
    startup: Arc<Startup>,
    cancel: Arc<CancelQueries>,
    /// This connection's id: its queries are tagged with it, and a cancel request
    /// with its key stops them.
    id: u64,
}

/// psql's path: refuses DataFusion-only statements before the PostgreSQL parser
/// mistakes them for syntax errors, then hands over to datafusion-postgres.
struct SimpleQueries {
    service: Arc<DfSessionService>,
    sandbox: Arc<Sandbox>,
    syntax: hook::SyntaxCheck,
}

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
        self.sandbox
            .check_sql_size(query)
            .map_err(hook::to_pg_error)?;
        if let Some(what) = hook::datafusion_only_statement(query) {
            return Err(hook::not_allowed(&what));
        }
        self.syntax.check(query)?;
        SimpleQueryHandler::do_query(self.service.as_ref(), client, query).await
    }
}
