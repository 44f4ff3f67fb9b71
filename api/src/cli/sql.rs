use std::path::PathBuf;

use assay_engine::QueryEngine;

use super::output::{Format, print_batches};

#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// One read-only SQL statement over events, styles, stock_receipts, the views and decisions.
    pub sql: String,
    /// Dataset directory [default: the bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: SqlArgs, engine: &QueryEngine) -> anyhow::Result<()> {
    let data = args.data.unwrap_or_else(super::default_data_dir);
    let engine = super::open_engine(&data, engine).await?;
    let batches = engine.query(&args.sql).await?;
    print_batches(&batches, args.format)
}
