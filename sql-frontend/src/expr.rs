//! SQL expressions to typed engine expressions.
//!
//! Names resolve against a [`Scope`]; every result carries its type and nullability.
//! Inside an aggregating query the same planner works in *post-aggregate* mode: an
//! aggregate call, or a sub-expression equal to a GROUP BY expression, becomes a
//! reference to the aggregate's output column, and any other column reference is an
//! error (SQL's "must appear in the GROUP BY clause").

use ciuf_engine::expr::cast::cast;
use ciuf_engine::expr::{BinaryOp, Func};
use ciuf_engine::{DataType, Decimal, Dialect, Error, Expr, SqlErrorKind, Value};
use sqlparser::ast::{self, Spanned};
use sqlparser::tokenizer::Span;

use crate::aggregate::{AggContext, contains_aggregate};
use crate::error::{sql_error, type_error, unsupported};
use crate::scope::Scope;
use crate::types::{
    Affinity, NUMBERS, OTHER, Origin, TEXT, arithmetic_type, common_type, same_representation, sql_type,
    sqlite_arithmetic_type, sqlite_result_type,
};

/// An engine expression with its type, nullability and (SQLite's) affinity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Typed {
    pub expr: Expr,
    pub ty: DataType,
    pub nullable: bool,
    pub affinity: Affinity,
}

impl Typed {
    /// An expression with no affinity.
    pub fn new(expr: Expr, ty: DataType, nullable: bool) -> Typed {
        Typed { expr, ty, nullable, affinity: Affinity::None }
    }

    /// A reference to column `i` of `scope`, with the column's type and affinity.
    pub fn column(scope: &Scope, i: usize) -> Typed {
        let c = &scope.columns[i];
        Typed { expr: Expr::Column(i), ty: c.ty, nullable: c.nullable, affinity: c.affinity }
    }

    fn literal(v: Value, ty: DataType) -> Typed {
        let nullable = v.is_null();
        Typed::new(Expr::Literal(v), ty, nullable)
    }

    /// The expression converted to `ty`: no-op for a shared representation, folded for
    /// a literal, else a CAST. Into a type whose values keep their own class
    /// ([`DataType::is_per_value`]) numbers go as they are, but booleans become the
    /// integers SQLite has them as and decimals the doubles it would hold.
    pub fn coerce(self, ty: DataType) -> Typed {
        if ty.is_per_value() {
            return match self.ty {
                DataType::Bool => Typed { ty, ..self.coerce(DataType::BigInt) },
                DataType::Decimal { .. } => Typed { ty, ..self.coerce(DataType::Double) },
                _ => Typed { ty, ..self },
            };
        }
        if same_representation(self.ty, ty) || ty == DataType::Null {
            return Typed { ty, ..self };
        }
        match self.expr {
            Expr::Literal(v) => Typed::literal(cast(&v, ty), ty),
            e => Typed::new(e.cast(ty), ty, self.nullable),
        }
    }

    /// `self` with SQLite's `affinity` applied for a comparison: a literal folded, any
    /// other expression wrapped. Nothing for an operand that cannot change under it.
    fn with_affinity_applied(self, affinity: Affinity) -> Typed {
        let (func, changes) = match affinity {
            Affinity::Numeric | Affinity::Real => {
                (Func::NumericAffinity, matches!(self.ty, DataType::Text | DataType::Any))
            }
            Affinity::Text => {
                (Func::TextAffinity, self.ty.is_numeric() || matches!(self.ty, DataType::Bool | DataType::Any))
            }
            Affinity::None => return self,
        };
        if !changes {
            return self;
        }
        let ty = if affinity == Affinity::Text { DataType::Text } else { DataType::Any };
        let call = Expr::Call { func, args: vec![self.expr] };
        let expr = if call.is_constant() { Expr::Literal(call.eval(&[])) } else { call };
        Typed { expr, ty, nullable: self.nullable, affinity }
    }
}

/// Where an expression is planned: the visible columns, and for aggregating queries
/// the aggregate's groups and calls.
pub(crate) struct ExprCtx<'a> {
    pub scope: &'a Scope,
    pub agg: Option<&'a AggContext>,
    pub dialect: Dialect,
}

impl<'a> ExprCtx<'a> {
    /// Row mode over `scope`.
    pub fn row(scope: &'a Scope, dialect: Dialect) -> ExprCtx<'a> {
        ExprCtx { scope, agg: None, dialect }
    }

    fn row_mode(&self) -> ExprCtx<'a> {
        ExprCtx { scope: self.scope, agg: None, dialect: self.dialect }
    }

    /// Plans `e`.
    pub fn plan(&self, e: &ast::Expr) -> Result<Typed, Error> {
        let _depth = Depth::enter(e)?;
        if let Some(agg) = self.agg {
            if let Some(t) = agg.lookup_call(e) {
                return Ok(t);
            }
            // A sub-expression equal to a GROUP BY expression, or a constant. (One that
            // does not plan over the input, like a subquery answered after the
            // aggregate, is planned below, in post-aggregate mode.)
            if !contains_aggregate(e)
                && let Ok(planned) = self.row_mode().plan(e)
            {
                if let Some(t) = agg.lookup_group(&planned.expr) {
                    return Ok(t);
                }
                if planned.expr.is_constant() {
                    return Ok(planned);
                }
            }
        }
        self.plan_node(e)
    }

