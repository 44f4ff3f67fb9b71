//! Running analysts' SQL safely against the session every consumer shares.
//!
//! Every query is read-only (no DDL, DML, `SET`, `COPY` or file paths), runs with its
//! own memory pool so one runaway aggregation fails alone, under a time limit, on a
//! runtime of its own whose threads have large stacks (DataFusion's planner recurses
//! once per operator: a flat `1+1+…` of a few thousand terms overflows a default stack
//! and aborts the process), and only so many at once. Text too long to plan is refused
//! before parsing.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManager, DiskManagerBuilder};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::ErrorKind;
use crate::memory_ceiling::MemoryCeiling;
use crate::query_slots::{Full, QuerySlots, Slot};
use crate::session::check_read_only;

/// What one analyst query may use.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Longest SQL text accepted, in bytes.
    pub max_sql_bytes: usize,
    /// Table references a query may plan into once its WITH clauses are inlined.
    pub max_plan_relations: usize,
    /// Memory pool of one query.
    pub memory_bytes: usize,
    /// Planning and execution together.
    pub timeout: Duration,
    /// Queries running at once; more are refused, not queued.
    pub max_concurrent: usize,
    /// Queries one caller (a token) runs at once, within `max_concurrent`.
    pub max_concurrent_per_caller: usize,
    /// Rows one answer carries at most (over HTTP).
    pub max_rows: usize,
    /// How long a query waits for its client to take the next batch before it is
    /// stopped: a client that never reads must not hold a query slot until the time
    /// limit.
    pub idle_client: Duration,
    /// Spill files of all queries together, in bytes.
    pub spill_bytes: u64,
    /// The process's memory above which running queries are stopped; `None` watches
    /// nothing.
    pub memory_ceiling: Option<MemoryCeiling>,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_sql_bytes: 64 * 1024,
            max_plan_relations: 4096,
            memory_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            max_concurrent: 4,
            max_concurrent_per_caller: 2,
            max_rows: 100_000,
            idle_client: Duration::from_secs(10),
            spill_bytes: 8 * 1024 * 1024 * 1024,
            memory_ceiling: MemoryCeiling::from_machine(),
        }
    }
}

/// Why a query did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the SQL text is {len} bytes; at most {max} are accepted")]
    TooLarge { len: usize, max: usize },
    #[error(
        "not allowed: {0} (analysts' SQL is read-only: SELECT, EXPLAIN, SHOW and DESCRIBE over assay's tables)"
    )]
    NotAllowed(String),
    #[error(
        "the query inlines its WITH clauses into {relations} table references; at most {max} are planned (reference a large CTE fewer times, or nest fewer CTEs)"
    )]
    TooComplex { relations: usize, max: usize },
    #[error("{0} analyst queries are already running; try again shortly")]
    Busy(usize),
    #[error(
        "this token already runs {0} queries, the most one token may run at once; wait for one to finish"
    )]
    CallerBusy(usize),
    #[error("the query ran past its time limit of {0:?} and was stopped")]
    Timeout(Duration),
    #[error("the client took no rows for {0:?}; the query was stopped to free its slot")]
    ClientIdle(Duration),
    #[error("canceling statement due to user request")]
    Canceled,
    #[error(
        "the query needed more than its memory limit of {limit_mib} MiB and was stopped: {detail}"
    )]
    Memory { limit_mib: usize, detail: String },
    #[error(
        "the server's memory reached {used_mib} MiB, over its ceiling of {ceiling_mib} MiB; running analyst queries were stopped"
    )]
    ServerMemory { used_mib: u64, ceiling_mib: u64 },
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("{0}")]
    Query(String),
    #[error("relation \"{0}\" does not exist")]
    UnknownTable(String),
    #[error("{0}")]
    UnknownColumn(String),
    /// The server failed, not the query: the message is for the log only.
    #[error("{0}")]
    Internal(String),
}

