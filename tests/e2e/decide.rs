//! generate → decide → read the run back, against the policy and against the truth.

use assay_engine::decision::numerics::{gamma_cdf, gamma_sf};
use assay_engine::decision::{ALL_MARKETS, Policy, Reason, Verdict};
use assay_engine::storage::Storage;
use assay_engine::{DecisionStore, Engine};

use crate::support::{assay, assay_ok, copy_inputs, path_str, shared_dataset};

#[test]
fn every_stored_verdict_follows_from_its_numbers_and_the_policy() {
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(shared_dataset(), tmp.path());
    let data = path_str(tmp.path());
    // A list published a week earlier: today's run follows it, holding its calls that
    // the evidence has not reversed.
    assay_ok(&[
        "decide",
        "--data",
        data,
        "--as-of",
        "2026-09-21",
        "--publish",
    ]);
    let summary = assay_ok(&["decide", "--data", data]);
    assert!(summary.contains("styles:"), "{summary}");
    assert!(summary.contains("since run "), "{summary}");

    let store = DecisionStore::new(Storage::local(tmp.path()));
    let latest = store.latest_run().unwrap().expect("a stored run");
    let run = store.read_run(&latest.run_id).unwrap();
    let rules = Policy::default().defaults;
    assert!(latest.previous_run_id.is_some(), "{latest:?}");
    let followed = run
        .decisions
        .iter()
        .filter(|d| matches!(d.previous_verdict, Some(Verdict::Keep | Verdict::Drop)))
        .count();
    assert!(followed > 0, "no call of the earlier list to follow");
    assert_eq!(run.decisions.len(), latest.rows);
    assert_eq!(latest.keep + latest.drop + latest.test, latest.styles);
    assert!(
        latest.keep > 0 && latest.drop > 0 && latest.test > 0,
        "{latest:?}"
    );
    let pooled: std::collections::HashMap<&str, &assay_engine::decision::Decision> = run
        .decisions
        .iter()
        .filter(|d| d.market == ALL_MARKETS)
        .map(|d| (d.style_id.as_str(), d))
        .collect();

    for d in &run.decisions {
        let ctx = format!("{} {}: {d:?}", d.style_id, d.market);
        assert_row_reads_right(d);
        // The probabilities are recomputable from the stored posterior, the curve and
        // the thresholds: the posterior is on the launch rate, the levels on the mean
        // rate over the planned life.
        let theta = d
            .decay_half_life_days
            .map_or(0.0, |h| std::f64::consts::LN_2 / h);
        let life = rules.planned_life_days;
        let life_mean = if theta > 0.0 {
            (1.0 - (-theta * life).exp()) / (theta * life)
        } else {
            1.0
        };
        assert!(
            (gamma_sf(d.rate_shape, d.rate_rate, d.keep_rate / life_mean) - d.p_keep).abs() < 1e-12,
            "{ctx}"
        );
        assert!(
            (gamma_cdf(d.rate_shape, d.rate_rate, d.drop_rate / life_mean) - d.p_drop).abs()
                < 1e-12,
            "{ctx}"
        );
        if d.market != ALL_MARKETS {
            // A market row's posterior: its own units and decayed exposure, divided by
            // the over-dispersion factor φ = 1 + (units per in-stock day) / k.
            let phi = d.day_dispersion.map_or(1.0, |k| {
                1.0 + d.units_sold as f64 / d.exposure_days.max(1.0) / k
            });
            assert!(
                (d.rate_shape - (d.prior_shape + d.units_sold as f64 / phi)).abs() < 1e-9,
                "{ctx}"
            );
            assert!(
                (d.rate_rate - (d.prior_rate + d.decayed_exposure_days / phi)).abs() < 1e-9,
                "{ctx}"
            );
            // A style is called as a whole; its reorder is split over its markets.
            let p = pooled[d.style_id.as_str()];
            assert_eq!(d.verdict, p.verdict, "{ctx}");
        }
        assert!(
            d.projected_st_p10 <= d.projected_st_p50 && d.projected_st_p50 <= d.projected_st_p90,
            "{ctx}"
        );
        assert!(d.sell_through <= 1.0, "{ctx}");
        let early = d.days_live < rules.min_days_live || d.exposure_days < rules.min_exposure_days;
        let demoted = d.reasons.contains(&Reason::WrongCallControl);
        if d.market != ALL_MARKETS {
            continue;
        }
        let markets: i64 = run
            .decisions
            .iter()
            .filter(|m| m.style_id == d.style_id && m.market != ALL_MARKETS)
            .map(|m| m.reorder_units)
            .sum();
        assert_eq!(markets, d.reorder_units, "{ctx}");
        let held = d.reasons.contains(&Reason::Held);
        if held {
            // The earlier list's call stands: the model would not make it today, and
            // the call it would make does not clear the reversal bar.
            assert_eq!(d.previous_verdict, Some(d.verdict), "{ctx}");
            assert_eq!(d.reorder_units, 0, "a held keep orders nothing more: {ctx}");
            let other = match d.verdict {
                Verdict::Keep => d.reasons.contains(&Reason::UnprofitableReorder),
                _ => d.reasons.contains(&Reason::ProfitableReorder),
            };
            if other {
                let opposite = if d.verdict == Verdict::Keep {
                    1.0 - d.p_reorder_pays
                } else {
                    d.p_reorder_profit
                };
                assert!(opposite < rules.reversal_probability, "{ctx}");
            }
            continue;
        }
        if d.reasons.contains(&Reason::Reversed) {
            assert!(
                matches!(d.previous_verdict, Some(v) if v != d.verdict && v != Verdict::Test),
                "{ctx}"
            );
            assert!(
                d.confidence()
                    .is_none_or(|c| c >= rules.reversal_probability),
                "{ctx}"
            );
        }
        match d.verdict {
            Verdict::Keep => {
                assert!(d.reasons.contains(&Reason::ProfitableReorder), "{ctx}");
                assert!(d.reorder_units >= d.reorder_units.min(1), "{ctx}");
                assert!(d.reorder_expected_profit > 0.0, "{ctx}");
                let deadline = d.days_live >= rules.max_days_to_verdict || d.sold_out;
                if early {
                    assert!(
                        d.sold_out && d.p_reorder_profit >= rules.sold_out_keep_probability,
                        "{ctx}"
                    );
                } else if !deadline {
                    assert!(d.p_reorder_profit >= rules.profit_probability, "{ctx}");
                }
            }
            Verdict::Drop => {
                assert_eq!(d.reorder_units, 0, "{ctx}");
                let unprofitable = d.reasons.contains(&Reason::UnprofitableReorder)
                    && d.p_reorder_pays <= 1.0 - rules.drop_probability;
                let window = d.reasons.contains(&Reason::MaxWindow)
                    && (d.days_live >= rules.max_days_to_verdict || d.sold_out);
                let returns = d.reasons.contains(&Reason::HighReturns);
                let season = d.reasons.contains(&Reason::SeasonOver);
                assert!(unprofitable || window || returns || season, "{ctx}");
                assert!(!early || season, "{ctx}");
            }
            Verdict::Test => {
                assert_eq!(d.reorder_units, 0, "{ctx}");
                assert!(!d.reasons.is_empty(), "every row says why: {ctx}");
                if !early && !demoted {
                    assert!(d.days_live < rules.max_days_to_verdict, "{ctx}");
                }
            }
        }
    }
}

