use std::path::PathBuf;

use anyhow::Context;
use assay_engine::QueryEngine;
use assay_engine::backtest::{self, BacktestRequest, NamedPolicy, report};
use assay_engine::decision::{DecisionRule, Policy};
use chrono::NaiveDate;

#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Dataset: a folder or s3://BUCKET/PREFIX [default: the bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    pub data: Option<String>,
    /// First day replayed (styles launched from this day on are scored): a date or RFC 3339.
    #[arg(long, value_parser = crate::time_input::day)]
    pub from: NaiveDate,
    /// Last day replayed: a date or RFC 3339.
    #[arg(long, value_parser = crate::time_input::day)]
    pub to: NaiveDate,
    /// Policies to compare (repeat the flag): a policy file, `default` (the built-in
    /// policy) or `sell-through` (the built-in policy under the first release's rule)
    /// [default: both built-ins].
    #[arg(long = "policy")]
    pub policies: Vec<PathBuf>,
    /// A grid over the first policy, e.g. `keep_p=0.7,0.8,0.9 drop_p=0.7,0.8`
    /// (keys: keep_p, drop_p, min_days, max_days, max_wrong_share).
    #[arg(long)]
    pub grid: Option<String>,
    /// Where the report goes [default: DATA/backtests/<id>].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn run(args: BacktestArgs, engine: &QueryEngine) -> anyhow::Result<()> {
    let data = super::data_location(args.data.clone())?;
    // The default policy, and the first release's rule beside it in the same world.
    let built_in = |name: &str| {
        let mut policy = Policy::default();
        match name {
            "default" => Some(NamedPolicy {
                name: "default policy".into(),
                policy,
            }),
            "sell-through" => {
                policy.defaults.decision_rule = DecisionRule::SellThrough;
                Some(NamedPolicy {
                    name: "sell-through rule (first release)".into(),
                    policy,
                })
            }
            _ => None,
        }
    };
    let mut policies = Vec::new();
    for path in &args.policies {
        match path.to_str().and_then(built_in) {
            Some(named) => policies.push(named),
            None => policies.push(NamedPolicy {
                name: path.display().to_string(),
                policy: Policy::from_file(path)?,
            }),
        }
    }
    if policies.is_empty() {
        policies.extend(["default", "sell-through"].into_iter().filter_map(built_in));
    }
    if let Some(grid) = &args.grid {
        policies = expand_grid(&policies[0].policy, grid)?;
    }
    let engine = super::open_engine(&data, engine).await?;
    let request = BacktestRequest {
        from: args.from,
        to: args.to,
        policies,
    };
    let result = backtest::run(&engine, &request).await?;
    let files = match &args.out {
        Some(out) => report::write(&result, out)?,
        None => report::store(&result, &engine.dataset().storage)?,
    };
    print_summary(&result);
    print_money(&result);
    for f in files {
        println!("wrote {f}");
    }
    Ok(())
}

