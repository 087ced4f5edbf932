//! Queries: SELECT (projection, GROUP BY, HAVING, DISTINCT), set operations, VALUES,
//! WITH, ORDER BY and LIMIT.
//!
//! ORDER BY may name an output column (by position or alias) or any expression over
//! the input; the latter is computed as a *hidden* column after the visible ones, which
//! the view keeps for ordering and never shows. LIMIT/OFFSET become a top-k node over
//! that order; ORDER BY alone only orders what `query()` returns.

use ciuf_engine::expr::{BinaryOp, Func};
use ciuf_engine::plan::{AggFunc, AggregateCall, EmptyRow, SetOpKind, SortKey};
use ciuf_engine::{DataType, Dialect, Error, Expr, Plan, Row, SqlErrorKind, Value};
use sqlparser::ast::{self, Spanned};

use crate::aggregate::{AggContext, collect_aggregates, contains_aggregate, plan_call};
use crate::error::{sql_error, type_error, unsupported};
use crate::expr::{ExprCtx, Typed};
use crate::planner::{Planner, Rel};
use crate::scope::{Scope, ScopeColumn};
use crate::types::{Affinity, Arms, Origin, common_type, same_representation, sqlite_result_type};

/// A planned query: its relation (visible columns, then hidden sort columns), and the
/// order its rows are read in.
#[derive(Debug)]
pub(crate) struct QueryOut {
    pub rel: Rel,
    pub visible: usize,
    pub order: Vec<SortKey>,
    /// For a parameterized query: the output columns holding the key's components.
    pub keys: Vec<usize>,
    /// For a parameterized global aggregate: what a key with no rows reads as.
    pub empty: Option<EmptyRow>,
}

