//! FROM clauses: tables, views, subqueries and CTEs, and the joins between them.
//!
//! Inner joins (comma joins, `JOIN … ON`, `CROSS JOIN`) and the WHERE clause are
//! planned together: every condition is split at its ANDs; a condition on one table is
//! a filter on that table; an equality between the tables joined so far and the next
//! one is a join key. Tables are joined in FROM order, except that a table with a key
//! to the ones already joined goes before one without (which would be a cross join);
//! the result is projected back to FROM order. Outer joins keep their ON conditions
//! with them (join keys plus a residual), since moving those would change the result.

use std::collections::BTreeSet;

use ciuf_engine::error::nearest_name;
use ciuf_engine::expr::BinaryOp;
use ciuf_engine::{DataType, Error, Expr, JoinKind, Plan, SqlError, SqlErrorKind};
use sqlparser::ast::{self, Spanned};
use sqlparser::tokenizer::Span;

use crate::correlated::Correlated;
use crate::error::{position, sql_error, unsupported};
use crate::expr::subquery_id;
use crate::expr::{ExprCtx, Typed, filtered, key_pair};
use crate::planner::{Planner, Rel};
use crate::scope::{Scope, ScopeColumn};
use crate::types::{Affinity, Origin};

/// A condition planned over the columns of several tables side by side.
enum Conjunct {
    /// `left = right`: a join key when the sides read different tables.
    Equal(Typed, Typed),
    /// Anything else.
    Other(Typed),
}

impl Conjunct {
    fn expr(&self) -> Expr {
        match self {
            Conjunct::Equal(l, r) => Expr::binary(BinaryOp::Eq, l.expr.clone(), r.expr.clone()),
            Conjunct::Other(t) => t.expr.clone(),
        }
    }
}

/// A condition not yet planned: SQL text, or an equality built from USING.
enum Pending<'q> {
    Sql(&'q ast::Expr),
    Equal(Typed, Typed),
}

/// Splits `e` at its top-level ANDs.
pub(crate) fn split_and<'q>(e: &'q ast::Expr, out: &mut Vec<&'q ast::Expr>) {
    match e {
        ast::Expr::BinaryOp { left, op: ast::BinaryOperator::And, right } => {
            split_and(left, out);
            split_and(right, out);
        }
        ast::Expr::Nested(inner) if matches!(**inner, ast::Expr::BinaryOp { op: ast::BinaryOperator::And, .. }) => {
            split_and(inner, out)
        }
        other => out.push(other),
    }
}

/// Which of `offsets`' parts a set of column positions falls in.
fn parts_of(columns: &[usize], offsets: &[usize]) -> BTreeSet<usize> {
    columns.iter().map(|&c| offsets.partition_point(|&o| o <= c) - 1).collect()
}

