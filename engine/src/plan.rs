//! The logical plan: what a view computes, as plain data.
//!
//! The SQL front end produces a [`Plan`] with every name resolved to a table id or a
//! column position and every expression typed; the graph turns each plan node into an
//! operator, sharing nodes whose label and inputs are equal. `Display` prints the plan
//! as an indented tree (what `EXPLAIN` shows, and what plan tests compare).

use std::fmt;

use crate::expr::Expr;
use crate::row::Row;
use crate::types::{Column, DataType};

/// A base table's identity within one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId(pub u32);

/// A relational plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// All rows of a base table.
    Scan {
        /// The table.
        table: TableId,
        /// Its name, for display.
        name: String,
        /// Its number of columns.
        width: usize,
    },
    /// A constant bag of rows.
    Values {
        /// The rows.
        rows: Vec<Row>,
        /// Their number of columns.
        width: usize,
    },
    /// Rows of `input` for which `predicate` is true.
    Filter {
        /// The input.
        input: Box<Plan>,
        /// The condition.
        predicate: Expr,
    },
    /// `exprs` computed on every row of `input`.
    Project {
        /// The input.
        input: Box<Plan>,
        /// One expression per output column.
        exprs: Vec<Expr>,
    },
    /// A join on `left_keys[i] = right_keys[i]`; output rows are left then right.
    Join {
        /// The left input.
        left: Box<Plan>,
        /// The right input.
        right: Box<Plan>,
        /// INNER, LEFT, RIGHT or FULL.
        kind: JoinKind,
        /// Key expressions over the left input.
        left_keys: Vec<Expr>,
        /// Key expressions over the right input.
        right_keys: Vec<Expr>,
        /// The rest of an outer join's ON condition, over the joined row (an inner
        /// join's rest is a Filter above it).
        residual: Option<Expr>,
        /// The columns of the joined row (left then right) that the join emits, in
        /// order; `None` emits them all. Set by column pruning.
        output: Option<Vec<usize>>,
    },
    /// An inner join of three or more inputs on equalities between pairs of them,
    /// maintained without intermediate results; output rows are the inputs' rows side
    /// by side. Made by the optimizer from trees of binary inner joins.
    MultiJoin {
        /// The inputs, in order.
        inputs: Vec<Plan>,
        /// The equalities, which connect all inputs.
        edges: Vec<JoinEdge>,
        /// The columns of the joined row to emit, in order; `None` emits them all.
        output: Option<Vec<usize>>,
    },
    /// One output row per group: the group values, then the aggregates.
    Aggregate {
        /// The input.
        input: Box<Plan>,
        /// Grouping expressions; none means one group over the whole input, which
        /// exists even when the input is empty.
        group_by: Vec<Expr>,
        /// The aggregate calls.
        aggregates: Vec<AggregateCall>,
    },
    /// Each distinct row of `input` once.
    Distinct {
        /// The input.
        input: Box<Plan>,
    },
    /// The bag sum of the inputs (UNION ALL).
    Union {
        /// The inputs, all of the same width.
        inputs: Vec<Plan>,
    },
    /// The rows of `input` in positions `offset .. offset + limit` of `order`.
    TopK {
        /// The input.
        input: Box<Plan>,
        /// The ordering (ties broken by the whole row, so the window is deterministic).
        order: Vec<SortKey>,
        /// At most this many rows; `None` keeps all rows after the offset.
        limit: Option<u64>,
        /// Rows skipped first.
        offset: u64,
    },
    /// EXCEPT or INTERSECT of two inputs of one width.
    SetOp {
        /// The left input.
        left: Box<Plan>,
        /// The right input.
        right: Box<Plan>,
        /// EXCEPT or INTERSECT.
        kind: SetOpKind,
        /// The ALL form (multiplicities kept), else each row once.
        all: bool,
    },
    /// `input` with one more column: SQL's three-valued answer to `key IN (set)`,
    /// where `set` is a one-column plan (an uncorrelated subquery).
    InSet {
        /// The rows to answer for.
        input: Box<Plan>,
        /// The subquery's rows (one column).
        set: Box<Plan>,
        /// The key, over an input row (of the set's column type).
        key: Expr,
    },
}

/// One equality of a [`Plan::MultiJoin`]: `left_keys` over input `left`'s row equal
/// `right_keys` over input `right`'s row.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinEdge {
    /// One input.
    pub left: usize,
    /// Key expressions over that input's row.
    pub left_keys: Vec<Expr>,
    /// The other input.
    pub right: usize,
    /// Key expressions over its row.
    pub right_keys: Vec<Expr>,
}

/// The kind of a [`Plan::SetOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetOpKind {
    /// Rows of the left input not in the right one.
    Except,
    /// Rows in both inputs.
    Intersect,
}

