//! Catalog queries of drivers that DataFusion cannot plan as written, made plannable
//! without changing what they mean.
//!
//! pgjdbc's `getPrimaryKeys` and `getIndexInfo` read a field of a composite value by
//! name, `(information_schema._pg_expandarray(i.indkey)).n`; DataFusion plans a field
//! access only as a subscript (`(…)['n']`), which means the same, so every `.name`
//! access after an expression is written as one. Field names fold to lower case unless
//! quoted, as in PostgreSQL.
//!
//! pgjdbc's type lookup compares `typinput = 'pg_catalog.array_in'::regproc`.
//! datafusion-pg-catalog turns the cast into `(SELECT oid FROM pg_catalog.pg_proc WHERE
//! proname = '…')` (schema and all, so it never matches), but its `pg_type` holds the
//! `regproc` columns as the function's name, whose text is what a `regproc` shows; a
//! comparison of such a column with that lookup compares with the bare name instead.
//!
//! pgjdbc's `getTypeInfo` (and other drivers' schema readers) filter on a scalar
//! subquery over the catalog that is not aggregated: `(SELECT c.relkind = 'c' FROM
//! pg_catalog.pg_class c WHERE c.oid = t.typrelid)`. DataFusion decorrelates a scalar
//! subquery only when an aggregate guarantees one row ("Correlated scalar subquery must
//! be aggregated"). Over catalog relations, looked up by their keys, such a subquery
//! returns at most one row, and PostgreSQL itself would fail on more; so wrapping its
//! one value in `max(…)` answers the same. Only subqueries that read nothing but
//! `pg_catalog` and `information_schema` relations are touched: an analyst's subquery
//! over the data keeps PostgreSQL's meaning (and DataFusion's error).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, Expr, GroupByExpr, Query, SelectItem, SetExpr, Statement,
    Subscript, TableFactor, Value, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// `statement` with every catalog-only scalar subquery aggregated and every field
/// access by name written as a subscript; `None` when there is neither (the statement
/// stands as it is).
pub fn plannable(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut changed = false;
    let _ = visit_expressions_mut(&mut rewritten, |expr| {
        match expr {
            Expr::Subquery(query) => {
                if let Some(aggregated) = aggregated(query) {
                    *expr = aggregated;
                    changed = true;
                }
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                // After a name (`tmp.col[1]`), leading dots are the name's parts.
                let name_parts = match root.as_ref() {
                    Expr::Identifier(_) | Expr::CompoundIdentifier(_) => access_chain
                        .iter()
                        .take_while(|a| matches!(a, AccessExpr::Dot(Expr::Identifier(_))))
                        .count(),
                    _ => 0,
                };
                for access in access_chain.iter_mut().skip(name_parts) {
                    if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                        let name = match field.quote_style {
                            Some(_) => field.value.clone(),
                            None => field.value.to_ascii_lowercase(),
                        };
                        *access = AccessExpr::Subscript(Subscript::Index {
                            index: Expr::value(Value::SingleQuotedString(name)),
                        });
                        changed = true;
                    }
                }
            }
            Expr::CompoundIdentifier(parts) if is_pg_class_reloptions(parts) => {
                if let Some(none) = parse_expr("CAST(NULL AS TEXT[])") {
                    *expr = none;
                    changed = true;
                }
            }
            Expr::Function(f) if is_generate_subscripts(f) => {
                if let Some(series) = subscripts_series(f) {
                    *expr = series;
                    changed = true;
                }
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq | BinaryOperator::NotEq,
                right,
            } => {
                if is_regproc_name_column(left)
                    && let Some(name) = proc_oid_lookup(right)
                {
                    **right = Expr::value(Value::SingleQuotedString(name));
                    changed = true;
                } else if is_regproc_name_column(right)
                    && let Some(name) = proc_oid_lookup(left)
                {
                    **left = Expr::value(Value::SingleQuotedString(name));
                    changed = true;
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then_some(rewritten)
}

/// `pg_class.reloptions`, which datafusion-pg-catalog's `pg_class` lacks: no relation
/// of assay's has storage options, so it is NULL (SQLAlchemy's `get_indexes` reads it).
fn is_pg_class_reloptions(parts: &[datafusion::sql::sqlparser::ast::Ident]) -> bool {
    matches!(parts, [.., table, column]
        if table.value.eq_ignore_ascii_case("pg_class")
            && column.value.eq_ignore_ascii_case("reloptions"))
}

fn is_generate_subscripts(f: &datafusion::sql::sqlparser::ast::Function) -> bool {
    f.name
        .0
        .last()
        .is_some_and(|n| n.to_string().eq_ignore_ascii_case("generate_subscripts"))
}

/// `generate_subscripts(a, 1)` as `unnest(generate_series(1, cardinality(a)))`: the
/// subscripts of a one-dimensional array, from 1, a row each beside `unnest(a)`'s.
/// Every array in the catalog has one dimension: any other dimension has no
/// subscripts. The dimension stays in the statement, since it is often a bound
/// parameter that must keep its place.
fn subscripts_series(f: &datafusion::sql::sqlparser::ast::Function) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [
        FunctionArg::Unnamed(FunctionArgExpr::Expr(array)),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(dimension)),
    ] = list.args.as_slice()
    else {
        return None;
    };
    parse_expr(&format!(
        "unnest(generate_series(1, CASE WHEN {dimension} = 1 THEN CAST(cardinality({array}) AS BIGINT) ELSE 0 END))"
    ))
}

/// `pg_type`'s `regproc` columns, which datafusion-pg-catalog holds as names.
fn is_regproc_name_column(expr: &Expr) -> bool {
    let name = match expr {
        Expr::Identifier(id) => &id.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(id) => &id.value,
            None => return false,
        },
        _ => return false,
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "typinput"
            | "typoutput"
            | "typreceive"
            | "typsend"
            | "typmodin"
            | "typmodout"
            | "typanalyze"
    )
}

/// The function name in datafusion-pg-catalog's rewrite of `'name'::regproc`:
/// `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'name')`, schema removed.
fn proc_oid_lookup(expr: &Expr) -> Option<String> {
    let Expr::Subquery(query) = expr else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, .. } = &from.relation else {
        return None;
    };
    if !name.to_string().eq_ignore_ascii_case("pg_catalog.pg_proc") {
        return None;
    }
    let Some(Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    }) = &select.selection
    else {
        return None;
    };
    let (Expr::Identifier(column), Expr::Value(value)) = (&**left, &**right) else {
        return None;
    };
    let Value::SingleQuotedString(proc) = &value.value else {
        return None;
    };
    if !column.value.eq_ignore_ascii_case("proname") {
        return None;
    }
    let bare = proc.rsplit_once('.').map_or(proc.as_str(), |(_, p)| p);
    Some(bare.to_string())
}