impl Planner<'_> {
    /// Plans a whole query, keeping its ORDER BY.
    pub(crate) fn plan_query(&self, q: &ast::Query) -> Result<QueryOut, Error> {
        self.plan_keyed(q, &[])
    }

    /// Plans a whole query with the key expressions `keys` (see params.rs) as hidden
    /// output columns after the others.
    pub(crate) fn plan_keyed(&self, q: &ast::Query, keys: &[ast::Expr]) -> Result<QueryOut, Error> {
        let depth = self.cte_depth();
        let out = self.plan_query_in_scope(q, keys);
        self.pop_ctes(depth);
        out
    }

    /// `rel` (a subquery, a WITH query or a named view) as the query that reads it in
    /// its FROM clause sees it. Under SQLite a compound's column of REAL affinity gives
    /// its integers as reals there, as a table's REAL column would (at the top level
    /// each value keeps its class).
    pub(crate) fn read_as_subquery(&self, rel: Rel) -> Rel {
        let real = |c: &ScopeColumn| {
            self.dialect == Dialect::Sqlite
                && c.affinity == Affinity::Real
                && c.origin.arms.is_some()
                && c.ty != DataType::Double
        };
        if !rel.scope.columns.iter().any(real) {
            return rel;
        }
        let exprs = (0..rel.scope.columns.len())
            .map(|i| {
                let t = Typed::column(&rel.scope, i);
                if real(&rel.scope.columns[i]) { t.coerce(DataType::Double).expr } else { t.expr }
            })
            .collect();
        let mut scope = rel.scope;
        for c in scope.columns.iter_mut().filter(|c| real(c)) {
            c.ty = DataType::Double;
        }
        Rel { plan: Plan::Project { input: Box::new(rel.plan), exprs }, scope }
    }

    /// Plans a query used as a relation: its visible columns only.
    pub(crate) fn plan_subquery(&self, q: &ast::Query) -> Result<Rel, Error> {
        let out = self.plan_query(q)?;
        let mut rel = out.rel;
        if out.visible < rel.scope.columns.len() {
            rel.plan = Plan::Project { input: Box::new(rel.plan), exprs: (0..out.visible).map(Expr::Column).collect() };
            rel.scope.columns.truncate(out.visible);
        }
        Ok(rel)
    }

    fn plan_query_in_scope(&self, q: &ast::Query, keys: &[ast::Expr]) -> Result<QueryOut, Error> {
        if let Some(with) = &q.with {
            if with.recursive {
                return Err(unsupported("WITH RECURSIVE", with.with_token.0.span));
            }
            for (i, cte) in with.cte_tables.iter().enumerate() {
                let name = &cte.alias.name;
                if with.cte_tables[..i].iter().any(|c| c.alias.name.value.eq_ignore_ascii_case(&name.value)) {
                    return Err(sql_error(
                        SqlErrorKind::Catalog,
                        format!("WITH names {} twice", crate::shown(&name.value)),
                        name.span,
                    ));
                }
                let rel = self.read_as_subquery(self.plan_subquery(&cte.query)?);
                let mut scope = rel.scope.requalify(Some(&cte.alias.name.value));
                if cte.alias.columns.len() > scope.columns.len() {
                    return Err(sql_error(
                        SqlErrorKind::Invalid,
                        format!("WITH {} names more columns than its query has", cte.alias.name.value),
                        cte.alias.name.span,
                    ));
                }
                for (c, n) in scope.columns.iter_mut().zip(&cte.alias.columns) {
                    c.name = n.name.value.clone();
                }
                self.push_cte(cte.alias.name.value.clone(), Rel { plan: rel.plan, scope });
            }
        }
        if let Some(f) = &q.fetch {
            return Err(unsupported(format!("{f}"), q.span()));
        }
        if !q.locks.is_empty() || q.for_clause.is_some() || !q.pipe_operators.is_empty() {
            return Err(unsupported("FOR UPDATE, FOR XML and pipe operators", q.span()));
        }
        let order_items: &[ast::OrderByExpr] = match &q.order_by {
            None => &[],
            Some(ob) => match &ob.kind {
                ast::OrderByKind::Expressions(items) => items,
                ast::OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL", q.span())),
            },
        };
        let mut out = match &*q.body {
            ast::SetExpr::Select(s) => self.plan_select(s, order_items, keys)?,
            _ if !keys.is_empty() => {
                return Err(unsupported("parameters in a query other than one SELECT", q.span()));
            }
            body => {
                let rel = self.plan_set_expr(body)?;
                let visible = rel.scope.columns.len();
                let mut order = Vec::new();
                for item in order_items {
                    let column = self.output_position(&item.expr, &rel.scope)?;
                    order.push(self.sort_key(column, item));
                }
                QueryOut { rel, visible, order, keys: Vec::new(), empty: None }
            }
        };
        let (limit, offset) = self.limit_clause(q.limit_clause.as_ref())?;
        if (limit.is_some() || offset > 0) && !keys.is_empty() {
            return Err(unsupported("LIMIT or OFFSET in a parameterized query", q.span()));
        }
        if limit.is_some() || offset > 0 {
            out.rel.plan = Plan::TopK { input: Box::new(out.rel.plan), order: out.order.clone(), limit, offset };
        }
        Ok(out)
    }

    fn sort_key(&self, column: usize, item: &ast::OrderByExpr) -> SortKey {
        let descending = matches!(item.options.sort, Some(ast::OrderBySort::Desc));
        let asc_first = self.dialect.nulls_first_when_ascending();
        let nulls_first = item.options.nulls_first.unwrap_or(if descending { !asc_first } else { asc_first });
        SortKey { column, descending, nulls_first }
    }

    /// An ORDER BY item of a set operation: a position or an output name.
    fn output_position(&self, e: &ast::Expr, scope: &Scope) -> Result<usize, Error> {
        if let Some(p) = position_literal(e)? {
            return check_position(p, scope.columns.len(), e);
        }
        match e {
            ast::Expr::Identifier(id) => {
                scope.columns.iter().position(|c| c.name.eq_ignore_ascii_case(&id.value)).ok_or_else(|| {
                    sql_error(
                        SqlErrorKind::UnknownColumn,
                        format!("ORDER BY {} is not an output column", id.value),
                        id.span,
                    )
                })
            }
            other => Err(unsupported("ORDER BY expressions on UNION (order by an output column)", other.span())),
        }
    }

    fn limit_clause(&self, clause: Option<&ast::LimitClause>) -> Result<(Option<u64>, u64), Error> {
        let (limit, offset) = match clause {
            None => return Ok((None, 0)),
            Some(ast::LimitClause::LimitOffset { limit, offset, limit_by }) => {
                if !limit_by.is_empty() {
                    return Err(unsupported("LIMIT … BY", limit_by[0].span()));
                }
                (limit.as_ref(), offset.as_ref().map(|o| &o.value))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit), Some(offset)),
        };
        let eval = |e: &ast::Expr| -> Result<i64, Error> {
            let empty = Scope::default();
            let t = ExprCtx::row(&empty, self.dialect).plan(e)?;
            if !t.expr.is_constant() {
                return Err(type_error("LIMIT and OFFSET take a constant integer", e.span()));
            }
            match crate::expr::constant_value(&t.expr, e.span())? {
                Value::Int(i) => Ok(i),
                _ => Err(type_error("LIMIT and OFFSET take a constant integer", e.span())),
            }
        };
        // SQLite: a negative LIMIT means no limit, a negative OFFSET none.
        let limit = limit.map(eval).transpose()?.and_then(|l| u64::try_from(l).ok());
        let offset = offset.map(eval).transpose()?.map_or(0, |o| o.max(0) as u64);
        Ok((limit, offset))
    }

    /// Plans a SELECT with the ORDER BY items of its query.
    fn plan_select(
        &self,
        s: &ast::Select,
        order_items: &[ast::OrderByExpr],
        keys: &[ast::Expr],
    ) -> Result<QueryOut, Error> {
        reject_select_extras(s)?;
        if s.projection.is_empty() {
            return Err(sql_error(SqlErrorKind::Syntax, "a query needs a select list (SELECT … FROM)", s.span()));
        }
        let mut input = self.plan_from(&s.from, s.selection.as_ref())?;
        let group_exprs: &[ast::Expr] = match &s.group_by {
            ast::GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(unsupported("GROUP BY modifiers (ROLLUP, CUBE, TOTALS)", s.span()));
                }
                exprs
            }
            ast::GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL", s.span())),
        };
        let mut calls = Vec::new();
        for item in &s.projection {
            if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } = item {
                collect_aggregates(e, &mut calls)?;
            }
        }
        if let Some(h) = &s.having {
            collect_aggregates(h, &mut calls)?;
        }
        for o in order_items {
            collect_aggregates(&o.expr, &mut calls)?;
        }
        let aggregating = !group_exprs.is_empty() || !calls.is_empty() || s.having.is_some();
        // Subqueries in the select list, HAVING and ORDER BY: joined in as hidden
        // columns, below the projection (and after the aggregate, if any).
        let mut found = Vec::new();
        for item in &s.projection {
            if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } = item {
                crate::from::find_subqueries(e, &mut found);
            }
        }
        if let Some(h) = &s.having {
            crate::from::find_subqueries(h, &mut found);
        }
        for o in order_items {
            crate::from::find_subqueries(&o.expr, &mut found);
        }
        if !aggregating && !found.is_empty() {
            input = self.attach_subqueries(input, std::mem::take(&mut found))?;
        }
        let row_ctx = ExprCtx::row(&input.scope, self.dialect);
        let mut agg_ctx = AggContext::default();
        let mut plan = input.plan;
        let global = aggregating && group_exprs.is_empty();
        if aggregating {
            // A parameterized aggregate groups by its key too: each key's own answer.
            for k in keys {
                let t = row_ctx.plan(k)?;
                if !agg_ctx.groups.iter().any(|x| x.expr == t.expr) {
                    agg_ctx.groups.push(t);
                }
            }
            // A key is looked up by the value bound to it, as it is.
            let key_groups = agg_ctx.groups.len();
            for g in group_exprs {
                let g = group_expr(g, s, &input.scope)?;
                if contains_aggregate(g) {
                    return Err(sql_error(SqlErrorKind::Invalid, "GROUP BY cannot contain an aggregate", g.span()));
                }
                let t = row_ctx.plan(g)?;
                if !agg_ctx.groups.iter().any(|x| x.expr == t.expr) {
                    agg_ctx.groups.push(t);
                }
            }
            let mut aggregates = Vec::new();
            for c in &calls {
                let (call, ty, nullable) = plan_call(c, &row_ctx)?;
                aggregates.push(call);
                agg_ctx.calls.push((c.clone(), ty, nullable));
            }
            plan = agg_ctx.plan(plan, aggregates, key_groups);
            if !found.is_empty() {
                let width = plan.width();
                let out = Rel { plan, scope: agg_ctx.output_scope(&input.scope) };
                let keys = ExprCtx { scope: &input.scope, agg: Some(&agg_ctx), dialect: self.dialect };
                let out = self.attach_subqueries_with(out, found, Some(&keys))?;
                for (i, c) in out.scope.columns.iter().enumerate().skip(width) {
                    let mark = c.mark.expect("attached columns answer a subquery");
                    agg_ctx.answers.push((mark, Typed::column(&out.scope, i)));
                }
                plan = out.plan;
            }
        }
        let ctx = ExprCtx { scope: &input.scope, agg: aggregating.then_some(&agg_ctx), dialect: self.dialect };
        if let Some(h) = &s.having {
            let cond = ctx.plan_condition(h)?;
            plan = Plan::Filter { input: Box::new(plan), predicate: cond.expr };
        }
        // The select list.
        let mut outputs: Vec<(Typed, String)> = Vec::new();
        let mut explicit_alias: Vec<bool> = Vec::new();
        // What SQLite knows of each visible column's expression (for compounds).
        let mut origins: Vec<Origin> = Vec::new();
        for item in &s.projection {
            match item {
                ast::SelectItem::UnnamedExpr(e) => {
                    outputs.push((ctx.plan(e)?, output_name(e)));
                    explicit_alias.push(false);
                    origins.push(ctx.origin(e));
                }
                ast::SelectItem::ExprWithAlias { expr, alias } => {
                    outputs.push((ctx.plan(expr)?, alias.value.clone()));
                    explicit_alias.push(true);
                    origins.push(ctx.origin(expr));
                }
                ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => {
                    let qualifier = self.star_qualifier(item, &input.scope)?;
                    self.expand_star(
                        &input.scope,
                        qualifier.as_deref(),
                        aggregating,
                        &ctx,
                        item.span(),
                        &mut outputs,
                        &mut explicit_alias,
                    )?;
                    let starred = outputs[origins.len()..].iter();
                    origins.extend(starred.map(|(t, _)| Origin { classes: t.affinity.classes(), ..Origin::default() }));
                }
                other => return Err(unsupported(format!("select item {other}"), other.span())),
            }
        }
        let visible = outputs.len();
        let distinct = match &s.distinct {
            None | Some(ast::Distinct::All) => false,
            Some(ast::Distinct::Distinct) => true,
            Some(ast::Distinct::On(_)) => return Err(unsupported("DISTINCT ON", s.span())),
        };
        // ORDER BY: an output column, or a hidden one.
        let mut order = Vec::new();
        for item in order_items {
            let e = &item.expr;
            let column = if let Some(p) = position_literal(e)? {
                check_position(p, visible, e)?
            } else if let Some(i) = match e {
                ast::Expr::Identifier(id) => outputs[..visible]
                    .iter()
                    .zip(&explicit_alias)
                    .position(|((_, n), alias)| *alias && n.eq_ignore_ascii_case(&id.value)),
                _ => None,
            } {
                i
            } else {
                let t = ctx.plan(e)?;
                match outputs.iter().position(|(o, _)| o.expr == t.expr) {
                    Some(i) => i,
                    None => {
                        if distinct {
                            return Err(sql_error(
                                SqlErrorKind::Invalid,
                                "with SELECT DISTINCT, ORDER BY expressions must appear in the select list",
                                e.span(),
                            ));
                        }
                        outputs.push((t, format!("__order_{}", outputs.len() - visible)));
                        outputs.len() - 1
                    }
                }
            };
            order.push(self.sort_key(column, item));
        }
        // The key's components, hidden after everything else.
        let mut key_columns = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let t = ctx.plan(k)?;
            key_columns.push(outputs.len());
            outputs.push((t, format!("__key_{i}")));
        }
        let empty = if global && !keys.is_empty() {
            if !agg_ctx.answers.is_empty() {
                return Err(unsupported("subqueries in a parameterized aggregate without GROUP BY", s.span()));
            }
            let key_exprs: Vec<Expr> =
                keys.iter().map(|k| row_ctx.plan(k).map(|t| t.expr)).collect::<Result<_, _>>()?;
            Some(EmptyRow {
                groups: agg_ctx
                    .groups
                    .iter()
                    .map(|g| key_exprs.iter().position(|k| *k == g.expr).expect("the groups are the key"))
                    .collect(),
                calls: aggregates_over_nothing(&plan),
                exprs: outputs.iter().map(|(t, _)| t.expr.clone()).collect(),
                filter: match &plan {
                    Plan::Filter { predicate, .. } => Some(predicate.clone()),
                    _ => None,
                },
            })
        } else {
            None
        };
        let width = plan.width();
        let identity =
            outputs.len() == width && outputs.iter().enumerate().all(|(i, (t, _))| t.expr == Expr::Column(i));
        let scope = Scope {
            columns: outputs
                .iter()
                .enumerate()
                .map(|(i, (t, n))| ScopeColumn {
                    qualifier: None,
                    name: n.clone(),
                    ty: t.ty,
                    nullable: t.nullable,
                    affinity: t.affinity,
                    origin: origins.get(i).copied().unwrap_or_default(),
                    merged: false,
                    mark: None,
                    outer: false,
                })
                .collect(),
        };
        if !identity {
            plan = Plan::Project { input: Box::new(plan), exprs: outputs.into_iter().map(|(t, _)| t.expr).collect() };
        }
        if distinct {
            let types: Vec<DataType> = scope.columns.iter().map(|c| c.ty).collect();
            plan = distinct_rows(plan, &types);
        }
        Ok(QueryOut { rel: Rel { plan, scope }, visible, order, keys: key_columns, empty })
    }

    /// The table a `*` select item is restricted to (`None` for a bare `*`).
    fn star_qualifier(&self, item: &ast::SelectItem, scope: &Scope) -> Result<Option<String>, Error> {
        match item {
            ast::SelectItem::Wildcard(opts) => {
                reject_wildcard_options(opts, item.span())?;
                Ok(None)
            }
            ast::SelectItem::QualifiedWildcard(kind, opts) => {
                reject_wildcard_options(opts, item.span())?;
                let ast::SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                    return Err(unsupported(format!("{item}"), item.span()));
                };
                let q = crate::ddl::object_name(name)?;
                if !scope.has_qualifier(&q) {
                    return Err(sql_error(
                        SqlErrorKind::UnknownTable,
                        format!("unknown table {0} in {0}.*", crate::shown(&q)),
                        item.span(),
                    ));
                }
                Ok(Some(q))
            }
            _ => unreachable!("only called for * items"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn expand_star(
        &self,
        scope: &Scope,
        qualifier: Option<&str>,
        aggregating: bool,
        ctx: &ExprCtx,
        span: sqlparser::tokenizer::Span,
        outputs: &mut Vec<(Typed, String)>,
        explicit: &mut Vec<bool>,
    ) -> Result<(), Error> {
        for (i, c) in scope.columns.iter().enumerate() {
            let selected = match qualifier {
                Some(q) => c.qualifier.as_deref().is_some_and(|cq| cq.eq_ignore_ascii_case(q)),
                None => !c.merged,
            };
            if !selected {
                continue;
            }
            let t = if aggregating {
                ctx.agg.and_then(|a| a.lookup_group(&Expr::Column(i))).ok_or_else(|| {
                    sql_error(
                        SqlErrorKind::Invalid,
                        format!("* includes column {}, which is neither grouped nor aggregated", c.name),
                        span,
                    )
                })?
            } else {
                Typed::column(scope, i)
            };
            outputs.push((t, c.name.clone()));
            explicit.push(false);
        }
        Ok(())
    }

    /// A query body that is not a plain SELECT.
    fn plan_set_expr(&self, body: &ast::SetExpr) -> Result<Rel, Error> {
        match body {
            ast::SetExpr::Select(s) => Ok(self.plan_select(s, &[], &[])?.rel),
            ast::SetExpr::Query(q) => self.plan_subquery(q),
            ast::SetExpr::SetOperation { .. } => {
                // SQLite applies compound operators left to right, all at one precedence;
                // the parser (like PostgreSQL) binds INTERSECT tighter. Under SQLite the
                // operands are re-associated from the left.
                let mut operands = Vec::new();
                let span = body.span();
                if self.dialect == Dialect::Sqlite {
                    flatten_set_operations(body, &mut operands);
                } else {
                    let ast::SetExpr::SetOperation { left, op, set_quantifier, right } = body else { unreachable!() };
                    let l = self.plan_set_expr(left)?;
                    let r = self.plan_set_expr(right)?;
                    return self.set_operation(l, r, op, set_quantifier, span);
                }
                // UNION and UNION ALL chains flatten into one union; other operators
                // nest one level each, so their chains are bounded (at SQLite's limit).
                let nesting = operands
                    .iter()
                    .filter(|(_, op)| op.is_some_and(|(op, _)| !matches!(op, ast::SetOperator::Union)))
                    .count();
                if nesting >= MAX_COMPOUND_SELECT {
                    return Err(sql_error(
                        SqlErrorKind::Invalid,
                        format!(
                            "too many EXCEPT and INTERSECT terms in a compound SELECT ({nesting}; the limit is \
                             {MAX_COMPOUND_SELECT}, as SQLite's)"
                        ),
                        span,
                    ));
                }
                let (first, _) = operands.remove(0);
                let mut rel = self.plan_set_expr(first)?;
                for (operand, op) in operands {
                    let (op, quantifier) = op.expect("operands after the first follow an operator");
                    let r = self.plan_set_expr(operand)?;
                    rel = self.set_operation(rel, r, op, quantifier, span)?;
                }
                Ok(rel)
            }
            ast::SetExpr::Values(v) => self.plan_values(v),
            other => Err(unsupported(format!("{other}"), other.span())),
        }
    }

    /// `l op r`: UNION, EXCEPT or INTERSECT, each with or without ALL.
    fn set_operation(
        &self,
        l: Rel,
        r: Rel,
        op: &ast::SetOperator,
        quantifier: &ast::SetQuantifier,
        span: sqlparser::tokenizer::Span,
    ) -> Result<Rel, Error> {
        let all = match quantifier {
            ast::SetQuantifier::All => true,
            ast::SetQuantifier::Distinct | ast::SetQuantifier::None => false,
            other => return Err(unsupported(format!("{op} {other}"), span)),
        };
        let kind = match op {
            ast::SetOperator::Union => None,
            ast::SetOperator::Except => Some(SetOpKind::Except),
            ast::SetOperator::Intersect => Some(SetOpKind::Intersect),
            other => return Err(unsupported(other.to_string(), span)),
        };
        let (lw, rw) = (l.scope.columns.len(), r.scope.columns.len());
        if lw != rw {
            return Err(sql_error(SqlErrorKind::Invalid, format!("{op} of {lw} and {rw} columns"), span));
        }
        let mut columns = Vec::with_capacity(lw);
        for (a, b) in l.scope.columns.iter().zip(&r.scope.columns) {
            let ty = match self.dialect {
                Dialect::Sqlite => sqlite_result_type(a.ty, b.ty),
                Dialect::Postgres => common_type(a.ty, b.ty),
            }
            .ok_or_else(|| type_error(format!("{op} column {} mixes {} and {}", a.name, a.ty, b.ty), span))?;
            let nullable = match kind {
                None => a.nullable || b.nullable,
                Some(SetOpKind::Except) => a.nullable,
                Some(SetOpKind::Intersect) => a.nullable && b.nullable,
            };
            // SQLite's affinity of a compound's column: see Arms::affinity.
            let arms = Arms::new(a.affinity, &a.origin).then(b.affinity, &b.origin);
            columns.push(ScopeColumn {
                qualifier: None,
                name: a.name.clone(),
                ty,
                nullable,
                affinity: match self.dialect {
                    Dialect::Sqlite => arms.affinity(),
                    Dialect::Postgres => Affinity::None,
                },
                origin: Origin { arms: Some(arms), ..Origin::default() },
                merged: false,
                mark: None,
                outer: false,
            });
        }
        let conform = |rel: Rel| -> Plan {
            if rel.scope.columns.iter().zip(&columns).all(|(c, t)| c.ty == t.ty || same_representation(c.ty, t.ty)) {
                return rel.plan;
            }
            let exprs = (0..rel.scope.columns.len())
                .zip(&columns)
                .map(|(i, t)| Typed::column(&rel.scope, i).coerce(t.ty).expr)
                .collect();
            Plan::Project { input: Box::new(rel.plan), exprs }
        };
        let (l, r) = (conform(l), conform(r));
        let types: Vec<DataType> = columns.iter().map(|c| c.ty).collect();
        let per_value = types.iter().any(|t| t.is_per_value());
        let plan = match kind {
            Some(_) if per_value && all => {
                return Err(unsupported(
                    format!(
                        "{op} ALL over a column whose values are integers on some rows and reals or text on others \
                         (SQLite has no {op} ALL; use {op})"
                    ),
                    span,
                ));
            }
            Some(kind) if per_value => set_operation_by_number(l, r, kind, &types),
            Some(kind) => Plan::SetOp { left: Box::new(l), right: Box::new(r), kind, all },
            None => {
                let mut inputs = Vec::new();
                for p in [l, r] {
                    match p {
                        Plan::Union { inputs: nested } => inputs.extend(nested),
                        // UNION is associative: (a UNION b) UNION c is one distinct union.
                        Plan::Distinct { input } if !all && matches!(*input, Plan::Union { .. }) => {
                            let Plan::Union { inputs: nested } = *input else { unreachable!() };
                            inputs.extend(nested);
                        }
                        other => inputs.push(other),
                    }
                }
                let plan = Plan::Union { inputs };
                if all { plan } else { distinct_rows(plan, &types) }
            }
        };
        Ok(Rel { plan, scope: Scope { columns } })
    }

    fn plan_values(&self, v: &ast::Values) -> Result<Rel, Error> {
        let empty = Scope::default();
        let ctx = ExprCtx::row(&empty, self.dialect);
        let mut rows: Vec<Vec<Typed>> = Vec::new();
        for row in &v.rows {
            let mut planned = Vec::new();
            for e in row.iter() {
                let t = ctx.plan(e)?;
                if !t.expr.is_constant() {
                    return Err(type_error("VALUES takes constants", e.span()));
                }
                planned.push(t);
            }
            if rows.first().is_some_and(|f| f.len() != planned.len()) {
                return Err(sql_error(SqlErrorKind::Invalid, "VALUES rows have different lengths", v.span()));
            }
            rows.push(planned);
        }
        let width = rows.first().map_or(0, Vec::len);
        let mut types = vec![DataType::Null; width];
        for row in &rows {
            for (t, x) in types.iter_mut().zip(row) {
                *t = match self.dialect {
                    Dialect::Sqlite => sqlite_result_type(*t, x.ty),
                    Dialect::Postgres => common_type(*t, x.ty),
                }
                .ok_or_else(|| type_error(format!("VALUES mixes {t} and {}", x.ty), v.span()))?;
            }
        }
        let columns = (0..width)
            .map(|i| ScopeColumn {
                qualifier: None,
                name: format!("column{}", i + 1),
                ty: types[i],
                nullable: rows.iter().any(|r| r[i].nullable),
                affinity: Affinity::None,
                origin: Origin::default(),
                merged: false,
                mark: None,
                outer: false,
            })
            .collect();
        let rows = rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .zip(&types)
                    .map(|(x, t)| crate::expr::constant_value(&x.coerce(*t).expr, v.span()))
                    .collect::<Result<Row, Error>>()
            })
            .collect::<Result<_, Error>>()?;
        Ok(Rel { plan: Plan::Values { rows, width }, scope: Scope { columns } })
    }
}

