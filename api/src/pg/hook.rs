//! The first query hook of every pgwire connection: what may run, runs in the sandbox
//! that serves `POST /v1/sql`, with the same limits; the rest is refused with SQLSTATE
//! 42501 before datafusion-postgres's own handlers (which run statements on the shared
//! session with no options at all) ever see it.

use std::sync::Arc;

use assay_engine::ErrorKind;
use assay_engine::sandbox::{Answer, Sandbox, SandboxError};
use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ParamValues;
use datafusion::common::ToDFSchema;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::{EmptyRelation, Projection};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, Declare, Ident, Query, Set, SetExpr, Statement,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::{StreamExt, stream};

use super::catalog_rewrite;
use super::cursors::{self, Cursor, CursorError, Cursors};
use crate::error_codes::{codes, public_message};

/// Session variables a client may set: each is kept per connection by
/// datafusion-postgres or ignored. Anything else (above all `datafusion.*`, which would
/// reconfigure the session every user shares) is refused.
const CLIENT_VARIABLES: &[&str] = &[
    "application_name",
    "bytea_output",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
    "standard_conforming_strings",
    "statement_timeout",
];

pub struct SandboxHook {
    sandbox: Arc<Sandbox>,
    cursors: Arc<Cursors>,
}

impl SandboxHook {
    pub fn new(sandbox: Arc<Sandbox>, cursors: Arc<Cursors>) -> Self {
        Self { sandbox, cursors }
    }

    /// Runs `DECLARE … CURSOR`, `FETCH` or `CLOSE`. `bound` is a `DECLARE`'s query as
    /// planned at Parse, its parameters bound (extended protocol).
    async fn cursor_statement(
        &self,
        statement: &Statement,
        bound: Option<LogicalPlan>,
        client: &mut dyn HookClient,
    ) -> PgWireResult<Response> {
        let connection = client.socket_addr();
        match statement {
            Statement::Declare { stmts } => {
                let (name, query) = declared_cursor(stmts)?;
                let answer = match bound {
                    Some(plan) => self.sandbox.run_plan(caller(client), plan).await,
                    None => {
                        let query = Statement::Query(Box::new(query.clone()));
                        let query = catalog_rewrite::plannable(&query).unwrap_or(query);
                        self.sandbox.run(caller(client), query.to_string()).await
                    }
                };
                let cursor = Cursor::new(answer.map_err(to_pg_error)?);
                self.cursors
                    .open(connection, &name, cursor)
                    .map_err(cursor_error)?;
                Ok(Response::Execution(Tag::new("DECLARE CURSOR")))
            }
            Statement::Fetch {
                name, direction, ..
            } => {
                let rows = cursors::rows_asked(direction).map_err(cursor_error)?;
                let name = cursor_name(name);
                let mut cursor = self.cursors.take(connection, &name).map_err(cursor_error)?;
                // A cursor whose query failed is gone, as in PostgreSQL's aborted
                // transaction.
                let batches = cursor.fetch(rows).await.map_err(to_pg_error)?;
                let schema = cursor.schema();
                self.cursors.put_back(connection, &name, cursor);
                encode(&schema, stream::iter(batches.into_iter().map(Ok)), client)
            }
            Statement::Close { cursor } => {
                let name = match cursor {
                    CloseCursor::All => None,
                    CloseCursor::Specific { name } => Some(cursor_name(name)),
                };
                self.cursors
                    .close(connection, name.as_deref())
                    .map_err(cursor_error)?;
                Ok(Response::Execution(Tag::new("CLOSE CURSOR")))
            }
            _ => Err(not_allowed(&first_words(statement))),
        }
    }

