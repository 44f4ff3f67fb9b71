//! The extended query protocol (Parse, Bind, Execute: psycopg's, pgjdbc's and
//! node-postgres's path) with four checks before datafusion-postgres parses the text:
//! its size, that it holds one statement, that it is none of DataFusion's own writes
//! (`COPY … TO`, `CREATE EXTERNAL TABLE`: 42501, as over the simple protocol), and that
//! it parses (a syntax error, 42601). datafusion-postgres keeps the first
//! statement of a Parse and silently drops the rest; PostgreSQL refuses them
//! ("cannot insert multiple commands into a prepared statement"), and so does assay.

use std::sync::Arc;

use assay_engine::sandbox::Sandbox;
use async_trait::async_trait;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::ExtendedQueryHandler;
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, Type};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::{DfSessionService, Parser};

use super::cursors::Cursors;
use super::hook;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::pgwire::api::query::send_describe_response;
use datafusion_postgres::pgwire::api::results::DescribePortalResponse;
use datafusion_postgres::pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_PORTAL};
use datafusion_postgres::pgwire::types::format::FormatOptions;

type Statement = <Parser as QueryParser>::Statement;

/// datafusion-postgres's parser behind the size and one-statement checks.
pub struct GuardedParser {
    inner: Arc<Parser>,
    sandbox: Arc<Sandbox>,
    syntax: hook::SyntaxCheck,
}

#[async_trait]
impl QueryParser for GuardedParser {
    type Statement = Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.sandbox
            .check_sql_size(sql)
            .map_err(hook::to_pg_error)?;
        if holds_more_than_one_statement(sql) {
            return Err(hook::syntax_error(
                "a Parse message holds one statement; send the others in their own Parse (or use the simple query protocol)",
            ));
        }
        // Refused as the simple protocol and HTTP refuse it, before the PostgreSQL
        // grammar calls it a syntax error.
        if let Some(what) = hook::datafusion_only_statement(sql) {
            return Err(hook::not_allowed(&what));
        }
        self.syntax.check(sql)?;
        self.inner.parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// Whether anything but whitespace, comments and semicolons follows the first
/// statement's terminating semicolon. Text the tokenizer cannot read is left to the
/// parser, whose error names the problem.
fn holds_more_than_one_statement(sql: &str) -> bool {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return false;
    };
    let mut meaningful = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF));
    let mut seen_statement = false;
    let mut ended = false;
    for token in meaningful.by_ref() {
        match token {
            Token::SemiColon if seen_statement => ended = true,
            Token::SemiColon => {}
            _ if ended => return true,
            _ => seen_statement = true,
        }
    }
    false
}

/// datafusion-postgres's extended query handler with [`GuardedParser`] as its parser.
pub struct ExtendedQueries {
    service: Arc<DfSessionService>,
    parser: Arc<GuardedParser>,
    cursors: Arc<Cursors>,
}

impl ExtendedQueries {
    pub fn new(
        service: Arc<DfSessionService>,
        sandbox: Arc<Sandbox>,
        cursors: Arc<Cursors>,
    ) -> Self {
        let inner = ExtendedQueryHandler::query_parser(service.as_ref());
        Self {
            service,
            cursors,
            parser: Arc::new(GuardedParser {
                inner,
                sandbox,
                syntax: hook::SyntaxCheck::new(),
            }),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for ExtendedQueries {
    type Statement = Statement;
    type QueryParser = GuardedParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    /// A cursor `DECLARE`d on the connection is a portal too, and psycopg describes it
    /// by name to learn its columns before it fetches.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or("");
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && client.portal_store().get_portal(name).is_none()
            && let Ok(schema) = self.cursors.schema(client.socket_addr(), name)
        {
            let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            let fields = arrow_schema_to_pg_fields(&schema, &Format::UnifiedText, Some(options))?;
            return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo
            + ClientPortalStore
            + futures::Sink<PgWireBackendMessage>
            + Unpin
            + Send
            + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let format = portal.result_column_format.clone();
        hook::RESULT_FORMAT
            .scope(
                format,
                ExtendedQueryHandler::do_query(self.service.as_ref(), client, portal, max_rows),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::holds_more_than_one_statement as many;

    #[test]
    fn one_statement_with_trailing_semicolons_and_comments_is_one() {
        assert!(!many("SELECT 1"));
        assert!(!many("SELECT 1;"));
        assert!(!many("SELECT 1 ;; -- done\n /* really */ ;"));
        assert!(!many("SELECT ';' AS semicolon"));
        assert!(!many(";SELECT 1"));
        assert!(many("SELECT 1; SELECT 2"));
        assert!(many("SELECT 1; DROP TABLE styles"));
    }
}