/// The subquery with its one selected value in `max(…)`, when it reads only catalog
/// relations and aggregates nothing yet.
///
/// DataFusion cannot decorrelate a subquery whose *selected value* reads the outer row
/// (SQLAlchemy's `get_columns`: `(SELECT json_build_object(…, pg_attribute.attidentity
/// = 'a', …, pg_sequence.seqstart) FROM pg_sequence WHERE …)`). For such a value, each
/// of the subquery's own columns in it becomes its own aggregated lookup, and the value
/// is computed outside, where the outer row is: `CASE WHEN (SELECT count(*) FROM … WHERE
/// …) > 0 THEN json_build_object(…, pg_attribute.attidentity = 'a', …, (SELECT
/// max(pg_sequence.seqstart) FROM … WHERE …)) END`, the same at most one row.
fn aggregated(query: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    let no_grouping =
        matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if !no_grouping
        || select.having.is_some()
        || select.distinct.is_some()
        || query.limit_clause.is_some()
        || select.projection.len() != 1
        || select.from.is_empty()
    {
        return None;
    }
    let relations = select
        .from
        .iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)));
    // The names the subquery's own columns are qualified with.
    let mut own = Vec::new();
    for relation in relations {
        let TableFactor::Table { name, alias, .. } = relation else {
            return None;
        };
        if !is_catalog(&name.to_string()) {
            return None;
        }
        own.push(name.to_string().to_ascii_lowercase());
        if let Some(last) = name.0.last() {
            own.push(last.to_string().to_ascii_lowercase());
        }
        if let Some(alias) = alias {
            own.push(alias.name.value.to_ascii_lowercase());
        }
    }
    let (value, alias) = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return None,
    };
    if is_aggregate(value) {
        return None;
    }
    // Conditions on the outer row alone are tested outside: DataFusion cannot
    // decorrelate them under a CASE (SQLAlchemy's `WHERE pg_attribute.atthasdef AND …`).
    let (outer_only, own_filter) = split_outer_only(select.selection.as_ref(), &own);
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    select.selection = own_filter;
    let inner = if reads_outer_row(value, &own) {
        computed_outside(value, select, &own)?
    } else {
        let wrapped = parse_expr(&format!("max({value})"))?;
        select.projection[0] = match alias {
            Some(alias) => SelectItem::ExprWithAlias {
                expr: wrapped,
                alias: alias.clone(),
            },
            None => SelectItem::UnnamedExpr(wrapped),
        };
        Expr::Subquery(Box::new(query))
    };
    match outer_only {
        Some(condition) => parse_expr(&format!("CASE WHEN {condition} THEN {inner} END")),
        None => Some(inner),
    }
}

