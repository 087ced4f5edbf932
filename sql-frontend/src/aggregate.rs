//! Aggregate calls: finding them in a query, planning them, and referring to their
//! results after the aggregation.

use ciuf_engine::expr::Func;
use ciuf_engine::plan::{AggFunc, AggregateCall};
use ciuf_engine::{DataType, Error, Expr, Plan, SqlErrorKind};
use sqlparser::ast::{self, Spanned};
use sqlparser::tokenizer::Span;

use crate::error::{sql_error, type_error, unsupported};
use crate::expr::{ExprCtx, Typed};
use crate::scope::{Scope, ScopeColumn};
use crate::types::{Affinity, Origin};

/// The arguments of a function call, as written.
pub(crate) struct FnArgs<'a> {
    pub exprs: Vec<&'a ast::Expr>,
    /// `f(*)`.
    pub star: bool,
    /// `f(DISTINCT …)`.
    pub distinct: bool,
}

/// The plain positional arguments of `f`.
pub(crate) fn function_args(f: &ast::Function, span: Span) -> Result<FnArgs<'_>, Error> {
    let mut out = FnArgs { exprs: Vec::new(), star: false, distinct: false };
    match &f.args {
        ast::FunctionArguments::None => {}
        ast::FunctionArguments::Subquery(_) => {
            return Err(unsupported("a subquery as a function argument", span));
        }
        ast::FunctionArguments::List(list) => {
            out.distinct = matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct));
            if !list.clauses.is_empty() {
                return Err(unsupported(format!("clauses in {}(…)", f.name), span));
            }
            for a in &list.args {
                match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => out.exprs.push(e),
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => out.star = true,
                    other => return Err(unsupported(format!("argument {other}"), span)),
                }
            }
        }
    }
    Ok(out)
}

/// The aggregate `name` with `n_args` arguments denotes, if any. `min` and `max` with
/// two or more arguments are the scalar functions.
pub(crate) fn aggregate_func(name: &str, n_args: usize) -> Option<AggFunc> {
    Some(match name {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "total" => AggFunc::Total,
        "avg" => AggFunc::Avg,
        "min" if n_args <= 1 => AggFunc::Min,
        "max" if n_args <= 1 => AggFunc::Max,
        "group_concat" | "string_agg" => AggFunc::GroupConcat,
        _ => return None,
    })
}

fn as_aggregate(e: &ast::Expr) -> Option<&ast::Function> {
    let ast::Expr::Function(f) = e else {
        return None;
    };
    let name = f.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    let n = match &f.args {
        ast::FunctionArguments::List(l) => l.args.len(),
        _ => 0,
    };
    (f.over.is_none() && aggregate_func(&name, n).is_some()).then_some(f)
}

