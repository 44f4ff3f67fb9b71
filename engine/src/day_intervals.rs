//! `timestamp ± INTERVAL 'n days'` added as a fixed span where every day has 24 hours.
//!
//! Analysts write a launch window as `event_time < launch_at + INTERVAL '14 days'`. The
//! interval is a month-day-nanosecond value, and arrow adds it to a timestamp row by
//! row through calendar arithmetic, in the column's time zone: on 10⁷ events that
//! addition inside the join's filter was most of the funnel's time (BENCHMARKS.md,
//! "Analyst query shapes"). In UTC, in a fixed offset and on naive timestamps a day is
//! always 86,400 s, so the same interval as a duration gives the same instants, added
//! as one integer per row. This rule rewrites such constant intervals into durations;
//! months (whose length varies) and named zones (whose days change length at DST) keep
//! the calendar. Which rows the expression is evaluated on is unchanged.

use datafusion::arrow::datatypes::{DataType, IntervalDayTime, IntervalMonthDayNano, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

const NANOS_PER_DAY: i128 = 86_400 * 1_000_000_000;

#[derive(Debug, Default)]
pub struct DayIntervalsAsDurations;

impl OptimizerRule for DayIntervalsAsDurations {
    fn name(&self) -> &str {
        "day_intervals_as_durations"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        // A scan's pushed-down filters have no input to type them against; they were
        // rewritten where they were written, before being pushed.
        if plan.inputs().is_empty() {
            return Ok(Transformed::no(plan));
        }
        let schema = merge_schema(&plan.inputs());
        // The rewritten expression displays differently: keep each output's name, so
        // the plan's schema does not change.
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = expr.transform_up(|e| Ok(as_duration(e, &schema)))?;
            Ok(Transformed::new_transformed(
                name.restore(rewritten.data),
                rewritten.transformed,
            ))
        })
    }
}

/// `e` with a constant day-time interval added to (or subtracted from) a timestamp
/// whose days all have 24 hours replaced by the same span as a duration.
fn as_duration(e: Expr, schema: &DFSchema) -> Transformed<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return Transformed::no(e);
    };
    let rewritten = match op {
        // `ts ± interval`
        Operator::Plus | Operator::Minus => duration_for(&left, &right, schema)
            .map(|span| Expr::BinaryExpr(BinaryExpr::new(left.clone(), op, Box::new(span)))),
        _ => None,
    }
    // `interval + ts`, written with the timestamp first (arrow adds durations to
    // timestamps, not timestamps to durations).
    .or_else(|| {
        (op == Operator::Plus)
            .then(|| duration_for(&right, &left, schema))
            .flatten()
            .map(|span| Expr::BinaryExpr(BinaryExpr::new(right.clone(), op, Box::new(span))))
    });
    match rewritten {
        Some(expr) => Transformed::yes(expr),
        None => Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right })),
    }
}

/// The duration literal equal to `interval` when added to `timestamp`, if there is one.
fn duration_for(timestamp: &Expr, interval: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::Literal(value, _) = interval else {
        return None;
    };
    let nanos = match value {
        ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
            months: 0,
            days,
            nanoseconds,
        })) => i128::from(*days) * NANOS_PER_DAY + i128::from(*nanoseconds),
        ScalarValue::IntervalDayTime(Some(IntervalDayTime { days, milliseconds })) => {
            i128::from(*days) * NANOS_PER_DAY + i128::from(*milliseconds) * 1_000_000
        }
        _ => return None,
    };
    let DataType::Timestamp(unit, zone) = timestamp.get_type(schema).ok()? else {
        return None;
    };
    if !zone.as_deref().is_none_or(days_have_24_hours) {
        return None;
    }
    let per_unit = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    // A span finer than the column's unit would be truncated: keep the calendar's
    // arithmetic (and its rounding) for it.
    if nanos % per_unit != 0 {
        return None;
    }
    let span = i64::try_from(nanos / per_unit).ok()?;
    let value = match unit {
        TimeUnit::Second => ScalarValue::DurationSecond(Some(span)),
        TimeUnit::Millisecond => ScalarValue::DurationMillisecond(Some(span)),
        TimeUnit::Microsecond => ScalarValue::DurationMicrosecond(Some(span)),
        TimeUnit::Nanosecond => ScalarValue::DurationNanosecond(Some(span)),
    };
    Some(Expr::Literal(value, None))
}

