//! The SQL views, checked with sqllogictest files over tiny fixtures whose answers were
//! worked out by hand (see the comments in each `.slt` file).
//!
//! A fixture file creates `events`, `styles` and `stock_receipts` with `CREATE TABLE`,
//! then says `ASSAY VIEWS AS OF '<time>'`, which registers assay's views as of that time,
//! exactly as the engine does for a decision run.
//!
//! Either may end in `WINDOW <days> EARLY <days>`: a policy with that planned life
//! and early window.
//!
//! `ASSAY ROLLUP FROM '<day>' UNTIL '<day>'` computes the daily rollup's rows for those
//! days, carrying stock in from the rows already there, and keeps the earlier rows, as
//! an incremental refresh does; `ASSAY ROLLUP FUNNEL AS OF '<time>'` registers
//! `rollup_funnel`: the funnel a decision run computes from the rollup plus raw events
//! after its last whole day.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use assay_engine::decision::Policy;
use assay_engine::sql::{register_views, style_daily_days, style_daily_schema};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

struct ViewsDb {
    ctx: SessionContext,
}

#[async_trait]
impl AsyncDB for ViewsDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        if let Some(rest) = sql.trim().strip_prefix("ASSAY VIEWS AS OF ") {
            let (as_of, policy) = parse_as_of(rest)?;
            register_views(&self.ctx, &policy.view_params(as_of)).await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        if let Some(rest) = sql.trim().strip_prefix("ASSAY ROLLUP FUNNEL AS OF ") {
            let (as_of, policy) = parse_as_of(rest)?;
            let through = self
                .ctx
                .sql("SELECT MAX(day) AS d FROM style_daily")
                .await?
                .collect()
                .await?;
            let through = through[0]
                .column(0)
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value_as_date(0)
                .ok_or_else(|| DataFusionError::Plan("the rollup is empty".into()))?;
            let text = policy.view_params(as_of).style_funnel(Some(through));
            self.ctx.deregister_table("rollup_funnel")?;
            let view = self.ctx.sql(&text).await?.into_view();
            self.ctx.register_table("rollup_funnel", view)?;
            return Ok(DBOutput::StatementComplete(0));
        }
        if let Some(rest) = sql.trim().strip_prefix("ASSAY ROLLUP FROM ") {
            let (from, until) = rest
                .split_once(" UNTIL ")
                .ok_or_else(|| DataFusionError::Plan(format!("expected FROM … UNTIL …: {rest}")))?;
            let (from, until) = (parse_day(from)?, parse_day(until)?);
            self.rollup_days(from, until).await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let df = self.ctx.sql(sql).await?;
        let is_query = sql.trim_start().to_ascii_uppercase().starts_with("SELECT")
            || sql.trim_start().to_ascii_uppercase().starts_with("WITH");
        let types: Vec<DefaultColumnType> = df
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                DataType::Float32 | DataType::Float64 => DefaultColumnType::FloatingPoint,
                _ => DefaultColumnType::Text,
            })
            .collect();
        let batches = df.collect().await?;
        if !is_query {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types,
            rows: format_rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}
}

impl ViewsDb {
    /// Replaces the rollup's rows from `from` on with freshly computed ones.
    async fn rollup_days(&self, from: NaiveDate, until: NaiveDate) -> Result<(), DataFusionError> {
        if !self.ctx.table_exist("style_daily")? {
            let empty = MemTable::try_new(style_daily_schema(), vec![vec![]])?;
            self.ctx.register_table("style_daily", Arc::new(empty))?;
        }
        let new_rows = self
            .ctx
            .sql(&style_daily_days(from, until))
            .await?
            .collect()
            .await?;
        let kept = self
            .ctx
            .sql(&format!(
                "SELECT * FROM style_daily WHERE day < DATE '{from}'"
            ))
            .await?
            .collect()
            .await?;
        let schema = style_daily_schema();
        let rows = kept
            .into_iter()
            .chain(new_rows)
            .map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        self.ctx.deregister_table("style_daily")?;
        self.ctx.register_table(
            "style_daily",
            Arc::new(MemTable::try_new(schema, vec![rows])?),
        )?;
        Ok(())
    }
}

fn unquote(text: &str) -> &str {
    text.trim().trim_end_matches(';').trim_matches('\'')
}

/// `'<time>'`, optionally followed by `WINDOW <days> EARLY <days>`: the policy's
/// planned life and early window (the built-in policy's otherwise).
fn parse_as_of(text: &str) -> Result<(DateTime<Utc>, Policy), DataFusionError> {
    let mut policy = Policy::default();
    let Some((time, windows)) = text.split_once(" WINDOW ") else {
        return Ok((parse_time(text)?, policy));
    };
    let bad = || DataFusionError::Plan(format!("expected WINDOW <days> EARLY <days>: {text}"));
    let (window, early) = windows.split_once(" EARLY ").ok_or_else(bad)?;
    policy.defaults.planned_life_days = window.trim().parse().map_err(|_| bad())?;
    policy.priors.launch_window_days = early.trim().parse().map_err(|_| bad())?;
    Ok((parse_time(time)?, policy))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, DataFusionError> {
    let text = unquote(text);
    text.parse()
        .map_err(|e| DataFusionError::Plan(format!("bad time {text}: {e}")))
}

fn parse_day(text: &str) -> Result<NaiveDate, DataFusionError> {
    let text = unquote(text);
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| DataFusionError::Plan(format!("bad day {text}: {e}")))
}

fn format_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DataFusionError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, c)| {
                        if c.is_null(r) {
                            "NULL".to_string()
                        } else if let Some(x) = c.as_primitive_opt::<Float64Type>() {
                            // Shortest round-trip form: 200 not 200.0, 2.381944 as is.
                            format!("{}", x.value(r))
                        } else {
                            f.value(r).to_string()
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

#[tokio::test]
async fn sql_views_match_hand_worked_answers() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    for file in files {
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok(ViewsDb {
                ctx: SessionContext::new(),
            })
        });
        runner
            .run_file_async(&file)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        println!("{}: ok", file.display());
    }
}