#[tokio::test]
async fn verdicts_agree_with_the_ground_truth_far_better_than_chance() {
    // The truth's `keep` is the sell-through rule's (a rate at the keep level): judged
    // under that rule, in the world it assumes.
    let engine = Engine::open(shared_dataset()).await.unwrap();
    let mut policy = Policy::default();
    policy.defaults.decision_rule = assay_engine::decision::DecisionRule::SellThrough;
    let run = engine.compute(None, &policy).await.unwrap();
    let truth = engine
        .query("SELECT style_id, keep FROM truth")
        .await
        .unwrap();
    let mut truly_keep = std::collections::HashMap::new();
    for b in &truth {
        let ids = arrow::array::AsArray::as_string::<i32>(b.column(0));
        let keep = arrow::array::AsArray::as_boolean(b.column(1));
        for i in 0..b.num_rows() {
            truly_keep.insert(ids.value(i).to_string(), keep.value(i));
        }
    }
    let decided: Vec<(Verdict, bool)> = run
        .decisions
        .iter()
        .filter(|d| d.market == ALL_MARKETS && d.verdict != Verdict::Test)
        .map(|d| (d.verdict, truly_keep[&d.style_id]))
        .collect();
    let right = decided
        .iter()
        .filter(|(v, k)| (*v == Verdict::Keep) == *k)
        .count();
    let wrong_keeps = decided
        .iter()
        .filter(|(v, k)| *v == Verdict::Keep && !k)
        .count();
    let wrong_drops = decided
        .iter()
        .filter(|(v, k)| *v == Verdict::Drop && *k)
        .count();
    let accuracy = right as f64 / decided.len() as f64;
    // Chance: calling keeps at the same rate, independently of the truth.
    let keep_share =
        decided.iter().filter(|(v, _)| *v == Verdict::Keep).count() as f64 / decided.len() as f64;
    let true_share = decided.iter().filter(|(_, k)| *k).count() as f64 / decided.len() as f64;
    let chance = keep_share * true_share + (1.0 - keep_share) * (1.0 - true_share);
    let w = run.summary.wrong_calls;
    println!(
        "truth agreement: {right}/{} decided styles ({:.1}%), chance {:.1}%; wrong keeps {wrong_keeps} (expected {:.1}), wrong drops {wrong_drops} (expected {:.1}); still testing {}",
        decided.len(),
        accuracy * 100.0,
        chance * 100.0,
        w.expected_wrong_keeps,
        w.expected_wrong_drops,
        run.summary.test
    );
    assert!(
        decided.len() >= 150,
        "too few decided styles: {}",
        decided.len()
    );
    assert!(accuracy >= 0.85, "accuracy {accuracy}");
    assert!(
        accuracy - chance >= 0.3,
        "accuracy {accuracy} vs chance {chance}"
    );
}

