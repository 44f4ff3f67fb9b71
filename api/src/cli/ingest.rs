use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use assay_engine::QueryEngine;
use assay_engine::ingest::{self, Format, IngestRequest, IngestSummary};
use assay_engine::rollup::RefreshReport;

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Source format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Files to ingest (CSV may be gzip: `.gz`), as one batch.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Dataset: a folder or s3://BUCKET/PREFIX [default: the bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    pub data: Option<String>,
    /// The market of formats that carry none (REES46, RetailRocket, H&M).
    #[arg(long)]
    pub market: Option<String>,
    /// A catalog (Parquet with `styles.parquet`'s columns) to merge into the dataset's.
    #[arg(long)]
    pub styles: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Leave the rollup for a later `assay rollup` (bulk loads of many batches); the
    /// next decision run brings it up to date anyway.
    #[arg(long)]
    pub no_rollup: bool,
    /// A CSV record longer than this (bytes) fails the batch, naming its line: an
    /// unclosed quote would otherwise be read to the end of the file [default: 1 MiB].
    #[arg(long, default_value_t = ingest::DEFAULT_MAX_RECORD_BYTES)]
    pub max_record_bytes: usize,
    /// A Parquet row group larger than this uncompressed (MiB) fails the batch, naming
    /// it: row groups are decoded whole, a few at a time [default: 512].
    #[arg(long, default_value_t = ingest::DEFAULT_MAX_ROW_GROUP_BYTES >> 20)]
    pub max_row_group_mib: u64,
}

#[derive(Debug, clap::Args)]
pub struct RollupArgs {
    /// Dataset: a folder or s3://BUCKET/PREFIX [default: the bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    pub data: Option<String>,
    /// Recompute every day from `events/` instead of only the changed ones.
    #[arg(long)]
    pub rebuild: bool,
}

pub async fn run(args: IngestArgs, engine: &QueryEngine) -> anyhow::Result<()> {
    let data = super::data_location(args.data.clone())?;
    let dataset = super::dataset(&data)?;
    if let Some(root) = dataset.storage.local_root() {
        std::fs::create_dir_all(root).with_context(|| format!("creating {data}"))?;
    }
    let request = IngestRequest {
        format: args.format,
        sources: args.sources.clone(),
        market: args.market.clone(),
        styles: args.styles.clone(),
        show_progress: std::io::stderr().is_terminal(),
        max_record_bytes: args.max_record_bytes,
        max_row_group_bytes: args.max_row_group_mib << 20,
    };
    let summary = tokio::task::spawn_blocking(move || ingest::ingest(&dataset, &request))
        .await?
        .context("ingest failed; the dataset is unchanged")?;
    let rollup = if summary.events_added > 0 && !args.no_rollup {
        Some(refresh(&data, false, engine).await?)
    } else {
        None
    };
    if args.json {
        let json = serde_json::json!({"ingest": summary, "rollup": rollup});
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print_summary(&summary, rollup.as_ref());
    }
    Ok(())
}

pub async fn run_rollup(args: RollupArgs, engine: &QueryEngine) -> anyhow::Result<()> {
    let data = super::data_location(args.data)?;
    let report = refresh(&data, args.rebuild, engine).await?;
    print_report(&report);
    Ok(())
}

async fn refresh(data: &str, rebuild: bool, engine: &QueryEngine) -> anyhow::Result<RefreshReport> {
    let engine = super::open_engine(data, engine).await?;
    Ok(engine.refresh_rollup(rebuild).await?)
}

fn print_summary(s: &IngestSummary, rollup: Option<&RefreshReport>) {
    if s.already_ingested {
        println!("batch {}: already ingested; nothing added", s.batch_id);
        return;
    }
    println!(
        "batch {}: {} rows read in {:.1} s ({:.0} rows/s)",
        s.batch_id, s.rows_read, s.seconds, s.rows_per_second
    );
    println!("  events added:       {}", s.events_added);
    println!("  duplicates dropped: {}", s.duplicates_dropped);
    println!("  rows rejected:      {}", s.rejected);
    for (reason, n) in &s.reject_reasons {
        println!("    {n:>8}  {reason}");
    }
    if let Some(file) = &s.rejects_file {
        println!("  rejects (line, raw row, reason): {file}");
    }
    if let (Some(first), Some(last)) = (s.days.first(), s.days.last()) {
        println!("  days: {} ({first} … {last})", s.days.len());
    }
    if !s.new_styles.is_empty() {
        println!(
            "  styles added to the catalog with placeholders (launch = first event): {}",
            list(&s.new_styles)
        );
    }
    if !s.unknown_styles.is_empty() {
        println!(
            "  styles not in the given catalog (events kept, no funnel): {}",
            list(&s.unknown_styles)
        );
    }
    if let Some(r) = rollup {
        print_report(r);
    }
}

fn print_report(r: &RefreshReport) {
    match r.from {
        None => println!(
            "rollup: up to date through {} (generation {})",
            r.through, r.generation
        ),
        Some(from) => println!(
            "rollup: {} days {from} … {} ({} rows) in {:.2} s, generation {}",
            if r.rebuilt { "rebuilt" } else { "recomputed" },
            r.through,
            r.rows_written,
            r.seconds,
            r.generation
        ),
    }
}

fn list(ids: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        text.push_str(&format!(" … and {} more", ids.len() - SHOWN));
    }
    format!("{} ({text})", ids.len())
}
