//! Correlated subqueries: `EXISTS (q)`, `key IN (q)` and a scalar `(q)` whose `q` names
//! columns of the enclosing query.
//!
//! Re-running `q` per row cannot be maintained incrementally, so it is rewritten into
//! ordinary operators (the "domain" form of subquery unnesting):
//!
//! 1. **The domain** D: the distinct values, over the enclosing query's rows, of the
//!    columns the subquery may name (every column whose name occurs in its text: an
//!    over-approximation that only costs width), plus the key of an `IN`.
//! 2. **D LEFT JOIN the subquery's rows** (its FROM, filtered by its conditions that
//!    name no outer column) ON its correlated conditions: equalities become join keys,
//!    anything else (`x.b < t1.b`) the join's residual. Each value of D meets its rows,
//!    or one NULL-extended row; a marker column tells a real row from that one.
//! 3. **An aggregate grouped by D** answers for each value: EXISTS counts the rows; IN
//!    counts the rows equal to the key and those whose comparison is unknown (SQL's
//!    three-valued `IN`); a scalar subquery's own aggregates run over the real rows
//!    (`count(*)` counts markers; every other argument reads NULL on the extended row).
//! 4. **The enclosing rows join the answers back** on D's columns, NULL matching NULL,
//!    which adds one hidden column per subquery (see `from.rs`).
//!
//! The enclosing rows feed both D and the final join; the graph shares that common
//! sub-plan, so its state is not kept twice.

use std::collections::BTreeSet;

use ciuf_engine::expr::{BinaryOp, Func};
use ciuf_engine::plan::{AggFunc, AggregateCall};
use ciuf_engine::{DataType, Error, Expr, JoinKind, Plan, Row, Value};
use sqlparser::ast::{self, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::aggregate::{AggContext, collect_aggregates, plan_call};
use crate::error::{sql_error, unsupported};
use crate::expr::{ExprCtx, Typed, subquery_id};
use crate::from::{find_subqueries, split_and};
use crate::planner::{Planner, Rel};
use crate::scope::{Scope, ScopeColumn};
use crate::types::{Affinity, Origin};
use ciuf_engine::SqlErrorKind;

/// What a correlated subquery answers.
#[derive(Clone, Copy)]
pub(crate) enum Correlated<'e> {
    /// `EXISTS (q)`: whether `q` has a row.
    Exists,
    /// `key IN (q)`: three-valued membership.
    In(&'e ast::Expr),
    /// `(q)`: the value of an aggregate over `q`'s rows.
    Scalar,
}

impl Correlated<'_> {
    fn name(self) -> &'static str {
        match self {
            Correlated::Exists => "EXISTS (subquery)",
            Correlated::In(_) => "IN (subquery)",
            Correlated::Scalar => "scalar subquery",
        }
    }
}

