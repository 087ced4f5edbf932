//! Parameters: `… WHERE orders.customer_id = $1` (also `?` and `:name`, and
//! `x IN ($1, $2)`), and literals that can stand for them.
//!
//! A parameterized query is planned as the same query for every key at once: each
//! condition `expr = $n` leaves the WHERE clause, and `expr` becomes a hidden output
//! column (and, in an aggregate, a GROUP BY expression), so the view holds every key's
//! answer side by side and reading one key is a lookup. Only top-level WHERE
//! conditions of a plain SELECT are parameters; a placeholder anywhere else is refused
//! where the planner meets it.
//!
//! The same shape serves SQL written with literals (`customer_id = 42`): [`literals`]
//! turns each `column = literal` condition of the WHERE clause into a parameter, so an
//! f-string query costs a lookup in the view its shape already has.

use ciuf_engine::{Error, ParamRole, SqlErrorKind, Value};
use sqlparser::ast::{self, Spanned};

use crate::error::{sql_error, unsupported};
use crate::from::split_and;

/// One key component: the expression the parameters are compared with, and the
/// parameters (several for `IN`, or for both ends of a range).
#[derive(Debug, Clone)]
pub struct KeyPart {
    /// The compared expression, over the query's FROM.
    pub expr: ast::Expr,
    /// The placeholders, as written.
    pub placeholders: Vec<String>,
    /// What each placeholder does.
    pub roles: Vec<ParamRole>,
}

impl KeyPart {
    /// Whether the part bounds a range (`>`, `<`, `BETWEEN`) rather than equals.
    pub fn is_range(&self) -> bool {
        self.roles.iter().any(|r| *r != ParamRole::Eq)
    }
}

/// A query with its parameter conditions taken out.
#[derive(Debug, Clone)]
pub struct Extracted {
    /// The query without them.
    pub query: ast::Query,
    /// The key's components.
    pub parts: Vec<KeyPart>,
    /// The parameters in positional order: name, component and role.
    pub params: Vec<(String, usize, ParamRole)>,
}

fn placeholder(e: &ast::Expr) -> Option<&str> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Placeholder(p) => Some(p.as_str()),
            _ => None,
        },
        ast::Expr::Nested(inner) => placeholder(inner),
        _ => None,
    }
}

/// The query's parameter conditions, taken out; `None` if it has none.
pub fn extract(q: &ast::Query) -> Result<Option<Extracted>, Error> {
    let ast::SetExpr::Select(s) = &*q.body else { return Ok(None) };
    let Some(selection) = &s.selection else { return Ok(None) };
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let mut kept: Vec<ast::Expr> = Vec::new();
    let mut parts: Vec<KeyPart> = Vec::new();
    for c in conjuncts {
        let inner = strip(c);
        let one = |expr: &ast::Expr, p: &str, role: ParamRole| KeyPart {
            expr: expr.clone(),
            placeholders: vec![p.to_string()],
            roles: vec![role],
        };
        let part = match inner {
            ast::Expr::BinaryOp { left, op, right } => {
                use ast::BinaryOperator as B;
                // `expr op $n`, or `$n op expr` read the other way round.
                let (expr, p, op) = match (placeholder(left), placeholder(right)) {
                    (None, Some(p)) => (&**left, p, op.clone()),
                    (Some(p), None) => (
                        &**right,
                        p,
                        match op {
                            B::Gt => B::Lt,
                            B::GtEq => B::LtEq,
                            B::Lt => B::Gt,
                            B::LtEq => B::GtEq,
                            other => other.clone(),
                        },
                    ),
                    _ => (&**left, "", B::Or),
                };
                match op {
                    B::Eq => Some(one(expr, p, ParamRole::Eq)),
                    B::Gt => Some(one(expr, p, ParamRole::Lower { inclusive: false })),
                    B::GtEq => Some(one(expr, p, ParamRole::Lower { inclusive: true })),
                    B::Lt => Some(one(expr, p, ParamRole::Upper { inclusive: false })),
                    B::LtEq => Some(one(expr, p, ParamRole::Upper { inclusive: true })),
                    _ => None,
                }
            }
            ast::Expr::Between { expr, negated: false, low, high } => match (placeholder(low), placeholder(high)) {
                (Some(lo), Some(hi)) => Some(KeyPart {
                    expr: (**expr).clone(),
                    placeholders: vec![lo.to_string(), hi.to_string()],
                    roles: vec![ParamRole::Lower { inclusive: true }, ParamRole::Upper { inclusive: true }],
                }),
                _ => None,
            },
            ast::Expr::In { expr, target: ast::InTarget::List(list), negated: false, .. } if !list.is_empty() => {
                let ps: Option<Vec<String>> = list.iter().map(|x| placeholder(x).map(str::to_string)).collect();
                ps.map(|placeholders| KeyPart {
                    expr: (**expr).clone(),
                    roles: vec![ParamRole::Eq; placeholders.len()],
                    placeholders,
                })
            }
            _ => None,
        };
        match part {
            // Two bounds on one expression are one range.
            Some(p) if p.is_range() => match parts.iter_mut().find(|q| q.is_range() && q.expr == p.expr) {
                Some(q) => {
                    q.placeholders.extend(p.placeholders);
                    q.roles.extend(p.roles);
                }
                None => parts.push(p),
            },
            Some(p) => parts.push(p),
            None => kept.push(c.clone()),
        }
    }
    // A range is read as a scan over the last key component: at most one, last.
    if parts.iter().filter(|p| p.is_range()).count() > 1 {
        return Err(unsupported("ranges on two expressions in one parameterized query", q.span()));
    }
    parts.sort_by_key(KeyPart::is_range);
    if parts.is_empty() {
        return Ok(None);
    }
    // Positional order: $n by n; ? and :name in order of appearance.
    let mut params: Vec<(String, usize, i64, ParamRole)> = Vec::new();
    let mut style: Option<char> = None;
    let mut appearance = 0i64;
    for (i, part) in parts.iter().enumerate() {
        for (p, role) in part.placeholders.iter().zip(&part.roles) {
            let kind = p.chars().next().unwrap_or('?');
            if style.is_some_and(|s| s != kind) {
                return Err(sql_error(SqlErrorKind::Invalid, "parameters mix $n, ? and :name styles", q.span()));
            }
            style = Some(kind);
            appearance += 1;
            let position = match kind {
                '$' => p[1..].parse::<i64>().map_err(|_| unsupported(format!("parameter {p}"), q.span()))?,
                _ => appearance,
            };
            let name = match kind {
                ':' | '@' => p[1..].to_string(),
                _ => match strip(&part.expr) {
                    ast::Expr::Identifier(id) => id.value.clone(),
                    ast::Expr::CompoundIdentifier(ids) => ids.last().map_or(p.clone(), |i| i.value.clone()),
                    _ => p.clone(),
                },
            };
            params.push((name, i, position, *role));
        }
    }
    params.sort_by_key(|(_, _, pos, _)| *pos);
    for w in params.windows(2) {
        if w[0].2 == w[1].2 {
            return Err(unsupported(format!("parameter ${} used twice", w[0].2), q.span()));
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (name, ..) in params.iter_mut() {
        let base = name.clone();
        let mut n = 2;
        while names.iter().any(|x| x.eq_ignore_ascii_case(name)) {
            *name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name.clone());
    }
    let mut query = q.clone();
    if let ast::SetExpr::Select(s) = &mut *query.body {
        s.selection = kept.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
            left: Box::new(a),
            op: ast::BinaryOperator::And,
            right: Box::new(b),
        });
    }
    Ok(Some(Extracted { query, parts, params: params.into_iter().map(|(n, i, _, r)| (n, i, r)).collect() }))
}

