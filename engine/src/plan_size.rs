//! How large a query's plan will be once its WITH clauses are inlined, measured on the
//! parsed text before the planner runs.
//!
//! DataFusion plans a CTE once per reference, so `a1 AS (SELECT … FROM a0 UNION ALL
//! SELECT … FROM a0)`, `a2` over `a1` twice, and so on, doubles the plan at each step: 40
//! steps (1.2 KB of text) ask for 2⁴⁰ plan nodes. That memory is outside any query's
//! pool and planning never yields to a time limit, so it must be refused before it
//! starts; counting table references after inlining is exact about the doubling and
//! cheap (one pass over the syntax tree).

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{ObjectName, Query, Visit, Visitor};

/// Table references `statement` plans into with every CTE reference inlined.
pub(crate) fn inlined_relations(statement: &DfStatement) -> usize {
    match statement {
        DfStatement::Statement(s) => count(|v| s.visit(v)),
        DfStatement::Explain(e) => inlined_relations(&e.statement),
        DfStatement::CopyTo(c) => match &c.source {
            CopyToSource::Query(q) => count(|v| q.visit(v)),
            CopyToSource::Relation(_) => 1,
        },
        _ => 1,
    }
}

fn count(walk: impl FnOnce(&mut Inliner) -> ControlFlow<()>) -> usize {
    let mut inliner = Inliner {
        scopes: vec![Scope::default()],
    };
    let _ = walk(&mut inliner);
    inliner.scopes.iter().map(|s| s.relations).sum()
}

/// One query being walked: the CTEs it defines and what its parts add up to so far.
#[derive(Default)]
struct Scope {
    /// The bodies of this query's CTEs, by address, to recognise them when they end.
    cte_bodies: Vec<(*const Query, String)>,
    /// Each CTE defined so far, with the references one use of it inlines.
    ctes: HashMap<String, usize>,
    relations: usize,
}

struct Inliner {
    scopes: Vec<Scope>,
}

impl Visitor for Inliner {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let cte_bodies = query
            .with
            .iter()
            .flat_map(|w| &w.cte_tables)
            .map(|cte| (&*cte.query as *const Query, name(&cte.alias.name.value)))
            .collect();
        self.scopes.push(Scope {
            cte_bodies,
            ..Scope::default()
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let done = self.scopes.pop().expect("pushed by pre_visit_query");
        let parent = self.scopes.last_mut().expect("the root scope stays");
        let body = query as *const Query;
        match parent.cte_bodies.iter().find(|(b, _)| *b == body) {
            // A definition costs nothing until it is referenced; then at least one
            // node, a table or not (`SELECT 1`).
            Some((_, cte)) => {
                parent.ctes.insert(cte.clone(), done.relations.max(1));
            }
            // A subquery is planned once, where it stands.
            None => parent.relations = parent.relations.saturating_add(done.relations),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        // Only an unqualified name can be a CTE; the nearest definition wins.
        let inlined = match relation.0.as_slice() {
            [part] => part.as_ident().and_then(|ident| {
                let cte = name(&ident.value);
                self.scopes
                    .iter()
                    .rev()
                    .find_map(|s| s.ctes.get(&cte).copied())
            }),
            _ => None,
        };
        let top = self.scopes.last_mut().expect("the root scope stays");
        top.relations = top.relations.saturating_add(inlined.unwrap_or(1));
        ControlFlow::Continue(())
    }
}

/// Names compared as the planner folds unquoted ones; folding quoted ones too can only
/// over-count, never let a larger plan through.
fn name(ident: &str) -> String {
    ident.to_lowercase()
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    fn relations(sql: &str) -> usize {
        let mut statements = DFParser::parse_sql(sql).unwrap();
        inlined_relations(&statements.pop_front().unwrap())
    }

    fn doubling(steps: usize) -> String {
        let mut sql = String::from("WITH a0 AS (SELECT 1 AS x)");
        for i in 1..=steps {
            sql += &format!(
                ", a{i} AS (SELECT x FROM a{p} UNION ALL SELECT x FROM a{p})",
                p = i - 1
            );
        }
        sql + &format!(" SELECT count(*) FROM a{steps}")
    }

    #[test]
    fn doubling_ctes_count_every_inlined_reference() {
        assert_eq!(relations("SELECT * FROM styles"), 1);
        assert_eq!(relations("SELECT * FROM styles s JOIN events e ON true"), 2);
        assert_eq!(relations(&doubling(3)), 8);
        assert_eq!(relations(&doubling(40)), 1 << 40);
        assert_eq!(relations(&format!("EXPLAIN {}", doubling(10))), 1024);
        // Hidden in a subquery, or defined in a subquery and used in another.
        assert_eq!(
            relations(&format!("SELECT * FROM ({}) t", doubling(20))),
            1 << 20
        );
        assert_eq!(
            relations(
                "WITH c AS (SELECT * FROM styles) \
                 SELECT * FROM c WHERE style_id IN (SELECT style_id FROM c) AND EXISTS (SELECT 1 FROM events)"
            ),
            3
        );
        // An inner definition shadows an outer one of the same name.
        assert_eq!(
            relations(
                "WITH c AS (SELECT * FROM styles a, styles b) \
                 SELECT * FROM (WITH c AS (SELECT 1) SELECT * FROM c) t"
            ),
            1
        );
    }
}
