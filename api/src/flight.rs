//! Arrow Flight SQL, for ADBC clients (Python `adbc-driver-flightsql`, Polars, DBeaver's
//! Flight SQL JDBC driver): statements and catalog metadata over the session the API
//! uses, every query through the same [`Sandbox`] as `POST /v1/sql` and pgwire.
//!
//! Authentication is a bearer token in the `authorization` header of every call; a
//! `Basic` handshake (user = token name, password = token) hands the bearer back for
//! clients that log in with a user and password.

use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use assay_engine::ErrorKind;
use assay_engine::sandbox::{Sandbox, SandboxError};
use base64::Engine as _;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use tokio::net::TcpListener;
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

/// Serves Flight SQL on `listener` until the task is dropped. The gRPC server runs on
/// the sandbox's runtime, whose threads have room for deep plans.
pub fn serve(
    listener: TcpListener,
    ctx: SessionContext,
    sandbox: Arc<Sandbox>,
    tokens: Arc<TokenStore>,
    cap: ConnectionCap,
) -> tokio::task::JoinHandle<()> {
    let handle = sandbox.handle().clone();
    let service = FlightSqlServiceImpl {
        ctx,
        sandbox,
        tokens,
    };
    handle.spawn(async move {
        // Past the cap a connection is closed at once: gRPC clients see UNAVAILABLE
        // and retry.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).filter_map(move |accepted| {
                let admitted = match accepted {
                    Ok(stream) => cap.admit().map(|place| Ok(Admitted::new(stream, place))),
                    Err(e) => Some(Err(e)),
                };
                std::future::ready(admitted)
            });
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(FlightServiceServer::new(service))
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!("Flight SQL server stopped: {e}");
        }
    })
}

impl Connected for Admitted<tokio::net::TcpStream> {
    type ConnectInfo = <tokio::net::TcpStream as Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
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
        let schema = Arc::clone(&answer.schema);
        let batches = answer
            .into_stream()
            .map_err(|e| FlightError::Tonic(Box::new(to_status(e))));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
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

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        Err(Status::unimplemented(format!(
            "{} is not supported: run statements (CommandStatementQuery) or read the catalog",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn table_types_schema() -> Schema {
    Schema::new(vec![arrow::datatypes::Field::new(
        "table_type",
        arrow::datatypes::DataType::Utf8,
        false,
    )])
}
