//! A backtest's files: `scores.json` (everything but the per-style rows),
//! `outcomes.parquet` (one row per policy × style) and `report.html` (tables and SVG
//! charts drawn here, no script, no network).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;

use super::money::StyleMoney;
use super::score::{Call, Outcome, Scores};
use super::{BacktestReport, ResultKind};
use crate::error::Result;
use crate::parquet_io::writer_properties;
use crate::storage::Storage;

/// The report's three files, by name. `scores.json` comes last: a stored backtest
/// counts as there once its scores are.
///
/// # Errors
/// The outcomes cannot be encoded.
fn files(report: &BacktestReport) -> Result<Vec<(&'static str, Bytes)>> {
    let batch = outcomes_batch(report)?;
    let mut parquet = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(writer_properties()))?;
    parquet.write(&batch)?;
    let scores = serde_json::to_vec_pretty(report).expect("report serialises");
    Ok(vec![
        ("outcomes.parquet", parquet.into_inner()?.into()),
        ("report.html", render_html(report).into()),
        ("scores.json", scores.into()),
    ])
}

/// Writes the report's files into the local folder `dir`.
///
/// # Errors
/// I/O.
pub fn write(report: &BacktestReport, dir: &Path) -> Result<Vec<String>> {
    let storage = Storage::local(dir);
    let mut written = Vec::new();
    for (name, body) in files(report)? {
        storage.write(name, body)?;
        written.push(storage.display(name));
    }
    Ok(written)
}

/// Stores the report with the dataset, under `backtests/<id>/`.
///
/// # Errors
/// The dataset cannot be written.
pub fn store(report: &BacktestReport, storage: &Storage) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for (name, body) in files(report)? {
        let key = format!("{DIR}/{}/{name}", report.id);
        storage.write(&key, body)?;
        written.push(storage.display(&key));
    }
    Ok(written)
}

/// One row of `outcomes.parquet`: a policy's call on a style, the style's outcome and,
/// where scored in money, what the call made.
type Row<'a> = (&'a str, &'a Call, &'a Outcome, Option<&'a StyleMoney>);

fn outcomes_batch(report: &BacktestReport) -> Result<RecordBatch> {
    let by_style: std::collections::HashMap<&str, &Outcome> = report
        .outcomes
        .iter()
        .map(|o| (o.style_id.as_str(), o))
        .collect();
    let rows: Vec<Row> = report
        .results
        .iter()
        .flat_map(|r| {
            r.calls.iter().filter_map(|c| {
                by_style
                    .get(c.style_id.as_str())
                    .map(|o| (r.name.as_str(), c, *o, r.style_money.get(&c.style_id)))
            })
        })
        .collect();
    let text = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let float = |f: &dyn Fn(&Row) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let int = |f: &dyn Fn(&Row) -> Option<i64>| -> ArrayRef {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let fields = vec![
        Field::new("policy", DataType::Utf8, true),
        Field::new("style_id", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("verdict", DataType::Utf8, true),
        Field::new("days_to_verdict", DataType::Float64, true),
        Field::new("p_keep", DataType::Float64, true),
        Field::new("reorder_units", DataType::Int64, true),
        Field::new("keep_rate", DataType::Float64, true),
        Field::new("drop_rate", DataType::Float64, true),
        Field::new("realised_rate", DataType::Float64, true),
        Field::new("true_rate", DataType::Float64, true),
        Field::new("truth_keep", DataType::Boolean, true),
        Field::new("reached_keep", DataType::Boolean, true),
        Field::new("expected_profit", DataType::Float64, true),
        Field::new("profit", DataType::Float64, true),
        Field::new("clairvoyant_units", DataType::Int64, true),
        Field::new("clairvoyant_profit", DataType::Float64, true),
        Field::new("hindsight_units", DataType::Int64, true),
        Field::new("hindsight_profit", DataType::Float64, true),
        Field::new("demand_p10", DataType::Float64, true),
        Field::new("demand_p90", DataType::Float64, true),
        Field::new("true_demand", DataType::Float64, true),
        Field::new("half_life_days", DataType::Float64, true),
    ];
    let money = |f: &dyn Fn(&StyleMoney) -> f64| float(&|r| r.3.map(f));
    let money_units = |f: &dyn Fn(&StyleMoney) -> i64| int(&|r| r.3.map(f));
    let columns: Vec<ArrayRef> = vec![
        text(&|r| Some(r.0.to_string())),
        text(&|r| Some(r.1.style_id.clone())),
        text(&|r| Some(r.2.category.clone())),
        text(&|r| r.1.verdict.map(|v| v.as_str().to_string())),
        float(&|r| r.1.days_to_verdict),
        float(&|r| r.1.p_keep),
        int(&|r| Some(r.1.reorder_units)),
        float(&|r| Some(r.2.keep_rate)),
        float(&|r| Some(r.2.drop_rate)),
        float(&|r| r.2.realised_rate),
        float(&|r| r.2.true_rate),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.2.truth_keep).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.2.reached_keep()).collect::<Vec<_>>(),
        )),
        float(&|r| r.1.expected_profit),
        money(&|m| m.profit),
        money_units(&|m| m.clairvoyant_units),
        money(&|m| m.clairvoyant_profit),
        money_units(&|m| m.hindsight_units),
        money(&|m| m.hindsight_profit),
        float(&|r| r.1.forecast.map(|f| f.demand_p10)),
        float(&|r| r.1.forecast.map(|f| f.demand_p90)),
        float(&|r| {
            r.3.filter(|_| r.1.forecast.is_some())
                .map(|m| m.true_demand)
        }),
        float(&|r| r.1.forecast.and_then(|f| f.half_life_days)),
    ];
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

