//! `assay backtest` on generated data with known truth.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::support::{assay_ok, copy_inputs, path_str, shared_dataset};

fn backtest(data: &Path, out: &Path, from: &str, to: &str) -> Value {
    assay_ok(&[
        "backtest",
        "--data",
        path_str(data),
        "--from",
        from,
        "--to",
        to,
        "--out",
        path_str(out),
    ]);
    let text = std::fs::read_to_string(out.join("scores.json")).expect("scores.json");
    serde_json::from_str(&text).expect("JSON")
}

fn by_name<'a>(scores: &'a Value, name_starts: &str) -> &'a Value {
    scores["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str().unwrap().starts_with(name_starts))
        .unwrap_or_else(|| panic!("no result named {name_starts}…"))
}

/// (verdict, days to verdict, P(keep), reorder units) per style of one policy.
type Calls = BTreeMap<String, (Option<String>, Option<f64>, Option<f64>, i64)>;

/// The record batches of a backtest's `outcomes.parquet`.
fn outcome_batches(outcomes: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(outcomes).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn calls(outcomes: &Path, policy: &str) -> Calls {
    let mut out = BTreeMap::new();
    for b in outcome_batches(outcomes) {
        let text = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
        let float = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>()
                .clone()
        };
        let (pol, style, verdict) = (text("policy"), text("style_id"), text("verdict"));
        let (days, p_keep) = (float("days_to_verdict"), float("p_keep"));
        let reorder = b
            .column_by_name("reorder_units")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        for i in 0..b.num_rows() {
            if pol.value(i) != policy {
                continue;
            }
            let opt = |a: &arrow::array::Float64Array| (!a.is_null(i)).then(|| a.value(i));
            out.insert(
                style.value(i).to_string(),
                (
                    (!verdict.is_null(i)).then(|| verdict.value(i).to_string()),
                    opt(&days),
                    opt(&p_keep),
                    reorder.value(i),
                ),
            );
        }
    }
    out
}

/// On data with known truth from its own world (constant rates, Poisson days), the first
/// release's sell-through rule makes fewer wrong calls than both baselines, decides no
/// later than them, and its expected wrong calls are in line with the observed ones.
#[test]
fn the_sell_through_rule_beats_both_baselines_on_its_own_world() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    copy_inputs(shared_dataset(), &data);
    let scores = backtest(&data, &tmp.path().join("bt"), "2026-09-01", "2026-10-05");
    assert_eq!(scores["has_truth"], true);
    let wrong = |r: &Value| {
        let w = &r["overall"]["wrong_truth"];
        (w["keeps"].as_u64().unwrap(), w["drops"].as_u64().unwrap())
    };
    let median = |r: &Value| r["overall"]["days_to_verdict_median"].as_f64().unwrap();
    let policy = by_name(&scores, "sell-through rule");
    let fixed = by_name(&scores, "fixed horizon");
    let early = by_name(&scores, "naive early");
    let hindsight = by_name(&scores, "perfect hindsight");
    for r in [policy, fixed, early, hindsight] {
        let (k, d) = wrong(r);
        println!(
            "{:<46} wrong keeps {k:>3}, wrong drops {d:>3}, median days {:>5.1}, P90 {:>5.1}, still testing {:>3.0} %, margin {:>9.0}",
            r["name"].as_str().unwrap(),
            median(r),
            r["overall"]["days_to_verdict_p90"]
                .as_f64()
                .unwrap_or(f64::NAN),
            r["overall"]["still_testing_share"].as_f64().unwrap() * 100.0,
            r["overall"]["margin_proxy"].as_f64().unwrap(),
        );
    }
    let total = |r: &Value| wrong(r).0 + wrong(r).1;
    assert!(
        total(policy) < total(fixed),
        "fewer wrong calls than the fixed horizon"
    );
    assert!(
        total(policy) < total(early),
        "fewer wrong calls than the naive early rule"
    );
    assert!(
        median(policy) < median(fixed),
        "decides before the fixed horizon"
    );
    // Both decide at the first look after day 7; the mix of styles decided then moves
    // the median by a fraction of a day.
    assert!(
        median(policy) <= median(early) + 0.5,
        "decides about as early as the naive rule"
    );
    assert_eq!(total(hindsight), 0, "hindsight is the upper bound");
    let margin = |r: &Value| r["overall"]["margin_proxy"].as_f64().unwrap();
    assert!(margin(policy) > margin(fixed) && margin(policy) > margin(early));
    assert!(margin(hindsight) >= margin(policy));

    let e = &policy["expected_vs_observed"];
    let (expected, observed) = (
        e["expected_wrong_keeps"].as_f64().unwrap() + e["expected_wrong_drops"].as_f64().unwrap(),
        (e["observed_wrong_keeps"].as_u64().unwrap() + e["observed_wrong_drops"].as_u64().unwrap())
            as f64,
    );
    println!("last day: expected wrong calls {expected:.1}, observed {observed} ({e})");
    // Poisson-scale band: the observed count within 3 standard deviations (+1).
    assert!(
        (observed - expected).abs() <= 3.0 * expected.sqrt() + 1.0,
        "expected {expected:.1} wrong calls, observed {observed}"
    );
    let calibration = policy["calibration"].as_array().unwrap();
    let top = calibration.last().unwrap();
    assert!(top["count"].as_u64().unwrap() > 0);
    assert!(top["share_observed"].as_f64().unwrap() > 0.7, "{top}");
    assert!(
        calibration[0]["share_observed"].as_f64().unwrap() < 0.3,
        "{}",
        calibration[0]
    );
    let html = std::fs::read_to_string(tmp.path().join("bt/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Calibration"));
}