fn strip(e: &ast::Expr) -> &ast::Expr {
    match e {
        ast::Expr::Nested(inner) => strip(inner),
        other => other,
    }
}

/// The query with each top-level WHERE condition `column = literal` (either way round)
/// turned into `column = $n`, and the literals' values in order; `None` if it has none
/// (or already has parameters, or is not a plain SELECT without LIMIT).
pub fn literals(q: &ast::Query) -> Option<(ast::Query, Vec<Value>)> {
    let ast::SetExpr::Select(s) = &*q.body else { return None };
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return None;
    }
    let selection = s.selection.as_ref()?;
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let mut values = Vec::new();
    let mut rebuilt = Vec::new();
    for c in conjuncts {
        if placeholder_anywhere(c) {
            return None;
        }
        let replaced = match strip(c) {
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } => {
                let column =
                    |e: &ast::Expr| matches!(strip(e), ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_));
                match (literal(left), literal(right)) {
                    (None, Some(v)) if column(left) => Some(((**left).clone(), v)),
                    (Some(v), None) if column(right) => Some(((**right).clone(), v)),
                    _ => None,
                }
            }
            _ => None,
        };
        match replaced {
            Some((col, v)) => {
                values.push(v);
                let p = ast::Expr::Value(ast::Value::Placeholder(format!("${}", values.len())).into());
                rebuilt.push(ast::Expr::BinaryOp {
                    left: Box::new(col),
                    op: ast::BinaryOperator::Eq,
                    right: Box::new(p),
                });
            }
            None => rebuilt.push(c.clone()),
        }
    }
    if values.is_empty() {
        return None;
    }
    let mut query = q.clone();
    if let ast::SetExpr::Select(s) = &mut *query.body {
        s.selection = rebuilt.into_iter().reduce(|a, b| ast::Expr::BinaryOp {
            left: Box::new(a),
            op: ast::BinaryOperator::And,
            right: Box::new(b),
        });
    }
    Some((query, values))
}

/// A literal number or string's value (negative numbers too).
fn literal(e: &ast::Expr) -> Option<Value> {
    match strip(e) {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => {
                n.parse::<i64>().ok().map(Value::Int).or_else(|| n.parse::<f64>().ok().map(Value::Float))
            }
            ast::Value::SingleQuotedString(s) => Some(Value::text(s.as_str())),
            _ => None,
        },
        ast::Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => match literal(expr)? {
            Value::Int(i) => Some(Value::Int(-i)),
            Value::Float(f) => Some(Value::Float(-f)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `e` holds a placeholder in the operators [`walk`] descends into (one
/// anywhere else is refused where the planner meets it).
fn placeholder_anywhere(e: &ast::Expr) -> bool {
    let mut found = false;
    walk(e, &mut |x: &ast::Expr| found |= placeholder(x).is_some());
    found
}

fn walk(e: &ast::Expr, f: &mut impl FnMut(&ast::Expr)) {
    f(e);
    match e {
        ast::Expr::BinaryOp { left, right, .. } => {
            walk(left, f);
            walk(right, f);
        }
        ast::Expr::UnaryOp { expr, .. } | ast::Expr::Nested(expr) => walk(expr, f),
        ast::Expr::In { expr, target: ast::InTarget::List(list), .. } => {
            walk(expr, f);
            list.iter().for_each(|x| walk(x, f));
        }
        _ => {}
    }
}