    /// Plans `e` as a condition (WHERE, ON, HAVING, CASE WHEN).
    pub fn plan_condition(&self, e: &ast::Expr) -> Result<Typed, Error> {
        let t = self.plan(e)?;
        self.check_boolean(&t, e.span())?;
        Ok(t)
    }

    /// The hidden column that answers subquery `id` (negated for NOT IN / NOT EXISTS):
    /// after an aggregate, one the aggregate context lists; else one of the scope.
    fn answer(&self, id: usize, negated: bool, what: &str, span: Span) -> Result<Typed, Error> {
        let found = match self.agg {
            Some(agg) => agg.answers.iter().find(|(m, _)| *m == id).map(|(_, t)| t.clone()),
            None => self.scope.columns.iter().position(|c| c.mark == Some(id)).map(|at| Typed::column(self.scope, at)),
        };
        let Some(t) = found else { return Err(unsupported(format!("{what} here"), span)) };
        Ok(if negated { Typed { expr: Expr::Not(Box::new(t.expr)), ..t } } else { t })
    }

    fn column(&self, qualifier: Option<&str>, ident: &ast::Ident) -> Result<Typed, Error> {
        let i = self.scope.resolve(qualifier, &ident.value, ident.span)?;
        if self.agg.is_some() {
            return Err(sql_error(
                SqlErrorKind::Invalid,
                format!(
                    "column {} must appear in the GROUP BY clause or be used in an aggregate function",
                    ident.value
                ),
                ident.span,
            ));
        }
        Ok(Typed::column(self.scope, i))
    }