/// The kind of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinKind {
    /// Matching pairs only.
    Inner,
    /// Plus left rows without a match, NULL-extended.
    Left,
    /// Plus right rows without a match, NULL-extended.
    Right,
    /// Plus unmatched rows of both sides.
    Full,
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `COUNT(*)`.
    CountStar,
    /// `COUNT(x)`: non-NULL values.
    Count,
    /// `SUM(x)`: NULL over no non-NULL values.
    Sum,
    /// `TOTAL(x)` (SQLite): the sum as a DOUBLE, 0.0 over no values.
    Total,
    /// `AVG(x)`: a DOUBLE.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `group_concat(x [, sep])` (SQLite) / `string_agg(x, sep)` (PostgreSQL): the
    /// non-NULL values as text, joined by the separator, NULL over none. Neither
    /// database promises an order without ORDER BY; ciuf joins them in the order they
    /// arrived, which is SQLite's for a table only inserted into.
    GroupConcat,
}

impl AggFunc {
    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::CountStar | AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Total => "total",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::GroupConcat => "group_concat",
        }
    }
}

/// One aggregate in an [`Plan::Aggregate`].
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateCall {
    /// The function.
    pub func: AggFunc,
    /// The argument (none for `COUNT(*)`).
    pub arg: Option<Expr>,
    /// `DISTINCT`: each distinct argument value counts once.
    pub distinct: bool,
    /// The argument's type (which picks the accumulator: exact integer, decimal, or
    /// compensated floating-point sums).
    pub arg_type: DataType,
    /// GROUP_CONCAT's separator (`None` for every other function).
    pub separator: Option<String>,
}

impl fmt::Display for AggregateCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let distinct = if self.distinct { "DISTINCT " } else { "" };
        match &self.arg {
            None => write!(f, "{}(*)", self.func.name()),
            Some(a) => match &self.separator {
                Some(sep) => write!(f, "{}({distinct}{a}, {sep:?})", self.func.name()),
                None => write!(f, "{}({distinct}{a})", self.func.name()),
            },
        }
    }
}

/// One key of an ordering: a column, its direction and where NULLs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortKey {
    /// The column position.
    pub column: usize,
    /// DESC.
    pub descending: bool,
    /// NULLs before the other values (SQLite's default for ASC, PostgreSQL's for DESC).
    pub nulls_first: bool,
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.column)?;
        if self.descending {
            f.write_str(" DESC")?;
        }
        f.write_str(if self.nulls_first { " NULLS FIRST" } else { " NULLS LAST" })
    }
}

impl Plan {
    /// The number of output columns.
    pub fn width(&self) -> usize {
        match self {
            Plan::Scan { width, .. } | Plan::Values { width, .. } => *width,
            Plan::Filter { input, .. } | Plan::Distinct { input } | Plan::TopK { input, .. } => input.width(),
            Plan::Project { exprs, .. } => exprs.len(),
            Plan::Join { output: Some(cols), .. } | Plan::MultiJoin { output: Some(cols), .. } => cols.len(),
            Plan::MultiJoin { inputs, .. } => inputs.iter().map(Plan::width).sum(),
            Plan::Join { left, right, .. } => left.width() + right.width(),
            Plan::Aggregate { group_by, aggregates, .. } => group_by.len() + aggregates.len(),
            Plan::Union { inputs } => inputs.first().map_or(0, Plan::width),
            Plan::InSet { input, .. } => input.width() + 1,
            Plan::SetOp { left, .. } => left.width(),
        }
    }

    /// Whether the plan reads base table `table`.
    pub fn reads(&self, table: TableId) -> bool {
        match self {
            Plan::Scan { table: t, .. } => *t == table,
            other => other.inputs().iter().any(|p| p.reads(table)),
        }
    }

    /// The inputs, in order.
    pub fn inputs(&self) -> Vec<&Plan> {
        match self {
            Plan::Scan { .. } | Plan::Values { .. } => vec![],
            Plan::Filter { input, .. }
            | Plan::Project { input, .. }
            | Plan::Aggregate { input, .. }
            | Plan::Distinct { input }
            | Plan::TopK { input, .. } => vec![input],
            Plan::Join { left, right, .. } => vec![left, right],
            Plan::InSet { input, set, .. } => vec![input, set],
            Plan::SetOp { left, right, .. } => vec![left, right],
            Plan::Union { inputs } | Plan::MultiJoin { inputs, .. } => inputs.iter().collect(),
        }
    }