impl Planner<'_> {
    /// `rel` with one more hidden column: the answer of subquery `q` for each row. An
    /// IN key is planned by `keys` if given (after an aggregate), else over `rel`.
    pub(crate) fn correlated(
        &self,
        rel: Rel,
        q: &ast::Query,
        kind: Correlated<'_>,
        keys: Option<&ExprCtx>,
    ) -> Result<Rel, Error> {
        let span = q.span();
        let what = kind.name();
        let s = match &*q.body {
            ast::SetExpr::Select(s) if q.with.is_none() && q.limit_clause.is_none() && q.fetch.is_none() => s,
            _ => {
                return Err(unsupported(
                    format!("{what} other than one SELECT (UNION, WITH or LIMIT) that names outer columns"),
                    span,
                ));
            }
        };
        crate::select::reject_select_extras(s)?;
        if !matches!(&s.group_by, ast::GroupByExpr::Expressions(g, m) if g.is_empty() && m.is_empty()) {
            return Err(unsupported(
                format!("{what} with GROUP BY that names outer columns or is not an aggregate"),
                span,
            ));
        }
        if matches!(s.distinct, Some(ast::Distinct::On(_))) {
            return Err(unsupported("DISTINCT ON", span));
        }

        // 1. The domain: the outer columns the subquery may name, and the IN key.
        let names = words(q);
        let outer_cols: Vec<usize> = (0..rel.scope.columns.len())
            .filter(|&i| {
                let c = &rel.scope.columns[i];
                c.mark.is_none() && names.as_ref().is_none_or(|n| n.contains(&c.name.to_ascii_lowercase()))
            })
            .collect();
        let mut d_exprs: Vec<Expr> = outer_cols.iter().map(|&i| Expr::Column(i)).collect();
        let mut d_cols: Vec<ScopeColumn> =
            outer_cols.iter().map(|&i| ScopeColumn { outer: true, ..rel.scope.columns[i].clone() }).collect();
        if let Correlated::In(key) = kind {
            let k = match keys {
                Some(ctx) => ctx.plan(key)?,
                None => ExprCtx::row(&rel.scope, self.dialect).plan(key)?,
            };
            d_exprs.push(k.expr);
            d_cols.push(ScopeColumn {
                qualifier: None,
                name: "#key".into(),
                ty: k.ty,
                nullable: k.nullable,
                affinity: k.affinity,
                origin: Origin::default(),
                merged: true,
                mark: None,
                outer: true,
            });
        }
        let d_width = d_exprs.len();
        let domain_plan = if d_width == 0 {
            Plan::Values { rows: vec![Row::empty()], width: 0 }
        } else {
            Plan::Distinct {
                input: Box::new(Plan::Project { input: Box::new(rel.plan.clone()), exprs: d_exprs.clone() }),
            }
        };
        let domain = Rel { plan: domain_plan, scope: Scope { columns: d_cols } };

        // 2. The subquery's rows for each value of the domain.
        let from_only = self.plan_from(&s.from, None)?;
        let inner_width = from_only.scope.columns.len();
        let combined = from_only.scope.concat(&domain.scope);
        let (mut local, mut correlated) = (Vec::new(), Vec::new());
        if let Some(w) = &s.selection {
            let mut conjuncts = Vec::new();
            split_and(w, &mut conjuncts);
            for c in conjuncts {
                let mut nested = Vec::new();
                find_subqueries(c, &mut nested);
                let names_outer = nested.is_empty()
                    && ExprCtx::row(&combined, self.dialect).plan(c)?.expr.columns().iter().any(|&i| i >= inner_width);
                if names_outer { correlated.push(c.clone()) } else { local.push(c.clone()) }
            }
        }
        let local = and_all(local);
        let inner = self.plan_from(&s.from, local.as_ref())?;
        let mut marked = inner.scope;
        marked.columns.push(ScopeColumn {
            qualifier: None,
            name: "#row".into(),
            ty: DataType::BigInt,
            nullable: false,
            affinity: Affinity::None,
            origin: Origin::default(),
            merged: true,
            mark: None,
            outer: false,
        });
        let mut exprs: Vec<Expr> = (0..inner_width).map(Expr::Column).collect();
        exprs.push(Expr::Literal(Value::Int(1)));
        let marked = Rel { plan: Plan::Project { input: Box::new(inner.plan), exprs }, scope: marked };
        let on = and_all(correlated).unwrap_or_else(|| ast::Expr::Value(ast::Value::Boolean(true).into()));
        let joined = self.join_outer(domain, marked, JoinKind::Left, &ast::JoinConstraint::On(on), span)?;

        // 3. The answer for each value of the domain.
        let marker = d_width + inner_width;
        let present = Expr::IsNull { expr: Box::new(Expr::Column(marker)), negated: true };
        let count_rows = |arg: Expr| AggregateCall {
            func: AggFunc::Count,
            arg: Some(arg),
            distinct: false,
            arg_type: DataType::BigInt,
            separator: None,
        };
        let case = |when: Expr, then: Expr| Expr::Case { operand: None, branches: vec![(when, then)], otherwise: None };
        let positive = |col: usize| Expr::binary(BinaryOp::Gt, Expr::Column(col), Expr::Literal(Value::Int(0)));
        let mut calls = Vec::new();
        let mut projection = Vec::new();
        for item in &s.projection {
            match item {
                ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    projection.push(e);
                    collect_aggregates(e, &mut calls)?;
                }
                _ if matches!(kind, Correlated::Exists) => {}
                other => return Err(unsupported(format!("{other} in {what}"), other.span())),
            }
        }
        if let Some(h) = &s.having {
            collect_aggregates(h, &mut calls)?;
        }
        let aggregating = !calls.is_empty() || s.having.is_some();
        if aggregating && !matches!(kind, Correlated::Scalar) {
            return Err(unsupported(format!("{what} over an aggregate that names outer columns"), span));
        }
        if !matches!(kind, Correlated::Exists) && projection.len() != 1 {
            return Err(sql_error(
                SqlErrorKind::Invalid,
                format!("{what} must give one column, not {}", s.projection.len()),
                span,
            ));
        }
        let row_ctx = ExprCtx::row(&joined.scope, self.dialect);
        let groups: Vec<Typed> = (0..d_width).map(|i| Typed::column(&joined.scope, i)).collect();
        let (aggregates, answer) = match kind {
            Correlated::Exists => {
                (vec![count_rows(Expr::Column(marker))], Typed::new(positive(d_width), DataType::Bool, false))
            }
            Correlated::In(_) => {
                let y = row_ctx.plan(projection[0])?;
                let k = groups.last().expect("the key is in the domain").clone();
                let (k, y) = row_ctx.comparable(k, y, projection[0].span())?;
                let eq = Expr::binary(BinaryOp::Eq, k.expr, y.expr);
                let unknown =
                    Expr::binary(BinaryOp::And, present, Expr::IsNull { expr: Box::new(eq.clone()), negated: false });
                let one = Expr::Literal(Value::Int(1));
                let answer = Expr::Case {
                    operand: None,
                    branches: vec![
                        (positive(d_width), Expr::Literal(Value::Bool(true))),
                        (positive(d_width + 1), Expr::Literal(Value::Null)),
                    ],
                    otherwise: Some(Box::new(Expr::Literal(Value::Bool(false)))),
                };
                (
                    vec![count_rows(case(eq, one.clone())), count_rows(case(unknown, one))],
                    Typed::new(answer, DataType::Bool, true),
                )
            }
            Correlated::Scalar if !aggregating => {
                // A value looked up by key: at most one row per value of the domain,
                // which is what makes the value well defined.
                if !self.binds_a_key(s, &joined.plan, inner_width, local.as_ref())? {
                    return Err(unsupported(
                        "a scalar subquery that is neither an aggregate nor a lookup by primary key \
                         (it could give several rows)",
                        span,
                    ));
                }
                let y = row_ctx.plan(projection[0])?;
                let call = AggregateCall {
                    func: AggFunc::Max,
                    arg: Some(case(present, y.expr)),
                    distinct: false,
                    arg_type: y.ty,
                    separator: None,
                };
                (vec![call], Typed { expr: Expr::Column(d_width), nullable: true, ..y })
            }
            Correlated::Scalar => {
                let mut agg = AggContext { groups, ..AggContext::default() };
                let mut aggregates = Vec::new();
                for c in &calls {
                    let (mut call, ty, nullable) = plan_call(c, &row_ctx)?;
                    if call.func == AggFunc::CountStar {
                        call = count_rows(Expr::Column(marker));
                    } else {
                        call.arg = call.arg.map(|a| case(present.clone(), a));
                    }
                    aggregates.push(call);
                    agg.calls.push((c.clone(), ty, nullable));
                }
                let ctx = ExprCtx { scope: &joined.scope, agg: Some(&agg), dialect: self.dialect };
                let value = ctx.plan(projection[0])?;
                let expr = match &s.having {
                    None => value.expr,
                    Some(h) => case(ctx.plan_condition(h)?.expr, value.expr),
                };
                (aggregates, Typed::new(expr, value.ty, true))
            }
        };
        let answers = Plan::Project {
            input: Box::new(Plan::Aggregate {
                input: Box::new(joined.plan),
                group_by: (0..d_width).map(Expr::Column).collect(),
                aggregates,
            }),
            exprs: (0..d_width).map(Expr::Column).chain([answer.expr]).collect(),
        };

        // 4. Each enclosing row with its value's answer (NULL matches NULL).
        let (mut left_keys, mut right_keys) = (Vec::new(), Vec::new());
        for (j, e) in d_exprs.into_iter().enumerate() {
            if joined.scope.columns[j].nullable {
                for (side, x) in [(&mut left_keys, e), (&mut right_keys, Expr::Column(j))] {
                    side.push(Expr::IsNull { expr: Box::new(x.clone()), negated: false });
                    side.push(Expr::Call { func: Func::Coalesce, args: vec![x, Expr::Literal(Value::Bool(false))] });
                }
            } else {
                left_keys.push(e);
                right_keys.push(Expr::Column(j));
            }
        }
        let width = rel.scope.columns.len();
        let joined_back = Plan::Join {
            left: Box::new(rel.plan),
            right: Box::new(answers),
            kind: JoinKind::Inner,
            left_keys,
            right_keys,
            residual: None,
            output: None,
        };
        let plan = Plan::Project {
            input: Box::new(joined_back),
            exprs: (0..width).map(Expr::Column).chain([Expr::Column(width + d_width)]).collect(),
        };
        let mut scope = rel.scope;
        scope.columns.push(ScopeColumn {
            qualifier: None,
            name: format!("subquery#{width}"),
            ty: answer.ty,
            nullable: answer.nullable,
            affinity: answer.affinity,
            origin: Origin::default(),
            merged: true,
            mark: Some(subquery_id(q)),
            outer: false,
        });
        Ok(Rel { plan, scope })
    }
}

