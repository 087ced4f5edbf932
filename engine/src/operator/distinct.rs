//! Distinct: each row once. State: the multiplicity of every input row.
//!
//! Rule: for each row touched by the input delta, compare its multiplicity before and
//! after; emit +1 when it goes from none to some, −1 when from some to none.

use hashbrown::HashMap;

use crate::row::Row;
use crate::zset::{Weight, ZSet};

use super::{ENTRY_BYTES, Operator};

/// Removes duplicates.
#[derive(Debug, Default)]
pub struct Distinct {
    counts: HashMap<Row, Weight>,
}

impl Operator for Distinct {
    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        let mut before: HashMap<Row, Weight> = HashMap::new();
        for (row, w) in input_deltas[0] {
            let count = self.counts.entry_ref(row).or_insert(0);
            before.entry_ref(row).or_insert(*count);
            *count += w;
            if *count == 0 {
                self.counts.remove(row);
            }
        }
        let mut out = ZSet::new();
        for (row, old) in before {
            let new = self.counts.get(&row).copied().unwrap_or(0);
            match (old > 0, new > 0) {
                (false, true) => out.push(row, 1),
                (true, false) => out.push(row, -1),
                _ => {}
            }
        }
        out
    }

    fn current_output(&self) -> Option<ZSet> {
        Some(self.counts.iter().filter(|(_, w)| **w > 0).map(|(r, _)| (r.clone(), 1)).collect())
    }

    fn state_bytes(&self) -> usize {
        self.counts.capacity() * (ENTRY_BYTES + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{row, zset};

    #[test]
    fn emits_on_first_and_last_copy_only() {
        let mut d = Distinct::default();
        assert_eq!(
            d.step(&[&zset! { row![1] => 2, row![2] => 1 }]).consolidated(),
            zset! { row![1] => 1, row![2] => 1 }
        );
        assert!(d.step(&[&zset! { row![1] => -1 }]).is_empty());
        assert_eq!(
            d.step(&[&zset! { row![1] => -1, row![2] => -1, row![3] => 1 }]).consolidated(),
            zset! { row![1] => -1, row![2] => -1, row![3] => 1 }
        );
        // A row deleted and re-inserted in one delta does not flicker.
        assert!(d.step(&[&zset! { row![3] => -1, row![3] => 1 }]).is_empty());
    }
}