    /// This node alone, on one line: with the identities of its inputs, it identifies
    /// the operator (two views whose plans share a node share its state).
    pub fn label(&self) -> String {
        fn list<T: fmt::Display>(items: &[T]) -> String {
            items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        }
        match self {
            Plan::Scan { name, table, .. } => format!("Scan {name} (table {})", table.0),
            Plan::Values { rows, width } => {
                format!("Values width={width} [{}]", list(rows))
            }
            Plan::Filter { predicate, .. } => format!("Filter {predicate}"),
            Plan::Project { exprs, .. } => format!("Project [{}]", list(exprs)),
            Plan::Join { kind, left_keys, right_keys, residual, output, .. } => {
                let keys: Vec<String> = left_keys.iter().zip(right_keys).map(|(l, r)| format!("{l} = {r}")).collect();
                let mut s = format!("Join {kind:?} on [{}]", keys.join(", "));
                if let Some(r) = residual {
                    s += &format!(" and {r}");
                }
                s + &output_suffix(output)
            }
            Plan::MultiJoin { edges, output, .. } => {
                let edges: Vec<String> = edges
                    .iter()
                    .map(|e| {
                        let side = |i: usize, keys: &[Expr]| {
                            keys.iter().map(|k| format!("{i}.{k}")).collect::<Vec<_>>().join(", ")
                        };
                        format!("{} = {}", side(e.left, &e.left_keys), side(e.right, &e.right_keys))
                    })
                    .collect();
                format!("MultiJoin on [{}]{}", edges.join(", "), output_suffix(output))
            }
            Plan::Aggregate { group_by, aggregates, .. } => {
                format!("Aggregate group=[{}] aggs=[{}]", list(group_by), list(aggregates))
            }
            Plan::Distinct { .. } => "Distinct".into(),
            Plan::InSet { key, .. } => format!("InSet key={key}"),
            Plan::SetOp { kind, all, .. } => format!("{kind:?}{}", if *all { " all" } else { "" }),
            Plan::Union { inputs } => format!("Union all of {}", inputs.len()),
            Plan::TopK { order, limit, offset, .. } => {
                let limit = limit.map_or("none".to_string(), |l| l.to_string());
                format!("TopK order=[{}] limit={limit} offset={offset}", list(order))
            }
        }
    }

    fn fmt_tree(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        writeln!(f, "{:indent$}{}", "", self.label(), indent = depth * 2)?;
        for input in self.inputs() {
            input.fmt_tree(f, depth + 1)?;
        }
        Ok(())
    }
}

/// ` output [#a, #b]` for a join that emits some of its columns, else nothing.
fn output_suffix(output: &Option<Vec<usize>>) -> String {
    match output {
        Some(cols) => {
            let cols: Vec<String> = cols.iter().map(|c| format!("#{c}")).collect();
            format!(" output [{}]", cols.join(", "))
        }
        None => String::new(),
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_tree(f, 0)
    }
}

/// A view as the front end hands it to the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDef {
    /// What the view computes.
    pub plan: Plan,
    /// The output columns: the visible ones first, then hidden columns that only
    /// carry ORDER BY keys.
    pub columns: Vec<Column>,
    /// How many leading columns a reader sees.
    pub visible: usize,
    /// The order `query()` returns rows in (empty: no particular order).
    pub order: Vec<SortKey>,
    /// The SQL text the view was made from.
    pub sql: String,
    /// For a parameterized view (`… WHERE customer_id = $1`): how it is read by key.
    pub params: Option<ParamSpec>,
}

impl ViewDef {
    /// What identifies the view: two definitions with equal keys are one view.
    pub fn key(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| format!("{} {}", c.name, c.data_type)).collect();
        let order: Vec<String> = self.order.iter().map(ToString::to_string).collect();
        let params = self.params.as_ref().map_or(String::new(), |p| format!(" params {p:?}"));
        format!(
            "{}columns [{}] visible {} order [{}]{params}",
            self.plan,
            cols.join(", "),
            self.visible,
            order.join(", ")
        )
    }
}

/// How a parameterized view is read. Its plan computes the answer for every key at
/// once, with the key's values as hidden output columns; a read names the key and
/// gets that key's rows, in time proportional to them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// The output columns holding the key's components.
    pub key_columns: Vec<usize>,
    /// The parameters, in positional order: each gives a value of one key component
    /// (several do for `x IN ($1, $2)`).
    pub params: Vec<Param>,
    /// For a view that aggregates without GROUP BY: what a key with no rows reads as.
    pub empty: Option<EmptyRow>,
    /// For a partial view: the table of the keys requested so far, which the plan
    /// joins, so that only they are materialized.
    pub keys_table: Option<TableId>,
}

/// One parameter of a [`ParamSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name: `:name`'s name, else the name of the column it is compared with, else
    /// `$n`.
    pub name: String,
    /// The key component it gives a value of.
    pub component: usize,
    /// Whether the component must equal it or it bounds a range of the component.
    pub role: ParamRole,
}

/// What a parameter does to its key component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRole {
    /// `expr = $n` (or one of `expr IN ($1, $2)`).
    Eq,
    /// `expr > $n` (`>=` when inclusive).
    Lower {
        /// `>=`.
        inclusive: bool,
    },
    /// `expr < $n` (`<=` when inclusive).
    Upper {
        /// `<=`.
        inclusive: bool,
    },
}

/// The row of a global aggregate over no rows, for one key. Its expressions read the
/// aggregate's output row for that key: the group values (the key's components, as
/// `groups` says), then each aggregate's value over no rows (`calls`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmptyRow {
    /// For each group column of the aggregate, the key component it holds.
    pub groups: Vec<usize>,
    /// Each aggregate's value over no rows (COUNT 0, TOTAL 0.0, the others NULL).
    pub calls: Vec<crate::value::Value>,
    /// One per output column, over the aggregate's output row.
    pub exprs: Vec<Expr>,
    /// HAVING, over the aggregate's output row.
    pub filter: Option<Expr>,
}