    fn plan_node(&self, e: &ast::Expr) -> Result<Typed, Error> {
        use ast::Expr as E;
        let span = e.span();
        match e {
            E::Identifier(id) => self.column(None, id),
            E::CompoundIdentifier(ids) => match ids.as_slice() {
                [q, c] => self.column(Some(&q.value), c),
                [_schema, q, c] => self.column(Some(&q.value), c),
                _ => Err(unsupported(format!("name {e}"), span)),
            },
            E::Value(v) => self.literal(&v.value, span),
            E::TypedString(ts) => {
                let ty = sql_type(&ts.data_type, span, self.dialect)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => return Err(unsupported(format!("typed literal {other}"), span)),
                };
                let v = cast(&Value::text(text.as_str()), ty);
                if v.is_null() {
                    return Err(type_error(format!("'{text}' is not a valid {ty}"), span));
                }
                Ok(Typed::literal(v, ty))
            }
            E::Nested(inner) => self.plan(inner),
            E::UnaryOp { op, expr } => {
                let t = self.plan(expr)?;
                match op {
                    ast::UnaryOperator::Not => {
                        self.check_boolean(&t, expr.span())?;
                        Ok(Typed::new(Expr::Not(Box::new(t.expr)), DataType::Bool, t.nullable))
                    }
                    ast::UnaryOperator::Minus => {
                        let ty = self.numeric_operand(&t, "-", expr.span())?;
                        Ok(self.integer_checked(Typed::new(Expr::Negate(Box::new(t.expr)), ty, t.nullable)))
                    }
                    // SQLite's unary + is a no-op on any value, text included; what
                    // it takes away is the operand's affinity.
                    ast::UnaryOperator::Plus if self.dialect == Dialect::Sqlite => {
                        Ok(Typed { affinity: Affinity::None, ..t })
                    }
                    ast::UnaryOperator::Plus => {
                        let ty = self.numeric_operand(&t, "+", expr.span())?;
                        Ok(Typed { ty, ..t })
                    }
                    other => Err(unsupported(format!("operator {other}"), span)),
                }
            }
            E::BinaryOp { op: op @ (ast::BinaryOperator::And | ast::BinaryOperator::Or), .. } => self.chain(e, op),
            E::BinaryOp { left, op, right } => self.binary(left, op, right, span),
            E::IsNull(x) | E::IsNotNull(x) => {
                let t = self.plan(x)?;
                Ok(Typed::new(
                    Expr::IsNull { expr: Box::new(t.expr), negated: matches!(e, E::IsNotNull(_)) },
                    DataType::Bool,
                    false,
                ))
            }
            E::IsTrue(x) | E::IsNotTrue(x) | E::IsFalse(x) | E::IsNotFalse(x) => {
                let t = self.plan(x)?;
                self.check_boolean(&t, x.span())?;
                let want = matches!(e, E::IsTrue(_) | E::IsNotTrue(_));
                let op = if matches!(e, E::IsTrue(_) | E::IsFalse(_)) {
                    BinaryOp::IsNotDistinctFrom
                } else {
                    BinaryOp::IsDistinctFrom
                };
                let truth = Expr::Cast { expr: Box::new(t.expr), to: DataType::Bool };
                Ok(Typed::new(Expr::binary(op, truth, Expr::lit(want)), DataType::Bool, false))
            }
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                let (l, r) = self.comparable(self.plan(a)?, self.plan(b)?, span)?;
                let op = if matches!(e, E::IsDistinctFrom(..)) {
                    BinaryOp::IsDistinctFrom
                } else {
                    BinaryOp::IsNotDistinctFrom
                };
                Ok(Typed::new(Expr::binary(op, l.expr, r.expr), DataType::Bool, false))
            }
            E::In { expr, target: ast::InTarget::List(list), negated, .. } => {
                let mut t = self.plan(expr)?;
                let mut items = Vec::with_capacity(list.len());
                let mut nullable = t.nullable;
                for item in list {
                    let r = if self.dialect == Dialect::Sqlite {
                        // SQLite: `x IN (y, z)` is `x = +y OR x = +z`; the items have no
                        // affinity of their own and take x's.
                        let r = self.plan(item)?;
                        self.comparable_classes(t.ty, r.ty, item.span())?;
                        r.with_affinity_applied(t.affinity)
                    } else {
                        let (l, r) = self.comparable(t.clone(), self.plan(item)?, item.span())?;
                        t = l;
                        r
                    };
                    nullable |= r.nullable;
                    items.push(r.expr);
                }
                Ok(Typed::new(
                    Expr::InList { expr: Box::new(t.expr), list: items, negated: *negated },
                    DataType::Bool,
                    nullable,
                ))
            }
            // Subqueries are answered below the expression (see from.rs and
            // correlated.rs), each by a hidden column.
            E::In { target: ast::InTarget::Subquery(q), negated, .. } => {
                self.answer(subquery_id(q), *negated, "IN (subquery)", span)
            }
            E::In { target: ast::InTarget::Table { name, args: None }, negated, .. } => {
                self.answer(in_table_id(name), *negated, "IN table", span)
            }
            E::In { .. } => Err(unsupported("IN UNNEST and IN table-valued function", span)),
            E::Exists { subquery, negated } => self.answer(subquery_id(subquery), *negated, "EXISTS (subquery)", span),
            E::Subquery(q) => self.answer(subquery_id(q), false, "scalar subquery", span),
            E::Between { expr, negated, low, high } => {
                let x = self.plan(expr)?;
                let (t, lo) = self.comparable(x.clone(), self.plan(low)?, low.span())?;
                let (t2, hi) = self.comparable(x, self.plan(high)?, high.span())?;
                let nullable = t.nullable || lo.nullable || hi.nullable;
                if t.expr != t2.expr {
                    // The two comparisons convert x differently (SQLite's affinities):
                    // x >= low AND x <= high, each with its own x.
                    let both = Expr::binary(
                        BinaryOp::And,
                        Expr::binary(BinaryOp::GtEq, t.expr, lo.expr),
                        Expr::binary(BinaryOp::LtEq, t2.expr, hi.expr),
                    );
                    let e = if *negated { Expr::Not(Box::new(both)) } else { both };
                    return Ok(Typed::new(e, DataType::Bool, nullable));
                }
                Ok(Typed::new(
                    Expr::Between {
                        expr: Box::new(t.expr),
                        low: Box::new(lo.expr),
                        high: Box::new(hi.expr),
                        negated: *negated,
                    },
                    DataType::Bool,
                    nullable,
                ))
            }
            E::Like { negated, any, expr, pattern, escape_char }
            | E::ILike { negated, any, expr, pattern, escape_char } => {
                if *any {
                    return Err(unsupported("LIKE ANY", span));
                }
                let case_insensitive = matches!(e, E::ILike { .. }) || self.dialect.like_is_case_insensitive();
                let (t, p) = (self.plan(expr)?, self.plan(pattern)?);
                let escape = match escape_char.as_deref() {
                    None => None,
                    Some(E::Value(v)) => match &v.value {
                        ast::Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
                        _ => return Err(type_error("ESCAPE takes a single character", span)),
                    },
                    Some(other) => {
                        return Err(unsupported(format!("ESCAPE {other}"), other.span()));
                    }
                };
                Ok(Typed::new(
                    Expr::Like {
                        expr: Box::new(t.expr),
                        pattern: Box::new(p.expr),
                        escape,
                        negated: *negated,
                        case_insensitive,
                    },
                    DataType::Bool,
                    t.nullable || p.nullable,
                ))
            }
            E::Case { operand, conditions, else_result, .. } => {
                self.case(operand.as_deref(), conditions, else_result.as_deref(), span)
            }
            E::Cast { expr, data_type, format, .. } => {
                if format.is_some() {
                    return Err(unsupported("CAST … FORMAT", span));
                }
                let t = self.plan(expr)?;
                let ty = sql_type(data_type, span, self.dialect)?;
                let cast = match t.expr {
                    Expr::Literal(v) => Typed::literal(cast(&v, ty), ty),
                    other => Typed::new(other.cast(ty), ty, t.nullable),
                };
                Ok(Typed { affinity: Affinity::of_type(ty), ..cast })
            }
            E::Function(f) => self.function(f, span),
            E::Substring { expr, substring_from, substring_for, .. } => {
                let mut args = vec![self.plan(expr)?];
                args.push(match substring_from {
                    Some(f) => self.plan(f)?,
                    None => Typed::literal(Value::Int(1), DataType::BigInt),
                });
                if let Some(f) = substring_for {
                    args.push(self.plan(f)?);
                }
                let nullable = args.iter().any(|a| a.nullable);
                Ok(Typed::new(
                    Expr::Call { func: Func::Substr, args: args.into_iter().map(|a| a.expr).collect() },
                    DataType::Text,
                    nullable,
                ))
            }
            E::Trim { expr, trim_where, trim_what, trim_characters } => {
                // `trim(s, chars)` (SQLite's form) comes as a character list of one.
                let chars = match trim_characters.as_deref() {
                    None => trim_what.as_deref(),
                    Some([c]) if trim_what.is_none() => Some(c),
                    Some(_) => return Err(unsupported("TRIM with several character lists", span)),
                };
                let func = match trim_where {
                    None | Some(ast::TrimWhereField::Both) => Func::Trim,
                    Some(ast::TrimWhereField::Leading) => Func::LTrim,
                    Some(ast::TrimWhereField::Trailing) => Func::RTrim,
                };
                let mut args = vec![self.plan(expr)?];
                if let Some(w) = chars {
                    args.push(self.plan(w)?);
                }
                let nullable = args.iter().any(|a| a.nullable);
                Ok(Typed::new(
                    Expr::Call { func, args: args.into_iter().map(|a| a.expr).collect() },
                    DataType::Text,
                    nullable,
                ))
            }
            other => Err(unsupported(format!("expression {other}"), span)),
        }
    }

    fn literal(&self, v: &ast::Value, span: Span) -> Result<Typed, Error> {
        Ok(match v {
            ast::Value::Number(n, _) => {
                let is_integer = !n.contains(['.', 'e', 'E']);
                match n.parse::<i64>() {
                    // PostgreSQL types an integer literal int4 where it fits.
                    Ok(i) if is_integer && self.dialect == Dialect::Postgres && i32::try_from(i).is_ok() => {
                        Typed::literal(Value::Int(i), DataType::Int)
                    }
                    Ok(i) if is_integer => Typed::literal(Value::Int(i), DataType::BigInt),
                    _ if self.dialect == Dialect::Postgres => match Decimal::parse(n) {
                        Some(d) => Typed::literal(
                            Value::from(d),
                            DataType::Decimal {
                                precision: (d.mantissa().unsigned_abs().to_string().len() as u8).max(d.scale()).max(1),
                                scale: d.scale(),
                            },
                        ),
                        None => Typed::literal(Value::Float(n.parse().unwrap_or(f64::NAN)), DataType::Double),
                    },
                    _ => match n.parse::<f64>() {
                        Ok(f) => Typed::literal(Value::Float(f), DataType::Double),
                        Err(_) => {
                            return Err(sql_error(SqlErrorKind::Syntax, format!("bad number {n}"), span));
                        }
                    },
                }
            }
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                Typed::literal(Value::text(s.as_str()), DataType::Text)
            }
            ast::Value::Boolean(b) => Typed::literal(Value::Bool(*b), DataType::Bool),
            ast::Value::Null => Typed::literal(Value::Null, DataType::Null),
            ast::Value::Placeholder(p) => return Err(unsupported(format!("parameter {p}"), span)),
            other => return Err(unsupported(format!("literal {other}"), span)),
        })
    }

    fn binary(
        &self,
        left: &ast::Expr,
        op: &ast::BinaryOperator,
        right: &ast::Expr,
        span: Span,
    ) -> Result<Typed, Error> {
        use ast::BinaryOperator as B;
        let (l, r) = (self.plan(left)?, self.plan(right)?);
        let nullable = l.nullable || r.nullable;
        let arith = |bop: BinaryOp| -> Result<Typed, Error> {
            let ty = match self.dialect {
                Dialect::Sqlite => sqlite_arithmetic_type(bop, l.ty, r.ty),
                Dialect::Postgres => arithmetic_type(bop, l.ty, r.ty),
            }
            .ok_or_else(|| type_error(format!("cannot apply {bop} to {} and {}", l.ty, r.ty), span))?;
            // Division and modulo by zero give NULL.
            let nullable = nullable || matches!(bop, BinaryOp::Div | BinaryOp::Mod);
            Ok(self.integer_checked(Typed::new(Expr::binary(bop, l.expr.clone(), r.expr.clone()), ty, nullable)))
        };
        match op {
            B::Plus => arith(BinaryOp::Add),
            B::Minus => arith(BinaryOp::Sub),
            B::Multiply => arith(BinaryOp::Mul),
            B::Divide => arith(BinaryOp::Div),
            B::Modulo => arith(BinaryOp::Mod),
            B::StringConcat => Ok(Typed::new(Expr::binary(BinaryOp::Concat, l.expr, r.expr), DataType::Text, nullable)),
            B::And | B::Or => {
                self.check_boolean(&l, left.span())?;
                self.check_boolean(&r, right.span())?;
                let bop = if matches!(op, B::And) { BinaryOp::And } else { BinaryOp::Or };
                Ok(Typed::new(Expr::binary(bop, l.expr, r.expr), DataType::Bool, nullable))
            }
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::Spaceship => {
                let bop = match op {
                    B::Eq => BinaryOp::Eq,
                    B::NotEq => BinaryOp::NotEq,
                    B::Lt => BinaryOp::Lt,
                    B::LtEq => BinaryOp::LtEq,
                    B::Gt => BinaryOp::Gt,
                    B::GtEq => BinaryOp::GtEq,
                    _ => BinaryOp::IsNotDistinctFrom,
                };
                let (l, r) = self.comparable(l, r, span)?;
                let nullable = nullable && bop != BinaryOp::IsNotDistinctFrom;
                Ok(Typed::new(Expr::binary(bop, l.expr, r.expr), DataType::Bool, nullable))
            }
            other => Err(unsupported(format!("operator {other}"), span)),
        }
    }

    /// `e`, a chain of one of AND and OR (`a OR b OR c …`, which the parser nests one
    /// level per operator), planned flat and combined as a balanced tree: a chain of any
    /// length nests only as deep as its logarithm. (Both are associative under SQL's
    /// three-valued logic.)
    fn chain(&self, e: &ast::Expr, op: &ast::BinaryOperator) -> Result<Typed, Error> {
        let mut operands = Vec::new();
        let mut rest = e;
        while let ast::Expr::BinaryOp { left, op: o, right } = rest
            && o == op
        {
            operands.push(&**right);
            rest = left;
        }
        operands.push(rest);
        operands.reverse();
        let mut planned = Vec::with_capacity(operands.len());
        for operand in operands {
            let t = self.plan(operand)?;
            self.check_boolean(&t, operand.span())?;
            planned.push(t);
        }
        let bop = if matches!(op, ast::BinaryOperator::And) { BinaryOp::And } else { BinaryOp::Or };
        let nullable = planned.iter().any(|t| t.nullable);
        let exprs: Vec<Expr> = planned.into_iter().map(|t| t.expr).collect();
        Ok(Typed::new(balanced(bop, exprs), DataType::Bool, nullable))
    }

    /// Makes `l` and `r` comparable: numbers compare as they are; text meets dates by
    /// conversion; a text literal compared with a number is read as a number (SQLite's
    /// affinity rule) when it is one.
    ///
    /// Under SQLite, the operands' affinities decide instead (see
    /// [`ExprCtx::comparable_sqlite`]).
    pub fn comparable(&self, l: Typed, r: Typed, span: Span) -> Result<(Typed, Typed), Error> {
        use DataType::*;
        if self.dialect == Dialect::Sqlite {
            return self.comparable_sqlite(l, r, span);
        }
        let numberish = |t: DataType| t.is_numeric() || t == Bool;
        match (l.ty, r.ty) {
            (a, b) if a == b || a == Null || b == Null => Ok((l, r)),
            (a, b) if numberish(a) && numberish(b) => Ok((l, r)),
            (Text, b) if numberish(b) => Ok((numeric_literal(l, b, span)?, r)),
            (a, Text) if numberish(a) => {
                let r = numeric_literal(r, a, span)?;
                Ok((l, r))
            }
            (a, b) => match common_type(a, b) {
                Some(t) => {
                    let (l, r) = (fold_temporal(l, t, span)?, fold_temporal(r, t, span)?);
                    Ok((l, r))
                }
                None => Err(type_error(format!("cannot compare {a} with {b}"), span)),
            },
        }
    }

    /// SQLite's comparison (<https://www.sqlite.org/datatype3.html>, 4.2): where one
    /// operand has INTEGER, REAL or NUMERIC affinity (a column of such a type, or a CAST
    /// to one) and the other has TEXT or none, text on the other side that is a number is
    /// read as that number; else where one has TEXT affinity and the other none, a number
    /// on the other side is compared as its text; else the values compare as they are,
    /// every number before every text. Dates keep ciuf's rule: text is read as a date.
    fn comparable_sqlite(&self, l: Typed, r: Typed, span: Span) -> Result<(Typed, Typed), Error> {
        use DataType::*;
        let temporal = |t: DataType| matches!(t, Date | Timestamp);
        if temporal(l.ty) || temporal(r.ty) {
            return match common_type(l.ty, r.ty) {
                _ if l.ty == r.ty || l.ty == Null || r.ty == Null => Ok((l, r)),
                Some(t) => Ok((fold_temporal(l, t, span)?, fold_temporal(r, t, span)?)),
                None => Err(type_error(format!("cannot compare {} with {}", l.ty, r.ty), span)),
            };
        }
        self.comparable_classes(l.ty, r.ty, span)?;
        let (la, ra) = (l.affinity, r.affinity);
        Ok(match (la, ra) {
            (a, b) if a.is_numeric() && !b.is_numeric() => (l, r.with_affinity_applied(Affinity::Numeric)),
            (a, b) if !a.is_numeric() && b.is_numeric() => (l.with_affinity_applied(Affinity::Numeric), r),
            (Affinity::Text, Affinity::None) => (l, r.with_affinity_applied(Affinity::Text)),
            (Affinity::None, Affinity::Text) => (l.with_affinity_applied(Affinity::Text), r),
            _ => (l, r),
        })
    }

    /// What SQLite knows of `e` as an output column ([`Origin`]), following its
    /// `sqlite3ExprDataType`: which classes the values may have, and whether it is a
    /// CAST.
    pub fn origin(&self, e: &ast::Expr) -> Origin {
        use ast::Expr as E;
        let classes = |classes| Origin { classes, ..Origin::default() };
        match e {
            E::Nested(x) | E::UnaryOp { op: ast::UnaryOperator::Plus, expr: x } => self.origin(x),
            E::Value(v) => classes(match &v.value {
                ast::Value::Null => 0,
                ast::Value::SingleQuotedString(_) | ast::Value::DoubleQuotedString(_) => TEXT,
                ast::Value::Number(..) | ast::Value::Boolean(_) => NUMBERS,
                _ => NUMBERS | TEXT | OTHER,
            }),
            E::BinaryOp { op: ast::BinaryOperator::StringConcat, .. } => classes(TEXT | OTHER),
            E::Function(_) => classes(NUMBERS | TEXT | OTHER),
            E::Identifier(_) | E::CompoundIdentifier(_) | E::Subquery(_) | E::Cast { .. } => Origin {
                classes: self.plan(e).map_or(NUMBERS | TEXT | OTHER, |t| t.affinity.classes()),
                cast: matches!(e, E::Cast { .. }),
                arms: None,
            },
            E::Case { conditions, else_result, .. } => {
                let results = conditions.iter().map(|c| &c.result).chain(else_result.as_deref());
                classes(results.fold(0, |acc, r| acc | self.origin(r).classes))
            }
            _ => classes(NUMBERS),
        }
    }

    /// Whether values of types `a` and `b` can be compared at all (under SQLite any
    /// number, text or boolean meets any other; dates meet text).
    fn comparable_classes(&self, a: DataType, b: DataType, span: Span) -> Result<(), Error> {
        use DataType::*;
        let plain = |t: DataType| t.is_numeric() || matches!(t, Bool | Text | Any | Null);
        if a == b || (plain(a) && plain(b)) || common_type(a, b).is_some() {
            Ok(())
        } else {
            Err(type_error(format!("cannot compare {a} with {b}"), span))
        }
    }

    fn case(
        &self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
        span: Span,
    ) -> Result<Typed, Error> {
        let subject = operand.map(|o| self.plan(o)).transpose()?;
        let mut whens = Vec::with_capacity(conditions.len());
        let mut results = Vec::with_capacity(conditions.len() + 1);
        // The subject as each comparison sees it: under SQLite, a WHEN's affinity may
        // convert it, and then the CASE is planned in its searched form.
        let mut subjects = Vec::with_capacity(conditions.len());
        for c in conditions {
            let w = match &subject {
                Some(s) => {
                    let (l, r) = self.comparable(s.clone(), self.plan(&c.condition)?, c.condition.span())?;
                    subjects.push(l.expr);
                    r
                }
                None => self.plan_condition(&c.condition)?,
            };
            whens.push(w.expr);
            results.push(self.plan(&c.result)?);
        }
        let otherwise = else_result.map(|e| self.plan(e)).transpose()?;
        let operand = match subject {
            Some(s) if subjects.iter().all(|e| *e == s.expr) => Some(s.expr),
            Some(_) => {
                whens = subjects.into_iter().zip(whens).map(|(l, r)| Expr::binary(BinaryOp::Eq, l, r)).collect();
                None
            }
            None => None,
        };
        self.case_of(operand, whens, results, otherwise, span)
    }

    /// A CASE of planned parts: its type is the results' ([`ExprCtx::result_type`]).
    fn case_of(
        &self,
        operand: Option<Expr>,
        whens: Vec<Expr>,
        results: Vec<Typed>,
        otherwise: Option<Typed>,
        span: Span,
    ) -> Result<Typed, Error> {
        let ty = self.result_type(results.iter().chain(otherwise.iter()), "CASE", span)?;
        let nullable = otherwise.is_none() || results.iter().chain(otherwise.iter()).any(|r| r.nullable);
        let branches = whens.into_iter().zip(results).map(|(w, r)| (w, r.coerce(ty).expr)).collect();
        Ok(Typed::new(
            Expr::Case {
                operand: operand.map(Box::new),
                branches,
                otherwise: otherwise.map(|o| Box::new(o.coerce(ty).expr)),
            },
            ty,
            nullable,
        ))
    }

    /// The type of an expression whose value is one of `values`: their common type
    /// (PostgreSQL), or under SQLite the type that keeps each value's own class
    /// ([`sqlite_result_type`]).
    fn result_type<'t>(
        &self,
        values: impl Iterator<Item = &'t Typed>,
        what: &str,
        span: Span,
    ) -> Result<DataType, Error> {
        let mut ty = DataType::Null;
        for v in values {
            let mixed = match self.dialect {
                Dialect::Sqlite => sqlite_result_type(ty, v.ty),
                Dialect::Postgres => common_type(ty, v.ty),
            };
            ty = mixed.ok_or_else(|| type_error(format!("{what} mixes {ty} and {}", v.ty), span))?;
        }
        Ok(ty)
    }

    fn function(&self, f: &ast::Function, span: Span) -> Result<Typed, Error> {
        let name = crate::ddl::object_name(&f.name)?.to_ascii_lowercase();
        if f.over.is_some() {
            return Err(unsupported(format!("window function {name}() OVER (…)"), span));
        }
        if f.filter.is_some() {
            return Err(unsupported("FILTER (WHERE …) on an aggregate", span));
        }
        let args = crate::aggregate::function_args(f, span)?;
        if crate::aggregate::aggregate_func(&name, args.exprs.len()).is_some() {
            return Err(sql_error(
                SqlErrorKind::Invalid,
                format!("aggregate function {name}() is not allowed here"),
                span,
            ));
        }
        if args.distinct {
            return Err(unsupported(format!("DISTINCT in {name}()"), span));
        }
        if name == "iif" {
            // SQLite's iif(c, a, b): CASE WHEN c THEN a ELSE b END.
            let [c, a, b] = args.exprs.as_slice() else {
                return Err(type_error(format!("iif() takes 3 arguments, not {}", args.exprs.len()), span));
            };
            let when = self.plan_condition(c)?.expr;
            return self.case_of(None, vec![when], vec![self.plan(a)?], Some(self.plan(b)?), span);
        }
        let Some(func) = Func::from_name(&name, args.exprs.len()) else {
            return Err(unsupported(format!("function {name}()"), span));
        };
        let (min, max) = func.arity();
        if args.exprs.len() < min || args.exprs.len() > max {
            return Err(type_error(
                format!(
                    "{name}() takes {min}{} arguments, not {}",
                    if max == usize::MAX {
                        " or more".to_string()
                    } else if max == min {
                        String::new()
                    } else {
                        format!(" to {max}")
                    },
                    args.exprs.len()
                ),
                span,
            ));
        }
        if args.star {
            return Err(type_error(format!("{name}(*) is not a function call"), span));
        }
        let mut planned: Vec<Typed> = Vec::with_capacity(args.exprs.len());
        for a in &args.exprs {
            let t = self.plan(a)?;
            let never_null = !t.nullable;
            planned.push(t);
            // COALESCE never evaluates what follows an argument that is never NULL. Under
            // SQLite's dynamic typing it is not even looked at: the value, and so its
            // type, is that argument's (`coalesce(-81, 9.5) / 14` divides integers).
            if func == Func::Coalesce && never_null && self.dialect == Dialect::Sqlite {
                break;
            }
        }
        if func == Func::Coalesce && planned.len() == 1 && self.dialect == Dialect::Sqlite {
            // The argument's value, but a function's result has no affinity.
            return Ok(Typed { affinity: Affinity::None, ..planned.pop().expect("one argument") });
        }
        let any_null = planned.iter().any(|a| a.nullable);
        let (ty, nullable, planned) = match func {
            Func::Coalesce | Func::Least | Func::Greatest => {
                let ty = self.result_type(planned.iter(), &format!("{name}()"), span)?;
                let nullable = if func == Func::Coalesce { planned.iter().all(|a| a.nullable) } else { any_null };
                (ty, nullable, planned.into_iter().map(|a| a.coerce(ty)).collect())
            }
            // SQLite compares NULLIF's arguments as they are (no affinity) and gives the
            // first back unchanged.
            Func::NullIf if self.dialect == Dialect::Sqlite => {
                self.comparable_classes(planned[0].ty, planned[1].ty, span)?;
                (planned[0].ty, true, planned)
            }
            Func::NullIf => {
                let (a, b) = self.comparable(planned[0].clone(), planned[1].clone(), span)?;
                (a.ty, true, vec![a, b])
            }
            Func::Abs => {
                let ty = match planned[0].ty {
                    // SQLite reads text as a double (0.0 when it is no number).
                    DataType::Text if self.dialect == Dialect::Sqlite => DataType::Double,
                    DataType::Any if self.dialect == Dialect::Sqlite => DataType::Number,
                    _ => self.numeric_operand(&planned[0], "abs()", span)?,
                };
                (ty, any_null, planned)
            }
            Func::Round => (DataType::Double, any_null, planned),
            Func::Length | Func::Instr => (DataType::BigInt, any_null, planned),
            Func::Lower | Func::Upper | Func::Substr | Func::Trim | Func::LTrim | Func::RTrim | Func::Replace => {
                (DataType::Text, any_null, planned)
            }
            Func::NumberKey | Func::NumericAffinity | Func::TextAffinity | Func::InRange => {
                unreachable!("{name}() is planned, never looked up by name")
            }
        };
        Ok(Typed::new(Expr::Call { func, args: planned.into_iter().map(|a| a.expr).collect() }, ty, nullable))
    }

    /// Integer arithmetic as the dialect has it: under SQLite a result beyond 64 bits
    /// is a real (the evaluation's own rule); under PostgreSQL one beyond the result
    /// type's width is an error, which fails the view computing it.
    fn integer_checked(&self, t: Typed) -> Typed {
        let bits = match t.ty {
            DataType::SmallInt => 16,
            DataType::Int => 32,
            DataType::BigInt => 64,
            _ => return t,
        };
        if self.dialect != Dialect::Postgres {
            return t;
        }
        let expr = Expr::Call { func: Func::InRange, args: vec![t.expr, Expr::lit(bits as i64)] };
        // A constant out of range is left to fail the view that computes it.
        let folded = expr.is_constant().then(|| ciuf_engine::expr::fault::catch(|| expr.eval(&[])).ok()).flatten();
        Typed { expr: folded.map_or(expr, Expr::Literal), ..t }
    }

    /// Whether `t` can be a truth value: BOOLEAN, NULL, or (as in SQLite) a number; under
    /// SQLite any value, text being read as the number it spells.
    fn check_boolean(&self, t: &Typed, span: Span) -> Result<(), Error> {
        let sqlite_value = self.dialect == Dialect::Sqlite && matches!(t.ty, DataType::Text | DataType::Any);
        if t.ty == DataType::Bool || t.ty == DataType::Null || t.ty.is_numeric() || sqlite_value {
            Ok(())
        } else {
            Err(type_error(format!("expected a condition, got {}", t.ty), span))
        }
    }

    /// The type of a numeric operand (booleans count as integers), or a type error.
    /// Under SQLite text is read as the number it spells, an integer or a real.
    fn numeric_operand(&self, t: &Typed, op: &str, span: Span) -> Result<DataType, Error> {
        match t.ty {
            DataType::Text | DataType::Any | DataType::Number if self.dialect == Dialect::Sqlite => {
                Ok(DataType::Number)
            }
            ty if ty.is_integer() || ty == DataType::Bool || ty == DataType::Null => Ok(DataType::BigInt),
            ty if ty.is_numeric() => Ok(ty),
            ty => Err(type_error(format!("{op} needs a number, not {ty}"), span)),
        }
    }
}

