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

use ciuf_engine::{Error, SqlErrorKind, Value};
use sqlparser::ast::{self, Spanned};

use crate::error::{sql_error, unsupported};
use crate::from::split_and;

/// One key component: the expression the parameters are compared with, and the
/// parameters (several for `IN`).
#[derive(Debug, Clone)]
pub struct KeyPart {
    /// The compared expression, over the query's FROM.
    pub expr: ast::Expr,
    /// The placeholders, as written.
    pub placeholders: Vec<String>,
}

/// A query with its parameter conditions taken out.
#[derive(Debug, Clone)]
pub struct Extracted {
    /// The query without them.
    pub query: ast::Query,
    /// The key's components.
    pub parts: Vec<KeyPart>,
    /// The parameters in positional order: name and component.
    pub params: Vec<(String, usize)>,
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
        let part = match inner {
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } => {
                match (placeholder(left), placeholder(right)) {
                    (Some(p), None) => Some(KeyPart { expr: (**right).clone(), placeholders: vec![p.to_string()] }),
                    (None, Some(p)) => Some(KeyPart { expr: (**left).clone(), placeholders: vec![p.to_string()] }),
                    _ => None,
                }
            }
            ast::Expr::In { expr, target: ast::InTarget::List(list), negated: false, .. } if !list.is_empty() => {
                let ps: Option<Vec<String>> = list.iter().map(|x| placeholder(x).map(str::to_string)).collect();
                ps.map(|placeholders| KeyPart { expr: (**expr).clone(), placeholders })
            }
            _ => None,
        };
        match part {
            Some(p) => parts.push(p),
            None => kept.push(c.clone()),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    // Positional order: $n by n; ? and :name in order of appearance.
    let mut params: Vec<(String, usize, i64)> = Vec::new();
    let mut style: Option<char> = None;
    let mut appearance = 0i64;
    for (i, part) in parts.iter().enumerate() {
        for p in &part.placeholders {
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
            params.push((name, i, position));
        }
    }
    params.sort_by_key(|(_, _, pos)| *pos);
    for w in params.windows(2) {
        if w[0].2 == w[1].2 {
            return Err(unsupported(format!("parameter ${} used twice", w[0].2), q.span()));
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (name, _, _) in params.iter_mut() {
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
    Ok(Some(Extracted { query, parts, params: params.into_iter().map(|(n, i, _)| (n, i)).collect() }))
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

fn placeholder_anywhere(e: &ast::Expr) -> bool {
    e.to_string().contains(['$', '?']) && {
        // Only a real placeholder counts (a '$' or '?' inside a string literal does not).
        let mut found = false;
        let mut check = |x: &ast::Expr| found |= placeholder(x).is_some();
        walk(e, &mut check);
        found
    }
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
