//! Plan rewrites that keep a view's answer and shrink its state.
//!
//! - **Column pruning**: every node keeps only the columns something above it reads.
//!   Joins emit just those columns (no intermediate concatenated row), and projections
//!   drop unread expressions. Scans and filters over scans keep whole rows, because
//!   their rows are the base rows themselves, shared by pointer with the table.
//! - **Late projection over top-k**: `TopK(Project(cols, X))` becomes
//!   `Project(cols, TopK(X))` when X passes base rows through, so the top-k state holds
//!   pointers to base rows rather than projected copies of every candidate.
//! - **Delta joins**: a tree of three or more inner equi-joins whose every key reads
//!   one input becomes one [`Plan::MultiJoin`], which stores no intermediate result.
//!
//! Both are pure functions on [`Plan`]s; the plan tests compare before and after.

use crate::expr::Expr;
use crate::plan::{JoinEdge, JoinKind, Plan, SortKey};

impl Plan {
    /// The plan after every rewrite of this module.
    pub fn optimize(self) -> Plan {
        let plan = multi_joins(late_projection(self));
        let width = plan.width();
        prune(plan, &vec![true; width]).0
    }

    /// Whether the rows this plan outputs are base-table rows passed through unchanged
    /// (so holding them costs a pointer, not a copy).
    pub fn passes_base_rows(&self) -> bool {
        match self {
            Plan::Scan { .. } => true,
            Plan::Filter { input, .. } | Plan::TopK { input, .. } | Plan::Distinct { input } => {
                input.passes_base_rows()
            }
            Plan::Union { inputs } => inputs.iter().all(Plan::passes_base_rows),
            _ => false,
        }
    }

    /// For a projection of plain columns: their positions.
    pub fn column_projection(exprs: &[Expr]) -> Option<Vec<usize>> {
        exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect()
    }
}

fn boxed(p: Plan) -> Box<Plan> {
    Box::new(p)
}

/// `TopK(Project(cols, X))` → `Project(cols, TopK(X))` where X passes base rows.
fn late_projection(plan: Plan) -> Plan {
    let plan = map_inputs(plan, late_projection);
    match plan {
        Plan::TopK { input, order, limit, offset } => match *input {
            Plan::Project { input: inner, exprs } if inner.passes_base_rows() => {
                match Plan::column_projection(&exprs) {
                    Some(cols) => {
                        let order = order.iter().map(|k| SortKey { column: cols[k.column], ..*k }).collect();
                        Plan::Project { input: boxed(Plan::TopK { input: inner, order, limit, offset }), exprs }
                    }
                    None => Plan::TopK { input: boxed(Plan::Project { input: inner, exprs }), order, limit, offset },
                }
            }
            other => Plan::TopK { input: boxed(other), order, limit, offset },
        },
        other => other,
    }
}

/// The inputs and equalities of an inner equi-join tree, or `None` if `plan` is not
/// one (or a key reads more than one input, or a join has no key).
fn flatten_join(plan: &Plan) -> Option<(Vec<Plan>, Vec<JoinEdge>)> {
    let Plan::Join { left, right, kind: JoinKind::Inner, left_keys, right_keys, residual: None, output: None } = plan
    else {
        return None;
    };
    if left_keys.is_empty() {
        return None;
    }
    let parts = |p: &Plan| flatten_join(p).unwrap_or_else(|| (vec![p.clone()], vec![]));
    let (l_inputs, l_edges) = parts(left);
    let (r_inputs, r_edges) = parts(right);
    let offsets = |inputs: &[Plan]| -> Vec<usize> {
        inputs
            .iter()
            .scan(0, |acc, p| {
                let o = *acc;
                *acc += p.width();
                Some(o)
            })
            .collect()
    };
    let (l_off, r_off) = (offsets(&l_inputs), offsets(&r_inputs));
    // Each key pair must read one input on each side; pairs between the same two
    // inputs form one equality.
    let shift = l_inputs.len();
    let mut edges = l_edges;
    edges.extend(r_edges.into_iter().map(|e| JoinEdge { left: e.left + shift, right: e.right + shift, ..e }));
    for (lk, rk) in left_keys.iter().zip(right_keys) {
        let li = single_input(std::slice::from_ref(lk), &l_off)?;
        let ri = single_input(std::slice::from_ref(rk), &r_off)?;
        let lk = lk.remap_columns(&|c| c - l_off[li]);
        let rk = rk.remap_columns(&|c| c - r_off[ri]);
        let right_input = shift + ri;
        match edges.iter_mut().find(|e| e.left == li && e.right == right_input) {
            Some(e) => {
                e.left_keys.push(lk);
                e.right_keys.push(rk);
            }
            None => edges.push(JoinEdge { left: li, left_keys: vec![lk], right: right_input, right_keys: vec![rk] }),
        }
    }
    let mut inputs = l_inputs;
    inputs.extend(r_inputs);
    Some((inputs, edges))
}

