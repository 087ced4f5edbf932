//! Union (UNION ALL): the bag sum of its inputs. Stateless: `Δ(A ⊎ B) = ΔA ⊎ ΔB`.
//! UNION (without ALL) is this followed by [`super::distinct::Distinct`].

use crate::zset::ZSet;

use super::Operator;

/// The bag sum of any number of inputs.
#[derive(Debug, Default)]
pub struct Union;

impl Operator for Union {
    fn keeps_state(&self) -> bool {
        false
    }

    fn step(&mut self, input_deltas: &[&ZSet]) -> ZSet {
        self.evaluate(input_deltas).expect("stateless")
    }

    fn evaluate(&self, input_deltas: &[&ZSet]) -> Option<ZSet> {
        let mut out = ZSet::with_capacity(input_deltas.iter().map(|d| d.len()).sum());
        for d in input_deltas {
            out.extend_from(d);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{row, zset};

    #[test]
    fn sums_bags() {
        let a = zset! { row![1] => 1 };
        let b = zset! { row![1] => 1, row![2] => -1 };
        assert_eq!(Union.step(&[&a, &b]).consolidated(), zset! { row![1] => 2, row![2] => -1 });
    }
}
