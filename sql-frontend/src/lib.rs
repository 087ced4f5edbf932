//! # ciuf-sql
//!
//! SQL text to what the engine runs: statements are parsed with sqlparser, and queries
//! are planned into a [`ciuf_engine::Plan`] with every name resolved against the
//! engine's [`Catalog`] and every expression typed.
//!
//! ```text
//!  SQL ──sqlparser──▶ AST ──from/select/expr──▶ Plan + columns + order ──▶ ViewDef
//! ```
//!
//! Everything the engine cannot maintain is refused here, with the construct named
//! and its position in the SQL, and unknown names come with the nearest known one.

mod aggregate;
mod correlated;
mod ddl;
mod error;
mod expr;
mod from;
pub mod params;
mod planner;
mod scope;
mod select;
mod stack;
mod types;

use ciuf_engine::{Catalog, Error, Position, SqlError, SqlErrorKind, TableSchema, Value, ViewDef};
use sqlparser::ast::{self, Spanned};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::error::unsupported;
use crate::expr::ExprCtx;
use crate::planner::Planner;
use crate::scope::Scope;

pub use ciuf_engine::error::shown;
pub use sqlparser::ast::Query;
pub use stack::{MAX_SQL_LENGTH, on_deep_stack};

/// A parsed statement, as far as it can be understood without the catalog.
#[derive(Debug, Clone)]
pub enum Statement {
    /// CREATE TABLE.
    CreateTable(TableSchema),
    /// CREATE VIEW name AS query.
    CreateView {
        /// The view's name.
        name: String,
        /// Its query.
        query: Box<Query>,
        /// The statement's SQL text.
        sql: String,
        /// IF NOT EXISTS.
        if_not_exists: bool,
    },
    /// DROP VIEW.
    DropView {
        /// The views.
        names: Vec<String>,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// DROP TABLE.
    DropTable {
        /// The tables.
        names: Vec<String>,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// A query (to register as a view).
    Query {
        /// The query.
        query: Box<Query>,
        /// Its SQL text.
        sql: String,
    },
    /// INSERT … VALUES with constant rows.
    Insert {
        /// The table.
        table: String,
        /// The columns named, or empty for all columns in order.
        columns: Vec<String>,
        /// The rows.
        rows: Vec<Vec<Value>>,
    },
    /// EXPLAIN query.
    Explain(Box<Query>),
    /// A statement that changes nothing ciuf maintains (CREATE INDEX, …).
    NoOp(&'static str),
}

/// Parses `sql` into statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>, Error> {
    // Nesting deeper than sqlparser's default of 50 occurs in generated SQL; 100 still
    // leaves the planner's recursion far from a thread's stack limit.
    let statements = Parser::new(&GenericDialect {})
        .with_recursion_limit(100)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(parse_error)?;
    let single = statements.len() == 1;
    statements
        .into_iter()
        .map(|s| {
            let text = if single { sql.trim().trim_end_matches(';').trim().to_string() } else { s.to_string() };
            classify(s, text)
        })
        .collect()
}

/// Parses `sql`, which must be exactly one query.
pub fn parse_query(sql: &str) -> Result<(Box<Query>, String), Error> {
    let mut statements = parse(sql)?;
    match (statements.len(), statements.pop()) {
        (1, Some(Statement::Query { query, sql })) => Ok((query, sql)),
        (0, _) => Err(SqlError::new(SqlErrorKind::Syntax, "empty SQL: expected a query").into()),
        (1, Some(_)) => Err(SqlError::new(SqlErrorKind::Invalid, "expected a query (SELECT …)").into()),
        _ => Err(SqlError::new(SqlErrorKind::Invalid, "expected one query, got several statements").into()),
    }
}

/// Plans `query` (whose text is `sql`) as a view over `catalog`. A query with
/// parameters in its WHERE clause (`… = $1`, see [`params`]) is a parameterized view,
/// holding every key's answer.
pub fn plan_query(query: &Query, sql: &str, catalog: &dyn Catalog) -> Result<ViewDef, Error> {
    if let Some(extracted) = params::extract(query)? {
        return plan_parameterized(&extracted, sql, catalog, None);
    }
    let out = Planner::new(catalog).plan_query(query)?;
    Ok(view_def(out, sql, |_| None))
}

/// The view a planned query makes, with the parameter spec `params` makes of it.
fn view_def(
    out: select::QueryOut,
    sql: &str,
    params: impl FnOnce(&mut select::QueryOut) -> Option<ciuf_engine::ParamSpec>,
) -> ViewDef {
    let mut out = out;
    let params = params(&mut out);
    ViewDef {
        columns: out.rel.scope.engine_columns(),
        plan: out.rel.plan.optimize(),
        visible: out.visible,
        order: out.order,
        sql: sql.to_string(),
        params,
    }
}

/// The qualifier of the keys table a partial view joins (hidden from `*` and from
/// unqualified names).
pub const KEYS_ALIAS: &str = "__ciuf_k";

/// Plans a parameterized query. With `keys_table` (its id and name, a table whose
/// columns `__ciuf_k0, …` hold requested keys), the view is partial: it joins that
/// table, so it holds only the keys in it.
pub fn plan_parameterized(
    extracted: &params::Extracted,
    sql: &str,
    catalog: &dyn Catalog,
    keys_table: Option<(ciuf_engine::TableId, &str)>,
) -> Result<ViewDef, Error> {
    if let Some(part) = extracted.parts.iter().find(|p| p.placeholders.len() > 1 || p.is_range())
        && let ast::SetExpr::Select(s) = &*extracted.query.body
    {
        // Several keys' rows are read side by side: right for rows, not for what
        // combines rows across keys.
        let combines = s.distinct.is_some()
            || s.having.is_some()
            || !matches!(&s.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
            || s.projection.iter().any(|i| match i {
                ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    aggregate::contains_aggregate(e)
                }
                _ => false,
            })
            || extracted.query.order_by.is_some();
        if combines {
            return Err(unsupported(
                "an IN list or a range of parameters in a query with aggregates, DISTINCT or ORDER BY \
                 (use one parameter compared by =)",
                part.expr.span(),
            ));
        }
    }
    if keys_table.is_some()
        && let Some(part) = extracted.parts.iter().find(|p| p.is_range())
    {
        return Err(unsupported("a partial view keyed by a range (a range reads the full view)", part.expr.span()));
    }
    let mut query = extracted.query.clone();
    if let Some((_, name)) = keys_table {
        let ast::SetExpr::Select(s) = &mut *query.body else {
            return Err(unsupported("parameters in a query other than one SELECT", query.span()));
        };
        let (from, _) = parse_query(&format!("SELECT 1 FROM {name} AS {KEYS_ALIAS}"))?;
        let ast::SetExpr::Select(f) = &*from.body else { unreachable!("a SELECT") };
        s.from.extend(f.from.iter().cloned());
        for (i, part) in extracted.parts.iter().enumerate() {
            let column = ast::Expr::CompoundIdentifier(vec![
                ast::Ident::new(KEYS_ALIAS),
                ast::Ident::new(format!("{KEYS_ALIAS}{i}")),
            ]);
            let eq = ast::Expr::BinaryOp {
                left: Box::new(ast::Expr::Nested(Box::new(part.expr.clone()))),
                op: ast::BinaryOperator::Eq,
                right: Box::new(column),
            };
            s.selection = Some(match s.selection.take() {
                None => eq,
                Some(w) => ast::Expr::BinaryOp { left: Box::new(w), op: ast::BinaryOperator::And, right: Box::new(eq) },
            });
        }
    }
    let planner = Planner::new(catalog);
    let keys: Vec<ast::Expr> = extracted.parts.iter().map(|p| p.expr.clone()).collect();
    let out = planner.plan_keyed(&query, &keys)?;
    Ok(view_def(out, sql, |out| {
        Some(ciuf_engine::ParamSpec {
            key_columns: std::mem::take(&mut out.keys),
            params: extracted
                .params
                .iter()
                .map(|(name, component, role)| ciuf_engine::Param {
                    name: name.clone(),
                    component: *component,
                    role: *role,
                })
                .collect(),
            empty: out.empty.take(),
            keys_table: keys_table.map(|(id, _)| id),
        })
    }))
}

/// The plan of `query` as text (what EXPLAIN prints).
pub fn explain(query: &Query, catalog: &dyn Catalog) -> Result<String, Error> {
    let def = plan_query(query, &query.to_string(), catalog)?;
    let cols: Vec<String> = def.columns[..def.visible].iter().map(|c| format!("{} {}", c.name, c.data_type)).collect();
    let mut out = format!("View [{}]", cols.join(", "));
    if !def.order.is_empty() {
        let keys: Vec<String> = def.order.iter().map(ToString::to_string).collect();
        out += &format!(" order=[{}]", keys.join(", "));
    }
    out.push('\n');
    for line in def.plan.to_string().lines() {
        out += &format!("  {line}\n");
    }
    Ok(out)
}

fn parse_error(e: sqlparser::parser::ParserError) -> Error {
    let message = match &e {
        sqlparser::parser::ParserError::TokenizerError(m) | sqlparser::parser::ParserError::ParserError(m) => m.clone(),
        other => other.to_string(),
    };
    // sqlparser ends its messages with "at Line: L, Column: C".
    let (text, position) = match message.rfind(" at Line: ") {
        Some(i) => {
            let tail = &message[i + " at Line: ".len()..];
            let mut nums = tail.split(", Column: ").map(|x| x.trim().parse::<u64>().ok());
            match (nums.next().flatten(), nums.next().flatten()) {
                (Some(line), Some(column)) => (message[..i].to_string(), Some(Position { line, column })),
                _ => (message.clone(), None),
            }
        }
        None => (message.clone(), None),
    };
    // The parser quotes the token it met: a huge one is shown shortened.
    let text: Vec<String> = text.split(' ').map(|w| shown(w).into_owned()).collect();
    SqlError::new(SqlErrorKind::Syntax, format!("syntax error: {}", text.join(" "))).at(position).into()
}

fn classify(statement: ast::Statement, sql: String) -> Result<Statement, Error> {
    use ast::Statement as S;
    let span = statement.span();
    Ok(match statement {
        S::Query(query) => Statement::Query { query, sql },
        S::CreateTable(ct) => Statement::CreateTable(ddl::create_table(&ct)?),
        S::CreateView(cv) => {
            if cv.materialized || cv.or_replace || !cv.columns.is_empty() {
                return Err(unsupported("CREATE VIEW with MATERIALIZED, OR REPLACE or a column list", span));
            }
            Statement::CreateView {
                name: ddl::object_name(&cv.name)?,
                query: cv.query,
                sql,
                if_not_exists: cv.if_not_exists,
            }
        }
        S::Drop { object_type, if_exists, names, .. } => {
            let names = names.iter().map(ddl::object_name).collect::<Result<Vec<_>, _>>()?;
            match object_type {
                ast::ObjectType::View => Statement::DropView { names, if_exists },
                ast::ObjectType::Table => Statement::DropTable { names, if_exists },
                ast::ObjectType::Index => Statement::NoOp("DROP INDEX"),
                other => return Err(unsupported(format!("DROP {other}"), span)),
            }
        }
        S::CreateIndex(_) => Statement::NoOp("CREATE INDEX"),
        S::Insert(insert) => plan_insert(&insert)?,
        S::Explain { statement, .. } => match *statement {
            S::Query(q) => Statement::Explain(q),
            _ => return Err(unsupported("EXPLAIN of anything but a query", span)),
        },
        other => {
            let first = other.to_string().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            return Err(unsupported(format!("statement {first} …"), span));
        }
    })
}

fn plan_insert(insert: &ast::Insert) -> Result<Statement, Error> {
    let span = insert.span();
    let ast::TableObject::TableName(name) = &insert.table else {
        return Err(unsupported("INSERT INTO a table function", span));
    };
    if insert.on.is_some() || insert.returning.is_some() || insert.or.is_some() {
        return Err(unsupported("INSERT with ON CONFLICT, RETURNING or OR …", span));
    }
    let Some(source) = &insert.source else {
        return Err(unsupported("INSERT without VALUES", span));
    };
    let ast::SetExpr::Values(values) = &*source.body else {
        return Err(unsupported("INSERT … SELECT (insert rows as changes instead)", span));
    };
    let empty = Scope::default();
    let ctx = ExprCtx::row(&empty, ciuf_engine::Dialect::Sqlite);
    let mut rows = Vec::with_capacity(values.rows.len());
    for row in &values.rows {
        let mut out = Vec::with_capacity(row.len());
        for e in row.iter() {
            let t = ctx.plan(e)?;
            if !t.expr.is_constant() {
                return Err(error::type_error("INSERT … VALUES takes constants", e.span()));
            }
            out.push(expr::constant_value(&t.expr, e.span())?);
        }
        rows.push(out);
    }
    Ok(Statement::Insert {
        table: ddl::object_name(name)?,
        columns: insert.columns.iter().map(ddl::object_name).collect::<Result<_, _>>()?,
        rows,
    })
}