/// UTC and fixed offsets (`+02:00`, `-0500`): zones without daylight saving time.
fn days_have_24_hours(zone: &str) -> bool {
    let utc = ["UTC", "Etc/UTC", "Z", "GMT", "Etc/GMT", "Zulu", "Universal"];
    if utc.iter().any(|z| z.eq_ignore_ascii_case(zone)) {
        return true;
    }
    let Some(digits) = zone.strip_prefix(['+', '-']) else {
        return false;
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    matches!(digits.len(), 2 | 4) && digits.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn answer(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// The optimized plan's text, and how many of its literals are intervals and
    /// durations (aliases that keep an expression's original name are not counted).
    async fn plan(ctx: &SessionContext, sql: &str) -> (String, usize, usize) {
        use datafusion::common::tree_node::TreeNodeRecursion;
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        let (mut intervals, mut durations) = (0, 0);
        plan.apply(|node| {
            node.apply_expressions(|e| {
                e.apply(|x| {
                    match x {
                        Expr::Literal(ScalarValue::IntervalMonthDayNano(_), _) => intervals += 1,
                        Expr::Literal(
                            ScalarValue::DurationMicrosecond(_)
                            | ScalarValue::DurationMillisecond(_),
                            _,
                        ) => durations += 1,
                        _ => {}
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })
        .unwrap();
        (plan.display_indent().to_string(), intervals, durations)
    }

    const TABLE: &str = "CREATE TABLE t AS SELECT \
        arrow_cast(column1, 'Timestamp(Microsecond, Some(\"UTC\"))') AS utc, \
        arrow_cast(column1, 'Timestamp(Microsecond, None)') AS naive, \
        arrow_cast(column1, 'Timestamp(Millisecond, Some(\"+02:00\"))') AS fixed, \
        arrow_cast(column1, 'Timestamp(Microsecond, Some(\"Europe/Berlin\"))') AS berlin \
        FROM (VALUES ('2026-03-20T12:00:00Z'), ('2026-10-20T23:59:59.999999Z')) AS v(column1)";

    /// Every form the rule rewrites gives the instants the calendar gives, and a zone
    /// with daylight saving time keeps the calendar (its days across the change are
    /// 23 or 25 hours).
    #[tokio::test]
    async fn rewritten_intervals_give_the_calendars_instants() {
        let plain = SessionContext::new();
        let ruled = SessionContext::new();
        ruled.add_optimizer_rule(Arc::new(DayIntervalsAsDurations));
        for ctx in [&plain, &ruled] {
            ctx.sql(TABLE).await.unwrap().collect().await.unwrap();
        }
        let query = "SELECT utc + INTERVAL '14 days', utc - INTERVAL '1 day 2 hours', \
            INTERVAL '14 days' + utc, naive + INTERVAL '36 hours', \
            fixed + INTERVAL '7 days', fixed + INTERVAL '1 microsecond', \
            berlin + INTERVAL '14 days', utc + INTERVAL '1 month', \
            utc < utc + INTERVAL '1 day' AS later FROM t ORDER BY utc";
        assert_eq!(answer(&ruled, query).await, answer(&plain, query).await);
        let (text, intervals, durations) = plan(&ruled, query).await;
        assert!(
            text.contains("DurationMicrosecond(\"1209600000000\")"),
            "{text}"
        );
        assert!(
            text.contains("DurationMillisecond(\"604800000\")"),
            "{text}"
        );
        // 14 days (once, shared by two columns), 1 day 2 hours, 36 hours, 7 days, 1 day.
        assert_eq!(durations, 5, "{text}");
        // Berlin's days, a month, and a span finer than the column's milliseconds.
        assert_eq!(intervals, 3, "{text}");
    }

    /// A window in a join's filter (the analyst's funnel) compares against a duration:
    /// nothing left to compute through the calendar for each probed row.
    #[tokio::test]
    async fn a_launch_window_in_a_join_filter_becomes_a_duration() {
        let ctx = SessionContext::new();
        ctx.add_optimizer_rule(Arc::new(DayIntervalsAsDurations));
        ctx.sql(TABLE).await.unwrap().collect().await.unwrap();
        let (text, intervals, durations) = plan(
            &ctx,
            "SELECT a.utc FROM t a JOIN t b ON a.naive = b.naive \
             WHERE a.utc >= b.utc AND a.utc < b.utc + INTERVAL '14 days'",
        )
        .await;
        assert!(text.contains("Filter: "), "{text}");
        assert_eq!((intervals, durations), (0, 1), "{text}");
    }

    #[test]
    fn zones_without_daylight_saving_are_recognised() {
        for zone in ["UTC", "utc", "+00:00", "+02:00", "-0500", "Etc/UTC"] {
            assert!(days_have_24_hours(zone), "{zone}");
        }
        for zone in ["Europe/Berlin", "America/New_York", "+2", "CET"] {
            assert!(!days_have_24_hours(zone), "{zone}");
        }
    }
}
