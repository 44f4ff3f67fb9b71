//! Arrow Flight SQL, for ADBC clients (Python `adbc-driver-flightsql`, Polars, DBeaver's
//! Flight SQL JDBC driver): statements and catalog metadata over the session the API
//! uses, every query through the same [`Sandbox`] as `POST /v1/sql` and pgwire.
//!
//! Authentication is a bearer token in the `authorization` header of every call; a
//! `Basic` handshake (user = token name, password = token) hands the bearer back for
//! clients that log in with a user and password. Prepared statements with parameters
//! (`?` or `$1`) are served for ADBC's and JDBC's bound queries (see `prepared`).

mod metadata;
mod prepared;

use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandStatementQuery,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use assay_engine::ErrorKind;
use assay_engine::sandbox::{Answer, Sandbox, SandboxError};
use base64::Engine as _;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

use crate::connections::{Admitted, ConnectionCap};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Permission, Principal, TokenStore};
use crate::error_codes::{codes, public_message};

type DoGetStream = <FlightSqlServiceImpl as FlightService>::DoGetStream;

/// The Flight SQL service: what every call shares.
#[derive(Clone)]
pub struct FlightSqlServiceImpl {
    ctx: SessionContext,
    sandbox: Arc<Sandbox>,
    tokens: Arc<TokenStore>,
}

/// Serves Flight SQL on `listener` until the task is dropped, over TLS when `tls` is
/// set (then only over TLS). The gRPC server runs on the sandbox's runtime, whose
/// threads have room for deep plans.
pub fn serve(
    listener: TcpListener,
    ctx: SessionContext,
    sandbox: Arc<Sandbox>,
    tokens: Arc<TokenStore>,
    cap: ConnectionCap,
    tls: Option<TlsAcceptor>,
) -> tokio::task::JoinHandle<()> {
    let handle = sandbox.handle().clone();
    let service = FlightServiceServer::new(FlightSqlServiceImpl {
        ctx,
        sandbox,
        tokens,
    });
    // Past the cap a connection is closed at once: gRPC clients see UNAVAILABLE and
    // retry. No Nagle: a call's small frames would otherwise wait for the client's
    // delayed ACK (~40 ms each; a prepared statement's five calls took 88 ms).
    let admitted = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .filter_map(move |accepted| {
            let admitted = match accepted {
                Ok(stream) => cap.admit().map(|place| Ok(Admitted::new(stream, place))),
                Err(e) => Some(Err(e)),
            };
            std::future::ready(admitted)
        });
    handle.spawn(async move {
        let server = tonic::transport::Server::builder().add_service(service);
        let served = match tls {
            None => server.serve_with_incoming(admitted).await,
            Some(acceptor) => {
                server
                    .serve_with_incoming(handshakes(admitted, acceptor))
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!("Flight SQL server stopped: {e}");
        }
    })
}

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The admitted connections after their TLS handshakes. Each handshake runs in a task
/// of its own, within [`HANDSHAKE_TIMEOUT`]: a client that never finishes one holds up
/// nobody else's. A failed handshake is logged and its connection dropped.
fn handshakes(
    admitted: impl Stream<Item = std::io::Result<Admitted<TcpStream>>> + Send + 'static,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = std::io::Result<TlsConnection>> {
    let (done, ready) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut admitted = std::pin::pin!(admitted);
        while let Some(accepted) = admitted.next().await {
            let Ok(connection) = accepted else { continue };
            let (acceptor, done) = (acceptor.clone(), done.clone());
            tokio::spawn(async move {
                let (stream, place) = connection.into_parts();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = done.send(Ok(Admitted::new(tls, place))).await;
                    }
                    Ok(Err(e)) => tracing::info!("Flight SQL TLS handshake failed: {e}"),
                    Err(_) => tracing::info!("Flight SQL TLS handshake timed out"),
                }
            });
        }
    });
    stream::unfold(ready, |mut ready| async move {
        ready.recv().await.map(|connection| (connection, ready))
    })
}

type TlsConnection = Admitted<tokio_rustls::server::TlsStream<TcpStream>>;

impl Connected for Admitted<TcpStream> {
    type ConnectInfo = <TcpStream as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

impl Connected for TlsConnection {
    type ConnectInfo = <TcpStream as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().get_ref().0.connect_info()
    }
}

/// A sandbox error as the one table says, with no internals in an internal one.
fn to_status(e: SandboxError) -> Status {
    status_of(e.kind(), &e)
}