impl SandboxError {
    fn from_datafusion(e: &DataFusionError, limits: &SandboxLimits) -> Self {
        let root = e.find_root();
        let message = root.to_string();
        match ErrorKind::of_user_query(e) {
            ErrorKind::MemoryLimit => Self::Memory {
                limit_mib: limits.memory_bytes / (1024 * 1024),
                detail: message,
            },
            ErrorKind::Syntax => Self::Syntax(message),
            ErrorKind::UnknownColumn => Self::UnknownColumn(message),
            ErrorKind::Internal => Self::Internal(message),
            _ => Self::Query(message),
        }
    }

    /// What this error means to the caller; see [`ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::TooComplex { .. } => ErrorKind::TooComplex,
            Self::NotAllowed(_) => ErrorKind::PermissionDenied,
            Self::Busy(_) | Self::CallerBusy(_) => ErrorKind::Busy,
            // PostgreSQL's query_canceled (57014) is both.
            Self::Timeout(_) | Self::ClientIdle(_) | Self::Canceled => ErrorKind::Timeout,
            Self::Memory { .. } | Self::ServerMemory { .. } => ErrorKind::MemoryLimit,
            Self::Syntax(_) => ErrorKind::Syntax,
            Self::Query(_) => ErrorKind::InvalidQuery,
            Self::UnknownTable(_) => ErrorKind::UnknownTable,
            Self::UnknownColumn(_) => ErrorKind::UnknownColumn,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// What a query task sends back: its schema first, then batches, or an error at any point.
#[derive(Debug)]
enum QueryMessage {
    Schema(SchemaRef),
    Batch(RecordBatch),
    Error(SandboxError),
}

/// A query that has planned and started: its schema, then its batches as they come.
/// Dropping it stops the query.
#[derive(Debug)]
pub struct Answer {
    pub schema: SchemaRef,
    rx: mpsc::Receiver<QueryMessage>,
}

impl Answer {
    /// Waits for the schema, or for the error that came first.
    async fn begin(mut rx: mpsc::Receiver<QueryMessage>) -> Result<Self, SandboxError> {
        match rx.recv().await {
            Some(QueryMessage::Schema(schema)) => Ok(Self { schema, rx }),
            Some(QueryMessage::Error(e)) => Err(e),
            Some(QueryMessage::Batch(_)) | None => Err(SandboxError::Query(
                "the query ended before its schema".into(),
            )),
        }
    }

    /// The next batch; `None` at the end. An error (memory, time) ends the answer.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, SandboxError>> {
        match self.rx.recv().await? {
            QueryMessage::Batch(batch) => Some(Ok(batch)),
            QueryMessage::Error(e) => Some(Err(e)),
            QueryMessage::Schema(_) => None,
        }
    }

    /// The batches as a stream, for protocols that encode one.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<RecordBatch, SandboxError>> + Send {
        futures::stream::unfold(self, |mut answer| async move {
            let next = answer.next().await?;
            Some((next, answer))
        })
    }
}

/// A query that is running, as the memory watch stops it.
struct Running {
    abort: tokio::task::AbortHandle,
    errors: mpsc::Sender<QueryMessage>,
    /// The client connection it runs for, where its protocol can cancel it.
    connection: Option<u64>,
}

tokio::task_local! {
    /// The client connection the queries started within run for: a protocol with a
    /// cancel request (the PostgreSQL wire's) sets it around each message it handles,
    /// and [`Sandbox::cancel_connection`] stops that connection's queries.
    pub static CONNECTION: u64;
}

type RunningQueries = Mutex<HashMap<u64, Running>>;

/// Runs analysts' queries; one per server.
pub struct Sandbox {
    ctx: SessionContext,
    limits: SandboxLimits,
    slots: QuerySlots,
    /// Where every query spills, within [`SandboxLimits::spill_bytes`] together.
    spill: Arc<DiskManager>,
    running: Arc<RunningQueries>,
    next_id: AtomicU64,
    runtime: Option<tokio::runtime::Runtime>,
    /// Where time limits and the memory ceiling are kept: a one-thread runtime of the
    /// sandbox's own, which queries never occupy and which lives exactly as long as
    /// the sandbox (not as long as whichever runtime created it).
    clock: Option<tokio::runtime::Runtime>,
}