/// `filter`'s conjuncts split into those that read only the outer row (joined with
/// AND) and the rest.
fn split_outer_only(filter: Option<&Expr>, own: &[String]) -> (Option<Expr>, Option<Expr>) {
    fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                conjuncts(left, out);
                conjuncts(right, out);
            }
            other => out.push(other.clone()),
        }
    }
    let and = |parts: Vec<Expr>| {
        parts.into_iter().reduce(|l, r| Expr::BinaryOp {
            left: Box::new(l),
            op: BinaryOperator::And,
            right: Box::new(r),
        })
    };
    let mut all = Vec::new();
    if let Some(filter) = filter {
        conjuncts(filter, &mut all);
    }
    let (outer, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| reads_only_outer(c, own));
    (and(outer), and(rest))
}

/// Whether `e` names columns, all of them qualified by relations the subquery does not
/// read, and holds no subquery.
fn reads_only_outer(e: &Expr, own: &[String]) -> bool {
    let (mut outer, mut other) = (0, 0);
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |e| {
        match e {
            Expr::CompoundIdentifier(_) => match qualifier(e) {
                Some(q) if !own.contains(&q) => outer += 1,
                _ => other += 1,
            },
            Expr::Identifier(_)
            | Expr::Subquery(_)
            | Expr::Exists { .. }
            | Expr::InSubquery { .. } => other += 1,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    outer > 0 && other == 0
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

/// The qualifier of a qualified column (`pg_catalog.pg_attribute` of
/// `pg_catalog.pg_attribute.attname`), lower case; `None` for a bare name.
fn qualifier(expr: &Expr) -> Option<String> {
    let Expr::CompoundIdentifier(parts) = expr else {
        return None;
    };
    let (_, qualifier) = parts.split_last()?;
    (!qualifier.is_empty()).then(|| {
        qualifier
            .iter()
            .map(|p| p.value.to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// Whether `value` names a column qualified by a relation the subquery does not read.
fn reads_outer_row(value: &Expr, own: &[String]) -> bool {
    let mut outer = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(value, |e| {
        if let Some(q) = qualifier(e)
            && !own.contains(&q)
        {
            outer = true;
        }
        ControlFlow::<()>::Continue(())
    });
    outer
}

/// `value` evaluated where the outer row is (see [`aggregated`]).
fn computed_outside(
    value: &Expr,
    select: &datafusion::sql::sqlparser::ast::Select,
    own: &[String],
) -> Option<Expr> {
    let from = select
        .from
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let filter = select
        .selection
        .as_ref()
        .map(|w| format!(" WHERE {w}"))
        .unwrap_or_default();
    let mut outside = value.clone();
    let mut failed = false;
    let _ = visit_expressions_mut(&mut outside, |e| {
        if let Some(q) = qualifier(e)
            && own.contains(&q)
        {
            match parse_expr(&format!("(SELECT max({e}) FROM {from}{filter})")) {
                Some(lookup) => *e = lookup,
                None => failed = true,
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if failed {
        return None;
    }
    parse_expr(&format!(
        "CASE WHEN (SELECT count(*) FROM {from}{filter}) > 0 THEN {outside} END"
    ))
}

/// A relation of the system catalogs (`pg_catalog.pg_class`, `information_schema.…`,
/// or an unqualified `pg_…`).
fn is_catalog(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let name = name.trim_matches('"');
    name.starts_with("pg_catalog.")
        || name.starts_with("information_schema.")
        || (!name.contains('.') && name.starts_with("pg_"))
}

fn is_aggregate(expr: &Expr) -> bool {
    let Expr::Function(f) = expr else {
        return false;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    matches!(
        name.rsplit('.').next().unwrap_or(&name),
        "count"
            | "sum"
            | "min"
            | "max"
            | "avg"
            | "array_agg"
            | "string_agg"
            | "bool_and"
            | "bool_or"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> Option<String> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        plannable(&statement).map(|s| s.to_string())
    }

    #[test]
    fn catalog_scalar_subqueries_are_aggregated_and_nothing_else_is() {
        // pgjdbc 42.5's getTypeInfo filter.
        let jdbc = "SELECT t.typname, t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n \
                    ON (t.typnamespace = n.oid) WHERE n.nspname != 'pg_toast' AND (t.typrelid = 0 \
                    OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid))";
        let got = rewrite(jdbc).unwrap();
        assert!(
            got.contains("(SELECT max(c.relkind = 'c') FROM pg_catalog.pg_class"),
            "{got}"
        );
        // Already aggregated, over the data, or no subquery: left alone.
        assert_eq!(
            rewrite(
                "SELECT (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.oid = t.oid) FROM pg_catalog.pg_type t"
            ),
            None
        );
        assert_eq!(
            rewrite(
                "SELECT (SELECT s.category FROM styles s WHERE s.style_id = d.style_id) FROM decisions d"
            ),
            None
        );
        assert_eq!(rewrite("SELECT 1"), None);
    }

    #[test]
    fn field_access_by_name_becomes_a_subscript() {
        // pgjdbc 42.5's getPrimaryKeys.
        let got = rewrite(
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS key_seq, \
             (result.KEYS).\"X\" FROM pg_catalog.pg_index i",
        )
        .unwrap();
        assert!(
            got.contains("(information_schema._pg_expandarray(i.indkey))['n']"),
            "{got}"
        );
        assert!(got.contains("(result.KEYS)['X']"), "{got}");
        // A qualified column name is not a field access, also before a subscript.
        assert_eq!(rewrite("SELECT s.style_id FROM styles s"), None);
        assert_eq!(rewrite("SELECT tmp.opts[1] FROM t AS tmp"), None);
        let got = rewrite("SELECT tmp.opts[1].x FROM t AS tmp").unwrap();
        assert!(got.contains("tmp.opts[1]['x']"), "{got}");
    }

    #[test]
    fn regproc_columns_compare_with_the_function_name() {
        // pgjdbc 42.5's type lookup, as datafusion-pg-catalog hands it on.
        let got = rewrite(
            "SELECT typinput = (SELECT oid FROM pg_catalog.pg_proc WHERE proname = \
             'pg_catalog.array_in') AS is_array FROM pg_catalog.pg_type",
        )
        .unwrap();
        assert!(got.contains("typinput = 'array_in'"), "{got}");
        // An oid column keeps the oid lookup.
        let got = rewrite(
            "SELECT p.oid = (SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'array_in') \
             FROM pg_catalog.pg_proc p",
        )
        .unwrap();
        assert!(got.contains("p.oid = (SELECT max(oid)"), "{got}");
    }

    #[test]
    fn generate_subscripts_becomes_a_series_beside_unnest() {
        let got = rewrite(
            "SELECT unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, $1) AS ord \
             FROM pg_catalog.pg_index i",
        )
        .unwrap();
        assert!(
            got.contains(
                "unnest(generate_series(1, CASE WHEN $1 = 1 THEN CAST(cardinality(i.indkey) AS BIGINT) ELSE 0 END)) AS ord"
            ),
            "{got}"
        );
    }

    #[test]
    fn pg_class_reloptions_is_null() {
        let got =
            rewrite("SELECT pg_catalog.pg_class.reloptions, x.reloptions FROM pg_catalog.pg_class")
                .unwrap();
        assert!(
            got.contains("SELECT CAST(NULL AS TEXT[]), x.reloptions"),
            "{got}"
        );
    }

    #[test]
    fn conditions_on_the_outer_row_alone_are_tested_outside() {
        // SQLAlchemy 2.1's get_columns: the column default.
        let got = rewrite(
            "SELECT CASE WHEN a.atthasdef THEN (SELECT pg_catalog.pg_get_expr(d.adbin, \
             d.adrelid) FROM pg_catalog.pg_attrdef AS d WHERE a.atthasdef AND d.adrelid = \
             a.attrelid) END FROM pg_catalog.pg_attribute AS a",
        )
        .unwrap();
        assert!(
            got.contains(
                "THEN CASE WHEN a.atthasdef THEN (SELECT max(pg_catalog.pg_get_expr(d.adbin, \
                 d.adrelid)) FROM pg_catalog.pg_attrdef AS d WHERE d.adrelid = a.attrelid) END"
            ),
            "{got}"
        );
    }

    #[test]
    fn a_selected_value_that_reads_the_outer_row_is_computed_outside() {
        // SQLAlchemy 2.1's get_columns, shortened.
        let got = rewrite(
            "SELECT CASE WHEN (a.attidentity != '') THEN (SELECT json_build_object('always', \
             a.attidentity = 'a', 'start', pg_catalog.pg_sequence.seqstart) AS j FROM \
             pg_catalog.pg_sequence WHERE pg_catalog.pg_sequence.seqrelid = a.attrelid) END \
             FROM pg_catalog.pg_attribute AS a",
        )
        .unwrap();
        assert!(
            got.contains(
                "CASE WHEN (SELECT count(*) FROM pg_catalog.pg_sequence WHERE \
                 pg_catalog.pg_sequence.seqrelid = a.attrelid) > 0 THEN \
                 json_build_object('always', a.attidentity = 'a', 'start', (SELECT \
                 max(pg_catalog.pg_sequence.seqstart) FROM pg_catalog.pg_sequence WHERE \
                 pg_catalog.pg_sequence.seqrelid = a.attrelid)) END"
            ),
            "{got}"
        );
    }
}
