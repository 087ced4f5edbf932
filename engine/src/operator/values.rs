//! A constant relation (`SELECT 1 + 1`, `VALUES (…)`): emits its rows once, on its
//! first step, and never changes after.

use crate::row::Row;
use crate::zset::ZSet;

use super::Operator;

/// A fixed bag of rows.
#[derive(Debug)]
pub struct Values {
    rows: Vec<Row>,
    emitted: bool,
}

impl Values {
    /// A relation holding `rows`.
    pub fn new(rows: Vec<Row>) -> Values {
        Values { rows, emitted: false }
    }
}

impl Operator for Values {
    fn step(&mut self, _input_deltas: &[&ZSet]) -> ZSet {
        if std::mem::replace(&mut self.emitted, true) {
            return ZSet::new();
        }
        self.rows.iter().map(|r| (r.clone(), 1)).collect()
    }

    fn current_output(&self) -> Option<ZSet> {
        Some(if self.emitted { self.rows.iter().map(|r| (r.clone(), 1)).collect() } else { ZSet::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{row, zset};

    #[test]
    fn emits_its_rows_once() {
        let mut v = Values::new(vec![row![1], row![1], row![2]]);
        assert_eq!(v.current_output().unwrap(), ZSet::new());
        assert_eq!(v.step(&[]).consolidated(), zset! { row![1] => 2, row![2] => 1 });
        assert!(v.step(&[]).is_empty());
        assert_eq!(v.current_output().unwrap().consolidated(), zset! { row![1] => 2, row![2] => 1 });
    }
}