impl Sandbox {
    /// # Errors
    /// The query or clock runtime cannot be started.
    pub fn new(ctx: SessionContext, limits: SandboxLimits) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("assay-sql")
            .thread_stack_size(256 * 1024 * 1024)
            .enable_all()
            .build()?;
        // A function's answer larger than one query's memory is refused before it is
        // built: that allocation is outside the query's pool.
        crate::bounded_functions::bound_in(&ctx, limits.memory_bytes);
        ctx.add_optimizer_rule(Arc::new(crate::like_escape::LikeEscapeToBackslash));
        let spill = DiskManagerBuilder::default()
            .with_max_temp_directory_size(limits.spill_bytes)
            .build()
            .map_err(std::io::Error::other)?;
        let running = Arc::new(RunningQueries::default());
        let clock = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("assay-sql-clock")
            .enable_all()
            .build()?;
        if let Some(ceiling) = limits.memory_ceiling {
            clock.spawn(watch_memory(ceiling, Arc::downgrade(&running)));
        }
        Ok(Self {
            ctx,
            slots: QuerySlots::new(limits.max_concurrent, limits.max_concurrent_per_caller),
            spill: Arc::new(spill),
            running,
            next_id: AtomicU64::new(0),
            limits,
            runtime: Some(runtime),
            clock: Some(clock),
        })
    }

    fn clock(&self) -> &tokio::runtime::Handle {
        self.clock
            .as_ref()
            .expect("the clock lives as long as the sandbox")
            .handle()
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// The runtime queries run on, whose threads have room for deep recursion: work
    /// that parses or plans untrusted SQL outside [`Sandbox::run`] belongs there.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("runtime lives as long as the sandbox")
            .handle()
    }

    /// Plans and starts `sql` for `caller` (a token's name: whose share of the query
    /// slots it takes); the answer's schema is known when this returns.
    ///
    /// # Errors
    /// Text too long or too many queries running, on the server or for this caller
    /// (refused before anything runs), not read-only, or failed before its schema
    /// (planning, or a limit hit that early).
    pub async fn run(&self, caller: &str, sql: String) -> Result<Answer, SandboxError> {
        self.check_sql_size(&sql)?;
        Answer::begin(self.start(caller, Query::sql(sql))?).await
    }

    /// [`Sandbox::run`] for a prepared statement: `params` bound, in order, to its
    /// placeholders (`$1`, `$2`, … or `?`, numbered as they appear).
    ///
    /// # Errors
    /// As [`Sandbox::run`], or parameters that do not fit the placeholders.
    pub async fn run_with(
        &self,
        caller: &str,
        sql: String,
        params: Vec<ScalarValue>,
    ) -> Result<Answer, SandboxError> {
        self.check_sql_size(&sql)?;
        let query = Query::Sql {
            sql,
            params: Some(params),
        };
        Answer::begin(self.start(caller, query)?).await
    }

    /// Stops every running query of `connection` (see [`CONNECTION`]); each answers
    /// [`SandboxError::Canceled`]. Returns how many were stopped.
    pub fn cancel_connection(&self, connection: u64) -> usize {
        let running = lock(&self.running);
        let mut stopped = 0;
        for query in running
            .values()
            .filter(|q| q.connection == Some(connection))
        {
            query.abort.abort();
            let errors = query.errors.clone();
            // Told, not dropped: an answer that just ends would read as complete.
            self.clock().spawn(async move {
                let _ = errors
                    .send(QueryMessage::Error(SandboxError::Canceled))
                    .await;
            });
            stopped += 1;
        }
        stopped
    }

    /// Plans a parsed statement on the shared session, its errors told apart as a
    /// query's are: the PostgreSQL extended protocol plans at Parse, before any value
    /// is bound, and runs the plan later with [`Sandbox::run_plan`].
    ///
    /// # Errors
    /// The statement does not plan (unknown table or column, bad types, …).
    pub async fn plan_statement(
        &self,
        statement: datafusion::sql::sqlparser::ast::Statement,
    ) -> Result<LogicalPlan, SandboxError> {
        let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement));
        let plan = plan_statement(&self.ctx.state(), statement, &self.limits).await?;
        check_read_only(&plan).map_err(SandboxError::NotAllowed)?;
        Ok(plan)
    }

    /// Starts a plan someone else planned against this sandbox's session (the
    /// PostgreSQL wire protocol's prepared statements): checked read-only, then run
    /// within the same limits as SQL text.
    ///
    /// # Errors
    /// As [`Sandbox::run`].
    pub async fn run_plan(&self, caller: &str, plan: LogicalPlan) -> Result<Answer, SandboxError> {
        Answer::begin(self.start(caller, Query::Plan(plan))?).await
    }

    /// The schema `sql`'s answer will have, without running it (Flight SQL announces it
    /// before the answer is fetched). Planned on the sandbox's runtime, like a query,
    /// holding a query slot and within the time limit.
    ///
    /// # Errors
    /// As [`Sandbox::run`].
    pub async fn schema_of(&self, caller: &str, sql: String) -> Result<SchemaRef, SandboxError> {
        Ok(self.plan_only(caller, Query::sql(sql)).await?.schema)
    }

    /// A prepared statement's answer schema and its placeholders' types, without
    /// running it (Flight SQL's CreatePreparedStatement). As [`Sandbox::schema_of`].
    ///
    /// # Errors
    /// As [`Sandbox::run`].
    pub async fn prepare(&self, caller: &str, sql: String) -> Result<Prepared, SandboxError> {
        let query = Query::Sql {
            sql,
            params: Some(Vec::new()),
        };
        self.plan_only(caller, query).await
    }

    async fn plan_only(&self, caller: &str, query: Query) -> Result<Prepared, SandboxError> {
        if let Query::Sql { sql, .. } = &query {
            self.check_sql_size(sql)?;
        }
        let permit = self.permit(caller)?;
        let state = self.ctx.state();
        let limits = self.limits.clone();
        let spill = Arc::clone(&self.spill);
        let planning = self.handle().spawn(async move {
            // Held until planning has really stopped, as a query's is.
            let _permit = permit;
            let df = plan_query(&state, &spill, query, &limits).await?;
            Prepared::of(&df)
        });
        let abort = planning.abort_handle();
        match tokio::time::timeout(self.limits.timeout, planning).await {
            Ok(planned) => {
                planned.map_err(|e| SandboxError::Internal(format!("planning stopped: {e}")))?
            }
            Err(_) => {
                abort.abort();
                Err(SandboxError::Timeout(self.limits.timeout))
            }
        }
    }

    /// Checks a statement someone else parsed and will plan (the PostgreSQL wire
    /// protocol's Parse) against the limits checked before planning: its text's size
    /// and its plan's.
    ///
    /// # Errors
    /// [`SandboxError::TooLarge`] or [`SandboxError::TooComplex`].
    pub fn check_statement(
        &self,
        statement: &datafusion::sql::sqlparser::ast::Statement,
    ) -> Result<(), SandboxError> {
        self.check_sql_size(&statement.to_string())?;
        let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement.clone()));
        check_plan_size(&statement, &self.limits)
    }

    /// A query slot, or Busy: more queries than slots are refused, not queued.
    fn permit(&self, caller: &str) -> Result<Slot, SandboxError> {
        self.slots.take(caller).map_err(|full| match full {
            Full::Server(max) => SandboxError::Busy(max),
            Full::Caller(max) => SandboxError::CallerBusy(max),
        })
    }

    /// Text too long to plan is refused before parsing (protocols that parse the text
    /// themselves call this first).
    ///
    /// # Errors
    /// [`SandboxError::TooLarge`].
    pub fn check_sql_size(&self, sql: &str) -> Result<(), SandboxError> {
        if sql.len() > self.limits.max_sql_bytes {
            return Err(SandboxError::TooLarge {
                len: sql.len(),
                max: self.limits.max_sql_bytes,
            });
        }
        Ok(())
    }

    fn start(
        &self,
        caller: &str,
        query: Query,
    ) -> Result<mpsc::Receiver<QueryMessage>, SandboxError> {
        let permit = self.permit(caller)?;
        let limits = self.limits.clone();
        let state = self.ctx.state();
        let spill = Arc::clone(&self.spill);
        let (tx, rx) = mpsc::channel(4);
        let errors = tx.clone();
        let timeout = limits.timeout;
        let work = self.handle().spawn(async move {
            // The permit is held until the query has really stopped, so the cap counts
            // the queries that use cores, not the answers still being awaited; and it
            // is given back before the client hears the query ended, so a client that
            // sends its next query at once finds its slot free. (A query's end reaches
            // its client only once every sender is gone, after this task.)
            let errors = tx.clone();
            let outcome = run_query(&state, &spill, query, &limits, tx).await;
            drop(permit);
            match outcome {
                Ok(()) => {}
                // Nobody is reading: there is no one to tell.
                Err(SandboxError::ClientIdle(_)) => {}
                Err(e) => {
                    let _ = tokio::time::timeout(
                        limits.idle_client,
                        errors.send(QueryMessage::Error(e)),
                    )
                    .await;
                }
            }
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let abort = work.abort_handle();
        lock(&self.running).insert(
            id,
            Running {
                abort: abort.clone(),
                errors: errors.clone(),
                connection: CONNECTION.try_with(|c| *c).ok(),
            },
        );
        let running = Arc::clone(&self.running);
        // The clock runs on its own thread: a query that hogs the sandbox's threads
        // must not also starve the timer that is meant to stop it.
        self.clock().spawn(async move {
            let mut work = work;
            let finished = tokio::time::timeout(timeout, &mut work).await;
            lock(&running).remove(&id);
            if finished.is_err() {
                abort.abort();
                // Its slot is given back when the aborted task is dropped: wait for
                // that (briefly: a task that never yields is not dropped) before
                // telling the client.
                let _ = tokio::time::timeout(Duration::from_millis(500), work).await;
                let _ = errors
                    .send(QueryMessage::Error(SandboxError::Timeout(timeout)))
                    .await;
            }
        });
        Ok(rx)
    }
}

enum Query {
    /// SQL text; with `params`, a prepared statement's (`?` numbered, values bound).
    Sql {
        sql: String,
        params: Option<Vec<ScalarValue>>,
    },
    Plan(LogicalPlan),
}

impl Query {
    fn sql(sql: String) -> Self {
        Self::Sql { sql, params: None }
    }
}

/// What a prepared statement will answer, and what it needs bound first.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub schema: SchemaRef,
    /// Each placeholder's type (`$1`, `$2`, … in order), where the planner could
    /// infer it.
    pub parameters: Vec<Option<DataType>>,
}

