//! A count per key whose places are given back when dropped: connections per source,
//! requests awaiting proof per address. Bounded: a key holds no more places than its taker
//! allows, all keys together no more than `in_all`, and a key whose count falls to zero
//! leaves the map, so the map holds no more keys than places are held. [`Evicting`] counts
//! connections so too, and when all places are taken makes room by shutting the oldest
//! connection of the key holding the most (TLS handshakes in progress, the lab's control
//! connections that have not said Hello yet).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::os::fd::{AsRawFd, OwnedFd};
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

/// Connections per key and in all, each key's oldest first, each with a handle to shut it.
/// Once all `in_all` places are taken a newcomer ([`Room`] says which) takes the place of the
/// oldest of the key holding the most, which is shut: a few keys holding every place delay
/// another's connection by at most one of theirs, never lock it out.
pub(crate) struct Evicting<K> {
    lines: Arc<Mutex<Lines<K>>>,
    room: Room,
}

/// Which newcomer makes room when all places are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Room {
    /// One whose key holds fewer than the key holding the most; a key holding as many as any
    /// is refused ([`Refused::All`]), so keys at the top never shut each other's.
    #[default]
    FromFewer,
    /// Any within its key's limit: the key holding the most loses its oldest (the newcomer's
    /// own key, when that is it), so a newcomer is never refused for the total.
    ForAny,
}

struct Lines<K> {
    by_key: HashMap<K, VecDeque<Held>>,
    total: usize,
    next_id: u64,
}

/// A connection holding a place: a descriptor of its socket, shut to make room.
struct Held {
    id: u64,
    conn: OwnedFd,
}

/// Why a connection got no place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its key holds this many, its limit.
    Limit(usize),
    /// Every place is taken and its key holds this many, as many as any key.
    All(usize),
}

/// The connection shut to make room: its key, and how many that key held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Shut<K> {
    pub(crate) key: K,
    pub(crate) had: usize,
}

/// One connection's place, given back when dropped (unless it was shut to make room).
pub(crate) struct Place<K: Hash + Eq> {
    lines: Arc<Mutex<Lines<K>>>,
    key: K,
    id: u64,
}

impl<K> Evicting<K> {
    /// No places held; `room` says which newcomer makes room when all are taken.
    pub(crate) fn new(room: Room) -> Self {
        Evicting {
            lines: Arc::new(Mutex::new(Lines {
                by_key: HashMap::new(),
                total: 0,
                next_id: 0,
            })),
            room,
        }
    }
}

impl<K> Default for Evicting<K> {
    fn default() -> Self {
        Evicting::new(Room::default())
    }
}

impl<K: Hash + Eq + Clone> Evicting<K> {
    /// A place for the connection `conn` (a descriptor of its socket, kept while it holds
    /// the place) of `key`, which may hold `limit`, all keys together `in_all`; and the
    /// connection shut to make room, if one was.
    pub(crate) fn take(
        &self,
        key: K,
        conn: OwnedFd,
        limit: usize,
        in_all: usize,
    ) -> Result<(Place<K>, Option<Shut<K>>), Refused> {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let count = lines.by_key.get(&key).map_or(0, VecDeque::len);
        if count >= limit {
            return Err(Refused::Limit(count));
        }
        let shut = if lines.total >= in_all {
            let than = match self.room {
                Room::FromFewer => count,
                Room::ForAny => 0,
            };
            Some(lines.shut_oldest(than).ok_or(Refused::All(count))?)
        } else {
            None
        };
        lines.next_id += 1;
        let id = lines.next_id;
        let line = lines.by_key.entry(key.clone()).or_default();
        line.push_back(Held { id, conn });
        lines.total += 1;
        let place = Place {
            lines: Arc::clone(&self.lines),
            key,
            id,
        };
        Ok((place, shut))
    }
}

impl<K: Hash + Eq + Clone> Lines<K> {
    /// Shuts the oldest connection of the key holding the most, when it holds more than
    /// `than`: whoever serves it wakes to the end of the stream, and ends it.
    fn shut_oldest(&mut self, than: usize) -> Option<Shut<K>> {
        let (key, line) = self.by_key.iter_mut().max_by_key(|(_, line)| line.len())?;
        let had = line.len();
        if had <= than {
            return None;
        }
        let oldest = line.pop_front()?;
        let _ =
            nix::sys::socket::shutdown(oldest.conn.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let (key, emptied) = (key.clone(), line.is_empty());
        if emptied {
            self.by_key.remove(&key);
        }
        self.total -= 1;
        Some(Shut { key, had })
    }
}

impl<K: Hash + Eq> Drop for Place<K> {
    fn drop(&mut self) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let Some(line) = lines.by_key.get_mut(&self.key) else {
            return;
        };
        let before = line.len();
        line.retain(|held| held.id != self.id);
        let (gone, emptied) = (before - line.len(), line.is_empty());
        if emptied {
            lines.by_key.remove(&self.key);
        }
        lines.total -= gone;
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

