use assay_engine::QueryEngine;

use super::output::{Format, print_batches};

#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// One read-only SQL statement over events, styles, stock_receipts, the views and decisions.
    pub sql: String,
    /// Dataset: a folder or s3://BUCKET/PREFIX [default: the bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    pub data: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: SqlArgs, engine: &QueryEngine) -> anyhow::Result<()> {
    let data = super::data_location(args.data)?;
    let engine = super::open_engine(&data, engine).await?;
    let batches = engine.query(&args.sql).await?;
    print_batches(&batches, args.format)
}