/// A text literal compared with a number (of type `other`): read as the number it
/// spells, if it is one.
fn numeric_literal(t: Typed, other: DataType, span: Span) -> Result<Typed, Error> {
    match &t.expr {
        Expr::Literal(Value::Text(s)) => {
            let trimmed = s.trim();
            if let Ok(i) = trimmed.parse::<i64>() {
                Ok(Typed::literal(Value::Int(i), DataType::BigInt))
            } else if let Ok(f) = trimmed.parse::<f64>() {
                Ok(Typed::literal(Value::Float(f), DataType::Double))
            } else {
                // Not a number: SQLite orders every number before every text.
                Ok(t)
            }
        }
        _ => Err(type_error(format!("cannot compare {other} with {}", t.ty), span)),
    }
}

/// Converts text or a date to `t` (a date or timestamp) for comparison.
fn fold_temporal(x: Typed, t: DataType, span: Span) -> Result<Typed, Error> {
    if x.ty == t {
        return Ok(x);
    }
    if let Expr::Literal(v) = &x.expr {
        let c = cast(v, t);
        if c.is_null() && !v.is_null() {
            return Err(type_error(format!("{v} is not a valid {t}"), span));
        }
        return Ok(Typed::literal(c, t));
    }
    Ok(x.coerce(t))
}

