//! A count per key whose places are given back when dropped: connections per source,
//! requests awaiting proof per address. Bounded: a key holds no more places than its taker
//! allows, all keys together no more than `in_all`, and a key whose count falls to zero
//! leaves the map, so the map holds no more keys than places are held.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

/// Places held per key, and in all.
pub(crate) struct Counts<K> {
    table: Arc<Mutex<Table<K>>>,
}

struct Table<K> {
    by_key: HashMap<K, usize>,
    total: usize,
}

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Counts {
            table: Arc::new(Mutex::new(Table {
                by_key: HashMap::new(),
                total: 0,
            })),
        }
    }
}

/// One place in its key's count, given back when dropped (during a panic too).
pub(crate) struct Slot<K: Hash + Eq> {
    table: Arc<Mutex<Table<K>>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Counts<K> {
    /// Places `key` holds now.
    pub(crate) fn count(&self, key: &K) -> usize {
        self.lock().by_key.get(key).copied().unwrap_or(0)
    }

    /// A place for `key` while it holds fewer than `limit` and all keys together fewer than
    /// `in_all`; `None` otherwise.
    pub(crate) fn take(&self, key: K, limit: usize, in_all: usize) -> Option<Slot<K>> {
        let mut table = self.lock();
        let count = table.by_key.get(&key).copied().unwrap_or(0);
        if count >= limit || table.total >= in_all {
            return None;
        }
        *table.by_key.entry(key.clone()).or_default() += 1;
        table.total += 1;
        Some(Slot {
            table: Arc::clone(&self.table),
            key,
        })
    }

    /// A place for `key` whatever it holds: for a caller that judged the room under a limit
    /// of its own (one that changes with time) before it counts.
    pub(crate) fn hold(&self, key: K) -> Slot<K> {
        self.take(key, usize::MAX, usize::MAX)
            .expect("no count reaches usize::MAX")
    }

    fn lock(&self) -> MutexGuard<'_, Table<K>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.total = table.total.saturating_sub(1);
        if let Some(count) = table.by_key.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                table.by_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_limit_until_a_slot_drops() {
        let counts = Counts::default();
        let held: Vec<Slot<&str>> = (0..3).map(|_| counts.take("a", 3, 10).unwrap()).collect();
        assert!(counts.take("a", 3, 10).is_none(), "over its limit");
        assert_eq!(counts.count(&"a"), 3);
        let other = counts
            .take("b", 3, 10)
            .expect("another key has its own count");
        drop(held);
        assert_eq!(counts.count(&"a"), 0);
        assert!(counts.take("a", 3, 10).is_some(), "given back when dropped");
        drop(other);
    }

    #[test]
    fn all_keys_together_hold_at_most_in_all() {
        let counts = Counts::default();
        let a = counts.take(1, 5, 2).unwrap();
        let _b = counts.take(2, 5, 2).unwrap();
        assert!(
            counts.take(3, 5, 2).is_none(),
            "a fresh key, but the total is reached"
        );
        drop(a);
        assert!(counts.take(3, 5, 2).is_some());
    }

    #[test]
    fn a_key_at_zero_leaves_the_map() {
        let counts = Counts::default();
        for key in 0..1000 {
            drop(counts.hold(key));
        }
        assert!(counts.table.lock().unwrap().by_key.is_empty());
        assert_eq!(counts.table.lock().unwrap().total, 0);
    }

    #[test]
    fn a_slot_comes_back_when_its_holder_panics() {
        let counts = Counts::default();
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _slot = counts.take('x', 1, 1).unwrap();
            panic!("a session's end");
        }));
        assert!(ended.is_err());
        assert!(counts.take('x', 1, 1).is_some(), "the slot was given back");
    }

    #[test]
    fn a_refused_take_leaves_no_key_behind() {
        let counts = Counts::default();
        assert!(counts.take(7, 0, 10).is_none());
        assert!(counts.table.lock().unwrap().by_key.is_empty());
    }
}