impl Prepared {
    fn of(df: &datafusion::dataframe::DataFrame) -> Result<Self, SandboxError> {
        let types = df
            .logical_plan()
            .get_parameter_types()
            .map_err(|e| SandboxError::Internal(e.to_string()))?;
        let mut numbered: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(id, t)| Some((id.strip_prefix('$')?.parse().ok()?, t)))
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        Ok(Self {
            schema: Arc::clone(df.schema().inner()),
            parameters: numbered.into_iter().map(|(_, t)| t).collect(),
        })
    }
}

/// Numbers `?` placeholders `$1`, `$2`, … in the order they appear (ADBC and JDBC
/// write `?`; DataFusion binds only numbered ones).
fn number_question_marks(statement: &mut datafusion::sql::parser::Statement) {
    use datafusion::sql::sqlparser::ast::{Expr, Value, visit_expressions_mut};
    let datafusion::sql::parser::Statement::Statement(inner) = statement else {
        return;
    };
    let mut next = 0;
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        if let Expr::Value(v) = expr
            && matches!(&v.value, Value::Placeholder(p) if p == "?")
        {
            next += 1;
            v.value = Value::Placeholder(format!("${next}"));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

fn lock(running: &RunningQueries) -> std::sync::MutexGuard<'_, HashMap<u64, Running>> {
    running.lock().unwrap_or_else(|p| p.into_inner())
}

/// Looks at the process's memory every 50 ms and, over the ceiling, stops every running
/// query with an error its client receives; ends with the sandbox.
async fn watch_memory(ceiling: MemoryCeiling, running: Weak<RunningQueries>) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let Some(running) = running.upgrade() else {
            return;
        };
        let Some((used, limit)) = ceiling.exceeded() else {
            continue;
        };
        let stopped: Vec<Running> = lock(&running).drain().map(|(_, q)| q).collect();
        if stopped.is_empty() {
            continue;
        }
        let (used_mib, ceiling_mib) = (used / (1024 * 1024), limit / (1024 * 1024));
        tracing::warn!(
            used_mib,
            ceiling_mib,
            queries = stopped.len(),
            "memory ceiling reached: stopping analyst queries"
        );
        for query in stopped {
            query.abort.abort();
            let error = SandboxError::ServerMemory {
                used_mib,
                ceiling_mib,
            };
            // Told, not dropped: an answer that just ends would read as complete.
            tokio::spawn(async move {
                let _ = query.errors.send(QueryMessage::Error(error)).await;
            });
        }
    }
}