#[tokio::test]
async fn a_decision_as_of_t_ignores_events_after_t_on_disk() {
    let full = shared_dataset();
    let as_of = chrono::DateTime::parse_from_rfc3339("2026-09-20T12:00:00Z")
        .unwrap()
        .to_utc();
    // A copy holding only what was known at T: later partitions deleted, and T's own day
    // cut at T (events after noon removed).
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(full, tmp.path());
    for day in std::fs::read_dir(tmp.path().join("events")).unwrap() {
        let day = day.unwrap().path();
        let name = day.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() > "event_date=2026-09-20" {
            std::fs::remove_dir_all(&day).unwrap();
        }
    }
    let cut = tmp
        .path()
        .join("events/event_date=2026-09-20/part-0.parquet");
    truncate_after(&cut, as_of.timestamp_micros());

    let policy = Policy::default();
    let with_future = Engine::open(full)
        .await
        .unwrap()
        .compute(Some(as_of), &policy)
        .await
        .unwrap();
    let without = Engine::open(tmp.path())
        .await
        .unwrap()
        .compute(Some(as_of), &policy)
        .await
        .unwrap();
    assert_eq!(with_future.decisions.len(), without.decisions.len());
    assert!(with_future.decisions.len() > 100);
    for (a, b) in with_future.decisions.iter().zip(&without.decisions) {
        assert_eq!(a, b, "decision as of T changed with later events on disk");
    }
    assert_eq!(with_future.summary.keep, without.summary.keep);
    assert_eq!(with_future.summary.wrong_calls, without.summary.wrong_calls);
}