/// The calls made as of each day use only what was known then: deleting every event
/// after the last replayed day changes none of them.
#[test]
fn a_backtest_has_no_look_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let cut = tmp.path().join("cut");
    copy_inputs(shared_dataset(), &full);
    copy_inputs(shared_dataset(), &cut);
    for entry in std::fs::read_dir(cut.join("events")).unwrap() {
        let path = entry.unwrap().path();
        let day = path.file_name().unwrap().to_string_lossy().to_string();
        if day.as_str() > "event_date=2026-09-20" {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    backtest(
        &full,
        &tmp.path().join("bt-full"),
        "2026-09-01",
        "2026-09-20",
    );
    backtest(&cut, &tmp.path().join("bt-cut"), "2026-09-01", "2026-09-20");
    let a = calls(
        &tmp.path().join("bt-full/outcomes.parquet"),
        "default policy",
    );
    let b = calls(
        &tmp.path().join("bt-cut/outcomes.parquet"),
        "default policy",
    );
    assert!(
        a.values().filter(|c| c.0.is_some()).count() > 50,
        "{} calls",
        a.len()
    );
    assert_eq!(a, b, "calls changed when later events were deleted");
}

/// A tiny history worked by hand. Three tops launched 2026-09-01 00:00, 100 units each
/// in the US, price 20, cost 8, lead time 14 days; a policy with a 10-day life, so the
/// keep level is 0.8·100/10 = 8 units/day and the drop level 4. Each sells a fixed
/// number of units at noon on each of its 10 window days: A 3 (realised 3/day: below
/// the drop level), B 9 (keep-worthy), C 6 (in between). Data runs to 09-16 12:30.
///
/// - Naive early rule: first look with ≥ 7 days live is the end of 09-08 (8 days live),
///   8 days sold: A 24 %, B 72 %, C 48 %, all ≥ 20 % → three keeps; A is a wrong keep.
///   Reorder one batch (100) each against demand over 14 + 28 = 42 days (A 126, B 378,
///   C 252): all 100 sell, margin 3 × 100 × 12 = 3600.
/// - Fixed horizon: first look with ≥ 14 days live is the end of 09-15 (15 days);
///   sell-through A 30 % → drop, B 90 % → keep, C 60 % → keep; no wrong call; margin
///   2 × 1200 = 2400.
/// - Hindsight: keeps B alone and reorders its 378: margin 378 × 12 = 4536.
#[test]
fn scores_on_a_tiny_history_match_the_hand_worked_values() {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use assay_engine::parquet_io::write_parquet;
    use assay_engine::source::schema;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("tiny");
    let ts = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    };
    let text = |v: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let ids = ["A", "B", "C"];
    let styles = RecordBatch::try_new(
        schema::styles_schema(),
        vec![
            text(ids.to_vec()),
            text(vec!["a", "b", "c"]),
            text(vec!["tops"; 3]),
            text(vec!["x"; 3]),
            Arc::new(
                TimestampMicrosecondArray::from(vec![ts("2026-09-01T00:00:00Z"); 3])
                    .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(vec![20.0; 3])),
            Arc::new(Float64Array::from(vec![8.0; 3])),
            Arc::new(Int32Array::from(vec![14; 3])),
            Arc::new(Int32Array::from(vec![10; 3])),
        ],
    )
    .unwrap();
    write_parquet(
        &data.join("styles.parquet"),
        schema::styles_schema(),
        &[styles],
    )
    .unwrap();
    let receipts = RecordBatch::try_new(
        schema::stock_receipts_schema(),
        vec![
            text(ids.to_vec()),
            text(vec!["US"; 3]),
            Arc::new(
                TimestampMicrosecondArray::from(vec![ts("2026-09-01T00:00:00Z"); 3])
                    .with_timezone("UTC"),
            ),
            Arc::new(Int32Array::from(vec![100; 3])),
            Arc::new(Int32Array::from(vec![0; 3])),
        ],
    )
    .unwrap();
    write_parquet(
        &data.join("stock_receipts.parquet"),
        schema::stock_receipts_schema(),
        &[receipts],
    )
    .unwrap();
    for day in 1..=16u32 {
        let mut rows: Vec<(String, i64, &str, &str, i32)> = Vec::new();
        for (style, units) in [("A", 3), ("B", 9), ("C", 6)] {
            if day <= 10 {
                rows.push((
                    format!("{style}-{day}"),
                    ts(&format!("2026-09-{day:02}T12:00:00Z")),
                    "purchase",
                    style,
                    units,
                ));
            }
            rows.push((
                format!("{style}-v{day}"),
                ts(&format!("2026-09-{day:02}T12:30:00Z")),
                "view",
                style,
                1,
            ));
        }
        let n = rows.len();
        let batch = RecordBatch::try_new(
            schema::events_file_schema(),
            vec![
                text(rows.iter().map(|r| r.0.as_str()).collect()),
                Arc::new(
                    TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                text(rows.iter().map(|r| r.2).collect()),
                text(rows.iter().map(|r| r.3).collect()),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                text(vec!["u"; n]),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                Arc::new(Int32Array::from(
                    rows.iter().map(|r| r.4).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(vec![20.0; n])),
                text(vec!["US"; n]),
                text(vec!["web"; n]),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
            ],
        )
        .unwrap();
        let file = data.join(format!("events/event_date=2026-09-{day:02}/part-0.parquet"));
        write_parquet(&file, schema::events_file_schema(), &[batch]).unwrap();
    }
    let policy = tmp.path().join("short-life.toml");
    std::fs::write(&policy, "[defaults]\nplanned_life_days = 10\n").unwrap();
    let out = tmp.path().join("bt");
    assay_ok(&[
        "backtest",
        "--data",
        path_str(&data),
        "--from",
        "2026-09-01",
        "--to",
        "2026-09-16",
        "--policy",
        path_str(&policy),
        "--out",
        path_str(&out),
    ]);
    let scores: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scores.json")).unwrap()).unwrap();
    assert_eq!(
        (
            scores["styles"].as_u64(),
            scores["styles_resolved"].as_u64()
        ),
        (Some(3), Some(3))
    );
    let check = |name: &str,
                 keeps: u64,
                 drops: u64,
                 wrong_keeps: u64,
                 wrong_drops: u64,
                 days: f64,
                 margin: f64| {
        let s = &by_name(&scores, name)["overall"];
        assert_eq!(s["keeps"].as_u64(), Some(keeps), "{name}: {s}");
        assert_eq!(s["drops"].as_u64(), Some(drops), "{name}: {s}");
        assert_eq!(
            s["wrong_realised"]["keeps"].as_u64(),
            Some(wrong_keeps),
            "{name}: {s}"
        );
        assert_eq!(
            s["wrong_realised"]["drops"].as_u64(),
            Some(wrong_drops),
            "{name}: {s}"
        );
        assert_eq!(
            s["wrong_realised"]["judged"].as_u64(),
            Some(keeps + drops),
            "{name}: {s}"
        );
        let median = s["days_to_verdict_median"].as_f64().unwrap();
        assert!(
            (median - days).abs() < 1e-6,
            "{name}: median days {median}, expected {days}"
        );
        assert!(
            (s["margin_proxy"].as_f64().unwrap() - margin).abs() < 1e-6,
            "{name}: {s}"
        );
    };
    check("naive early", 3, 0, 1, 0, 8.0, 3600.0);
    check("fixed horizon", 2, 1, 0, 0, 15.0, 2400.0);
    check("perfect hindsight", 1, 2, 0, 0, 0.0, 4536.0);
    // Outcomes as worked out: realised rates 3, 9 and 6 units/day.
    let mut rates = BTreeMap::new();
    for b in outcome_batches(&out.join("outcomes.parquet")) {
        let style = b
            .column_by_name("style_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let rate = b
            .column_by_name("realised_rate")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        for i in 0..b.num_rows() {
            rates.insert(style.value(i).to_string(), rate.value(i));
        }
    }
    assert_eq!(
        rates,
        BTreeMap::from([
            ("A".to_string(), 3.0),
            ("B".to_string(), 9.0),
            ("C".to_string(), 6.0)
        ])
    );
}

/// A season that breaks every assumption of the first release's model: demand halving
/// every two to six weeks, Gamma(3) day noise, stock split far from demand, promotions,
/// sales lost when a market sells out, and no reorders but the policy's. Every policy,
/// rule and hindsight is scored in money in that same world, on the later half of the
/// launches (the baseline is tuned on the earlier half).
#[test]
fn in_a_world_that_breaks_the_model_the_profit_rule_earns_more_than_the_baselines() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ff");
    assay_ok(&[
        "generate",
        "--out",
        path_str(&data),
        "--styles",
        "400",
        "--days",
        "70",
        "--markets",
        "2",
        "--seed",
        "23",
        "--events",
        "1500000",
        "--world",
        "fast-fashion",
    ]);
    let lax = tmp.path().join("lax.toml");
    std::fs::write(
        &lax,
        "[defaults]\nprofit_probability = 0.5\ndrop_probability = 0.6\nmin_days_live = 4\n",
    )
    .unwrap();
    let out = tmp.path().join("bt");
    let printed = assay_ok(&[
        "backtest",
        "--data",
        path_str(&data),
        "--from",
        "2026-09-01",
        "--to",
        "2026-10-25",
        "--policy",
        "default",
        "--policy",
        "sell-through",
        "--policy",
        path_str(&lax),
        "--out",
        path_str(&out),
    ]);
    println!("{printed}");
    let scores: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scores.json")).unwrap()).unwrap();
    let world = &scores["money"]["world"];
    assert!(
        world["median_half_life_days"].as_f64().unwrap() < 45.0,
        "{world}"
    );
    assert!(
        world["demand_vs_stock_log_sd"].as_f64().unwrap() > 0.4,
        "{world}"
    );
    let money = |name: &str| by_name(&scores, name)["money"].clone();
    let (policy, first_release, lax, tuned, hindsight) = (
        money("default"),
        money("sell-through"),
        money(path_str(&lax)),
        money("tuned fixed horizon"),
        money("perfect hindsight"),
    );
    let profit = |m: &Value| m["profit"].as_f64().unwrap();
    // Every policy is scored against the same hindsight, in the same world.
    for m in [&policy, &first_release, &lax, &tuned] {
        assert_eq!(m["hindsight_profit"], hindsight["profit"], "{m}");
        assert!(
            profit(m) <= profit(&hindsight) + 1e-6,
            "beats hindsight: {m}"
        );
    }
    assert!(profit(&policy) > 0.0, "{policy}");
    assert!(
        profit(&policy) > profit(&tuned),
        "the default policy earns more than the tuned fixed-horizon rule: {policy} vs {tuned}"
    );
    assert!(
        profit(&policy) > profit(&first_release),
        "and more than the first release's rule: {policy} vs {first_release}"
    );
    assert!(
        policy["losing_keep_share"].as_f64().unwrap() <= 0.10,
        "no more than one keep in ten loses money: {policy}"
    );
    assert!(
        policy["median_days_to_call"].as_f64().unwrap() <= 10.0,
        "{policy}"
    );
    // Its demand intervals are checked at fixed ages too, and are not far off 80 %.
    let by_age = policy["forecasts"]["by_age"].as_array().unwrap();
    let ages: Vec<f64> = by_age
        .iter()
        .map(|a| a["age_days"].as_f64().unwrap())
        .collect();
    assert_eq!(ages, [3.0, 7.0, 14.0], "{policy}");
    for a in by_age {
        let inside = a["inside"].as_f64().unwrap();
        assert!((0.6..=0.95).contains(&inside), "{a}");
    }
    assert!(printed.contains("at 7 days old"), "{printed}");
    // Each style's money in outcomes.parquet adds up to the policy's totals.
    let (mut made, mut best) = (0.0, 0.0);
    for b in outcome_batches(&out.join("outcomes.parquet")) {
        let float = |name: &str| {
            b.column_by_name(name)
                .unwrap()
                .as_primitive::<Float64Type>()
                .clone()
        };
        let names = b
            .column_by_name("policy")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let (profit, hindsight) = (float("profit"), float("hindsight_profit"));
        for i in 0..b.num_rows() {
            if names.value(i) == "default policy" && !profit.is_null(i) {
                made += profit.value(i);
                best += hindsight.value(i);
            }
        }
    }
    assert!(
        (made - profit(&policy)).abs() < 1e-6 * profit(&hindsight),
        "{made} vs {policy}"
    );
    assert!(
        (best - profit(&hindsight)).abs() < 1e-6 * profit(&hindsight),
        "{best}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Money</h2>"));
}
