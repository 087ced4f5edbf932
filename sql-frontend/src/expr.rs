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
use crate::types::{arithmetic_type, common_type, same_representation, sql_type};

/// An engine expression with its type and nullability.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Typed {
    pub expr: Expr,
    pub ty: DataType,
    pub nullable: bool,
}

impl Typed {
    pub fn new(expr: Expr, ty: DataType, nullable: bool) -> Typed {
        Typed { expr, ty, nullable }
    }

    fn literal(v: Value, ty: DataType) -> Typed {
        let nullable = v.is_null();
        Typed { expr: Expr::Literal(v), ty, nullable }
    }

    /// The expression converted to `ty`: no-op for a shared representation, folded for
    /// a literal, else a CAST.
    pub fn coerce(self, ty: DataType) -> Typed {
        if same_representation(self.ty, ty) || ty == DataType::Null {
            return Typed { ty, ..self };
        }
        match self.expr {
            Expr::Literal(v) => Typed::literal(cast(&v, ty), ty),
            e => Typed { expr: e.cast(ty), ty, nullable: self.nullable },
        }
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
        check_boolean(&t, e.span())?;
        Ok(t)
    }

    /// The hidden column that answers subquery `id` (negated for NOT IN / NOT EXISTS):
    /// after an aggregate, one the aggregate context lists; else one of the scope.
    fn answer(&self, id: usize, negated: bool, what: &str, span: Span) -> Result<Typed, Error> {
        let found = match self.agg {
            Some(agg) => agg.answers.iter().find(|(m, _)| *m == id).map(|(_, t)| t.clone()),
            None => self.scope.columns.iter().position(|c| c.mark == Some(id)).map(|at| {
                let c = &self.scope.columns[at];
                Typed::new(Expr::Column(at), c.ty, c.nullable)
            }),
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
        let c = &self.scope.columns[i];
        Ok(Typed::new(Expr::Column(i), c.ty, c.nullable))
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
                let ty = sql_type(&ts.data_type, span)?;
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
                        check_boolean(&t, expr.span())?;
                        Ok(Typed::new(Expr::Not(Box::new(t.expr)), DataType::Bool, t.nullable))
                    }
                    ast::UnaryOperator::Minus => {
                        let ty = numeric_operand(&t, "-", expr.span())?;
                        Ok(Typed::new(Expr::Negate(Box::new(t.expr)), ty, t.nullable))
                    }
                    // SQLite's unary + is a no-op on any value, text included.
                    ast::UnaryOperator::Plus if self.dialect == Dialect::Sqlite => Ok(t),
                    ast::UnaryOperator::Plus => {
                        let ty = numeric_operand(&t, "+", expr.span())?;
                        Ok(Typed { ty, ..t })
                    }
                    other => Err(unsupported(format!("operator {other}"), span)),
                }
            }
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
                check_boolean(&t, x.span())?;
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
                    let (l, r) = self.comparable(t.clone(), self.plan(item)?, item.span())?;
                    t = l;
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
                let t = self.plan(expr)?;
                let (t, lo) = self.comparable(t, self.plan(low)?, low.span())?;
                let (t, hi) = self.comparable(t, self.plan(high)?, high.span())?;
                let nullable = t.nullable || lo.nullable || hi.nullable;
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
                let ty = sql_type(data_type, span)?;
                Ok(match t.expr {
                    Expr::Literal(v) => Typed::literal(cast(&v, ty), ty),
                    other => Typed::new(other.cast(ty), ty, t.nullable),
                })
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
                if trim_characters.is_some() {
                    return Err(unsupported("TRIM with a character list", span));
                }
                let func = match trim_where {
                    None | Some(ast::TrimWhereField::Both) => Func::Trim,
                    Some(ast::TrimWhereField::Leading) => Func::LTrim,
                    Some(ast::TrimWhereField::Trailing) => Func::RTrim,
                };
                let mut args = vec![self.plan(expr)?];
                if let Some(w) = trim_what {
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
            let ty = arithmetic_type(bop, l.ty, r.ty)
                .ok_or_else(|| type_error(format!("cannot apply {bop} to {} and {}", l.ty, r.ty), span))?;
            // Division and modulo by zero give NULL.
            let nullable = nullable || matches!(bop, BinaryOp::Div | BinaryOp::Mod);
            Ok(Typed::new(Expr::binary(bop, l.expr.clone(), r.expr.clone()), ty, nullable))
        };
        match op {
            B::Plus => arith(BinaryOp::Add),
            B::Minus => arith(BinaryOp::Sub),
            B::Multiply => arith(BinaryOp::Mul),
            B::Divide => arith(BinaryOp::Div),
            B::Modulo => arith(BinaryOp::Mod),
            B::StringConcat => Ok(Typed::new(Expr::binary(BinaryOp::Concat, l.expr, r.expr), DataType::Text, nullable)),
            B::And | B::Or => {
                check_boolean(&l, left.span())?;
                check_boolean(&r, right.span())?;
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

    /// Makes `l` and `r` comparable: numbers compare as they are; text meets dates by
    /// conversion; a text literal compared with a number is read as a number (SQLite's
    /// affinity rule) when it is one.
    pub fn comparable(&self, l: Typed, r: Typed, span: Span) -> Result<(Typed, Typed), Error> {
        use DataType::*;
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

    fn case(
        &self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
        span: Span,
    ) -> Result<Typed, Error> {
        let mut subject = operand.map(|o| self.plan(o)).transpose()?;
        let mut whens = Vec::with_capacity(conditions.len());
        let mut results = Vec::with_capacity(conditions.len() + 1);
        for c in conditions {
            let w = match &mut subject {
                Some(s) => {
                    let (l, r) = self.comparable(s.clone(), self.plan(&c.condition)?, c.condition.span())?;
                    *s = l;
                    r
                }
                None => self.plan_condition(&c.condition)?,
            };
            whens.push(w.expr);
            results.push(self.plan(&c.result)?);
        }
        let otherwise = else_result.map(|e| self.plan(e)).transpose()?;
        let mut ty = DataType::Null;
        for r in results.iter().chain(otherwise.iter()) {
            ty = common_type(ty, r.ty)
                .ok_or_else(|| type_error(format!("CASE mixes {ty} and {} results", r.ty), span))?;
        }
        let nullable = otherwise.is_none() || results.iter().chain(otherwise.iter()).any(|r| r.nullable);
        let branches = whens.into_iter().zip(results).map(|(w, r)| (w, r.coerce(ty).expr)).collect();
        Ok(Typed::new(
            Expr::Case {
                operand: subject.map(|s| Box::new(s.expr)),
                branches,
                otherwise: otherwise.map(|o| Box::new(o.coerce(ty).expr)),
            },
            ty,
            nullable,
        ))
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
            return Ok(planned.pop().expect("one argument"));
        }
        let any_null = planned.iter().any(|a| a.nullable);
        let (ty, nullable, planned) = match func {
            Func::Coalesce | Func::Least | Func::Greatest => {
                let mut ty = DataType::Null;
                for a in &planned {
                    ty = common_type(ty, a.ty)
                        .ok_or_else(|| type_error(format!("{name}() mixes {ty} and {}", a.ty), span))?;
                }
                let nullable = if func == Func::Coalesce { planned.iter().all(|a| a.nullable) } else { any_null };
                (ty, nullable, planned.into_iter().map(|a| a.coerce(ty)).collect())
            }
            Func::NullIf => {
                let (a, b) = self.comparable(planned[0].clone(), planned[1].clone(), span)?;
                (a.ty, true, vec![a, b])
            }
            Func::Abs => {
                let ty = numeric_operand(&planned[0], "abs()", span)?;
                (ty, any_null, planned)
            }
            Func::Round => (DataType::Double, any_null, planned),
            Func::Length | Func::Instr => (DataType::BigInt, any_null, planned),
            Func::Lower | Func::Upper | Func::Substr | Func::Trim | Func::LTrim | Func::RTrim | Func::Replace => {
                (DataType::Text, any_null, planned)
            }
        };
        Ok(Typed::new(Expr::Call { func, args: planned.into_iter().map(|a| a.expr).collect() }, ty, nullable))
    }
}

/// The type of a numeric operand (booleans count as integers), or a type error.
fn numeric_operand(t: &Typed, op: &str, span: Span) -> Result<DataType, Error> {
    match t.ty {
        ty if ty.is_integer() || ty == DataType::Bool || ty == DataType::Null => Ok(DataType::BigInt),
        ty if ty.is_numeric() => Ok(ty),
        ty => Err(type_error(format!("{op} needs a number, not {ty}"), span)),
    }
}

/// Whether `t` can be a truth value: BOOLEAN, NULL, or (as in SQLite) a number.
fn check_boolean(t: &Typed, span: Span) -> Result<(), Error> {
    if t.ty == DataType::Bool || t.ty == DataType::Null || t.ty.is_numeric() {
        Ok(())
    } else {
        Err(type_error(format!("expected a condition, got {}", t.ty), span))
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

/// The identity of a subquery in the syntax tree while one query is planned.
pub(crate) fn subquery_id(q: &ast::Query) -> usize {
    std::ptr::from_ref(q) as usize
}

/// What marks the answer column of SQLite's `key IN table` (the name's address).
pub(crate) fn in_table_id(name: &ast::ObjectName) -> usize {
    std::ptr::from_ref(name) as usize
}
