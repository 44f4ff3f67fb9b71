//! What changed for buying systems between two runs, each under the overrides in force
//! at its time: the change feed (`GET /v1/changes`) and `decision.changed` events.

use std::collections::{BTreeMap, HashMap};

use assay_engine::decision::{ALL_MARKETS, Decision};
use assay_engine::store::overrides::Override;

use super::dto::{ChangeCause, EffectiveCall, FeedItem};
use super::state::{applied_override, effective_reorder};

/// The overrides in force, by style and market.
pub type Live = HashMap<(String, String), Override>;

/// The rows whose effective verdict or reorder differs between `before` (under
/// `then`) and `after` (under `now`), by style then `ALL` before the markets; only
/// `market`'s rows when given.
pub fn changes(
    before: &[Decision],
    then: &Live,
    after: &[Decision],
    now: &Live,
    market: Option<&str>,
) -> Vec<FeedItem> {
    let keep = |d: &&Decision| market.is_none_or(|m| d.market == m);
    let old = effective(before, then);
    let new = effective(after, now);
    let mut rows: BTreeMap<_, Pair> = BTreeMap::new();
    for d in before.iter().filter(keep) {
        rows.entry(order(d)).or_default().0 = Some(d);
    }
    for d in after.iter().filter(keep) {
        rows.entry(order(d)).or_default().1 = Some(d);
    }
    rows.into_values()
        .filter_map(|(was, is)| {
            let key = |d: &Decision| (d.style_id.clone(), d.market.clone());
            let before = was.and_then(|d| old.get(&key(d))).cloned();
            let after = is.and_then(|d| new.get(&key(d))).cloned();
            if before.as_ref().map(|c| (c.verdict, c.reorder_units))
                == after.as_ref().map(|c| (c.verdict, c.reorder_units))
            {
                return None;
            }
            let row = is.or(was)?;
            let model_changed = match (was, is) {
                (Some(w), Some(i)) => (w.verdict, w.reorder_units) != (i.verdict, i.reorder_units),
                _ => true,
            };
            let override_changed = before.as_ref().and_then(|c| c.override_id.as_ref())
                != after.as_ref().and_then(|c| c.override_id.as_ref());
            Some(FeedItem {
                style_id: row.style_id.clone(),
                category: row.category.clone(),
                market: row.market.clone(),
                before,
                after,
                cause: match (model_changed, override_changed) {
                    (true, true) => ChangeCause::ModelAndOverride,
                    (false, true) => ChangeCause::Override,
                    _ => ChangeCause::Model,
                },
                reasons: is
                    .map(|d| d.reasons.iter().map(|r| r.as_str().to_string()).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// A row in the `since` run and in the served one.
type Pair<'a> = (Option<&'a Decision>, Option<&'a Decision>);

/// By style, then `ALL` before the markets.
fn order(d: &Decision) -> (&str, bool, &str) {
    (&d.style_id, d.market != ALL_MARKETS, &d.market)
}

/// Every row's call in a run under the overrides `live`.
fn effective(
    rows: &[Decision],
    live: &HashMap<(String, String), Override>,
) -> HashMap<(String, String), EffectiveCall> {
    let pooled: HashMap<&str, &Decision> = rows
        .iter()
        .filter(|d| d.market == ALL_MARKETS)
        .map(|d| (d.style_id.as_str(), d))
        .collect();
    rows.iter()
        .map(|d| {
            let applied = applied_override(d, live);
            let call = EffectiveCall {
                verdict: applied.map_or(d.verdict, |o| o.verdict).into(),
                reorder_units: effective_reorder(d, applied, || {
                    pooled.get(d.style_id.as_str()).copied()
                }),
                model_verdict: d.verdict.into(),
                override_id: applied.map(|o| o.override_id.clone()),
            };
            ((d.style_id.clone(), d.market.clone()), call)
        })
        .collect()
}