/// The distinct rows of `plan`, whose columns have `types`. Where a column keeps each
/// value's own class (SQLite's typing), 3 and 3.0 are one value to SQL's `=` yet two
/// rows to a row's equality: such rows are grouped by their columns' number keys, and
/// each group shows the least of its copies (the integer, where there is one).
fn distinct_rows(plan: Plan, types: &[DataType]) -> Plan {
    if !types.iter().any(|t| t.is_per_value()) {
        return Plan::Distinct { input: Box::new(plan) };
    }
    let n = types.len();
    let mut aggregates = Vec::new();
    let mut group_by = Vec::with_capacity(n);
    let mut exprs = Vec::with_capacity(n);
    for (i, t) in types.iter().enumerate() {
        if t.is_per_value() {
            group_by.push(number_key(Expr::Column(i)));
            exprs.push(Expr::Column(n + aggregates.len()));
            aggregates.push(least(Expr::Column(i), *t));
        } else {
            group_by.push(Expr::Column(i));
            exprs.push(Expr::Column(i));
        }
    }
    Plan::Project { input: Box::new(Plan::Aggregate { input: Box::new(plan), group_by, aggregates }), exprs }
}

/// EXCEPT or INTERSECT (without ALL) of `l` and `r`, whose columns have `types`, some
/// keeping each value's own class: both sides' rows, tagged with their side, grouped
/// by number keys; a group is kept when the left has rows in it and the right has
/// (INTERSECT) or has not (EXCEPT), and shows the least of the left's copies.
fn set_operation_by_number(l: Plan, r: Plan, kind: SetOpKind, types: &[DataType]) -> Plan {
    let n = types.len();
    let tagged = |p: Plan, left: bool| Plan::Project {
        input: Box::new(p),
        exprs: (0..n).map(Expr::Column).chain([Expr::lit(i64::from(left)), Expr::lit(i64::from(!left))]).collect(),
    };
    let union = Plan::Union { inputs: vec![tagged(l, true), tagged(r, false)] };
    let count = |side: usize| AggregateCall {
        func: AggFunc::Sum,
        arg: Some(Expr::Column(n + side)),
        distinct: false,
        arg_type: DataType::BigInt,
        separator: None,
    };
    let mut aggregates = vec![count(0), count(1)];
    let mut group_by = Vec::with_capacity(n);
    let mut exprs = Vec::with_capacity(n);
    for (i, t) in types.iter().enumerate() {
        if t.is_per_value() {
            group_by.push(number_key(Expr::Column(i)));
            exprs.push(Expr::Column(n + aggregates.len()));
            let from_left = Expr::Case {
                operand: None,
                branches: vec![(Expr::binary(BinaryOp::Eq, Expr::Column(n), Expr::lit(1i64)), Expr::Column(i))],
                otherwise: None,
            };
            aggregates.push(least(from_left, *t));
        } else {
            group_by.push(Expr::Column(i));
            exprs.push(Expr::Column(i));
        }
    }
    let (lc, rc) = (Expr::Column(n), Expr::Column(n + 1));
    let right = match kind {
        SetOpKind::Intersect => Expr::binary(BinaryOp::Gt, rc, Expr::lit(0i64)),
        SetOpKind::Except => Expr::binary(BinaryOp::Eq, rc, Expr::lit(0i64)),
    };
    let keep = Expr::binary(BinaryOp::And, Expr::binary(BinaryOp::Gt, lc, Expr::lit(0i64)), right);
    let aggregate = Plan::Aggregate { input: Box::new(union), group_by, aggregates };
    Plan::Project { input: Box::new(Plan::Filter { input: Box::new(aggregate), predicate: keep }), exprs }
}