/// Which input (by `offsets`) the columns of `e` fall in, if they all fall in one.
fn single_input(e: &[Expr], offsets: &[usize]) -> Option<usize> {
    let cols: Vec<usize> = e.iter().flat_map(Expr::columns).collect();
    let first = *cols.first()?;
    let input = offsets.partition_point(|&o| o <= first) - 1;
    cols.iter().all(|&c| offsets.partition_point(|&o| o <= c) - 1 == input).then_some(input)
}

/// A tree of three or more inner equi-joins becomes one delta join (see the module
/// docs); its inputs are optimized in turn.
fn multi_joins(plan: Plan) -> Plan {
    if let Some((inputs, edges)) = flatten_join(&plan)
        && inputs.len() >= 3
    {
        return Plan::MultiJoin { inputs: inputs.into_iter().map(multi_joins).collect(), edges, output: None };
    }
    map_inputs(plan, multi_joins)
}

/// Applies `f` to every input of `plan`.
fn map_inputs(plan: Plan, f: fn(Plan) -> Plan) -> Plan {
    match plan {
        Plan::Scan { .. } | Plan::Values { .. } => plan,
        Plan::Filter { input, predicate } => Plan::Filter { input: boxed(f(*input)), predicate },
        Plan::Project { input, exprs } => Plan::Project { input: boxed(f(*input)), exprs },
        Plan::Join { left, right, kind, left_keys, right_keys, residual, output } => {
            Plan::Join { left: boxed(f(*left)), right: boxed(f(*right)), kind, left_keys, right_keys, residual, output }
        }
        Plan::Aggregate { input, group_by, aggregates } => {
            Plan::Aggregate { input: boxed(f(*input)), group_by, aggregates }
        }
        Plan::Distinct { input } => Plan::Distinct { input: boxed(f(*input)) },
        Plan::Union { inputs } => Plan::Union { inputs: inputs.into_iter().map(f).collect() },
        Plan::MultiJoin { inputs, edges, output } => {
            Plan::MultiJoin { inputs: inputs.into_iter().map(f).collect(), edges, output }
        }
        Plan::TopK { input, order, limit, offset } => Plan::TopK { input: boxed(f(*input)), order, limit, offset },
        Plan::InSet { input, set, key } => Plan::InSet { input: boxed(f(*input)), set: boxed(f(*set)), key },
        Plan::SetOp { left, right, kind, all } => {
            Plan::SetOp { left: boxed(f(*left)), right: boxed(f(*right)), kind, all }
        }
    }
}

/// Where each old output column went: `map[i]` is its new position (for the columns
/// that were required; others may be gone).
type ColumnMap = Vec<Option<usize>>;

fn identity(width: usize) -> ColumnMap {
    (0..width).map(Some).collect()
}

fn mark(required: &mut [bool], e: &Expr) {
    for c in e.columns() {
        required[c] = true;
    }
}

fn remap(e: &Expr, map: &ColumnMap) -> Expr {
    e.remap_columns(&|c| map[c].expect("a column an expression reads is kept"))
}