/// The two sides of an equality used as hash keys (a join's, an IN set's), made to hash
/// alike where they are equal. Sides of one representation hash as they are. Under
/// SQLite, where a side keeps each value's own class or the sides hold numbers of two
/// classes, both hash their number keys ([`Value::number_key`]), equal exactly where
/// SQLite's `=` says the numbers are; otherwise, and under PostgreSQL, both are cast to
/// their common type, as PostgreSQL compares them.
pub(crate) fn key_pair(dialect: Dialect, l: Typed, r: Typed) -> (Typed, Typed) {
    if same_representation(l.ty, r.ty) && !l.ty.is_per_value() {
        return (l, r);
    }
    let numeric = |t: DataType| t.is_numeric() || t.is_per_value();
    let by_number = l.ty.is_per_value() || r.ty.is_per_value() || (numeric(l.ty) && numeric(r.ty));
    if dialect == Dialect::Sqlite && by_number {
        let key = |t: Typed| {
            let call = Expr::Call { func: Func::NumberKey, args: vec![t.expr] };
            let expr = if call.is_constant() { Expr::Literal(call.eval(&[])) } else { call };
            Typed { expr, ..t }
        };
        return (key(l), key(r));
    }
    match common_type(l.ty, r.ty) {
        Some(t) if t != DataType::Null => (l.coerce(t), r.coerce(t)),
        _ => (l, r),
    }
}

