//! Name resolution: the columns a query can see at one point, with their qualifiers.

use ciuf_engine::error::{nearest_name, shown};
use ciuf_engine::{Column, DataType, Error, SqlErrorKind};
use sqlparser::tokenizer::Span;

use crate::error::sql_error;
use crate::types::{Affinity, Origin};

/// One visible column.
#[derive(Debug, Clone)]
pub(crate) struct ScopeColumn {
    /// The table name or alias that qualifies it (`o` in `o.amount`).
    pub qualifier: Option<String>,
    /// The column name.
    pub name: String,
    /// Its type.
    pub ty: DataType,
    /// Whether it may be NULL.
    pub nullable: bool,
    /// SQLite's affinity: a table's column has its type's; a derived column has the
    /// affinity of the expression it selects.
    pub affinity: Affinity,
    /// What SQLite knows of the expression behind it (for compound SELECTs).
    pub origin: Origin,
    /// Hidden from unqualified names and `*`: the second copy of a USING column, or
    /// the answer column of an `IN (subquery)`.
    pub merged: bool,
    /// For the answer column of a subquery (`IN`, `EXISTS`, scalar): which subquery
    /// (its address in the syntax tree, stable while one query is planned).
    pub mark: Option<usize>,
    /// A column of the enclosing query, seen by a correlated subquery: a name resolves
    /// to it only when no column of the subquery's own tables has that name.
    pub outer: bool,
}

/// The columns of a relation, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    /// A scope of `columns` all qualified by `qualifier`.
    pub fn from_columns(columns: &[Column], qualifier: Option<&str>) -> Scope {
        Scope {
            columns: columns
                .iter()
                .map(|c| ScopeColumn {
                    qualifier: qualifier.map(str::to_string),
                    name: c.name.clone(),
                    ty: c.data_type,
                    nullable: c.nullable,
                    affinity: Affinity::of_type(c.data_type),
                    origin: Origin::default(),
                    merged: false,
                    mark: None,
                    outer: false,
                })
                .collect(),
        }
    }

    /// The columns of `self` followed by those of `other`.
    pub fn concat(&self, other: &Scope) -> Scope {
        Scope { columns: self.columns.iter().chain(&other.columns).cloned().collect() }
    }

    /// The same columns, all nullable (the inner side of an outer join).
    pub fn nullable(mut self) -> Scope {
        self.columns.iter_mut().for_each(|c| c.nullable = true);
        self
    }

    /// Every column requalified by `qualifier`.
    pub fn requalify(mut self, qualifier: Option<&str>) -> Scope {
        self.columns.iter_mut().for_each(|c| c.qualifier = qualifier.map(str::to_string));
        self
    }

    /// The engine columns.
    pub fn engine_columns(&self) -> Vec<Column> {
        self.columns.iter().map(|c| Column { name: c.name.clone(), data_type: c.ty, nullable: c.nullable }).collect()
    }

    /// The position of `qualifier.name` (or of `name` in any table). The subquery's own
    /// columns hide the enclosing query's ([`ScopeColumn::outer`]).
    pub fn resolve(&self, qualifier: Option<&str>, name: &str, span: Span) -> Result<usize, Error> {
        let candidates = |outer: bool| -> Vec<usize> {
            self.columns
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.outer == outer
                        && c.name.eq_ignore_ascii_case(name)
                        && match qualifier {
                            Some(q) => c.qualifier.as_deref().is_some_and(|cq| cq.eq_ignore_ascii_case(q)),
                            None => !c.merged,
                        }
                })
                .map(|(i, _)| i)
                .collect()
        };
        let mut matches = candidates(false);
        if matches.is_empty() {
            matches = candidates(true);
        }
        match matches.as_slice() {
            [i] => Ok(*i),
            [] => {
                let shown = match qualifier {
                    Some(q) => format!("{}.{}", shown(q), shown(name)),
                    None => shown(name).into_owned(),
                };
                if let Some(q) = qualifier
                    && !self.has_qualifier(q)
                {
                    let quals: Vec<String> = self.qualifiers();
                    return Err(ciuf_engine::SqlError::new(
                        SqlErrorKind::UnknownTable,
                        format!("unknown table {} in column reference {shown}", crate::shown(q)),
                    )
                    .at(crate::error::position(span))
                    .suggest(nearest_name(q, quals.iter().map(String::as_str)))
                    .into());
                }
                let candidates: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|c| {
                        qualifier.is_none_or(|q| c.qualifier.as_deref().is_some_and(|cq| cq.eq_ignore_ascii_case(q)))
                    })
                    .map(|c| c.name.clone())
                    .collect();
                Err(ciuf_engine::SqlError::new(SqlErrorKind::UnknownColumn, format!("unknown column {shown}"))
                    .at(crate::error::position(span))
                    .suggest(nearest_name(name, candidates.iter().map(String::as_str)))
                    .into())
            }
            _ => Err(sql_error(
                SqlErrorKind::AmbiguousColumn,
                format!("column reference {name} is ambiguous (qualify it with a table name)"),
                span,
            )),
        }
    }

    /// Whether some column is qualified by `q`.
    pub fn has_qualifier(&self, q: &str) -> bool {
        self.columns.iter().any(|c| c.qualifier.as_deref().is_some_and(|cq| cq.eq_ignore_ascii_case(q)))
    }

    fn qualifiers(&self) -> Vec<String> {
        let mut qs: Vec<String> = self.columns.iter().filter_map(|c| c.qualifier.clone()).collect();
        qs.dedup();
        qs
    }
}