/// `statement` planned, or why not: a table it names that the session does not have
/// (checked against the catalog, not read from the error's text), else DataFusion's
/// error by its type.
async fn plan_statement(
    state: &datafusion::execution::SessionState,
    statement: datafusion::sql::parser::Statement,
    limits: &SandboxLimits,
) -> Result<LogicalPlan, SandboxError> {
    match state.statement_to_plan(statement.clone()).await {
        Ok(plan) => Ok(plan),
        Err(e) => Err(unknown_table(state, &statement)
            .unwrap_or_else(|| SandboxError::from_datafusion(&e, limits))),
    }
}

/// The first table `statement` names that the session does not have, once its
/// planning has failed.
fn unknown_table(
    state: &datafusion::execution::SessionState,
    statement: &datafusion::sql::parser::Statement,
) -> Option<SandboxError> {
    let references = state.resolve_table_references(statement).ok()?;
    references.into_iter().find_map(|reference| {
        if reference.schema().is_none() && state.table_functions().contains_key(reference.table()) {
            return None;
        }
        let exists = state
            .schema_for_ref(reference.clone())
            .map(|schema| schema.table_exist(reference.table()))
            .unwrap_or(false);
        (!exists).then(|| SandboxError::UnknownTable(reference.to_string()))
    })
}

