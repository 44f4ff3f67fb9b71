use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use assay_engine::decision::style::expected_days_to_verdict;
use assay_engine::decision::{ALL_MARKETS, Decision, Policy, Verdict};
use assay_engine::{DecisionRun, QueryEngine};
use chrono::{DateTime, Utc};

use super::output::{Format, print_batches};

#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// Dataset: a folder or s3://BUCKET/PREFIX [default: the bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    pub data: Option<String>,
    /// Decide as of this time (RFC 3339, or a date meaning its end) [default: the latest event].
    #[arg(long, value_parser = crate::time_input::instant)]
    pub as_of: Option<DateTime<Utc>>,
    /// Policy file (TOML) [default: the built-in default policy].
    #[arg(long, env = "ASSAY_POLICY")]
    pub policy: Option<PathBuf>,
    /// `table`: a summary; `csv`: every row of the run; `json`: the summary and top lists.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// How many top keeps and clearest drops to list.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Serve this run: `GET /v1/decisions` of every server on the dataset and the
    /// `decisions` table. Without it the run is stored as an experiment
    /// (`decision_history`, `decision_runs`) and nothing served changes.
    #[arg(long)]
    pub publish: bool,
}

pub fn load_policy(path: Option<&PathBuf>) -> anyhow::Result<Policy> {
    Ok(match path {
        Some(p) => Policy::from_file(p)?,
        None => Policy::default(),
    })
}

pub async fn run(args: DecideArgs, engine: &QueryEngine) -> anyhow::Result<()> {
    let policy = load_policy(args.policy.as_ref())?;
    let data = super::data_location(args.data)?;
    let engine = super::open_engine(&data, engine).await?;
    if let Some(file) = &args.policy {
        engine
            .check_policy(&policy)
            .await
            .with_context(|| format!("--policy {}", file.display()))?;
    }
    // No spinner of its own: the long part, a stale rollup's refresh, draws its bar.
    let run = engine.decide(args.as_of, &policy).await?;
    let run_id = &run.summary.run_id;
    if args.publish {
        engine.publish(run_id, "assay decide").await?;
        eprintln!("Run {run_id} is published: servers on this dataset serve it within seconds.");
    } else {
        let served = engine
            .store()
            .published()?
            .map_or_else(|| "none yet".to_owned(), |p| format!("still {}", p.run_id));
        eprintln!(
            "Run {run_id} is stored, not published (served: {served}); `--publish` serves a run."
        );
    }
    match args.format {
        Format::Table => print_summary(&run, &policy, args.top),
        Format::Json => {
            let (keeps, drops) = top_lists(&run, args.top);
            let waits = days_to_verdict(&run, &policy);
            let json = serde_json::json!({
                "summary": run.summary,
                "top_keeps": keeps,
                "clearest_drops": drops,
                "testing": {
                    "styles": waits.len(),
                    "median_days_to_verdict": quantile(&waits, 0.5),
                    "p90_days_to_verdict": quantile(&waits, 0.9),
                },
            });
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
            Ok(())
        }
        Format::Csv => {
            let batch = run
                .batch()
                .map_err(|e| anyhow::anyhow!("run {run_id}: {e}"))?;
            print_batches(&[batch], Format::Csv)
        }
    }
}

fn top_lists(run: &DecisionRun, n: usize) -> (Vec<&Decision>, Vec<&Decision>) {
    let pooled = run.decisions.iter().filter(|d| d.market == ALL_MARKETS);
    let mut keeps: Vec<&Decision> = pooled
        .clone()
        .filter(|d| d.verdict == Verdict::Keep)
        .collect();
    keeps.sort_by(|a, b| {
        b.reorder_units
            .cmp(&a.reorder_units)
            .then(b.p_keep.total_cmp(&a.p_keep))
    });
    let mut drops: Vec<&Decision> = pooled.filter(|d| d.verdict == Verdict::Drop).collect();
    drops.sort_by(|a, b| {
        b.p_drop
            .total_cmp(&a.p_drop)
            .then(a.sell_through.total_cmp(&b.sell_through))
    });
    keeps.truncate(n);
    drops.truncate(n);
    (keeps, drops)
}

/// Expected further days to a verdict of each pooled style still testing, sorted.
fn days_to_verdict(run: &DecisionRun, policy: &Policy) -> Vec<f64> {
    let mut waits: Vec<f64> = run
        .decisions
        .iter()
        .filter(|d| d.market == ALL_MARKETS)
        .filter_map(|d| expected_days_to_verdict(d, policy.rules_for(&d.category)))
        .collect();
    waits.sort_by(f64::total_cmp);
    waits
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i])
}

fn print_summary(run: &DecisionRun, policy: &Policy, n: usize) -> anyhow::Result<()> {
    let s = &run.summary;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "run {}  as of {}  policy {}  model {}",
        s.run_id,
        s.as_of.format("%Y-%m-%d %H:%M UTC"),
        s.policy_version,
        s.model_version
    )?;
    writeln!(
        out,
        "{} styles: {} keep, {} drop, {} test ({} rows with markets)",
        s.styles, s.keep, s.drop, s.test, s.rows
    )?;
    let w = &s.wrong_calls;
    writeln!(
        out,
        "expected wrong calls: {:.1} of {} keeps, {:.1} of {} drops ({} keeps and {} drops held back to test by the wrong-call bound)",
        w.expected_wrong_keeps,
        s.keep,
        w.expected_wrong_drops,
        s.drop,
        w.demoted_keeps,
        w.demoted_drops
    )?;
    match &s.previous_run_id {
        Some(previous) => writeln!(
            out,
            "since run {previous}: {} new keeps and {} new drops (expected wrong {:.1} and {:.1}), {} reversed, {} held",
            w.new_keeps,
            w.new_drops,
            w.expected_wrong_new_keeps,
            w.expected_wrong_new_drops,
            s.changes.reversed,
            s.changes.held
        )?,
        None => writeln!(out, "no published run to follow: every call is new")?,
    }
    let waits = days_to_verdict(run, policy);
    if let (Some(median), Some(p90)) = (quantile(&waits, 0.5), quantile(&waits, 0.9)) {
        writeln!(
            out,
            "still testing: {} styles, expected {median:.0} more days to a verdict (P90 {p90:.0}) at their current rate of sale",
            waits.len()
        )?;
    }
    for warning in &s.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    let (keeps, drops) = top_lists(run, n);
    writeln!(out, "\ntop keeps")?;
    writeln!(
        out,
        "{:<12} {:<12} {:>5} {:>13} {:>7} {:>8}  reasons",
        "style", "category", "days", "sold/received", "P(keep)", "reorder"
    )?;
    for d in keeps {
        writeln!(
            out,
            "{:<12} {:<12} {:>5.1} {:>13} {:>7.3} {:>8}  {}",
            d.style_id,
            d.category,
            d.days_live,
            format!("{}/{}", d.units_sold, d.units_received),
            d.p_keep,
            d.reorder_units,
            reasons(d)
        )?;
    }
    writeln!(out, "\nclearest drops")?;
    writeln!(
        out,
        "{:<12} {:<12} {:>5} {:>13} {:>7}  reasons",
        "style", "category", "days", "sell-through", "P(drop)"
    )?;
    for d in drops {
        writeln!(
            out,
            "{:<12} {:<12} {:>5.1} {:>12.1}% {:>7.3}  {}",
            d.style_id,
            d.category,
            d.days_live,
            d.sell_through * 100.0,
            d.p_drop,
            reasons(d)
        )?;
    }
    Ok(())
}

fn reasons(d: &Decision) -> String {
    d.reasons
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
