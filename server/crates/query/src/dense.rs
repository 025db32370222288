//! Dense indices for entity keys. Scrip codes are small integers packed in a narrow range
//! (BSE's equity codes are 500000-54xxxx), so a key's index is one array read instead of a
//! hash; keys spread too widely for an array fall back to a hash map.

use std::collections::HashMap;

/// Keys spanning at most this many values (or 4× the number of keys, if larger) are indexed
/// by an array (4 bytes per value in the span).
const MAX_DENSE_SPAN: u64 = 1 << 22;

/// Maps each of a set of `i64` keys to `0..len()`, in ascending key order.
#[derive(Debug)]
pub(crate) struct EntityIndex {
    keys: Vec<i64>,
    lookup: Lookup,
}

#[derive(Debug)]
enum Lookup {
    /// `slots[key - lo]`, `u32::MAX` for keys not in the set.
    Dense {
        lo: i64,
        slots: Vec<u32>,
    },
    Hashed(HashMap<i64, u32>),
}

impl EntityIndex {
    /// The index of the distinct keys of `keys`.
    pub(crate) fn new(keys: impl IntoIterator<Item = i64>) -> Self {
        let mut keys: Vec<i64> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let lookup = match (keys.first(), keys.last()) {
            (Some(&lo), Some(&hi))
                if hi.abs_diff(lo) < MAX_DENSE_SPAN.max(4 * keys.len() as u64)
                    && hi.abs_diff(lo) < u64::from(u32::MAX) =>
            {
                let mut slots = vec![u32::MAX; usize::try_from(hi.abs_diff(lo) + 1).unwrap_or(0)];
                for (i, k) in keys.iter().enumerate() {
                    slots[usize::try_from(k.abs_diff(lo)).unwrap_or(0)] = u32::try_from(i).unwrap_or(u32::MAX);
                }
                Lookup::Dense { lo, slots }
            }
            _ => Lookup::Hashed(
                keys.iter().enumerate().map(|(i, k)| (*k, u32::try_from(i).unwrap_or(u32::MAX))).collect(),
            ),
        };
        Self { keys, lookup }
    }

    /// The index of `key`, if it is in the set.
    #[inline]
    pub(crate) fn get(&self, key: i64) -> Option<u32> {
        match &self.lookup {
            Lookup::Dense { lo, slots } => {
                let off = key.checked_sub(*lo)?;
                let s = *slots.get(usize::try_from(off).ok()?)?;
                (s != u32::MAX).then_some(s)
            }
            Lookup::Hashed(m) => m.get(&key).copied(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_hashed_agree() {
        let narrow = EntityIndex::new([500_325, 500_002, 543_210, 500_002, 532_540]);
        assert!(matches!(narrow.lookup, Lookup::Dense { .. }));
        let wide = EntityIndex::new([i64::MIN, -5, 0, 7, i64::MAX]);
        assert!(matches!(wide.lookup, Lookup::Hashed(_)));
        assert_eq!(narrow.len(), 4);
        for (k, want) in [(500_002, Some(0)), (500_325, Some(1)), (532_540, Some(2)), (543_210, Some(3))] {
            assert_eq!(narrow.get(k), want);
        }
        for k in [0, 500_001, 500_003, 543_211, i64::MIN, i64::MAX] {
            assert_eq!(narrow.get(k), None, "{k}");
        }
        assert_eq!(wide.get(i64::MIN), Some(0));
        assert_eq!(wide.get(i64::MAX), Some(4));
        assert_eq!(wide.get(1), None);
        assert_eq!(EntityIndex::new([]).get(1), None);
    }
}