/// Every combination of the grid's values, applied to `base`.
fn expand_grid(base: &Policy, grid: &str) -> anyhow::Result<Vec<NamedPolicy>> {
    let mut combos: Vec<(String, Policy)> = vec![(String::new(), base.clone())];
    for axis in grid.split_whitespace() {
        let (key, values) = axis
            .split_once('=')
            .with_context(|| format!("grid axis `{axis}`: expected key=v1,v2,…"))?;
        let values: Vec<f64> = values
            .split(',')
            .map(|v| {
                v.parse::<f64>()
                    .with_context(|| format!("grid axis `{key}`: `{v}` is not a number"))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut next = Vec::new();
        for (name, policy) in &combos {
            for v in &values {
                let mut p = policy.clone();
                let r = &mut p.defaults;
                match key {
                    "keep_p" => r.keep_probability = *v,
                    "drop_p" => r.drop_probability = *v,
                    "min_days" => r.min_days_live = *v,
                    "max_days" => r.max_days_to_verdict = *v,
                    "max_wrong_share" => p.max_wrong_share = *v,
                    other => anyhow::bail!(
                        "grid axis `{other}`: expected keep_p, drop_p, min_days, max_days or max_wrong_share"
                    ),
                }
                let name = format!("{name} {key}={v}").trim().to_string();
                next.push((name, p));
            }
        }
        combos = next;
    }
    Ok(combos
        .into_iter()
        .map(|(name, policy)| NamedPolicy { name, policy })
        .collect())
}

fn print_money(r: &backtest::BacktestReport) {
    let Some(m) = &r.money else {
        println!("no money scores: the dataset has no truth_markets.parquet (generated data has)");
        return;
    };
    println!();
    println!("world: {}", m.world);
    println!(
        "money: expected season profit of each call's reorder against never reordering, over the {} styles launched from {} (season {} days, leftovers at {:.0} % of cost); the baseline was tuned on the {} launched before",
        m.scored_styles,
        m.scored_from.format("%Y-%m-%d %H:%M"),
        m.season_days,
        m.salvage_share * 100.0,
        m.tuning_styles
    );
    println!(
        "{:<60} {:>10} {:>11} {:>13} {:>6} {:>13} {:>8} {:>8}",
        "policy or rule",
        "profit",
        "% hindsight",
        "% clairvoyant",
        "keeps",
        "losing keeps",
        "units",
        "median d"
    );
    for p in &r.results {
        let Some(s) = &p.money else { continue };
        println!(
            "{:<60} {:>10.0} {:>10.1}% {:>12.1}% {:>6} {:>6} ({:>4.1}%) {:>8} {:>8}",
            p.name.chars().take(60).collect::<String>(),
            s.profit,
            s.share_of_hindsight * 100.0,
            s.share_of_clairvoyant * 100.0,
            s.keeps,
            s.losing_keeps,
            s.losing_keep_share * 100.0,
            s.units_ordered,
            s.median_days_to_call
                .map_or_else(|| "–".to_string(), |d| format!("{d:.1}"))
        );
    }
    for p in &r.results {
        let Some(f) = p.money.as_ref().and_then(|s| s.forecasts.as_ref()) else {
            continue;
        };
        println!(
            "{}: own forecasts on {} calls: calibration error {:.3}; expected wrong {:.1}, wrong in the truth {:.1}; {:.1} % of true demand inside its 80 % intervals ({:.1} % below, {:.1} % above)",
            p.name,
            f.calls,
            f.calibration_error,
            f.expected_wrong,
            f.observed_wrong,
            f.interval_coverage * 100.0,
            f.below_interval * 100.0,
            (1.0 - f.interval_coverage - f.below_interval) * 100.0
        );
        for a in &f.by_age {
            println!(
                "    at {:.0} days old: {:.1} % of true demand inside the 80 % interval ({:.1} % below, {:.1} % above), {} styles",
                a.age_days,
                a.inside * 100.0,
                a.below * 100.0,
                (1.0 - a.inside - a.below) * 100.0,
                a.styles
            );
        }
        for b in f.calibration.iter().filter(|b| b.count > 0) {
            println!(
                "    P(right) {:.1}-{:.1}: {:>4} calls, mean {:.2}, right on {:.2} of the true paths",
                b.from, b.to, b.count, b.mean_predicted, b.share_observed
            );
        }
    }
}

fn print_summary(r: &backtest::BacktestReport) {
    println!(
        "backtest {} → {}: {} styles launched ({} with closed windows{}), replayed in {:.1} s",
        r.from,
        r.to,
        r.styles,
        r.styles_resolved,
        if r.has_truth {
            ", ground truth known"
        } else {
            ""
        },
        r.seconds
    );
    println!(
        "{:<46} {:>5} {:>5} {:>10} {:>10} {:>8} {:>6} {:>8} {:>10}",
        "policy or rule",
        "keeps",
        "drops",
        "wrong k/d",
        "realised",
        "median d",
        "P90 d",
        "testing",
        "margin"
    );
    for p in &r.results {
        let s = &p.overall;
        let truth = s
            .wrong_truth
            .map_or_else(|| "–".to_string(), |w| format!("{}/{}", w.keeps, w.drops));
        let days = |d: Option<f64>| d.map_or_else(|| "–".to_string(), |d| format!("{d:.1}"));
        println!(
            "{:<46} {:>5} {:>5} {:>10} {:>10} {:>8} {:>6} {:>7.0}% {:>10.0}{}",
            p.name.chars().take(46).collect::<String>(),
            s.keeps,
            s.drops,
            truth,
            format!("{}/{}", s.wrong_realised.keeps, s.wrong_realised.drops),
            days(s.days_to_verdict_median),
            days(s.days_to_verdict_p90),
            s.still_testing_share * 100.0,
            s.margin_proxy,
            if p.pareto { "  (Pareto front)" } else { "" }
        );
        if let Some(e) = &p.expected_vs_observed {
            println!(
                "{:<46} its last day's run alone ({} calls with a known outcome): expected wrong keeps {:.1}, observed {}; wrong drops {:.1}, observed {}",
                "",
                e.judged,
                e.expected_wrong_keeps,
                e.observed_wrong_keeps,
                e.expected_wrong_drops,
                e.observed_wrong_drops
            );
        }
    }
    println!("{}", report::SELL_THROUGH_SCALE);
}