impl Planner<'_> {
    /// The relation of a FROM clause with its WHERE condition applied.
    pub(crate) fn plan_from(&self, from: &[ast::TableWithJoins], selection: Option<&ast::Expr>) -> Result<Rel, Error> {
        let mut parts: Vec<Rel> = Vec::new();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        for item in from {
            let mut group = vec![self.plan_factor(&item.relation)?];
            let mut group_pending: Vec<Pending<'_>> = Vec::new();
            for join in &item.joins {
                use ast::JoinOperator as J;
                let right = self.plan_factor(&join.relation)?;
                let (kind, constraint) = match &join.join_operator {
                    J::Join(c) | J::Inner(c) => (JoinKind::Inner, c),
                    J::CrossJoin(c) => (JoinKind::Inner, c),
                    J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, c),
                    J::Right(c) | J::RightOuter(c) => (JoinKind::Right, c),
                    J::FullOuter(c) => (JoinKind::Full, c),
                    _ => {
                        return Err(unsupported("SEMI, ANTI, APPLY and ASOF joins", join.relation.span()));
                    }
                };
                if kind == JoinKind::Inner {
                    let offset: usize = group.iter().map(|r| r.scope.columns.len()).sum();
                    let left_scope = group.iter().fold(Scope::default(), |s, r| s.concat(&r.scope));
                    let mut right = right;
                    match constraint {
                        ast::JoinConstraint::On(e) => group_pending.push(Pending::Sql(e)),
                        ast::JoinConstraint::None => {}
                        ast::JoinConstraint::Using(_) | ast::JoinConstraint::Natural => {
                            for (l, r) in
                                self.using_pairs(constraint, &left_scope, &mut right, offset, join.relation.span())?
                            {
                                group_pending.push(Pending::Equal(l, r));
                            }
                        }
                        ast::JoinConstraint::UsingAlias(..) => {
                            return Err(unsupported("USING … AS", join.relation.span()));
                        }
                    }
                    group.push(right);
                } else {
                    let left = self.join_inner(std::mem::take(&mut group), std::mem::take(&mut group_pending))?;
                    group = vec![self.join_outer(left, right, kind, constraint, join.relation.span())?];
                }
            }
            parts.extend(group);
            pending.extend(group_pending);
        }
        // WHERE conjuncts with an IN (subquery) are answered after the joins, on the
        // joined rows; the others take part in choosing join keys and pushdowns.
        let mut late = Vec::new();
        if let Some(w) = selection {
            let mut conjuncts = Vec::new();
            split_and(w, &mut conjuncts);
            for c in conjuncts {
                let mut found = Vec::new();
                find_subqueries(c, &mut found);
                if found.is_empty() { pending.push(Pending::Sql(c)) } else { late.push((c, found)) }
            }
        }
        if parts.is_empty() {
            parts.push(Rel {
                plan: Plan::Values { rows: vec![ciuf_engine::Row::empty()], width: 0 },
                scope: Scope::default(),
            });
        }
        let mut rel = self.join_inner(parts, pending)?;
        for (conjunct, found) in late {
            rel = self.attach_subqueries(rel, found)?;
            let cond = ExprCtx::row(&rel.scope, self.dialect).plan_condition(conjunct)?;
            rel = Rel { plan: Plan::Filter { input: Box::new(rel.plan), predicate: cond.expr }, scope: rel.scope };
        }
        Ok(rel)
    }

    /// `rel` with a hidden column per subquery found: the answer to each `key IN (q)`
    /// and `EXISTS (q)`, the value of each scalar `(q)`. A subquery that names columns
    /// of `rel` is correlated, and planned as `correlated.rs` describes.
    pub(crate) fn attach_subqueries(&self, rel: Rel, found: Vec<Found<'_>>) -> Result<Rel, Error> {
        self.attach_subqueries_with(rel, found, None)
    }

    /// [`Planner::attach_subqueries`], with IN keys planned by `keys` if given (after
    /// an aggregate, where a key may be an aggregate call), else over `rel`.
    pub(crate) fn attach_subqueries_with(
        &self,
        mut rel: Rel,
        found: Vec<Found<'_>>,
        keys: Option<&ExprCtx>,
    ) -> Result<Rel, Error> {
        for f in found {
            if rel.scope.columns.iter().any(|c| c.mark == Some(f.id())) {
                continue;
            }
            let uncorrelated = match f {
                Found::In(key, q) => self
                    .one_column_subquery(q, "IN (subquery)")
                    .and_then(|set| self.in_set(rel.clone(), key, set, f.id(), keys)),
                Found::InTable(key, name) => {
                    // SQLite's `key IN table`: `key IN (SELECT * FROM table)`.
                    let (q, _) = crate::parse_query(&format!("SELECT * FROM {name}"))?;
                    let set = self.one_column_subquery(&q, "IN table")?;
                    rel = self.in_set(rel, key, set, f.id(), keys)?;
                    continue;
                }
                Found::Scalar(q) => self.scalar(rel.clone(), q),
                Found::Exists(q) => {
                    rel = self.correlated(rel, q, Correlated::Exists, keys)?;
                    continue;
                }
            };
            rel = match uncorrelated {
                Ok(r) => r,
                // A name the subquery cannot resolve alone may be an outer reference.
                Err(Error::Sql(s)) if matches!(s.kind, SqlErrorKind::UnknownColumn | SqlErrorKind::UnknownTable) => {
                    let (q, kind) = match f {
                        Found::In(key, q) => (q, Correlated::In(key)),
                        Found::Scalar(q) => (q, Correlated::Scalar),
                        Found::Exists(_) | Found::InTable(..) => unreachable!("handled above"),
                    };
                    self.correlated(rel, q, kind, keys)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(rel)
    }

    /// The plan of the uncorrelated one-column subquery `q` (`what` names it in errors).
    fn one_column_subquery(&self, q: &ast::Query, what: &str) -> Result<Rel, Error> {
        let span = q.span();
        let sub = self.plan_subquery(q)?;
        if sub.scope.columns.len() != 1 {
            return Err(sql_error(
                SqlErrorKind::Invalid,
                format!("{what} must give one column, not {}", sub.scope.columns.len()),
                span,
            ));
        }
        Ok(sub)
    }

    /// `rel` with one more (hidden) column: the value of the scalar subquery `q`, which
    /// must be uncorrelated and give one row (an aggregate without GROUP BY).
    fn scalar(&self, rel: Rel, q: &ast::Query) -> Result<Rel, Error> {
        let sub = self.one_column_subquery(q, "scalar subquery")?;
        let mut top = &sub.plan;
        while let Plan::Project { input, .. } = top {
            top = input;
        }
        if !matches!(top, Plan::Aggregate { group_by, .. } if group_by.is_empty()) {
            // Possibly a lookup by key, which the general path plans.
            return self.correlated(rel, q, Correlated::Scalar, None);
        }
        let c = &sub.scope.columns[0];
        let mut scope = rel.scope;
        scope.columns.push(ScopeColumn {
            qualifier: None,
            name: format!("scalar#{}", scope.columns.len()),
            ty: c.ty,
            nullable: true,
            affinity: c.affinity,
            origin: Origin::default(),
            merged: true,
            mark: Some(subquery_id(q)),
            outer: false,
        });
        // Exactly one row on the right: every row of `rel` gets its value.
        let plan = Plan::Join {
            left: Box::new(rel.plan),
            right: Box::new(sub.plan),
            kind: JoinKind::Left,
            left_keys: vec![],
            right_keys: vec![],
            residual: None,
            output: None,
        };
        Ok(Rel { plan, scope })
    }

    /// `rel` with one more (hidden) column, marked `id`: the answer to `key IN (sub)`.
    fn in_set(&self, rel: Rel, key: &ast::Expr, sub: Rel, id: usize, keys: Option<&ExprCtx>) -> Result<Rel, Error> {
        let ctx = ExprCtx::row(&rel.scope, self.dialect);
        let k = keys.unwrap_or(&ctx).plan(key)?;
        let col = Typed::column(&sub.scope, 0);
        let (k, col) = ctx.comparable(k, col, key.span())?;
        let (k, col) = key_pair(self.dialect, k, col);
        let set = Plan::Project { input: Box::new(sub.plan), exprs: vec![col.expr] };
        let mut scope = rel.scope;
        scope.columns.push(ScopeColumn {
            qualifier: None,
            name: format!("in#{}", scope.columns.len()),
            ty: DataType::Bool,
            nullable: true,
            affinity: Affinity::None,
            origin: Origin::default(),
            merged: true,
            mark: Some(id),
            outer: false,
        });
        Ok(Rel { plan: Plan::InSet { input: Box::new(rel.plan), set: Box::new(set), key: k.expr }, scope })
    }

    /// The column pairs of USING (or NATURAL): (left, right) planned over the combined
    /// columns; the right copies are hidden from unqualified names.
    fn using_pairs(
        &self,
        constraint: &ast::JoinConstraint,
        left: &Scope,
        right: &mut Rel,
        offset: usize,
        span: Span,
    ) -> Result<Vec<(Typed, Typed)>, Error> {
        let names: Vec<String> = match constraint {
            ast::JoinConstraint::Using(names) => names.iter().map(crate::ddl::object_name).collect::<Result<_, _>>()?,
            _ => right
                .scope
                .columns
                .iter()
                .filter(|c| left.columns.iter().any(|l| !l.merged && l.name.eq_ignore_ascii_case(&c.name)))
                .map(|c| c.name.clone())
                .collect(),
        };
        let mut pairs = Vec::new();
        for n in names {
            let li = left.resolve(None, &n, span)?;
            let ri = right.scope.resolve(None, &n, span)?;
            right.scope.columns[ri].merged = true;
            let r = Typed::column(&right.scope, ri);
            pairs.push((Typed::column(left, li), Typed { expr: Expr::Column(offset + ri), ..r }));
        }
        Ok(pairs)
    }

    fn plan_conjuncts(&self, pending: Vec<Pending<'_>>, scope: &Scope) -> Result<Vec<Conjunct>, Error> {
        let ctx = ExprCtx::row(scope, self.dialect);
        let mut out = Vec::new();
        for p in pending {
            match p {
                Pending::Equal(l, r) => out.push(Conjunct::Equal(l, r)),
                Pending::Sql(e) => {
                    let mut split = Vec::new();
                    split_and(e, &mut split);
                    for c in split {
                        out.push(match strip_nested(c) {
                            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } => {
                                let (l, r) = ctx.comparable(ctx.plan(left)?, ctx.plan(right)?, c.span())?;
                                Conjunct::Equal(l, r)
                            }
                            _ => Conjunct::Other(ctx.plan_condition(c)?),
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Inner-joins `parts` under `pending` conditions (see the module docs).
    fn join_inner(&self, parts: Vec<Rel>, pending: Vec<Pending<'_>>) -> Result<Rel, Error> {
        let scope = parts.iter().fold(Scope::default(), |s, r| s.concat(&r.scope));
        let mut offsets = Vec::with_capacity(parts.len());
        let mut total = 0;
        for p in &parts {
            offsets.push(total);
            total += p.scope.columns.len();
        }
        let conjuncts = self.plan_conjuncts(pending, &scope)?;
        // Conditions on one table filter that table.
        let mut parts = parts;
        let mut rest: Vec<(Conjunct, BTreeSet<usize>)> = Vec::new();
        let mut local: Vec<Vec<Expr>> = vec![Vec::new(); parts.len()];
        for c in conjuncts {
            let touched = parts_of(&c.expr().columns(), &offsets);
            if touched.len() == 1 {
                let p = *touched.iter().next().expect("one part");
                local[p].push(c.expr().remap_columns(&|i| i - offsets[p]));
            } else {
                rest.push((c, touched));
            }
        }
        for (rel, predicates) in parts.iter_mut().zip(local) {
            let input = std::mem::replace(&mut rel.plan, Plan::Values { rows: vec![], width: 0 });
            rel.plan = filtered(input, predicates);
        }
        // Join in FROM order, preferring a table with a key to those already joined.
        let widths: Vec<usize> = parts.iter().map(|p| p.scope.columns.len()).collect();
        let mut order: Vec<usize> = vec![0];
        let mut plans: Vec<Option<Plan>> = parts.into_iter().map(|p| Some(p.plan)).collect();
        let mut current = plans[0].take().expect("first part");
        // Physical position of each part's first column in `current`.
        let mut placed: Vec<Option<usize>> = vec![None; widths.len()];
        placed[0] = Some(0);
        let mut width = widths[0];
        let remap = |placed: &[Option<usize>], e: &Expr| -> Expr {
            e.remap_columns(&|c| {
                let p = offsets.partition_point(|&o| o <= c) - 1;
                placed[p].expect("part joined") + (c - offsets[p])
            })
        };
        current = apply_ready(current, &mut rest, &order, &placed, &remap);
        while order.len() < widths.len() {
            let joined: BTreeSet<usize> = order.iter().copied().collect();
            let next = (0..widths.len())
                .filter(|p| !joined.contains(p))
                .find(|&p| rest.iter().any(|(c, t)| is_key(c, t, &joined, p, &offsets)))
                .or_else(|| (0..widths.len()).find(|p| !joined.contains(p)))
                .expect("a part is left");
            let mut left_keys = Vec::new();
            let mut right_keys = Vec::new();
            let mut i = 0;
            while i < rest.len() {
                let (c, t) = &rest[i];
                if is_key(c, t, &joined, next, &offsets) {
                    let Conjunct::Equal(a, b) = &rest[i].0 else { unreachable!() };
                    let a_is_left = parts_of(&a.expr.columns(), &offsets).is_subset(&joined);
                    let (l, r) = if a_is_left { (a.clone(), b.clone()) } else { (b.clone(), a.clone()) };
                    let (l, r) = key_pair(self.dialect, l, r);
                    left_keys.push(remap(&placed, &l.expr));
                    right_keys.push(r.expr.remap_columns(&|c| c - offsets[next]));
                    rest.remove(i);
                } else {
                    i += 1;
                }
            }
            let right = plans[next].take().expect("not joined yet");
            current = Plan::Join {
                left: Box::new(current),
                right: Box::new(right),
                kind: JoinKind::Inner,
                left_keys,
                right_keys,
                residual: None,
                output: None,
            };
            placed[next] = Some(width);
            width += widths[next];
            order.push(next);
            current = apply_ready(current, &mut rest, &order, &placed, &remap);
        }
        // Conditions on no table at all (constants).
        current = filtered(current, rest.drain(..).map(|(c, _)| c.expr()).collect());
        // Back to FROM order.
        if order.windows(2).any(|w| w[0] > w[1]) {
            let exprs = (0..total).map(|c| remap(&placed, &Expr::Column(c))).collect();
            current = Plan::Project { input: Box::new(current), exprs };
        }
        Ok(Rel { plan: current, scope })
    }

    pub(crate) fn join_outer(
        &self,
        left: Rel,
        mut right: Rel,
        kind: JoinKind,
        constraint: &ast::JoinConstraint,
        span: Span,
    ) -> Result<Rel, Error> {
        let left_width = left.scope.columns.len();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        match constraint {
            ast::JoinConstraint::On(e) => pending.push(Pending::Sql(e)),
            ast::JoinConstraint::None => {
                return Err(sql_error(SqlErrorKind::Syntax, "an outer join needs ON or USING", span));
            }
            ast::JoinConstraint::Using(_) | ast::JoinConstraint::Natural => {
                if kind == JoinKind::Full {
                    return Err(unsupported("FULL JOIN with USING or NATURAL", span));
                }
                for (l, r) in self.using_pairs(constraint, &left.scope, &mut right, left_width, span)? {
                    pending.push(Pending::Equal(l, r));
                }
                if kind == JoinKind::Right {
                    // The right copies are the ones that are never NULL-extended.
                    for c in right.scope.columns.iter_mut() {
                        c.merged = false;
                    }
                }
            }
            ast::JoinConstraint::UsingAlias(..) => return Err(unsupported("USING … AS", span)),
        }
        let left_scope =
            if matches!(kind, JoinKind::Right | JoinKind::Full) { left.scope.nullable() } else { left.scope };
        let right_scope =
            if matches!(kind, JoinKind::Left | JoinKind::Full) { right.scope.nullable() } else { right.scope };
        let scope = left_scope.concat(&right_scope);
        let offsets = [0, left_width];
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        let mut residual: Option<Expr> = None;
        for c in self.plan_conjuncts(pending, &scope)? {
            if let Conjunct::Equal(a, b) = &c {
                let (pa, pb) = (parts_of(&a.expr.columns(), &offsets), parts_of(&b.expr.columns(), &offsets));
                let split = match (pa.iter().collect::<Vec<_>>().as_slice(), pb.iter().collect::<Vec<_>>().as_slice()) {
                    ([0], [1]) => Some((a.clone(), b.clone())),
                    ([1], [0]) => Some((b.clone(), a.clone())),
                    _ => None,
                };
                if let Some((l, r)) = split {
                    let (l, r) = key_pair(self.dialect, l, r);
                    left_keys.push(l.expr);
                    right_keys.push(r.expr.remap_columns(&|i| i - left_width));
                    continue;
                }
            }
            let e = c.expr();
            residual = Some(match residual {
                None => e,
                Some(prev) => Expr::binary(BinaryOp::And, prev, e),
            });
        }
        Ok(Rel {
            plan: Plan::Join {
                left: Box::new(left.plan),
                right: Box::new(right.plan),
                kind,
                left_keys,
                right_keys,
                residual,
                output: None,
            },
            scope,
        })
    }

    /// The relation a FROM item names.
    fn plan_factor(&self, factor: &ast::TableFactor) -> Result<Rel, Error> {
        match factor {
            ast::TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                ..
            } => {
                if args.is_some() {
                    return Err(unsupported(format!("table function {name}"), name.span()));
                }
                // What would change which rows the table gives is refused, never ignored
                // (INDEXED BY and other index hints only choose a plan).
                let extra = if sample.is_some() {
                    Some("TABLESAMPLE")
                } else if version.is_some() {
                    Some("FOR SYSTEM_TIME / a table version")
                } else if !partitions.is_empty() {
                    Some("PARTITION (…)")
                } else if *with_ordinality || json_path.is_some() || !with_hints.is_empty() {
                    Some("WITH ORDINALITY, a JSON path or table hints")
                } else {
                    None
                };
                if let Some(what) = extra {
                    return Err(unsupported(format!("{what} on {name}"), name.span()));
                }
                let crate::ddl::TableName { catalog: table, qualifier: own } =
                    crate::ddl::table_name(name, self.dialect)?;
                let qualifier = alias.as_ref().map_or(own, |a| a.name.value.clone());
                let rel = if let Some(cte) = self.cte(&table) {
                    Rel { plan: cte.plan, scope: cte.scope.requalify(Some(&qualifier)) }
                } else if let Some(def) = self.catalog.view(&table) {
                    let mut plan = def.plan.clone();
                    if def.visible < def.columns.len() {
                        plan = Plan::Project {
                            input: Box::new(plan),
                            exprs: (0..def.visible).map(Expr::Column).collect(),
                        };
                    }
                    let mut scope = Scope::from_columns(&def.columns[..def.visible], Some(&qualifier));
                    // The view's own query says what each column is to SQLite (its
                    // affinity); planned afresh, apart from this query's WITH names.
                    let planned = crate::parse_query(&def.sql)
                        .or_else(|_| view_query(&def.sql))
                        .and_then(|(q, _)| Planner::new(self.catalog).plan_subquery(&q));
                    if let Ok(rel) = planned
                        && rel.scope.columns.len() == scope.columns.len()
                    {
                        for (c, p) in scope.columns.iter_mut().zip(rel.scope.columns) {
                            (c.affinity, c.origin) = (p.affinity, p.origin);
                        }
                    }
                    self.read_as_subquery(Rel { plan, scope })
                } else if let Some((id, schema)) = self.catalog.table(&table) {
                    Rel {
                        plan: Plan::Scan { table: id, name: schema.name.clone(), width: schema.columns.len() },
                        scope: Scope::from_columns(&schema.columns, Some(&qualifier)),
                    }
                } else {
                    let mut known = self.catalog.relation_names();
                    known.extend(self.cte_names());
                    return Err(SqlError::new(
                        SqlErrorKind::UnknownTable,
                        format!("unknown table {}", crate::shown(&table)),
                    )
                    .at(position(name.span()))
                    .suggest(nearest_name(&table, known.iter().map(String::as_str)))
                    .into());
                };
                let mut rel = rename_columns(rel, alias.as_ref(), name.span())?;
                if qualifier == crate::KEYS_ALIAS {
                    // A partial view's keys: joined, never shown.
                    rel.scope.columns.iter_mut().for_each(|c| c.merged = true);
                }
                Ok(rel)
            }
            ast::TableFactor::Derived { lateral, subquery, alias, sample } => {
                if *lateral {
                    return Err(unsupported("LATERAL", factor.span()));
                }
                if sample.is_some() {
                    return Err(unsupported("TABLESAMPLE", factor.span()));
                }
                let rel = self.read_as_subquery(self.plan_subquery(subquery)?);
                let q = alias.as_ref().map(|a| a.name.value.clone());
                let rel = Rel { plan: rel.plan, scope: rel.scope.requalify(q.as_deref()) };
                rename_columns(rel, alias.as_ref(), factor.span())
            }
            ast::TableFactor::NestedJoin { table_with_joins, alias } => {
                if alias.is_some() {
                    return Err(unsupported("an alias on a parenthesized join", factor.span()));
                }
                self.plan_from(std::slice::from_ref(table_with_joins), None)
            }
            other => Err(unsupported(format!("FROM item {other}"), other.span())),
        }
    }
}

/// The query of a `CREATE VIEW … AS query` statement.
fn view_query(sql: &str) -> Result<(Box<ast::Query>, String), Error> {
    match crate::parse(sql)?.pop() {
        Some(crate::Statement::CreateView { query, sql, .. }) => Ok((query, sql)),
        _ => Err(unsupported("a view whose SQL is not a query", Span::empty())),
    }
}

fn strip_nested(e: &ast::Expr) -> &ast::Expr {
    match e {
        ast::Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

/// Renames columns as `alias (a, b, …)` says.
fn rename_columns(mut rel: Rel, alias: Option<&ast::TableAlias>, span: Span) -> Result<Rel, Error> {
    let Some(alias) = alias else { return Ok(rel) };
    if alias.columns.len() > rel.scope.columns.len() {
        return Err(sql_error(
            SqlErrorKind::Invalid,
            format!(
                "{} has {} columns but {} names are given",
                alias.name.value,
                rel.scope.columns.len(),
                alias.columns.len()
            ),
            span,
        ));
    }
    for (c, name) in rel.scope.columns.iter_mut().zip(&alias.columns) {
        c.name = name.name.value.clone();
    }
    Ok(rel)
}

/// Whether conjunct `c` (touching parts `t`) is an equality between the joined parts
/// and part `next`.
fn is_key(c: &Conjunct, t: &BTreeSet<usize>, joined: &BTreeSet<usize>, next: usize, offsets: &[usize]) -> bool {
    let Conjunct::Equal(a, b) = c else {
        return false;
    };
    if !t.contains(&next) {
        return false;
    }
    let (pa, pb) = (parts_of(&a.expr.columns(), offsets), parts_of(&b.expr.columns(), offsets));
    let only_next = |p: &BTreeSet<usize>| p.len() == 1 && p.contains(&next);
    let in_joined = |p: &BTreeSet<usize>| !p.is_empty() && p.is_subset(joined);
    (in_joined(&pa) && only_next(&pb)) || (in_joined(&pb) && only_next(&pa))
}

/// Applies, as filters over `current`, the conjuncts all of whose parts are joined.
fn apply_ready(
    current: Plan,
    rest: &mut Vec<(Conjunct, BTreeSet<usize>)>,
    order: &[usize],
    placed: &[Option<usize>],
    remap: &impl Fn(&[Option<usize>], &Expr) -> Expr,
) -> Plan {
    let joined: BTreeSet<usize> = order.iter().copied().collect();
    let mut ready = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        if !rest[i].1.is_empty() && rest[i].1.is_subset(&joined) {
            let (c, _) = rest.remove(i);
            ready.push(remap(placed, &c.expr()));
        } else {
            i += 1;
        }
    }
    filtered(current, ready)
}

/// A subquery inside an expression.
pub(crate) enum Found<'e> {
    /// `key IN (query)`.
    In(&'e ast::Expr, &'e ast::Query),
    /// `(query)` as a value.
    Scalar(&'e ast::Query),
    /// `EXISTS (query)`.
    Exists(&'e ast::Query),
    /// `key IN table` (SQLite).
    InTable(&'e ast::Expr, &'e ast::ObjectName),
}

impl Found<'_> {
    /// What marks the subquery's answer column.
    fn id(&self) -> usize {
        match self {
            Found::In(_, q) | Found::Scalar(q) | Found::Exists(q) => subquery_id(q),
            Found::InTable(_, name) => crate::expr::in_table_id(name),
        }
    }
}

/// The IN, EXISTS and scalar subqueries in `e`, outside nested subqueries.
pub(crate) fn find_subqueries<'e>(e: &'e ast::Expr, out: &mut Vec<Found<'e>>) {
    use ast::Expr as E;
    match e {
        E::In { expr, target: ast::InTarget::Subquery(q), .. } => {
            find_subqueries(expr, out);
            out.push(Found::In(expr, q));
        }
        E::Subquery(q) => out.push(Found::Scalar(q)),
        E::Exists { subquery, .. } => out.push(Found::Exists(subquery)),
        E::In { expr, target: ast::InTarget::Table { name, args: None }, .. } => {
            find_subqueries(expr, out);
            out.push(Found::InTable(expr, name));
        }
        E::In { expr, target: ast::InTarget::List(list), .. } => {
            find_subqueries(expr, out);
            list.iter().for_each(|x| find_subqueries(x, out));
        }
        E::BinaryOp { left, right, .. } => {
            find_subqueries(left, out);
            find_subqueries(right, out);
        }
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotTrue(expr)
        | E::IsNotFalse(expr)
        | E::Cast { expr, .. } => find_subqueries(expr, out),
        E::Between { expr, low, high, .. } => {
            find_subqueries(expr, out);
            find_subqueries(low, out);
            find_subqueries(high, out);
        }
        E::Case { operand, conditions, else_result, .. } => {
            if let Some(o) = operand {
                find_subqueries(o, out);
            }
            for w in conditions {
                find_subqueries(&w.condition, out);
                find_subqueries(&w.result, out);
            }
            if let Some(e) = else_result {
                find_subqueries(e, out);
            }
        }
        E::Function(f) => {
            if let ast::FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = a {
                        find_subqueries(x, out);
                    }
                }
            }
        }
        _ => {}
    }
}