fn status_of(kind: ErrorKind, message: impl std::fmt::Display) -> Status {
    Status::new(codes(kind).grpc, public_message(kind, &message))
}

impl FlightSqlServiceImpl {
    /// The caller must carry an analyst's (or admin's) bearer token; who it is.
    fn authorize(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let header = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                status_of(
                    ErrorKind::Unauthenticated,
                    "no `authorization: Bearer <token>` header",
                )
            })?;
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            status_of(
                ErrorKind::Unauthenticated,
                "authorization must be `Bearer <token>`",
            )
        })?;
        let principal = self
            .tokens
            .verify(token.trim())
            .ok_or_else(|| status_of(ErrorKind::Unauthenticated, "unknown token"))?;
        if principal.role.may(Permission::Sql) {
            Ok(principal)
        } else {
            Err(status_of(
                ErrorKind::PermissionDenied,
                format!(
                    "role {} may not run SQL (analyst or admin may)",
                    principal.role.as_str()
                ),
            ))
        }
    }

    /// A ticket that brings `command` back to the matching `do_get_*`.
    fn info_for(
        command: impl ProstMessageExt,
        schema: &Schema,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = Ticket::new(command.as_any().encode_to_vec());
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| status_of(ErrorKind::Internal, &e))?
            .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// A query's answer as it streams.
    fn stream(answer: Answer) -> Response<DoGetStream> {
        let schema = Arc::clone(&answer.schema);
        let batches = answer
            .into_stream()
            .map_err(|e| FlightError::Tonic(Box::new(to_status(e))));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }

    fn one_batch(
        schema: arrow::datatypes::SchemaRef,
        batch: Result<arrow::record_batch::RecordBatch, FlightError>,
    ) -> Response<DoGetStream> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(stream::once(async move { batch }))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }

    /// Every (catalog, schema, table) of the session, with the table's kind and schema.
    async fn tables(&self) -> Vec<(String, String, String, &'static str, Arc<Schema>)> {
        let mut out = Vec::new();
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    if let Ok(Some(table)) = schema.table(&table_name).await {
                        let kind = match table.table_type() {
                            datafusion::datasource::TableType::View => "VIEW",
                            _ => "TABLE",
                        };
                        out.push((
                            catalog_name.clone(),
                            schema_name.clone(),
                            table_name,
                            kind,
                            table.schema(),
                        ));
                    }
                }
            }
        }
        out
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlServiceImpl {
    type FlightService = FlightSqlServiceImpl;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = if let Some(basic) = header.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .map_err(|_| {
                    status_of(
                        ErrorKind::Unauthenticated,
                        "Basic credentials are not base64",
                    )
                })?;
            let text = String::from_utf8(decoded).map_err(|_| {
                status_of(
                    ErrorKind::Unauthenticated,
                    "Basic credentials are not UTF-8",
                )
            })?;
            let (user, password) = text.split_once(':').ok_or_else(|| {
                status_of(
                    ErrorKind::Unauthenticated,
                    "Basic credentials need `user:password`",
                )
            })?;
            match self.tokens.verify(password) {
                Some(p) if p.name == user => password.to_owned(),
                _ => {
                    return Err(status_of(
                        ErrorKind::Unauthenticated,
                        "wrong user name or token",
                    ));
                }
            }
        } else {
            header
                .strip_prefix("Bearer ")
                .unwrap_or_default()
                .to_owned()
        };
        let mut metadata = MetadataMap::new();
        metadata.insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| status_of(ErrorKind::Unauthenticated, "malformed token"))?,
        );
        self.authorize(&metadata)?;
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(stream::once(async { Ok(answer) })));
        *response.metadata_mut() = metadata;
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.authorize(request.metadata())?;
        let schema = self
            .sandbox
            .schema_of(&caller.name, query.query.clone())
            .await
            .map_err(to_status)?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        Self::info_for(ticket, &schema, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.authorize(request.metadata())?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec()).map_err(|_| {
            status_of(
                ErrorKind::BadRequest,
                "the ticket is not a statement of this server",
            )
        })?;
        let answer = self
            .sandbox
            .run(&caller.name, sql)
            .await
            .map_err(to_status)?;
        Ok(Self::stream(answer))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = query.into_builder().schema();
        Self::info_for(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        for name in self.ctx.catalog_names() {
            builder.append(name);
        }
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        Self::info_for(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        for catalog_name in self.ctx.catalog_names() {
            if let Some(catalog) = self.ctx.catalog(&catalog_name) {
                for schema_name in catalog.schema_names() {
                    builder.append(&catalog_name, schema_name);
                }
            }
        }
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        Self::info_for(query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        for (catalog, schema, table, kind, table_schema) in self.tables().await {
            builder
                .append(catalog, schema, table, kind, &table_schema)
                .map_err(Status::from)?;
        }
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        Self::info_for(query, &metadata::sql_info().schema(), request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let builder = query.into_builder(metadata::sql_info());
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        Self::info_for(
            query,
            &metadata::xdbc_types().schema(),
            request.into_inner(),
        )
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let builder = query.into_builder(metadata::xdbc_types());
        Ok(Self::one_batch(builder.schema(), builder.build()))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        Self::info_for(
            query,
            &metadata::primary_keys_schema(),
            request.into_inner(),
        )
    }

    /// No table of assay's has a primary key.
    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let schema = metadata::primary_keys_schema();
        let none = arrow::record_batch::RecordBatch::new_empty(Arc::clone(&schema));
        Ok(Self::one_batch(schema, Ok(none)))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        Self::info_for(query, &table_types_schema(), request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let schema = Arc::new(table_types_schema());
        let batch = arrow::record_batch::RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(arrow::array::StringArray::from(vec![
                "TABLE", "VIEW",
            ]))],
        )
        .map_err(FlightError::from);
        Ok(Self::one_batch(schema, batch))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.authorize(request.metadata())?;
        let prepared = self
            .sandbox
            .prepare(&caller.name, query.query.clone())
            .await
            .map_err(to_status)?;
        let parameters = Schema::new(
            prepared
                .parameters
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let data_type = t.clone().unwrap_or(arrow::datatypes::DataType::Null);
                    arrow::datatypes::Field::new(format!("${}", i + 1), data_type, true)
                })
                .collect::<Vec<_>>(),
        );
        let handle = prepared::Handle {
            sql: query.query,
            schema: Arc::clone(&prepared.schema),
            params: None,
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.encode().map_err(bad_handle)?.into(),
            dataset_schema: ipc_schema(&prepared.schema)?,
            parameter_schema: ipc_schema(&parameters)?,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(request.metadata())?;
        let mut handle =
            prepared::Handle::decode(&query.prepared_statement_handle).map_err(bad_handle)?;
        let mut batches = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        let mut bound = Vec::new();
        let mut bytes = 0;
        while let Some(batch) = batches.try_next().await.map_err(Status::from)? {
            // Parameters are values, not data: as much as a statement's text, at most.
            bytes += batch.get_array_memory_size();
            if bytes > self.sandbox.limits().max_sql_bytes {
                return Err(status_of(
                    ErrorKind::TooLarge,
                    format!(
                        "the parameters take more than {} bytes",
                        self.sandbox.limits().max_sql_bytes
                    ),
                ));
            }
            bound.push(batch);
        }
        handle.params = match bound.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            _ => {
                let schema = bound[0].schema();
                Some(
                    arrow::compute::concat_batches(&schema, &bound)
                        .map_err(|e| status_of(ErrorKind::BadRequest, e))?,
                )
            }
        };
        handle.values().map_err(bad_handle)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.encode().map_err(bad_handle)?.into()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let handle =
            prepared::Handle::decode(&query.prepared_statement_handle).map_err(bad_handle)?;
        // Announced as prepared; running it (DoGet) plans it again, in the sandbox.
        Self::info_for(query, &handle.schema, request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.authorize(request.metadata())?;
        let handle =
            prepared::Handle::decode(&query.prepared_statement_handle).map_err(bad_handle)?;
        let values = handle.values().map_err(bad_handle)?;
        let answer = self
            .sandbox
            .run_with(&caller.name, handle.sql, values)
            .await
            .map_err(to_status)?;
        Ok(Self::stream(answer))
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // The handle is the client's: nothing is kept here to free.
        self.authorize(request.metadata())?;
        Ok(())
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        Err(Status::unimplemented(format!(
            "{} is not supported: run statements (CommandStatementQuery), prepared statements, or read the catalog",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// A handle this server did not make, or parameters it cannot bind.
fn bad_handle(message: String) -> Status {
    status_of(ErrorKind::BadRequest, message)
}

/// A schema as Flight SQL carries it in a message: Arrow IPC.
fn ipc_schema(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| status_of(ErrorKind::Internal, e))?;
    Ok(message.0)
}

fn table_types_schema() -> Schema {
    Schema::new(vec![arrow::datatypes::Field::new(
        "table_type",
        arrow::datatypes::DataType::Utf8,
        false,
    )])
}
