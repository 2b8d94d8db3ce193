//! The hash of the tables a datagram server looks up for every datagram it answers (the peer
//! table, the guard's repeats): a multiply and rotate over eight bytes at a time, seeded once
//! per process. SipHash, the standard map's, cost a ping-pong more than the rest of both
//! look-ups. Both tables are bounded (their MAX_* constants), so the most a sender whose
//! sources collide can cost is a scan of one bounded table; the seed and the last mix keep it
//! from picking such sources ahead.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::OnceLock;

use indexmap::IndexMap;

/// A map keyed through [`TableHasher`], its entries in slots reachable by index (see
/// [`recent_slot`]).
pub(crate) type TableMap<K, V> = IndexMap<K, V, TableState>;

/// `key`'s slot in `map`, tried first at `last`, the slot found the time before: a datagram's
/// sender is nearly always the previous one's (a ping-pong has one), so one key comparison
/// takes the place of a hash and a probe. `last` is only a hint: the key there is compared
/// (a removal since may have moved another entry into the slot), and it becomes the slot
/// found. `None` when `key` is not in `map`.
pub(crate) fn recent_slot<K: Hash + Eq, V>(
    map: &TableMap<K, V>,
    key: &K,
    last: &mut usize,
) -> Option<usize> {
    if map.get_index(*last).is_some_and(|(k, _)| k == key) {
        return Some(*last);
    }
    let slot = map.get_index_of(key)?;
    *last = slot;
    Some(slot)
}

/// Builds [`TableHasher`]s from the process's seed.
#[derive(Clone, Copy)]
pub(crate) struct TableState(u64);

impl Default for TableState {
    fn default() -> TableState {
        static SEED: OnceLock<u64> = OnceLock::new();
        TableState(*SEED.get_or_init(|| RandomState::new().hash_one(0u64)))
    }
}

impl BuildHasher for TableState {
    type Hasher = TableHasher;

    fn build_hasher(&self) -> TableHasher {
        TableHasher(self.0)
    }
}

/// Multiply and rotate, eight bytes at a time (FxHash's step).
#[derive(Default)]
pub(crate) struct TableHasher(u64);

impl TableHasher {
    /// The state as it stands, its best-mixed bits on top.
    pub(crate) fn state(&self) -> u64 {
        self.0
    }

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for TableHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words read in place, the tail byte by byte: no copy (a memcpy call each)
        // into a padded word.
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let word = tail
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b));
            self.add(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// The state mixed once more, so that a difference in the last word's top bits (which a
    /// multiply never carries downward) reaches the bits the table picks a bucket and a tag
    /// from: an abstract Unix name's last bytes are its sender's choice.
    fn finish(&self) -> u64 {
        let s = self.0 ^ (self.0 >> 32);
        s.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(bytes: &[u8]) -> u64 {
        let mut h = TableHasher::default();
        h.write(bytes);
        h.state()
    }

    #[test]
    fn a_slot_hint_is_taken_only_for_its_own_key() {
        let mut map: TableMap<u32, ()> = [(10, ()), (20, ()), (30, ())].into_iter().collect();
        let mut last = 0;
        assert_eq!(recent_slot(&map, &20, &mut last), Some(1));
        assert_eq!(last, 1);
        // 20 goes and 30 moves into its slot: the hint now names another key's slot.
        map.swap_remove(&20);
        assert_eq!(recent_slot(&map, &20, &mut last), None);
        assert_eq!(recent_slot(&map, &30, &mut last), Some(1));
        map.clear();
        assert_eq!(recent_slot(&map, &30, &mut last), None);
    }

    #[test]
    fn a_tail_counts_as_a_word_padded_with_zeroes() {
        assert_eq!(hash(b"abc"), hash(b"abc\0\0\0\0\0"));
        assert_ne!(hash(b"abc"), hash(b"abd"));
        assert_ne!(hash(b"12345678a"), hash(b"12345678b"));
    }

    #[test]
    fn ports_of_one_address_spread_over_the_buckets() {
        // 2048 buckets (a full peer table's): 1024 ports of one address land in many.
        let state = TableState::default();
        let buckets: std::collections::HashSet<u64> = (40_000u16..41_024)
            .map(|port| {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                state.hash_one(socket2::SockAddr::from(addr)) & 2047
            })
            .collect();
        assert!(buckets.len() > 500, "{} buckets", buckets.len());
    }

    #[test]
    fn keys_that_differ_in_the_last_words_top_bits_spread_too() {
        // An abstract Unix name's last bytes: only bits 49..63 of the last word differ.
        let state = TableState::default();
        let buckets: std::collections::HashSet<u64> = (0u64..1024)
            .map(|n| {
                let mut h = state.build_hasher();
                h.write_u64(16);
                h.write_u64(n << 49);
                h.finish() & 2047
            })
            .collect();
        assert!(buckets.len() > 500, "{} buckets", buckets.len());
    }
}