/// Rewrites an events file keeping only rows at or before `micros`.
fn truncate_after(path: &std::path::Path, micros: i64) {
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMicrosecondType;
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut kept = Vec::new();
    let mut dropped = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let times = batch
            .column_by_name("event_time")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let mask: arrow::array::BooleanArray =
            times.iter().map(|t| t.map(|t| t <= micros)).collect();
        dropped += batch.num_rows() - mask.true_count();
        kept.push(arrow::compute::filter_record_batch(&batch, &mask).unwrap());
    }
    assert!(
        dropped > 0,
        "the cut removed nothing: the test would prove nothing"
    );
    assay_engine::parquet_io::write_parquet(
        path,
        assay_engine::source::schema::events_file_schema(),
        &kept,
    )
    .unwrap();
}

#[test]
fn the_same_inputs_give_the_same_decisions_and_runs_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(shared_dataset(), tmp.path());
    let data = path_str(tmp.path());
    let first = assay_ok(&["decide", "--data", data, "--format", "csv"]);
    let second = assay_ok(&["decide", "--data", data, "--format", "csv"]);
    let strip = |csv: &str| -> Vec<String> {
        // Drop the run_id column (the first): everything else must be identical.
        csv.lines()
            .map(|l| l.split_once(',').map_or(l, |x| x.1).to_string())
            .collect()
    };
    assert!(first.lines().count() > 300);
    assert_eq!(strip(&first), strip(&second));
    let runs = assay_ok(&[
        "sql",
        "--data",
        data,
        "--format",
        "csv",
        "SELECT count(DISTINCT run_id) AS runs FROM decision_history",
    ]);
    assert_eq!(runs.lines().nth(1), Some("2"), "{runs}");
}

/// What a merchandiser reads off a row cannot look wrong: every row says why, and
/// sell-through (net of returns, over units received) never tops 100 % even where
/// returned units were restocked and sold again.
fn assert_row_reads_right(d: &assay_engine::decision::Decision) {
    let ctx = format!("{} {}", d.style_id, d.market);
    assert!(!d.reasons.is_empty(), "{ctx}: no reason");
    assert!(
        (0.0..=1.0).contains(&d.sell_through),
        "{ctx}: sell-through {} ({} sold of {} received)",
        d.sell_through,
        d.units_sold,
        d.units_received
    );
}

#[test]
fn decide_runs_on_the_bundled_sample_with_no_arguments() {
    // The sample is part of the repository; decide must not dirty it, so run on a copy.
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample");
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(&sample, tmp.path());
    let out = assay_ok(&["decide", "--data", path_str(tmp.path()), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["styles"], 200);
    let store = DecisionStore::new(Storage::local(tmp.path()));
    let latest = store.latest_run().unwrap().expect("a stored run");
    for d in &store.read_run(&latest.run_id).unwrap().decisions {
        assert_row_reads_right(d);
    }
    assert!(
        json["top_keeps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["verdict"] == "keep")
    );
}

#[test]
fn outside_a_checkout_a_command_without_data_names_the_flag() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_assay"))
        .args(["decide", "--format", "csv"])
        .current_dir(elsewhere.path())
        .env_remove("ASSAY_DATA")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no --data given") && stderr.contains("data/sample"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn tokens_are_listed_and_revoked_and_never_land_in_a_mistyped_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = path_str(tmp.path());
    let typo = tmp.path().join("no-such");
    let (ok, _, stderr) = assay(&[
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "ops",
        "--data",
        path_str(&typo),
    ]);
    assert!(!ok && stderr.contains("no such dataset folder"), "{stderr}");
    assert!(!typo.exists(), "a mistyped --data must not be created");

    for (role, name) in [("buyer", "erp"), ("merchandiser", "ann")] {
        assay_ok(&[
            "token", "create", "--role", role, "--name", name, "--data", data,
        ]);
    }
    let listed = assay_ok(&["token", "list", "--data", data]);
    assert!(
        listed.contains("erp") && listed.contains("buyer"),
        "{listed}"
    );
    assert!(
        listed.contains("ann") && listed.contains("merchandiser"),
        "{listed}"
    );
    assert!(
        !listed.contains("assay_"),
        "a list never shows a secret: {listed}"
    );

    assay_ok(&["token", "revoke", "--name", "erp", "--data", data]);
    let listed = assay_ok(&["token", "list", "--data", data]);
    assert!(
        !listed.contains("erp") && listed.contains("ann"),
        "{listed}"
    );
    let (ok, _, stderr) = assay(&["token", "revoke", "--name", "erp", "--data", data]);
    assert!(!ok && stderr.contains("no token named `erp`"), "{stderr}");
}

#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::BufRead;
    // `assay sql … | head -1`: far more output than a pipe buffers, read one line, close.
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample");
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(&sample, tmp.path());
    for format in ["csv", "table"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(["sql", "--data", path_str(tmp.path()), "--format", format])
            .arg("SELECT value, value * 2 AS twice FROM generate_series(1, 300000)")
            .env_remove("ASSAY_DATA")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {:?} {stderr}", out.status);
        assert!(
            !stderr.contains("Broken pipe") && !stderr.contains("panicked"),
            "{format}: {stderr}"
        );
    }
}