/// Plans `query` read-only in a session with its own memory pool.
async fn plan_query(
    state: &datafusion::execution::SessionState,
    spill: &Arc<DiskManager>,
    query: Query,
    limits: &SandboxLimits,
) -> Result<datafusion::dataframe::DataFrame, SandboxError> {
    // A pool of its own: a query over its budget fails alone.
    let pool = TrackConsumersPool::new(
        GreedyMemoryPool::new(limits.memory_bytes),
        NonZeroUsize::new(3).expect("non-zero"),
    );
    let mut runtime_env =
        RuntimeEnvBuilder::from_runtime_env(state.runtime_env()).with_memory_pool(Arc::new(pool));
    runtime_env.disk_manager = Some(Arc::clone(spill));
    let runtime_env = runtime_env
        .build_arc()
        .map_err(|e| SandboxError::Internal(e.to_string()))?;
    let ctx = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state.clone())
            .with_runtime_env(runtime_env)
            .build(),
    );
    let failed = |e: DataFusionError| SandboxError::from_datafusion(&e, limits);
    let (plan, values) = match query {
        Query::Sql { sql, params } => {
            let state = ctx.state();
            let dialect = state.config().options().sql_parser.dialect;
            let mut statement = state.sql_to_statement(&sql, &dialect).map_err(failed)?;
            check_plan_size(&statement, limits)?;
            if params.is_some() {
                number_question_marks(&mut statement);
            }
            let plan = plan_statement(&state, statement, limits).await?;
            (plan, params.unwrap_or_default())
        }
        Query::Plan(plan) => (plan, Vec::new()),
    };
    // What a statement does is judged before any value is bound to it.
    check_read_only(&plan).map_err(SandboxError::NotAllowed)?;
    let plan = if values.is_empty() {
        plan
    } else {
        plan.with_param_values(values).map_err(failed)?
    };
    ctx.execute_logical_plan(plan)
        .await
        .map_err(|e| SandboxError::from_datafusion(&e, limits))
}

