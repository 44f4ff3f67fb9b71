use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use assay_engine::generate::{GenerateConfig, World, generate};
use chrono::NaiveDate;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Directory to create the dataset in (must not hold events yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of styles launched over the period.
    #[arg(long, default_value_t = 1000)]
    pub styles: usize,
    /// Length of the period in days.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// Random seed: the same seed and settings give the same dataset.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of markets (1–8) styles can sell in.
    #[arg(long, default_value_t = 3)]
    pub markets: usize,
    /// Approximate total number of events; by default it follows from styles and days.
    #[arg(long)]
    pub events: Option<u64>,
    /// First day of the period (UTC): a date or RFC 3339.
    #[arg(long, default_value = "2026-09-01", value_parser = crate::time_input::day)]
    pub start: NaiveDate,
    /// How demand behaves: `default` (the model's own assumptions), `fast-fashion`
    /// (demand halving every 2–6 weeks, noisy days, stock far from demand, promotions,
    /// no reorders but the policy's), either followed by `,key=value` settings, or just
    /// the settings: decay=14-42|none, dispersion=3|none, misallocation=1.0,
    /// promotions=0.03, promotion_lift=2, reorders=on|off.
    #[arg(long, default_value = "default")]
    pub world: World,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let config = GenerateConfig {
        out: args.out.clone(),
        styles: args.styles,
        days: args.days,
        seed: args.seed,
        markets: args.markets,
        events: args.events,
        start: args.start,
        world: args.world.clone(),
        show_progress: std::io::stderr().is_terminal(),
    };
    let started = std::time::Instant::now();
    let summary =
        generate(&config).with_context(|| format!("generating into {}", args.out.display()))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generated {} styles, {} events, {} stock receipts in {:.1}s ({:.0} events/s) into {}",
        summary.styles,
        summary.events,
        summary.receipts,
        secs,
        summary.events as f64 / secs.max(1e-9),
        args.out.display()
    );
    if let (Some(first), Some(last)) = (summary.first_event, summary.last_event) {
        println!("events from {first} to {last}");
    }
    if !args.world.is_default() {
        println!("world: {}", args.world);
    }
    println!(
        "truth.parquet: {} of {} styles are keeps for a perfectly informed buyer",
        summary.keeps_in_truth, summary.styles
    );
    Ok(())
}