#[test]
fn long_work_shows_progress_on_a_terminal_and_nothing_elsewhere() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample");
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(&sample, tmp.path());
    let data = path_str(tmp.path());
    // Piped (as in every other test): plain output only.
    let (ok, _, stderr) = assay(&["rollup", "--data", data, "--rebuild"]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("days of the daily rollup"), "{stderr}");
    // Under a pseudo-terminal (util-linux `script`), the rebuild draws its bar.
    let command = format!(
        "{} rollup --data {data} --rebuild",
        env!("CARGO_BIN_EXE_assay")
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("ASSAY_DATA")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("days of the daily rollup"), "{shown}");
}

#[tokio::test]
async fn one_rollup_serves_every_policy_as_raw_events_would() {
    // A copy: the rollup's generations are counted below, and other tests share the
    // generated dataset.
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(shared_dataset(), tmp.path());
    let engine = Engine::open(tmp.path()).await.unwrap();
    let built = engine.refresh_rollup(false).await.unwrap();
    // Windows that end inside the rolled-up days for most styles of the 35-day season.
    let mut short = Policy::default();
    short.defaults.planned_life_days = 10.0;
    short.priors.launch_window_days = 3.0;
    // (policy, as of, whether many windows have ended by then)
    for (policy, at, ended_windows) in [
        (&short, "2026-09-24T15:20:00Z", true),
        (&short, "2026-10-03T23:59:59.999999Z", true),
        (&Policy::default(), "2026-10-03T06:00:00Z", false),
    ] {
        let as_of = chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc();
        let funnel = engine.observations(as_of, policy).await.unwrap();
        let raw = engine
            .observations_from_raw_events(as_of, policy)
            .await
            .unwrap();
        // The curve-weighed exposure follows the categories' fitted curves, which the
        // raw-only funnel does not fit: everything else must agree to the bit.
        let comparable = |mut rows: Vec<assay_engine::decision::StyleObservation>| {
            for r in &mut rows {
                r.decayed_exposure_days = 0.0;
                r.early_decayed_exposure_days = 0.0;
            }
            rows.sort_by(|a, b| (&a.style_id, &a.market).cmp(&(&b.style_id, &b.market)));
            rows
        };
        let (funnel, raw) = (comparable(funnel.observations), comparable(raw));
        let ended = funnel
            .iter()
            .filter(|o| o.days_live > policy.defaults.planned_life_days)
            .count();
        assert_eq!(ended > 50, ended_windows, "{at}: {ended} windows ended");
        assert_eq!(funnel.len(), raw.len(), "{at}");
        for (a, b) in funnel.iter().zip(&raw) {
            assert_eq!(a, b, "{at}: the rollup's funnel differs from raw events'");
        }
    }
    // Runs under both policies left the one rollup as it was: nothing rebuilt.
    engine.compute(None, &short).await.unwrap();
    let again = engine.refresh_rollup(false).await.unwrap();
    assert_eq!(again.generation, built.generation);
    assert_eq!(again.from, None, "nothing changed, nothing recomputed");
}