/// Refuses, before the planner starts, a statement whose plan would explode.
fn check_plan_size(
    statement: &datafusion::sql::parser::Statement,
    limits: &SandboxLimits,
) -> Result<(), SandboxError> {
    let relations = crate::plan_size::inlined_relations(statement);
    if relations > limits.max_plan_relations {
        return Err(SandboxError::TooComplex {
            relations,
            max: limits.max_plan_relations,
        });
    }
    Ok(())
}

/// Plans `query` and streams the answer into `tx`; returns when the answer is complete
/// or the receiver has gone.
async fn run_query(
    state: &datafusion::execution::SessionState,
    spill: &Arc<DiskManager>,
    query: Query,
    limits: &SandboxLimits,
    tx: mpsc::Sender<QueryMessage>,
) -> Result<(), SandboxError> {
    let df = plan_query(state, spill, query, limits).await?;
    let schema = Arc::clone(df.schema().inner());
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|e| SandboxError::from_datafusion(&e, limits))?;
    if !hand_over(&tx, QueryMessage::Schema(schema), limits).await? {
        return Ok(());
    }
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| SandboxError::from_datafusion(&e, limits))?;
        if !hand_over(&tx, QueryMessage::Batch(batch), limits).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends `message` to the client: `false` when the client went away, an error when it