fn number_key(e: Expr) -> Expr {
    Expr::Call { func: Func::NumberKey, args: vec![e] }
}

/// MIN(`arg`) of type `ty`.
fn least(arg: Expr, ty: DataType) -> AggregateCall {
    AggregateCall { func: AggFunc::Min, arg: Some(arg), distinct: false, arg_type: ty, separator: None }
}

/// The most EXCEPT and INTERSECT terms a compound SELECT may have (SQLite's
/// `SQLITE_MAX_COMPOUND_SELECT`).
const MAX_COMPOUND_SELECT: usize = 500;

/// The operands of a tree of set operations, left to right, each with the operator
/// before it (none for the first).
type Operand<'q> = (&'q ast::SetExpr, Option<(&'q ast::SetOperator, &'q ast::SetQuantifier)>);

fn flatten_set_operations<'q>(body: &'q ast::SetExpr, out: &mut Vec<Operand<'q>>) {
    match body {
        ast::SetExpr::SetOperation { left, op, set_quantifier, right } => {
            flatten_set_operations(left, out);
            let at = out.len();
            flatten_set_operations(right, out);
            out[at].1 = Some((op, set_quantifier));
        }
        other => out.push((other, None)),
    }
}

/// The value of each aggregate of the Aggregate node under `plan` (through a HAVING
/// filter) over no rows: COUNT 0, TOTAL 0.0, the others NULL.
fn aggregates_over_nothing(plan: &Plan) -> Vec<Value> {
    let mut p = plan;
    while let Plan::Filter { input, .. } = p {
        p = input;
    }
    match p {
        Plan::Aggregate { aggregates, .. } => aggregates
            .iter()
            .map(|a| match a.func {
                AggFunc::Count | AggFunc::CountStar => Value::Int(0),
                AggFunc::Total => Value::Float(0.0),
                _ => Value::Null,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A GROUP BY item: a position or output alias stands for that select item.
fn group_expr<'s>(g: &'s ast::Expr, s: &'s ast::Select, input: &Scope) -> Result<&'s ast::Expr, Error> {
    if let Some(p) = position_literal(g)? {
        let i = check_position(p, s.projection.len(), g)?;
        return match &s.projection[i] {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => Ok(e),
            other => Err(unsupported(format!("GROUP BY position of {other}"), g.span())),
        };
    }
    if let ast::Expr::Identifier(id) = g {
        for item in &s.projection {
            if let ast::SelectItem::ExprWithAlias { expr, alias } = item
                && alias.value.eq_ignore_ascii_case(&id.value)
                && !matches!(expr, ast::Expr::Identifier(i) if i.value.eq_ignore_ascii_case(&id.value))
            {
                // An alias stands for its expression unless the input has a
                // column of that name (which SQL prefers).
                if !input.columns.iter().any(|c| c.name.eq_ignore_ascii_case(&id.value)) {
                    return Ok(expr);
                }
            }
        }
    }
    Ok(g)
}

/// The name SQL gives an unaliased select item: the column's name, else the text.
fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(id) => id.value.clone(),
        ast::Expr::CompoundIdentifier(ids) => ids.last().map_or_else(|| e.to_string(), |i| i.value.clone()),
        ast::Expr::Nested(inner) => output_name(inner),
        other => other.to_string(),
    }
}

/// `Some(n)` if `e` is an integer literal (an ORDER BY or GROUP BY position).
fn position_literal(e: &ast::Expr) -> Result<Option<i64>, Error> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) if !n.contains(['.', 'e', 'E']) => {
                n.parse::<i64>().map(Some).map_err(|_| type_error(format!("bad position {n}"), e.span()))
            }
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

fn check_position(p: i64, n: usize, e: &ast::Expr) -> Result<usize, Error> {
    if p >= 1 && (p as usize) <= n {
        Ok(p as usize - 1)
    } else {
        Err(sql_error(SqlErrorKind::Invalid, format!("position {p} is not in the select list (1 to {n})"), e.span()))
    }
}

fn reject_wildcard_options(
    opts: &ast::WildcardAdditionalOptions,
    span: sqlparser::tokenizer::Span,
) -> Result<(), Error> {
    if opts.opt_exclude.is_some()
        || opts.opt_except.is_some()
        || opts.opt_replace.is_some()
        || opts.opt_rename.is_some()
        || opts.opt_ilike.is_some()
    {
        return Err(unsupported("* with EXCLUDE, EXCEPT, REPLACE, RENAME or ILIKE", span));
    }
    Ok(())
}

pub(crate) fn reject_select_extras(s: &ast::Select) -> Result<(), Error> {
    let span = s.span();
    let extra = if s.top.is_some() {
        Some("TOP")
    } else if s.into.is_some() {
        Some("SELECT INTO")
    } else if !s.lateral_views.is_empty() {
        Some("LATERAL VIEW")
    } else if s.prewhere.is_some() {
        Some("PREWHERE")
    } else if !s.connect_by.is_empty() {
        Some("CONNECT BY")
    } else if !s.cluster_by.is_empty() || !s.distribute_by.is_empty() || !s.sort_by.is_empty() {
        Some("CLUSTER BY, DISTRIBUTE BY and SORT BY")
    } else if !s.named_window.is_empty() {
        Some("WINDOW")
    } else if s.qualify.is_some() {
        Some("QUALIFY")
    } else {
        None
    };
    match extra {
        Some(what) => Err(unsupported(what, span)),
        None => Ok(()),
    }
}
