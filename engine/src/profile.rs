//! Where the time of transactions goes: opt-in timing of the table stage, of each
//! graph node (its operator's step and the upkeep of the arrangements of its output)
//! and of publishing to the views.
//!
//! Off by default, and then the engine reads no clock. On, it reads the clock twice
//! per node a transaction touches (tens of nanoseconds each), which shows in the
//! latency of one-event transactions: it is for profiling runs, such as the reference
//! benchmark's `--profile`.

use std::fmt;
use std::time::{Duration, Instant};

/// Time spent since profiling was switched on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Transactions applied.
    pub transactions: u64,
    /// Checking changes and applying them to the tables.
    pub tables: Duration,
    /// Applying the views' deltas to what readers see.
    pub publish: Duration,
    /// Each node that did work, in the graph's order.
    pub nodes: Vec<NodeProfile>,
}

/// The work of one graph node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeProfile {
    /// What the node computes (a table's changes, or an operator and its arguments).
    pub label: String,
    /// Transactions in which the node had input.
    pub steps: u64,
    /// Rows in its output deltas.
    pub rows_out: u64,
    /// Its operator's steps (zero for a table's changes).
    pub step: Duration,
    /// Keeping the arrangements of its output up to date.
    pub arrangements: Duration,
}

impl NodeProfile {
    /// The node's whole time.
    pub fn total(&self) -> Duration {
        self.step + self.arrangements
    }
}

impl Profile {
    /// The whole time: tables, nodes and publishing.
    pub fn total(&self) -> Duration {
        self.tables + self.publish + self.nodes.iter().map(NodeProfile::total).sum::<Duration>()
    }
}

/// One line per part, the longest first, with microseconds per transaction.
impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.transactions.max(1) as f64;
        writeln!(f, "{} transactions, {:.1} µs each", self.transactions, per(self.total()))?;
        let mut parts: Vec<(Duration, String)> = vec![
            (self.tables, "tables: check and apply changes".to_string()),
            (self.publish, "publish to views".to_string()),
        ];
        for n in &self.nodes {
            let split = if n.step.is_zero() || n.arrangements.is_zero() {
                String::new()
            } else {
                format!(" (step {:.1}, arrangements {:.1})", per(n.step), per(n.arrangements))
            };
            parts.push((n.total(), format!("{}{split}, {} rows out", n.label, n.rows_out)));
        }
        parts.sort_by_key(|p| std::cmp::Reverse(p.0));
        for (d, what) in parts {
            writeln!(f, "{:10.1} µs  {what}", per(d))?;
        }
        Ok(())
    }
}

/// A clock reading, taken only while profiling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stopwatch(Option<Instant>);

impl Stopwatch {
    /// Starts if `on`.
    #[inline]
    pub fn start(on: bool) -> Stopwatch {
        Stopwatch(on.then(Instant::now))
    }

    /// Adds the time since the start to `total`, if started.
    #[inline]
    pub fn add_to(self, total: &mut Duration) {
        if let Some(t) = self.0 {
            *total += t.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_part_comes_first() {
        let p = Profile {
            transactions: 2,
            tables: Duration::from_millis(2),
            publish: Duration::from_millis(1),
            nodes: vec![NodeProfile {
                label: "Filter x > 1".into(),
                steps: 2,
                rows_out: 7,
                step: Duration::from_millis(4),
                arrangements: Duration::from_millis(2),
            }],
        };
        assert_eq!(p.total(), Duration::from_millis(9));
        let text = p.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "2 transactions, 4500.0 µs each");
        assert!(lines[1].ends_with("3000.0 µs  Filter x > 1 (step 2000.0, arrangements 1000.0), 7 rows out"), "{text}");
        assert!(lines[2].ends_with("tables: check and apply changes"), "{text}");
        assert!(Stopwatch::start(false).0.is_none());
    }
}