/// The value of a constant expression, or the error its evaluation raises (SQLite's
/// `abs()` of the least integer, say) as an error at `span`.
pub(crate) fn constant_value(e: &Expr, span: Span) -> Result<Value, Error> {
    ciuf_engine::expr::fault::catch(|| e.eval(&[]))
        .map_err(|why| type_error(format!("cannot compute {e}: {why}"), span))
}

/// `input` filtered by every one of `predicates` (one filter: many conditions stacked
/// as filters would nest the plan as deep as there are conditions).
pub(crate) fn filtered(input: ciuf_engine::Plan, predicates: Vec<Expr>) -> ciuf_engine::Plan {
    if predicates.is_empty() {
        return input;
    }
    ciuf_engine::Plan::Filter { input: Box::new(input), predicate: balanced(BinaryOp::And, predicates) }
}

/// `exprs` (at least one) joined by `op` as a balanced tree.
fn balanced(op: BinaryOp, mut exprs: Vec<Expr>) -> Expr {
    if exprs.len() == 1 {
        return exprs.pop().expect("one");
    }
    let right = exprs.split_off(exprs.len() / 2);
    Expr::binary(op, balanced(op, exprs), balanced(op, right))
}

/// The deepest an expression may nest (SQLite's `SQLITE_MAX_EXPR_DEPTH`): planning,
/// evaluating and dropping an expression recurse as deep as it nests, on whatever
/// thread runs them.
pub(crate) const MAX_EXPR_DEPTH: u32 = 1000;

thread_local! {
    static DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// One level of expression nesting while planning, counted on this thread.
struct Depth;

impl Depth {
    fn enter(e: &ast::Expr) -> Result<Depth, Error> {
        let depth = DEPTH.get() + 1;
        if depth > MAX_EXPR_DEPTH {
            return Err(sql_error(
                SqlErrorKind::Invalid,
                format!("expression nested more than {MAX_EXPR_DEPTH} deep (SQLite's limit too)"),
                e.span(),
            ));
        }
        DEPTH.set(depth);
        Ok(Depth)
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
    }
}

/// The identity of a subquery in the syntax tree while one query is planned.
pub(crate) fn subquery_id(q: &ast::Query) -> usize {
    std::ptr::from_ref(q) as usize
}

/// What marks the answer column of SQLite's `key IN table` (the name's address).
pub(crate) fn in_table_id(name: &ast::ObjectName) -> usize {
    std::ptr::from_ref(name) as usize
}