/// The sub-expressions of `e` that are evaluated in the same row context (not the
/// insides of subqueries).
fn children(e: &ast::Expr) -> Vec<&ast::Expr> {
    use ast::Expr as E;
    match e {
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::IsNull(expr)
        | E::IsNotNull(expr)
        | E::IsTrue(expr)
        | E::IsNotTrue(expr)
        | E::IsFalse(expr)
        | E::IsNotFalse(expr)
        | E::Cast { expr, .. } => vec![expr],
        E::BinaryOp { left, right, .. } | E::IsDistinctFrom(left, right) | E::IsNotDistinctFrom(left, right) => {
            vec![left, right]
        }
        E::In { expr, target: ast::InTarget::List(list), .. } => std::iter::once(&**expr).chain(list.iter()).collect(),
        E::In { expr, .. } => vec![expr],
        E::Between { expr, low, high, .. } => vec![expr, low, high],
        E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => vec![expr, pattern],
        E::Case { operand, conditions, else_result, .. } => operand
            .iter()
            .map(|o| &**o)
            .chain(conditions.iter().flat_map(|c| [&c.condition, &c.result]))
            .chain(else_result.iter().map(|o| &**o))
            .collect(),
        E::Function(f) => match &f.args {
            ast::FunctionArguments::List(l) => l
                .args
                .iter()
                .filter_map(|a| match a {
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        },
        E::Substring { expr, substring_from, substring_for, .. } => std::iter::once(&**expr)
            .chain(substring_from.iter().map(|x| &**x))
            .chain(substring_for.iter().map(|x| &**x))
            .collect(),
        E::Trim { expr, trim_what, .. } => std::iter::once(&**expr).chain(trim_what.iter().map(|x| &**x)).collect(),
        _ => vec![],
    }
}

/// Whether `e` contains an aggregate call (outside subqueries).
pub(crate) fn contains_aggregate(e: &ast::Expr) -> bool {
    as_aggregate(e).is_some() || children(e).into_iter().any(contains_aggregate)
}

/// Appends the aggregate calls in `e` to `out` (each once).
pub(crate) fn collect_aggregates(e: &ast::Expr, out: &mut Vec<ast::Expr>) -> Result<(), Error> {
    if let Some(f) = as_aggregate(e) {
        if children(e).into_iter().any(contains_aggregate) {
            return Err(sql_error(SqlErrorKind::Invalid, "aggregate calls cannot be nested", f.span()));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
        return Ok(());
    }
    children(e).into_iter().try_for_each(|c| collect_aggregates(c, out))
}

/// Plans the aggregate call `e` over the input (row mode): the call and its result's
/// type and nullability.
pub(crate) fn plan_call(e: &ast::Expr, ctx: &ExprCtx) -> Result<(AggregateCall, DataType, bool), Error> {
    let f = as_aggregate(e).expect("collected calls are aggregates");
    let span = e.span();
    if f.filter.is_some() {
        return Err(unsupported("FILTER (WHERE …) on an aggregate", span));
    }
    let name = f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()).unwrap_or_default();
    let args = function_args(f, span)?;
    let func = aggregate_func(&name, args.exprs.len()).expect("an aggregate");
    if args.star {
        if func != AggFunc::Count || !args.exprs.is_empty() {
            return Err(type_error(format!("{name}(*) is not valid; only count(*) is"), span));
        }
        return Ok((
            AggregateCall {
                func: AggFunc::CountStar,
                arg: None,
                distinct: false,
                arg_type: DataType::Null,
                separator: None,
            },
            DataType::BigInt,
            false,
        ));
    }
    let (arg, separator) = match (func, args.exprs.as_slice()) {
        (AggFunc::GroupConcat, [arg]) if name == "group_concat" => (*arg, Some(",".to_string())),
        (AggFunc::GroupConcat, [arg, sep]) => {
            let empty = crate::scope::Scope::default();
            let sep_t = ExprCtx::row(&empty, ctx.dialect).plan(sep);
            match sep_t.map(|t| (t.expr.is_constant(), crate::expr::constant_value(&t.expr, sep.span()))) {
                Ok((true, Ok(v))) if !v.is_null() => (*arg, v.to_text()),
                _ => return Err(type_error(format!("{name}()'s separator must be a constant"), sep.span())),
            }
        }
        (AggFunc::GroupConcat, _) if name == "string_agg" => {
            return Err(type_error("string_agg() takes a value and a separator", span));
        }
        (AggFunc::GroupConcat, _) => return Err(type_error("group_concat() takes one or two arguments", span)),
        (_, [arg]) => (*arg, None),
        _ => return Err(type_error(format!("{name}() takes one argument"), span)),
    };
    let mut t: Typed = ctx.plan(arg)?;
    if func == AggFunc::Sum && t.ty == DataType::BigInt && ctx.dialect == ciuf_engine::Dialect::Postgres {
        // PostgreSQL sums bigints as numeric: exactly, beyond 64 bits.
        t = t.coerce(DataType::Decimal { precision: ciuf_engine::types::MAX_DECIMAL_PRECISION, scale: 0 });
    }
    // SQLite sums text too, each value read as the number it spells.
    let numeric = t.ty.is_numeric()
        || matches!(t.ty, DataType::Bool | DataType::Null)
        || (ctx.dialect == ciuf_engine::Dialect::Sqlite && matches!(t.ty, DataType::Text | DataType::Any));
    let (ty, nullable) = match func {
        AggFunc::Count | AggFunc::CountStar => (DataType::BigInt, false),
        AggFunc::Min | AggFunc::Max => (t.ty, true),
        AggFunc::GroupConcat => (DataType::Text, true),
        _ if !numeric => {
            return Err(type_error(format!("{name}() needs numbers, not {}", t.ty), arg.span()));
        }
        AggFunc::Total => (DataType::Double, false),
        AggFunc::Avg => (DataType::Double, true),
        AggFunc::Sum => match t.ty {
            DataType::Decimal { scale, .. } => {
                (DataType::Decimal { precision: ciuf_engine::types::MAX_DECIMAL_PRECISION, scale }, true)
            }
            DataType::Double => (DataType::Double, true),
            // An integer while every value is one, else a double (SQLite).
            DataType::Number | DataType::Any | DataType::Text => (DataType::Number, true),
            _ => (DataType::BigInt, true),
        },
    };
    Ok((AggregateCall { func, arg: Some(t.expr), distinct: args.distinct, arg_type: t.ty, separator }, ty, nullable))
}

/// How post-aggregate expressions refer to the aggregate's output: its group values
/// first, then one column per call.
#[derive(Debug, Default)]
pub(crate) struct AggContext {
    /// The GROUP BY expressions, planned over the input.
    pub groups: Vec<Typed>,
    /// Each aggregate call as written, with its result's type and nullability.
    pub calls: Vec<(ast::Expr, DataType, bool)>,
    /// Subqueries in HAVING, the select list or ORDER BY, answered after the aggregate:
    /// each one's mark and its answer column (after the groups, calls and
    /// representatives).
    pub answers: Vec<(usize, Typed)>,
    /// Groups whose values keep their own class (SQLite's typing): the aggregate groups
    /// by their number keys, so that 3 and 3.0 fall in one group, and the group reads as
    /// the least of its copies, which a hidden MIN after the calls gives. Each is
    /// (group, that MIN's output column).
    pub representatives: Vec<(usize, usize)>,
}

impl AggContext {
    /// Plans the aggregate of `input` by the groups, computing `aggregates` (the calls'
    /// plans, in order). Groups from `first_group` on whose type keeps each value's class
    /// are grouped by number key and read through a representative (see
    /// [`AggContext::representatives`]).
    pub fn plan(&mut self, input: Plan, mut aggregates: Vec<AggregateCall>, first_group: usize) -> Plan {
        let mut group_by = Vec::with_capacity(self.groups.len());
        for (i, g) in self.groups.iter().enumerate() {
            if i < first_group || !g.ty.is_per_value() {
                group_by.push(g.expr.clone());
                continue;
            }
            group_by.push(Expr::Call { func: Func::NumberKey, args: vec![g.expr.clone()] });
            self.representatives.push((i, self.groups.len() + aggregates.len()));
            aggregates.push(AggregateCall {
                func: AggFunc::Min,
                arg: Some(g.expr.clone()),
                distinct: false,
                arg_type: g.ty,
                separator: None,
            });
        }
        Plan::Aggregate { input: Box::new(input), group_by, aggregates }
    }

    /// The output column of the aggregate call `e`, if `e` is one.
    pub fn lookup_call(&self, e: &ast::Expr) -> Option<Typed> {
        let i = self.calls.iter().position(|(c, _, _)| c == e)?;
        let (_, ty, nullable) = &self.calls[i];
        Some(Typed::new(Expr::Column(self.groups.len() + i), *ty, *nullable))
    }

    /// The aggregate's output as a relation's columns: the groups that are plain input
    /// columns keep their names (a correlated subquery after the aggregate may name
    /// them); other groups and the calls are hidden.
    pub fn output_scope(&self, input: &Scope) -> Scope {
        let hidden = |ty, nullable| ScopeColumn {
            qualifier: None,
            name: "#aggregate".into(),
            ty,
            nullable,
            affinity: Affinity::None,
            origin: Origin::default(),
            merged: true,
            mark: None,
            outer: false,
        };
        let named = |g: &Typed| match g.expr {
            Expr::Column(i) => ScopeColumn { mark: None, outer: false, ..input.columns[i].clone() },
            _ => hidden(g.ty, g.nullable),
        };
        let read_through = |i: usize| self.representatives.iter().any(|(g, _)| *g == i);
        let groups = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| if read_through(i) { hidden(g.ty, g.nullable) } else { named(g) });
        let calls = self.calls.iter().map(|(_, ty, nullable)| hidden(*ty, *nullable));
        let representatives = self.representatives.iter().map(|(g, _)| named(&self.groups[*g]));
        Scope { columns: groups.chain(calls).chain(representatives).collect() }
    }

    /// The output column of the group expression equal to `expr`, if any.
    pub fn lookup_group(&self, expr: &Expr) -> Option<Typed> {
        let i = self.groups.iter().position(|g| g.expr == *expr)?;
        let g = &self.groups[i];
        let column = self.representatives.iter().find(|(group, _)| *group == i).map_or(i, |(_, c)| *c);
        Some(Typed { expr: Expr::Column(column), ..g.clone() })
    }
}