/// has taken nothing for [`SandboxLimits::idle_client`].
async fn hand_over(
    tx: &mpsc::Sender<QueryMessage>,
    message: QueryMessage,
    limits: &SandboxLimits,
) -> Result<bool, SandboxError> {
    match tokio::time::timeout(limits.idle_client, tx.send(message)).await {
        Ok(sent) => Ok(sent.is_ok()),
        Err(_) => Err(SandboxError::ClientIdle(limits.idle_client)),
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A runtime may not be dropped from inside another one: let each wind down alone.
        for runtime in [self.runtime.take(), self.clock.take()]
            .into_iter()
            .flatten()
        {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each way a query fails is told apart by the error's type, whatever DataFusion's
    /// message says.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_classified_by_their_type() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1, 'a'), (2, 'b')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let sandbox = Sandbox::new(ctx, SandboxLimits::default()).unwrap();
        // Each answer is read to its end: the query's slot is given back only then, and
        // the next call (the same caller, two slots) must not find its own slots taken
        // by answers it walked away from.
        let kind = |sql: &'static str| {
            let sandbox = &sandbox;
            async move {
                match sandbox.run("analyst", sql.to_string()).await {
                    Ok(mut answer) => {
                        let mut failed = None;
                        while let Some(message) = answer.next().await {
                            if let Err(e) = message {
                                failed.get_or_insert(e.kind());
                            }
                        }
                        failed
                    }
                    Err(e) => Some(e.kind()),
                }
            }
        };
        assert_eq!(kind("SELECT count(*) FROM t").await, None);
        assert_eq!(kind("SELEC 1").await, Some(ErrorKind::Syntax));
        assert_eq!(
            kind("SELECT no_such FROM t").await,
            Some(ErrorKind::UnknownColumn)
        );
        assert_eq!(
            kind("SELECT * FROM t JOIN no_such ON true").await,
            Some(ErrorKind::UnknownTable)
        );
        // A table function is not an unknown table; a function that is missing is
        // the query's fault.
        assert_eq!(kind("SELECT * FROM generate_series(1, 2)").await, None);
        assert_eq!(
            kind("SELECT no_such_function(1)").await,
            Some(ErrorKind::InvalidQuery)
        );
        assert_eq!(
            kind("SELECT CAST('x' AS INT)").await,
            Some(ErrorKind::InvalidQuery)
        );
        for refused in [
            "DROP TABLE t",
            "CREATE VIEW v AS SELECT 1",
            "INSERT INTO t VALUES (3, 'c')",
            "COPY t TO '/tmp/assay-sandbox-test.csv'",
            "SET datafusion.execution.batch_size = 1",
        ] {
            assert_eq!(
                kind(refused).await,
                Some(ErrorKind::PermissionDenied),
                "{refused}"
            );
        }
        // Answers a function would build past the memory limit are refused before they
        // are allocated; the same functions still answer small calls.
        for huge in [
            "SELECT length(repeat(arrow_cast('x', 'LargeUtf8'), 3000000000))",
            "SELECT length(repeat(column2, 3000000000)) FROM t",
            "SELECT length(lpad('x', 3000000000))",
            "SELECT cardinality(range(0, 250000000))",
            "SELECT cardinality(generate_series(column1, 250000000)) FROM t",
            "SELECT cardinality(range(TIMESTAMP '1970-01-01', TIMESTAMP '2200-01-01', INTERVAL '1 minute'))",
            "SELECT cardinality(array_repeat('abc', 100000000))",
        ] {
            assert_eq!(kind(huge).await, Some(ErrorKind::MemoryLimit), "{huge}");
        }
        for small in [
            "SELECT length(repeat('ab', 1000))",
            "SELECT rpad(column2, 10, '-') FROM t",
            "SELECT cardinality(range(0, 1000, 7))",
            "SELECT cardinality(range(DATE '2026-01-01', DATE '2026-12-31', INTERVAL '1 month'))",
            "SELECT array_repeat(column1, 3) FROM t",
        ] {
            assert_eq!(kind(small).await, None, "{small}");
        }
        // Nothing refused ran: the table is still there, with its two rows.
        let mut answer = sandbox
            .run("analyst", "SELECT count(*) FROM t".into())
            .await
            .unwrap();
        let batch = answer.next().await.unwrap().unwrap();
        assert_eq!(
            arrow::array::cast::as_primitive_array::<arrow::datatypes::Int64Type>(batch.column(0))
                .value(0),
            2
        );
    }

    /// Over the process's memory ceiling, a running query is stopped and its client
    /// told why, rather than the process running out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_are_stopped_when_the_process_passes_its_ceiling() {
        let limits = SandboxLimits {
            // Already passed: this process holds more than 1 KiB.
            memory_ceiling: Some(MemoryCeiling::resident(1024)),
            ..SandboxLimits::default()
        };
        let sandbox = Sandbox::new(SessionContext::new(), limits).unwrap();
        let started = std::time::Instant::now();
        // Stopped before its schema or after: either way with the reason.
        let error = match sandbox
            .run(
                "analyst",
                "SELECT count(*) FROM range(0, 100000000000)".into(),
            )
            .await
        {
            Err(e) => e,
            Ok(mut answer) => loop {
                match answer.next().await {
                    Some(Err(e)) => break e,
                    Some(Ok(_)) => {}
                    None => panic!("the query ended without being stopped"),
                }
            },
        };
        assert!(
            matches!(error, SandboxError::ServerMemory { ceiling_mib: 0, .. }),
            "{error}"
        );
        assert_eq!(error.kind(), ErrorKind::MemoryLimit);
        assert!(started.elapsed() < Duration::from_secs(10));
        // Its slot is free again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sandbox.slots.available(), 4);
    }
}