/// Prunes `plan` to the columns `required` marks (one flag per output column).
fn prune(plan: Plan, required: &[bool]) -> (Plan, ColumnMap) {
    match plan {
        Plan::Scan { .. } | Plan::Values { .. } => {
            let w = plan.width();
            (plan, identity(w))
        }
        Plan::Filter { input, predicate } => {
            let mut req = required.to_vec();
            mark(&mut req, &predicate);
            let (input, map) = prune(*input, &req);
            let predicate = remap(&predicate, &map);
            (Plan::Filter { input: boxed(input), predicate }, map)
        }
        Plan::Project { input, exprs } => {
            let kept: Vec<usize> = (0..exprs.len()).filter(|&i| required[i]).collect();
            let mut req = vec![false; input.width()];
            for &i in &kept {
                mark(&mut req, &exprs[i]);
            }
            let (input, in_map) = prune(*input, &req);
            let new_exprs: Vec<Expr> = kept.iter().map(|&i| remap(&exprs[i], &in_map)).collect();
            let mut map = vec![None; exprs.len()];
            for (new, &old) in kept.iter().enumerate() {
                map[old] = Some(new);
            }
            let is_identity =
                new_exprs.len() == input.width() && new_exprs.iter().enumerate().all(|(i, e)| *e == Expr::Column(i));
            if is_identity { (input, map) } else { (Plan::Project { input: boxed(input), exprs: new_exprs }, map) }
        }
        Plan::Join { left, right, kind, left_keys, right_keys, residual, output } => {
            let (lw, rw) = (left.width(), right.width());
            let out_cols: Vec<usize> = output.unwrap_or_else(|| (0..lw + rw).collect());
            let mut req_concat = vec![false; lw + rw];
            for (i, &c) in out_cols.iter().enumerate() {
                if required[i] {
                    req_concat[c] = true;
                }
            }
            if let Some(r) = &residual {
                mark(&mut req_concat, r);
            }
            let mut req_left = req_concat[..lw].to_vec();
            let mut req_right = req_concat[lw..].to_vec();
            left_keys.iter().for_each(|k| mark(&mut req_left, k));
            right_keys.iter().for_each(|k| mark(&mut req_right, k));
            let (left, lmap) = prune(*left, &req_left);
            let (right, rmap) = prune(*right, &req_right);
            let new_lw = left.width();
            let concat_map: ColumnMap =
                lmap.iter().copied().chain(rmap.iter().map(|m| m.map(|c| new_lw + c))).collect();
            let left_keys = left_keys.iter().map(|k| remap(k, &lmap)).collect();
            let right_keys = right_keys.iter().map(|k| remap(k, &rmap)).collect();
            let residual = residual.map(|r| remap(&r, &concat_map));
            let mut map = vec![None; out_cols.len()];
            let mut new_output = Vec::new();
            for (i, &c) in out_cols.iter().enumerate() {
                if required[i] {
                    map[i] = Some(new_output.len());
                    new_output.push(concat_map[c].expect("required join columns are kept"));
                }
            }
            let is_identity =
                new_output.len() == new_lw + right.width() && new_output.iter().enumerate().all(|(i, c)| i == *c);
            let output = (!is_identity).then_some(new_output);
            (Plan::Join { left: boxed(left), right: boxed(right), kind, left_keys, right_keys, residual, output }, map)
        }
        Plan::MultiJoin { inputs, edges, output } => {
            let widths: Vec<usize> = inputs.iter().map(Plan::width).collect();
            let mut offsets = Vec::with_capacity(widths.len());
            let mut total = 0;
            for w in &widths {
                offsets.push(total);
                total += w;
            }
            let out_cols: Vec<usize> = output.unwrap_or_else(|| (0..total).collect());
            let mut req: Vec<Vec<bool>> = widths.iter().map(|w| vec![false; *w]).collect();
            let input_of = |c: usize| offsets.partition_point(|&o| o <= c) - 1;
            for (i, &c) in out_cols.iter().enumerate() {
                if required[i] {
                    let k = input_of(c);
                    req[k][c - offsets[k]] = true;
                }
            }
            for e in &edges {
                e.left_keys.iter().for_each(|k| mark(&mut req[e.left], k));
                e.right_keys.iter().for_each(|k| mark(&mut req[e.right], k));
            }
            let mut new_inputs = Vec::with_capacity(inputs.len());
            let mut maps = Vec::with_capacity(inputs.len());
            for (p, r) in inputs.into_iter().zip(&req) {
                let (p, m) = prune(p, r);
                new_inputs.push(p);
                maps.push(m);
            }
            let mut new_offsets = Vec::with_capacity(new_inputs.len());
            let mut acc = 0;
            for p in &new_inputs {
                new_offsets.push(acc);
                acc += p.width();
            }
            let edges = edges
                .into_iter()
                .map(|e| JoinEdge {
                    left_keys: e.left_keys.iter().map(|k| remap(k, &maps[e.left])).collect(),
                    right_keys: e.right_keys.iter().map(|k| remap(k, &maps[e.right])).collect(),
                    ..e
                })
                .collect();
            let mut map = vec![None; out_cols.len()];
            let mut new_output = Vec::new();
            for (i, &c) in out_cols.iter().enumerate() {
                if required[i] {
                    let k = input_of(c);
                    map[i] = Some(new_output.len());
                    new_output.push(new_offsets[k] + maps[k][c - offsets[k]].expect("required columns are kept"));
                }
            }
            let is_identity = new_output.len() == acc && new_output.iter().enumerate().all(|(i, c)| i == *c);
            let output = (!is_identity).then_some(new_output);
            (Plan::MultiJoin { inputs: new_inputs, edges, output }, map)
        }
        Plan::Aggregate { input, group_by, aggregates } => {
            let mut req = vec![false; input.width()];
            group_by.iter().for_each(|g| mark(&mut req, g));
            aggregates.iter().filter_map(|a| a.arg.as_ref()).for_each(|a| mark(&mut req, a));
            let (input, map) = prune(*input, &req);
            let group_by = group_by.iter().map(|g| remap(g, &map)).collect();
            let aggregates = aggregates
                .into_iter()
                .map(|mut a| {
                    a.arg = a.arg.map(|e| remap(&e, &map));
                    a
                })
                .collect();
            let w = required.len();
            (Plan::Aggregate { input: boxed(input), group_by, aggregates }, identity(w))
        }
        Plan::InSet { input, set, key } => {
            let w = input.width();
            let mut req = required[..w].to_vec();
            mark(&mut req, &key);
            let (input, map) = prune(*input, &req);
            let set_width = set.width();
            let (set, _) = prune(*set, &vec![true; set_width]);
            let key = remap(&key, &map);
            let new_width = input.width();
            let mut out_map = map;
            out_map.push(Some(new_width));
            (Plan::InSet { input: boxed(input), set: boxed(set), key }, out_map)
        }
        Plan::SetOp { left, right, kind, all } => {
            // Every column decides which rows match: none can go.
            let w = left.width();
            let (left, _) = prune(*left, &vec![true; w]);
            let (right, _) = prune(*right, &vec![true; w]);
            (Plan::SetOp { left: boxed(left), right: boxed(right), kind, all }, identity(w))
        }
        Plan::Distinct { input } => {
            // Every column decides what is distinct: none can go.
            let w = input.width();
            let (input, _) = prune(*input, &vec![true; w]);
            (Plan::Distinct { input: boxed(input) }, identity(w))
        }
        Plan::Union { inputs } => {
            let w = required.len();
            let inputs = inputs.into_iter().map(|p| prune(p, &vec![true; w]).0).collect();
            (Plan::Union { inputs }, identity(w))
        }
        Plan::TopK { input, order, limit, offset } => {
            let mut req = required.to_vec();
            // Ties are broken by the whole row, so the window depends on every column.
            req.iter_mut().for_each(|r| *r = true);
            let (input, map) = prune(*input, &req);
            let order =
                order.iter().map(|k| SortKey { column: map[k.column].expect("sort columns are kept"), ..*k }).collect();
            (Plan::TopK { input: boxed(input), order, limit, offset }, map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::BinaryOp;
    use crate::plan::{JoinKind, TableId};

    fn scan(t: u32, name: &str, width: usize) -> Plan {
        Plan::Scan { table: TableId(t), name: name.into(), width }
    }

    #[test]
    fn joins_emit_only_what_is_read() {
        // SELECT o.id, p.name FROM orders o JOIN products p ON o.pid = p.id WHERE p.cat = 'x'
        let join = Plan::Join {
            left: boxed(scan(0, "orders", 5)),
            right: boxed(Plan::Filter {
                input: boxed(scan(1, "products", 4)),
                predicate: Expr::binary(BinaryOp::Eq, Expr::col(2), Expr::lit("x")),
            }),
            kind: JoinKind::Inner,
            left_keys: vec![Expr::col(2)],
            right_keys: vec![Expr::col(0)],
            residual: None,
            output: None,
        };
        let plan = Plan::Project { input: boxed(join), exprs: vec![Expr::col(0), Expr::col(6)] };
        let text = plan.optimize().to_string();
        assert_eq!(
            text,
            "Join Inner on [#2 = #0] output [#0, #6]\n  Scan orders (table 0)\n  Filter (#2 = 'x')\n    Scan products (table 1)\n"
        );
    }

    #[test]
    fn top_k_keeps_base_rows_and_projects_after() {
        let plan = Plan::TopK {
            input: boxed(Plan::Project { input: boxed(scan(0, "orders", 5)), exprs: vec![Expr::col(0), Expr::col(3)] }),
            order: vec![SortKey { column: 1, descending: true, nulls_first: false }],
            limit: Some(10),
            offset: 0,
        };
        assert_eq!(
            plan.optimize().to_string(),
            "Project [#0, #3]\n  TopK order=[#3 DESC NULLS LAST] limit=10 offset=0\n    Scan orders (table 0)\n"
        );
    }
}
