//! `assay backtest` on generated data with known truth.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
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

fn calls(outcomes: &Path, policy: &str) -> Calls {
    let file = std::fs::File::open(outcomes).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = BTreeMap::new();
    for batch in reader {
        let b = batch.unwrap();
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

/// On data with known truth, the default policy makes fewer wrong calls than both
/// baselines, decides no later than them, and its expected wrong calls are in line
/// with the observed ones.
#[test]
fn the_default_policy_beats_both_baselines_on_known_truth() {
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
    let policy = by_name(&scores, "default policy");
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
    assert!(top["share_reached_keep"].as_f64().unwrap() > 0.7, "{top}");
    assert!(
        calibration[0]["share_reached_keep"].as_f64().unwrap() < 0.3,
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