    /// What a cursor statement is planned as at Parse: a `DECLARE`'s query under a
    /// projection of no columns (it returns no rows, but its parameters are typed from
    /// it), a `FETCH` as the cursor's rows.
    async fn plan_cursor_statement(
        &self,
        statement: &Statement,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> PgWireResult<LogicalPlan> {
        match statement {
            Statement::Declare { stmts } => {
                let (_, query) = declared_cursor(stmts)?;
                let query = Statement::Query(Box::new(query.clone()));
                self.sandbox.check_statement(&query).map_err(to_pg_error)?;
                let query = catalog_rewrite::plannable(&query).unwrap_or(query);
                let plan = self
                    .sandbox
                    .plan_statement(query)
                    .await
                    .map_err(to_pg_error)?;
                Projection::try_new(vec![], Arc::new(plan))
                    .map(LogicalPlan::Projection)
                    .map_err(|e| to_pg_error(SandboxError::Query(e.to_string())))
            }
            Statement::Fetch { name, .. } => {
                let schema = self
                    .cursors
                    .schema(client.socket_addr(), &cursor_name(name))
                    .map_err(cursor_error)?;
                plan_of_schema(schema.fields().iter().map(|f| f.as_ref().clone()).collect())
            }
            _ => plan_of_schema(vec![]),
        }
    }
}

/// The one cursor a `DECLARE` names, and its query.
fn declared_cursor(stmts: &[Declare]) -> PgWireResult<(String, &Query)> {
    let [declare] = stmts else {
        return Err(not_allowed("DECLARE of more than one cursor"));
    };
    match (declare.names.as_slice(), declare.for_query.as_deref()) {
        (_, Some(query))
            if matches!(
                query.body.as_ref(),
                SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
            ) =>
        {
            Err(not_allowed("a cursor over INSERT, UPDATE, DELETE or MERGE"))
        }
        ([name], Some(query)) if declare.binary != Some(true) => Ok((cursor_name(name), query)),
        _ => Err(not_allowed(
            "DECLARE other than `DECLARE name [NO SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`",
        )),
    }
}

/// A cursor's name as PostgreSQL folds it: lower case unless quoted.
fn cursor_name(name: &Ident) -> String {
    match name.quote_style {
        Some(_) => name.value.clone(),
        None => name.value.to_lowercase(),
    }
}

fn cursor_error(e: CursorError) -> PgWireError {
    match (e.sqlstate(), e) {
        (Some(code), e) => user_error(code, e.to_string()),
        (None, CursorError::Query(e)) => to_pg_error(e),
        (None, e) => pg_error(ErrorKind::Internal, e),
    }
}

/// What to do with one statement.
enum Route {
    /// `DECLARE … CURSOR`, `FETCH`, `CLOSE`: see `cursors.rs`.
    Cursor,
    /// A query: run it in the sandbox.
    Sandbox,
    /// Harmless session bookkeeping (`SET search_path`, `SHOW`, `BEGIN`): left to
    /// datafusion-postgres's later hooks.
    PassOn,
    /// A server-wide setting assay answers itself (`SHOW server_version`).
    Show {
        name: String,
        value: String,
    },
    /// A driver's housekeeping with nothing to do here (`DEALLOCATE ALL` after an
    /// error, `DISCARD ALL` when a pool hands the connection on): done, with this tag.
    Done(&'static str),
    Refuse(String),
}

fn route(statement: &Statement) -> Route {
    match statement {
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. } => Route::Sandbox,
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|v| v.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            match super::functions::server_setting(&name) {
                Some(value) => Route::Show { name, value },
                None => Route::PassOn,
            }
        }
        // Statements prepared by a driver live with its connection and end with it.
        Statement::Deallocate { .. } => Route::Done("DEALLOCATE"),
        Statement::Discard { .. } => Route::Done("DISCARD ALL"),
        Statement::Reset(_) => Route::Done("RESET"),
        // Nothing here writes: a savepoint has nothing to keep (drivers set one around
        // their own catalog lookups).
        Statement::Savepoint { .. } => Route::Done("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Route::Done("RELEASE"),
        Statement::ShowStatus { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. } => Route::PassOn,
        Statement::Set(set) => match set {
            Set::SingleAssignment { variable, .. }
                if CLIENT_VARIABLES.contains(&variable.to_string().to_lowercase().as_str()) =>
            {
                Route::PassOn
            }
            Set::SetTimeZone { local: false, .. } | Set::SetNames { .. } => Route::PassOn,
            _ => Route::Refuse(format!(
                "`{set}`: only client settings ({}) and TIME ZONE may be set",
                CLIENT_VARIABLES.join(", ")
            )),
        },
        Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
            Route::Cursor
        }
        other => Route::Refuse(first_words(other)),
    }
}