    /// A connected pair: the end a place holds (a descriptor of it), and the peer's end.
    fn pair() -> (OwnedFd, std::os::unix::net::UnixStream) {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        (ours.into(), theirs)
    }

    /// Whether the peer's end sees the end of the stream (its connection was shut).
    fn was_shut(theirs: &std::os::unix::net::UnixStream) -> bool {
        use std::io::Read;
        theirs.set_nonblocking(true).unwrap();
        matches!((&*theirs).read(&mut [0u8; 1]), Ok(0))
    }

    /// A place in `places` (a key may hold 8, all 4) for a connection of each of `keys`,
    /// and each one's peer end.
    fn filled(
        places: &Evicting<&'static str>,
        keys: &[&'static str],
    ) -> Vec<(Place<&'static str>, std::os::unix::net::UnixStream)> {
        keys.iter()
            .map(|&key| {
                let (ours, theirs) = pair();
                (places.take(key, ours, 8, 4).unwrap().0, theirs)
            })
            .collect()
    }

    #[test]
    fn past_in_all_the_oldest_of_the_biggest_key_makes_room() {
        let places = Evicting::default();
        let held = filled(&places, &["a", "a", "a", "b"]);
        let (ours, _theirs) = pair();
        let (_c, shut) = places.take("c", ours, 8, 4).expect("a fresh key gets in");
        assert_eq!(shut, Some(Shut { key: "a", had: 3 }));
        assert!(was_shut(&held[0].1), "a's oldest was shut");
        assert!(!was_shut(&held[1].1), "a's next one was not");
        assert!(!was_shut(&held[3].1), "b's was not");
        let (ours, _) = pair();
        let refused = places.take("a", ours, 8, 4).err();
        assert_eq!(
            refused,
            Some(Refused::All(2)),
            "a holds the most still: 2, b 1, c 1"
        );
    }

    #[test]
    fn the_key_holding_the_most_is_refused_when_all_are_taken() {
        let places = Evicting::default();
        let mut held = filled(&places, &["a", "a", "b", "b"]);
        let (ours, _) = pair();
        assert_eq!(places.take("a", ours, 8, 4).err(), Some(Refused::All(2)));
        let (ours, _) = pair();
        assert_eq!(places.take("a", ours, 2, 8).err(), Some(Refused::Limit(2)));
        assert!(held.iter().all(|(_, theirs)| !was_shut(theirs)));
        held.truncate(3);
        let (ours, _) = pair();
        assert!(
            places.take("a", ours, 8, 4).is_ok(),
            "a place was given back"
        );
    }

    #[test]
    fn making_room_for_any_lets_in_the_key_holding_the_most() {
        let places = Evicting::new(Room::ForAny);
        let held = filled(&places, &["a", "a", "a", "b"]);
        let (ours, _) = pair();
        let (_a, shut) = places.take("a", ours, 8, 4).expect("a gets in");
        assert_eq!(shut, Some(Shut { key: "a", had: 3 }));
        assert!(was_shut(&held[0].1), "a's oldest made room");
        assert!(held[1..].iter().all(|(_, theirs)| !was_shut(theirs)));
        let (ours, _) = pair();
        assert_eq!(
            places.take("a", ours, 3, 4).err(),
            Some(Refused::Limit(3)),
            "a key's limit holds still"
        );
    }

    #[test]
    fn a_shut_place_dropped_later_counts_once() {
        let places = Evicting::default();
        let (ours, _a) = pair();
        let (first, _) = places.take(1, ours, 8, 1).unwrap();
        let (ours, _b) = pair();
        let (second, shut) = places.take(2, ours, 8, 1).unwrap();
        assert_eq!(shut, Some(Shut { key: 1, had: 1 }));
        drop(first);
        assert_eq!(places.lines.lock().unwrap().total, 1);
        drop(second);
        let lines = places.lines.lock().unwrap();
        assert_eq!(lines.total, 0);
        assert!(lines.by_key.is_empty());
    }
}
