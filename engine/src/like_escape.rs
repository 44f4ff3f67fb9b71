//! `LIKE … ESCAPE 'c'` with any escape character, as PostgreSQL allows.
//!
//! DataFusion 55 runs LIKE only with the backslash as its escape: any other fails when
//! the query is executed ("LIKE does not support escape_char other than the
//! backslash"). SQLAlchemy's PostgreSQL inspector writes `NOT LIKE 'pg/_' || '%'
//! ESCAPE '/'` to list schemas, so a table browser built on it could not start. Once
//! the pattern is a constant (the optimizer has folded it and bound its parameters),
//! this rule rewrites it to the same pattern with backslash escapes: what it matches is
//! unchanged. A pattern that is not a constant keeps DataFusion's error.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct LikeEscapeToBackslash;

impl OptimizerRule for LikeEscapeToBackslash {
    fn name(&self) -> &str {
        "like_escape_to_backslash"
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
        plan.map_expressions(|expr| expr.transform(|e| Ok(rewrite_like(e))))
    }
}

fn rewrite_like(expr: Expr) -> Transformed<Expr> {
    let Expr::Like(like) = expr else {
        return Transformed::no(expr);
    };
    let Some(escape) = like.escape_char.filter(|c| *c != '\\') else {
        return Transformed::no(Expr::Like(like));
    };
    let Expr::Literal(value, metadata) = like.pattern.as_ref() else {
        return Transformed::no(Expr::Like(like));
    };
    let rewritten = match value {
        ScalarValue::Utf8(Some(p)) => to_backslash(p, escape).map(|p| ScalarValue::Utf8(Some(p))),
        ScalarValue::LargeUtf8(Some(p)) => {
            to_backslash(p, escape).map(|p| ScalarValue::LargeUtf8(Some(p)))
        }
        ScalarValue::Utf8View(Some(p)) => {
            to_backslash(p, escape).map(|p| ScalarValue::Utf8View(Some(p)))
        }
        _ => None,
    };
    match rewritten {
        Some(pattern) => Transformed::yes(Expr::Like(Like {
            pattern: Box::new(Expr::Literal(pattern, metadata.clone())),
            escape_char: None,
            ..like
        })),
        None => Transformed::no(Expr::Like(like)),
    }
}

/// `pattern` with `escape` as its escape, rewritten with the backslash as its escape;
/// None for a pattern that ends in an unfinished escape (PostgreSQL refuses it too).
fn to_backslash(pattern: &str, escape: char) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            out.push('\\');
            out.push(chars.next()?);
        } else if c == '\\' {
            // A backslash that is not the escape is a plain character.
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::BooleanArray;
    use datafusion::prelude::SessionContext;

    use super::*;

    #[test]
    fn escapes_become_backslashes_and_backslashes_become_literal() {
        assert_eq!(to_backslash("pg/_%", '/').as_deref(), Some("pg\\_%"));
        assert_eq!(to_backslash("a//b", '/').as_deref(), Some("a\\/b"));
        assert_eq!(to_backslash("a\\b", '/').as_deref(), Some("a\\\\b"));
        assert_eq!(to_backslash("ab/", '/'), None);
    }

    #[tokio::test]
    async fn like_with_another_escape_matches_as_postgresql_does() {
        let ctx = SessionContext::new();
        ctx.add_optimizer_rule(Arc::new(LikeEscapeToBackslash));
        let batches = ctx
            .sql(
                "SELECT name NOT LIKE 'pg/_' || '%' ESCAPE '/' AS kept FROM \
                 (VALUES ('pg_catalog'), ('public'), ('pgx')) AS t(name)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let kept: Vec<bool> = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect();
        // `pg_…` is excluded; `pgx` has no underscore after `pg` and stays.
        assert_eq!(kept, [false, true, true]);
    }
}