/// The statement's kind in its own words (`COPY`, `CREATE EXTERNAL TABLE`, …) without
/// echoing a possibly huge body.
fn first_words(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("`{} …`", words.join(" "))
}

/// DataFusion's own statements (`CREATE EXTERNAL TABLE`, `COPY … TO`) in the text, if
/// any, also under `EXPLAIN`. The PostgreSQL parser that runs before the hooks cannot
/// even parse some of them, and plans the others as its own `COPY`, so they would fail
/// with a parse or planning error instead of the refusal they meet over HTTP.
pub fn datafusion_only_statement(sql: &str) -> Option<String> {
    use datafusion::sql::parser::{DFParser, Statement as DfStatement};
    fn refused(s: &DfStatement) -> Option<String> {
        match s {
            DfStatement::CreateExternalTable(t) => Some(format!(
                "`CREATE EXTERNAL TABLE {} … LOCATION '{}'`",
                t.name,
                t.locations.join("', '")
            )),
            DfStatement::CopyTo(c) => Some(format!("`COPY … TO '{}'`", c.target)),
            DfStatement::Explain(e) => refused(&e.statement),
            _ => None,
        }
    }
    DFParser::parse_sql(sql).ok()?.iter().find_map(refused)
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

pub fn not_allowed(what: &str) -> PgWireError {
    to_pg_error(SandboxError::NotAllowed(what.to_owned()))
}

pub fn to_pg_error(e: SandboxError) -> PgWireError {
    pg_error(e.kind(), &e)
}

pub fn syntax_error(message: &str) -> PgWireError {
    to_pg_error(SandboxError::Syntax(message.to_owned()))
}

/// Text that does not parse, refused as a syntax error (SQLSTATE 42601): parsed first by
/// the parser datafusion-postgres itself uses, whose own failure would reach the client
/// as an internal error (XX000), which drivers report as a server fault.
pub struct SyntaxCheck(PostgresCompatibilityParser);

impl SyntaxCheck {
    pub fn new() -> Self {
        Self(PostgresCompatibilityParser::new())
    }

    pub fn check(&self, sql: &str) -> PgWireResult<()> {
        self.0
            .parse(sql)
            .map(drop)
            .map_err(|e| syntax_error(&e.to_string()))
    }
}

/// An error of `kind` as the one table says, with no internals in an internal one.
fn pg_error(kind: ErrorKind, message: impl std::fmt::Display) -> PgWireError {
    user_error(codes(kind).sqlstate, public_message(kind, &message))
}

/// Who runs the query: the login's user name, which is a token's name (the login
/// itself checked it).
fn caller(client: &dyn HookClient) -> &str {
    client.metadata().get("user").map_or("", String::as_str)
}

tokio::task_local! {
    /// The result formats the portal being executed asked for (Bind's result format
    /// codes). datafusion-postgres's hook API does not pass the portal, so the extended
    /// handler sets this around the execution it hands over (see `extended.rs`).
    pub static RESULT_FORMAT: Format;
}

/// The result format of the portal being executed; text outside the extended protocol.
fn result_format() -> Format {
    RESULT_FORMAT
        .try_with(Format::clone)
        .unwrap_or(Format::UnifiedText)
}

/// Turns a sandbox answer into pgwire rows, in the format the client asked for.
fn respond(
    answer: Result<Answer, SandboxError>,
    client: &(dyn ClientInfo + Send + Sync),
) -> PgWireResult<Response> {
    let answer = answer.map_err(to_pg_error)?;
    let schema = Arc::clone(&answer.schema);
    encode(&schema, answer.into_stream(), client)
}

/// Batches as pgwire rows, in the portal's result format (text for the simple
/// protocol): pgjdbc asks for binary columns once it has prepared a statement on the
/// server, and reads text sent in their place as garbage.
fn encode(
    schema: &Schema,
    batches: impl futures::Stream<Item = Result<RecordBatch, SandboxError>> + Send + 'static,
    client: &(dyn ClientInfo + Send + Sync),
) -> PgWireResult<Response> {
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = Arc::new(arrow_schema_to_pg_fields(
        schema,
        &result_format(),
        Some(options),
    )?);
    let row_fields = Arc::clone(&fields);
    let rows = batches.flat_map(move |next| {
        let rows: Vec<PgWireResult<_>> = match next {
            Ok(batch) => encode_recordbatch(Arc::clone(&row_fields), batch).collect(),
            Err(e) => vec![Err(to_pg_error(e))],
        };
        stream::iter(rows)
    });
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

/// One text value in one row: a `SHOW`'s answer.
fn one_value(
    name: &str,
    value: &str,
    client: &(dyn ClientInfo + Send + Sync),
) -> PgWireResult<Response> {
    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(StringArray::from(vec![value]))],
    )
    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    encode(&schema, stream::iter([Ok(batch)]), client)
}