fn score_cells(s: &Scores) -> String {
    let truth = s.wrong_truth.map_or_else(
        || "<td>–</td><td>–</td>".to_string(),
        |w| format!("<td>{}</td><td>{}</td>", w.keeps, w.drops),
    );
    format!(
        "<td>{}</td><td>{}</td><td>{}</td>{truth}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0} %</td><td>{:.0}</td>",
        s.styles,
        s.keeps,
        s.drops,
        s.wrong_realised.keeps,
        s.wrong_realised.drops,
        opt(s.days_to_verdict_median, 1),
        opt(s.days_to_verdict_p90, 1),
        s.still_testing_share * 100.0,
        s.margin_proxy,
    )
}

/// What the scores table's wrong calls mean, said under it: it is easily read as
/// the money table's or the last-day run's measure, which it is not.
pub const SELL_THROUGH_SCALE: &str = "wrong k/d: every call of the replay judged on the sell-through scale (a keep is wrong when the style's true rate stays below the keep level, a drop when it reaches it); realised: the same against the rate the data went on to show. Where the data has a money world (truth_markets.parquet), perfect hindsight keeps what would have made money, so it is not all right on this scale, and the money table scores the profit rule: this scale is the first release's.";

const SCORE_HEADER: &str = "<th>styles</th><th>keeps</th><th>drops</th><th>wrong keeps (truth)</th><th>wrong drops (truth)</th><th>wrong keeps (realised)</th><th>wrong drops (realised)</th><th>days to verdict, median</th><th>P90</th><th>still testing</th><th>margin proxy</th>";

/// An SVG of `size` (width, height, padding) with a white ground, the two axes and
/// their labels; the caller adds the marks and closes it.
fn chart_frame(size: (f64, f64, f64), label: &str, x_label: &str, y_label: &str) -> String {
    let (w, h, pad) = size;
    let (bottom, right, middle) = (h - pad, w - pad, h / 2.0);
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{label}"><rect width="{w}" height="{h}" fill="white"/><line x1="{pad}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{bottom}" stroke="black"/><text x="{}" y="{}" font-size="11" text-anchor="middle">{x_label}</text><text x="12" y="{middle}" font-size="11" transform="rotate(-90 12 {middle})" text-anchor="middle">{y_label}</text>"#,
        w / 2.0,
        h - 8.0,
    )
}

