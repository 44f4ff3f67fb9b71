//! The `overrides` table: the override log as SQL sees it, read fresh at every scan so
//! an override is queryable the moment it is acknowledged.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::overrides::{Override, OverrideStore};
use crate::source::schema::timestamp_type;

pub fn overrides_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("override_id", DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
        Field::new("style_id", DataType::Utf8, false),
        Field::new("market", DataType::Utf8, false),
        Field::new("verdict", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("comment", DataType::Utf8, true),
        Field::new("user", DataType::Utf8, false),
        Field::new("created_at", timestamp_type(), false),
        Field::new("expires_at", timestamp_type(), true),
        Field::new("revoked_at", timestamp_type(), true),
        Field::new("revoked_by", DataType::Utf8, true),
        Field::new("superseded_by", DataType::Utf8, true),
        Field::new("reorder_units", DataType::Int64, true),
    ]))
}

fn to_batch(rows: &[Override]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Override) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let time = |f: &dyn Fn(&Override) -> Option<i64>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|o| Some(o.override_id.clone())),
        Arc::new(
            rows.iter()
                .map(|o| Some(o.seq as i64))
                .collect::<Int64Array>(),
        ),
        text(&|o| Some(o.style_id.clone())),
        text(&|o| Some(o.market.clone())),
        text(&|o| Some(o.verdict.as_str().to_string())),
        text(&|o| Some(o.reason.as_str().to_string())),
        text(&|o| o.comment.clone()),
        text(&|o| Some(o.user.clone())),
        time(&|o| Some(o.created_at.timestamp_micros())),
        time(&|o| o.expires_at.map(|t| t.timestamp_micros())),
        time(&|o| o.revoked_at.map(|t| t.timestamp_micros())),
        text(&|o| o.revoked_by.clone()),
        text(&|o| o.superseded_by.clone()),
        Arc::new(rows.iter().map(|o| o.reorder_units).collect::<Int64Array>()),
    ];
    Ok(RecordBatch::try_new(overrides_schema(), columns)?)
}

#[derive(Debug)]
pub struct OverridesTable {
    store: Arc<OverrideStore>,
}

impl OverridesTable {
    pub fn new(store: Arc<OverrideStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl TableProvider for OverridesTable {
    fn schema(&self) -> SchemaRef {
        overrides_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = to_batch(&self.store.all())?;
        MemTable::try_new(overrides_schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
