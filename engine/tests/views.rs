//! The SQL views, checked with sqllogictest files over tiny fixtures whose answers were
//! worked out by hand (see the comments in each `.slt` file).
//!
//! A fixture file creates `events`, `styles` and `stock_receipts` with `CREATE TABLE`,
//! then says `ASSAY VIEWS AS OF '<time>'`, which registers assay's views as of that time,
//! exactly as the engine does for a decision run.

use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use assay_engine::sql::{ViewParams, register_views};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
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
            let text = rest.trim().trim_end_matches(';').trim_matches('\'');
            let as_of: DateTime<Utc> = text
                .parse()
                .map_err(|e| DataFusionError::Plan(format!("bad as-of time {text}: {e}")))?;
            register_views(&self.ctx, &ViewParams::as_of(as_of)).await?;
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