/// The reliability chart: share that reached the keep level against mean P(keep), per
/// bin, with the diagonal of perfect calibration.
fn reliability_svg(bins: &[super::score::CalibrationBin]) -> String {
    let (w, h, pad) = (320.0, 320.0, 40.0);
    let x = |p: f64| pad + p * (w - 2.0 * pad);
    let y = |p: f64| h - pad - p * (h - 2.0 * pad);
    let mut svg = chart_frame(
        (w, h, pad),
        "reliability chart",
        "mean P(keep)",
        "share that reached keep",
    );
    // The diagonal: perfect calibration.
    let _ = write!(
        svg,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4"/>"##,
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    for b in bins.iter().filter(|b| b.count > 0) {
        let r = 3.0 + (b.count as f64).sqrt().min(12.0);
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="{r:.1}" fill="#2a6fdb" fill-opacity="0.6"><title>{:.1}–{:.1}: {} samples, {:.0} % reached keep</title></circle>"##,
            x(b.mean_predicted),
            y(b.share_observed),
            b.from,
            b.to,
            b.count,
            b.share_observed * 100.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Wrong calls against median days to verdict, one point per policy or rule.
fn tradeoff_svg(report: &BacktestReport) -> String {
    let points: Vec<(String, f64, f64, ResultKind)> = report
        .results
        .iter()
        .filter_map(|r| {
            let wrong = r.overall.wrong_truth.unwrap_or(r.overall.wrong_realised);
            Some((
                r.name.clone(),
                r.overall.days_to_verdict_median?,
                (wrong.keeps + wrong.drops) as f64,
                r.kind,
            ))
        })
        .collect();
    let (w, h, pad) = (480.0, 320.0, 44.0);
    let max_x = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let max_y = points.iter().map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let x = |v: f64| pad + v / max_x * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / max_y * (h - 2.0 * pad);
    let mut svg = chart_frame(
        (w, h, pad),
        "wrong calls against days to verdict",
        &format!("median days to verdict (0 – {max_x:.0})"),
        &format!("wrong calls (0 – {max_y:.0})"),
    );
    for (name, days, wrong, kind) in &points {
        let colour = match kind {
            ResultKind::Policy => "#2a6fdb",
            ResultKind::Baseline => "#d9822b",
            ResultKind::Hindsight => "#3a9a4a",
        };
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{colour}"><title>{}: {wrong} wrong calls, median {days:.1} days</title></circle><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            x(*days),
            y(*wrong),
            escape(name),
            x(*days) + 7.0,
            y(*wrong) - 4.0,
            escape(&name.chars().take(28).collect::<String>())
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole report as one self-contained HTML page.
pub fn render_html(report: &BacktestReport) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>assay backtest {id}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}}table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}}th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}.front{{font-weight:bold}}</style></head><body>
<h1>Backtest {from} → {to}</h1>
<p>Decisions replayed day by day with only what was known each day; outcomes read up to {end}. {styles} styles launched in the range ({resolved} with their window closed{truth}). Replay took {secs:.1} s.</p>"#,
        id = escape(&report.id),
        from = report.from,
        to = report.to,
        end = report.data_end.format("%Y-%m-%d %H:%M UTC"),
        styles = report.styles,
        resolved = report.styles_resolved,
        truth = if report.has_truth {
            "; ground truth known"
        } else {
            ""
        },
        secs = report.seconds,
    );
    let _ = write!(
        html,
        "<h2>Scores</h2><p>{}</p><table><tr><th>policy or rule</th>",
        escape(SELL_THROUGH_SCALE)
    );
    html.push_str(SCORE_HEADER);
    html.push_str("<th>Pareto front</th></tr>");
    for r in &report.results {
        let _ = write!(
            html,
            "<tr{}><td>{} <small>({})</small></td>{}<td>{}</td></tr>",
            if r.pareto { r#" class="front""# } else { "" },
            escape(&r.name),
            r.kind,
            score_cells(&r.overall),
            if r.pareto { "yes" } else { "" }
        );
    }
    html.push_str("</table><p>Wrong keep: kept, but ended below the drop level. Wrong drop: dropped, but would have reached the keep level. Margin proxy: over keeps, reorder units sold × margin − unsold × cost, against demand over lead time + cover.</p>");
    if let Some(m) = &report.money {
        let _ = write!(
            html,
            "<h2>Money</h2><p>World: {}. Each call's reorder is scored by its expected profit over the season (to day {}; leftovers at {:.0} % of cost) against never reordering, simulated from the true demand curves with lost sales, lead times and returns, over the {} styles launched from {}. The tuned baseline was tuned on the {} launched before.</p><table><tr><th>policy or rule</th><th>profit</th><th>of hindsight</th><th>of clairvoyant at its call times</th><th>keeps</th><th>losing keeps</th><th>units ordered</th><th>median days to call</th></tr>",
            escape(&m.world.to_string()),
            m.season_days,
            m.salvage_share * 100.0,
            m.scored_styles,
            m.scored_from.format("%Y-%m-%d %H:%M UTC"),
            m.tuning_styles,
        );
        for r in &report.results {
            let Some(s) = &r.money else { continue };
            let _ = write!(
                html,
                "<tr><td>{} <small>({})</small></td><td>{:.0}</td><td>{:.1} %</td><td>{:.1} %</td><td>{}</td><td>{} ({:.1} %)</td><td>{}</td><td>{}</td></tr>",
                escape(&r.name),
                r.kind,
                s.profit,
                s.share_of_hindsight * 100.0,
                s.share_of_clairvoyant * 100.0,
                s.keeps,
                s.losing_keeps,
                s.losing_keep_share * 100.0,
                s.units_ordered,
                opt(s.median_days_to_call, 1),
            );
        }
        html.push_str("</table>");
        let checked: Vec<_> = report
            .results
            .iter()
            .filter_map(|r| Some((r, r.money.as_ref()?.forecasts.as_ref()?)))
            .collect();
        if !checked.is_empty() {
            html.push_str("<h3>Are the calls' own probabilities honest?</h3><p>P(right) at each call (a keep: its reorder makes money; a drop: the MOQ would not) against the share of the true demand paths on which it was right; the 80 % demand interval against the share of paths inside it.</p><table><tr><th>policy</th><th>calls</th><th>calibration error</th><th>expected wrong</th><th>wrong in the truth</th><th>inside the 80 % interval</th><th>below it</th><th>above it</th></tr>");
            for (r, f) in checked {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td></tr>",
                    escape(&r.name),
                    f.calls,
                    f.calibration_error,
                    f.expected_wrong,
                    f.observed_wrong,
                    f.interval_coverage * 100.0,
                    f.below_interval * 100.0,
                    (1.0 - f.interval_coverage - f.below_interval) * 100.0
                );
                for a in &f.by_age {
                    let _ = write!(
                        html,
                        "<tr><td>… every style at {:.0} days old</td><td>{}</td><td></td><td></td><td></td><td>{:.1} %</td><td>{:.1} %</td><td>{:.1} %</td></tr>",
                        a.age_days,
                        a.styles,
                        a.inside * 100.0,
                        a.below * 100.0,
                        (1.0 - a.inside - a.below) * 100.0
                    );
                }
            }
            html.push_str("</table>");
        }
    }
    html.push_str("<h2>Wrong calls against time to verdict</h2>");
    html.push_str(&tradeoff_svg(report));
    for r in report
        .results
        .iter()
        .filter(|r| r.kind == ResultKind::Policy)
    {
        let _ = write!(
            html,
            "<h2>{} by category</h2><table><tr><th>category</th>{SCORE_HEADER}</tr>",
            escape(&r.name)
        );
        for (category, s) in &r.by_category {
            let _ = write!(
                html,
                "<tr><td>{}</td>{}</tr>",
                escape(category),
                score_cells(s)
            );
        }
        html.push_str("</table>");
        if let Some(e) = &r.expected_vs_observed {
            let _ = write!(
                html,
                "<p>Its last day's run alone: expected wrong keeps {:.1}, observed {}; expected wrong drops {:.1}, observed {} ({} calls with a known outcome; wrong as the sell-through rule measures it).</p>",
                e.expected_wrong_keeps,
                e.observed_wrong_keeps,
                e.expected_wrong_drops,
                e.observed_wrong_drops,
                e.judged
            );
        }
        if !r.calibration.is_empty() {
            let _ = write!(
                html,
                "<h3>Calibration of {}</h3><table><tr><th>P(keep)</th><th>samples</th><th>mean P(keep)</th><th>reached keep</th></tr>",
                escape(&r.name)
            );
            for b in &r.calibration {
                let _ = write!(
                    html,
                    "<tr><td>{:.1}–{:.1}</td><td>{}</td><td>{:.2}</td><td>{:.0} %</td></tr>",
                    b.from,
                    b.to,
                    b.count,
                    b.mean_predicted,
                    b.share_observed * 100.0
                );
            }
            html.push_str("</table>");
            html.push_str(&reliability_svg(&r.calibration));
        }
    }
    html.push_str("</body></html>\n");
    html
}

const DIR: &str = "backtests";

/// The ids of the backtests stored with a dataset (`DATA/backtests/<id>/`), newest
/// first.
///
/// # Errors
/// The folder cannot be listed.
pub fn stored(storage: &Storage) -> Result<Vec<String>> {
    let mut ids: Vec<String> = storage
        .list(DIR)?
        .into_iter()
        .filter_map(|e| {
            let (id, name) = e.under(DIR).split_once('/')?;
            (name == "scores.json").then(|| id.to_string())
        })
        .collect();
    // Ids start with their creation time.
    ids.sort_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// One file (`scores.json`, `report.html`) of a stored backtest, if there is one. Only
/// ids [`stored`] lists are looked up: no key is built from a caller's text.
///
/// # Errors
/// The file exists but cannot be read.
pub fn stored_file(storage: &Storage, id: &str, name: &str) -> Result<Option<Bytes>> {
    if !stored(storage)?.iter().any(|s| s == id) {
        return Ok(None);
    }
    storage.read_opt(&format!("{DIR}/{id}/{name}"))
}