/// What a statement answered by the hook is planned as on the extended path: nothing to
/// run, only the shape of its answer.
fn plan_of_schema(fields: Vec<Field>) -> PgWireResult<LogicalPlan> {
    let schema = Schema::new(fields)
        .to_dfschema()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: true,
        schema: Arc::new(schema),
    }))
}

#[async_trait]
impl QueryHook for SandboxHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match route(statement) {
            Route::PassOn => None,
            Route::Refuse(what) => Some(Err(not_allowed(&what))),
            Route::Show { name, value } => Some(one_value(&name, &value, client)),
            Route::Done(tag) => Some(Ok(Response::Execution(Tag::new(tag)))),
            Route::Cursor => Some(self.cursor_statement(statement, None, client).await),
            Route::Sandbox => {
                let statement =
                    catalog_rewrite::plannable(statement).unwrap_or_else(|| statement.clone());
                Some(respond(
                    self.sandbox
                        .run(caller(client), statement.to_string())
                        .await,
                    client,
                ))
            }
        }
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match route(statement) {
            Route::Refuse(what) => Some(Err(not_allowed(&what))),
            Route::Cursor => Some(self.plan_cursor_statement(statement, client).await),
            // Planned here, not by datafusion-postgres: what would make planning explode
            // is refused first, a driver's catalog query DataFusion cannot plan as
            // written is planned in its equivalent form, and an error gets the SQLSTATE
            // the simple protocol would give it (datafusion-postgres answers XX000).
            Route::Sandbox => {
                if let Err(e) = self.sandbox.check_statement(statement) {
                    return Some(Err(to_pg_error(e)));
                }
                let statement =
                    catalog_rewrite::plannable(statement).unwrap_or_else(|| statement.clone());
                Some(
                    self.sandbox
                        .plan_statement(statement)
                        .await
                        .map_err(to_pg_error),
                )
            }
            Route::PassOn => None,
            Route::Show { name, .. } => Some(plan_of_schema(vec![Field::new(
                name,
                DataType::Utf8,
                false,
            )])),
            Route::Done(_) => Some(plan_of_schema(vec![])),
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        logical_plan: &LogicalPlan,
        params: &ParamValues,
        _session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match route(statement) {
            Route::PassOn => None,
            Route::Refuse(what) => Some(Err(not_allowed(&what))),
            Route::Show { name, value } => Some(one_value(&name, &value, client)),
            Route::Done(tag) => Some(Ok(Response::Execution(Tag::new(tag)))),
            Route::Cursor => {
                // A DECLARE's query is the input of the projection it was planned as.
                let bound = match logical_plan {
                    LogicalPlan::Projection(p)
                        if matches!(statement, Statement::Declare { .. }) =>
                    {
                        match p.input.as_ref().clone().replace_params_with_values(params) {
                            Ok(plan) => Some(plan),
                            Err(e) => return Some(Err(pg_error(ErrorKind::BadRequest, e))),
                        }
                    }
                    _ => None,
                };
                Some(self.cursor_statement(statement, bound, client).await)
            }
            Route::Sandbox => {
                let plan = match logical_plan.clone().replace_params_with_values(params) {
                    Ok(plan) => plan,
                    Err(e) => return Some(Err(pg_error(ErrorKind::BadRequest, e))),
                };
                Some(respond(
                    self.sandbox.run_plan(caller(client), plan).await,
                    client,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn route_of(sql: &str) -> &'static str {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        match route(&statement) {
            Route::Sandbox => "sandbox",
            Route::Cursor => "cursor",
            Route::PassOn => "pass",
            Route::Show { .. } => "show",
            Route::Done(_) => "done",
            Route::Refuse(_) => "refuse",
        }
    }

    #[test]
    fn queries_run_settings_pass_and_everything_else_is_refused() {
        assert_eq!(route_of("SELECT 1"), "sandbox");
        assert_eq!(route_of("EXPLAIN SELECT 1"), "sandbox");
        assert_eq!(route_of("SET search_path = public"), "pass");
        assert_eq!(route_of("SET extra_float_digits = 3"), "pass");
        assert_eq!(route_of("SET TIME ZONE 'UTC'"), "pass");
        assert_eq!(route_of("SHOW search_path"), "pass");
        assert_eq!(route_of("SHOW server_version"), "show");
        assert_eq!(route_of("SHOW server_version_num"), "show");
        // Drivers' housekeeping after an error or before a pool reuses a connection.
        assert_eq!(route_of("DEALLOCATE ALL"), "done");
        assert_eq!(route_of("DEALLOCATE PREPARE _pg3_0"), "done");
        assert_eq!(route_of("DISCARD ALL"), "done");
        assert_eq!(route_of("RESET ALL"), "done");
        assert_eq!(route_of("SAVEPOINT \"_pg3_1\""), "done");
        assert_eq!(route_of("RELEASE SAVEPOINT \"_pg3_1\""), "done");
        assert_eq!(route_of("ROLLBACK TO SAVEPOINT \"_pg3_1\""), "pass");
        assert_eq!(route_of("BEGIN"), "pass");
        assert_eq!(
            route_of("SET datafusion.runtime.memory_limit = '1G'"),
            "refuse"
        );
        assert_eq!(route_of("COPY (SELECT 1) TO '/tmp/x.csv'"), "refuse");
        assert_eq!(route_of("INSERT INTO styles VALUES (1)"), "refuse");
        assert_eq!(route_of("DROP TABLE styles"), "refuse");
        assert_eq!(route_of("DECLARE c CURSOR FOR SELECT 1"), "cursor");
        assert_eq!(route_of("FETCH FORWARD 10 FROM c"), "cursor");
        assert_eq!(route_of("CLOSE c"), "cursor");
        assert!(
            datafusion_only_statement(
                "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'"
            )
            .is_some()
        );
        assert!(
            datafusion_only_statement("EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x.csv'")
                .is_some_and(|what| what.contains("/tmp/x.csv"))
        );
        assert!(datafusion_only_statement("SELECT 1").is_none());
        assert!(datafusion_only_statement("EXPLAIN SELECT 1").is_none());
    }
}
