//! `pg_catalog.pg_index` with PostgreSQL's column types.
//!
//! datafusion-pg-catalog ships `pg_index` as rows exported from some PostgreSQL
//! database, with its `int2vector`/`oidvector` columns (`indkey`, `indoption`, …) as
//! text. Drivers subscript them (pgjdbc's `getIndexInfo` reads `indoption[n - 1] & 1`),
//! which DataFusion cannot do on text; and the exported rows describe that other
//! database's system indexes, not assay's. assay's tables have no indexes, so the
//! table here is empty, with the vectors as lists: every driver query over it plans,
//! and answers "no index" as PostgreSQL does for such tables.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemTable, SchemaProvider, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::prelude::SessionContext;

/// Puts the typed, empty `pg_index` in front of the `pg_catalog` schema of `catalog`.
pub fn replace_pg_index(ctx: &SessionContext, catalog: &str) -> Result<(), DataFusionError> {
    let catalog = ctx
        .catalog(catalog)
        .ok_or_else(|| DataFusionError::Plan(format!("catalog {catalog} not found")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Plan("pg_catalog is not set up".into()))?;
    let pg_index: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(
        Arc::new(pg_index_schema()),
        vec![vec![]],
    )?);
    catalog.register_schema("pg_catalog", Arc::new(WithPgIndex { inner, pg_index }))?;
    Ok(())
}

/// PostgreSQL 16's `pg_index` columns.
fn pg_index_schema() -> Schema {
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    let flag = |name: &str| Field::new(name, DataType::Boolean, false);
    Schema::new(vec![
        Field::new("indexrelid", DataType::Int32, false),
        Field::new("indrelid", DataType::Int32, false),
        Field::new("indnatts", DataType::Int16, false),
        Field::new("indnkeyatts", DataType::Int16, false),
        flag("indisunique"),
        flag("indnullsnotdistinct"),
        flag("indisprimary"),
        flag("indisexclusion"),
        flag("indimmediate"),
        flag("indisclustered"),
        flag("indisvalid"),
        flag("indcheckxmin"),
        flag("indisready"),
        flag("indislive"),
        flag("indisreplident"),
        Field::new("indkey", list(DataType::Int16), false),
        Field::new("indcollation", list(DataType::Int32), false),
        Field::new("indclass", list(DataType::Int32), false),
        Field::new("indoption", list(DataType::Int16), false),
        Field::new("indexprs", DataType::Utf8, true),
        Field::new("indpred", DataType::Utf8, true),
    ])
}

#[derive(Debug)]
struct WithPgIndex {
    inner: Arc<dyn SchemaProvider>,
    pg_index: Arc<dyn TableProvider>,
}

#[async_trait]
impl SchemaProvider for WithPgIndex {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> datafusion::common::Result<Option<Arc<dyn TableProvider>>> {
        if name == "pg_index" {
            return Ok(Some(Arc::clone(&self.pg_index)));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}