impl Planner<'_> {
    /// Whether subquery `s` reads one base table with a primary key and pins every key
    /// column, either to the domain (a key of `joined`, the domain's LEFT JOIN with
    /// its rows) or to a constant (in `local`, its uncorrelated conditions): then it
    /// gives at most one row per value of the domain.
    fn binds_a_key(
        &self,
        s: &ast::Select,
        joined: &Plan,
        inner_width: usize,
        local: Option<&ast::Expr>,
    ) -> Result<bool, Error> {
        let [item] = s.from.as_slice() else { return Ok(false) };
        let ast::TableFactor::Table { name, .. } = &item.relation else { return Ok(false) };
        if !item.joins.is_empty() {
            return Ok(false);
        }
        let table = crate::ddl::table_name(name, self.dialect)?.catalog;
        if self.cte(&table).is_some() || self.catalog.view(&table).is_some() {
            return Ok(false);
        }
        let Some((_, schema)) = self.catalog.table(&table) else { return Ok(false) };
        let Some(key) = &schema.primary_key else { return Ok(false) };
        let mut pinned: BTreeSet<usize> = BTreeSet::new();
        if let Plan::Join { right_keys, .. } = joined {
            pinned.extend(right_keys.iter().filter_map(|k| match k {
                Expr::Column(c) if *c < inner_width => Some(*c),
                _ => None,
            }));
        }
        if let Some(local) = local {
            let scope = self.plan_from(&s.from, None)?.scope;
            let ctx = ExprCtx::row(&scope, self.dialect);
            let mut conjuncts = Vec::new();
            split_and(local, &mut conjuncts);
            for c in conjuncts {
                let mut nested = Vec::new();
                find_subqueries(c, &mut nested);
                if !nested.is_empty() {
                    continue;
                }
                if let Expr::Binary { op: BinaryOp::Eq, left, right } = ctx.plan(c)?.expr {
                    match (*left, *right) {
                        (Expr::Column(k), other) | (other, Expr::Column(k)) if other.is_constant() => {
                            pinned.insert(k);
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(key.iter().all(|k| pinned.contains(k)))
    }
}

/// The conjunction of `conditions` (`None` for none).
fn and_all(conditions: Vec<ast::Expr>) -> Option<ast::Expr> {
    conditions.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
        left: Box::new(a),
        op: ast::BinaryOperator::And,
        right: Box::new(b),
    })
}

/// The words of `q`'s text, lowercased: every name it can use is among them. `None`
/// if the text does not tokenize (then every outer column is kept).
fn words(q: &ast::Query) -> Option<BTreeSet<String>> {
    let sql = q.to_string();
    let tokens = Tokenizer::new(&GenericDialect {}, &sql).tokenize().ok()?;
    Some(
        tokens
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.value.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
    )
}
