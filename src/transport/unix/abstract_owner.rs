//! Who owns an abstract name in this server's network namespace, told at a bounded cost.
//! The kernel tells it by walking every Unix socket in the namespace (up to 65,536), which
//! any user can make long: a dump to find a name, and even a single-socket request (by
//! inode) walks them all in the kernel. Done for every datagram, in the loop that receives
//! and answers, a flood of small datagrams would stall the server for every client. So the
//! socket a dump found is remembered by name and trusted for a moment; after that a
//! datagram from the name re-checks that one socket (a name bound again since is looked up
//! afresh); and the time spent walking is budgeted, per sending user and in all: a datagram
//! over budget gets no reply.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::logging::Throttle;
use crate::transport::sock_diag::{self, UnixSocket};

/// Names remembered at once; past this, the oldest is forgotten (and looked up afresh).
const REMEMBERED: usize = 256;
/// How long a socket found at a name is taken to be still there without asking: the only
/// time another user's socket may take the name unseen (its own socket closed, another
/// bound there) is this, and a client sending all the time costs 4 walks a second.
const TRUSTED: Duration = Duration::from_millis(250);
/// Time a second spent walking for the datagrams of one user, on average: a client's few
/// names are told at once (a walk of a few thousand sockets takes a millisecond or less), a
/// flood of fresh names among many sockets is not. Measured, not counted, as a walk's cost
/// grows with the sockets any user may make; a walk longer than this is paid off over the
/// seconds after it, before the user's next.
const WALKING_PER_USER: Duration = Duration::from_millis(100);
/// The same for all users together, so many users cannot add up to a stall either.
const WALKING_IN_ALL: Duration = Duration::from_millis(250);
/// Users whose walking is counted at once; past this, those who owe none are forgotten, and
/// if none is, all (the budget in all still holds).
const USERS: usize = 1024;

/// The sockets found at names lately, oldest first, each with when it was last seen there.
static KNOWN: Mutex<VecDeque<(Vec<u8>, UnixSocket, Instant)>> = Mutex::new(VecDeque::new());
/// Each user's walking not yet paid off.
static SPENT: Mutex<Option<HashMap<u32, Debt>>> = Mutex::new(None);
/// The same for all users together.
static SPENT_IN_ALL: Mutex<Option<Debt>> = Mutex::new(None);

/// The owner of the datagram socket bound at the abstract `name` here (`None`: none is),
/// for a datagram `sender` (a uid) sent from that name. Refused, as advice: the kernel
/// cannot tell, or telling would take a walk over the sender's budget or the server's.
pub(crate) fn owner(name: &[u8], sender: u32) -> Result<Option<u32>, String> {
    let known = remembered(name);
    if let Some((socket, seen)) = known
        && seen.elapsed() < TRUSTED
    {
        return Ok(Some(socket.uid));
    }
    let _walking = within_budget(sender)?;
    if let Some((socket, _)) = known {
        if sock_diag::still_bound(socket, name) {
            remember(name, socket);
            return Ok(Some(socket.uid));
        }
        forget(name);
    }
    let found = sock_diag::abstract_socket(name).map_err(|e| {
        format!(
            "who owns that abstract name here cannot be told (sock_diag: {e}), and a reply \
             goes only to its sender's own name"
        )
    })?;
    if let Some(socket) = found {
        remember(name, socket);
    }
    Ok(found.map(|socket| socket.uid))
}

fn remembered(name: &[u8]) -> Option<(UnixSocket, Instant)> {
    let known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known
        .iter()
        .find(|(n, ..)| n == name)
        .map(|&(_, s, t)| (s, t))
}

fn forget(name: &[u8]) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(n, ..)| n != name);
}

/// Remembers `socket` as seen at `name` now.
fn remember(name: &[u8], socket: UnixSocket) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(n, ..)| n != name);
    if known.len() >= REMEMBERED {
        known.pop_front();
    }
    known.push_back((name.to_vec(), socket, Instant::now()));
}

/// The time spent walking for a user's datagram, counted against the budgets when dropped.
struct Walking {
    sender: u32,
    began: Instant,
}

impl Drop for Walking {
    fn drop(&mut self) {
        let took = self.began.elapsed();
        let mut spent = SPENT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = spent.get_or_insert_with(HashMap::new).get_mut(&self.sender) {
            mine.owed += took;
        }
        let mut all = SPENT_IN_ALL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(in_all) = &mut *all {
            in_all.owed += took;
        }
    }
}

/// Walking time owed, paid off at a budget's rate as time passes.
#[derive(Clone, Copy)]
struct Debt {
    owed: Duration,
    at: Instant,
}

impl Debt {
    fn new(now: Instant) -> Debt {
        Debt {
            owed: Duration::ZERO,
            at: now,
        }
    }

    /// What is owed `now`, paid off at `per_second`; a walk may start while it is under that.
    fn settled(&mut self, now: Instant, per_second: Duration) -> Duration {
        let paid = now
            .duration_since(self.at)
            .mul_f64(per_second.as_secs_f64());
        (self.owed, self.at) = (self.owed.saturating_sub(paid), now);
        self.owed
    }
}

/// A walk for `sender`'s datagram, to be counted when it ends; refused (said in a throttled
/// line) when the sender or all users together owe a second's walking.
fn within_budget(sender: u32) -> Result<Walking, String> {
    let now = Instant::now();
    let mine = {
        let mut spent = SPENT.lock().unwrap_or_else(|e| e.into_inner());
        let spent = spent.get_or_insert_with(HashMap::new);
        if spent.len() >= USERS && !spent.contains_key(&sender) {
            spent.retain(|_, debt| debt.settled(now, WALKING_PER_USER) > Duration::ZERO);
            if spent.len() >= USERS {
                spent.clear();
            }
        }
        let debt = spent.entry(sender).or_insert(Debt::new(now));
        debt.settled(now, WALKING_PER_USER) < WALKING_PER_USER
    };
    let all = {
        let mut all = SPENT_IN_ALL.lock().unwrap_or_else(|e| e.into_inner());
        let debt = all.get_or_insert(Debt::new(now));
        debt.settled(now, WALKING_IN_ALL) < WALKING_IN_ALL
    };
    if mine && all {
        return Ok(Walking { sender, began: now });
    }
    let whose = if mine { "all users'" } else { "its user's" };
    // A flood of fresh names causes this line at will: throttled.
    static LOG: Throttle = Throttle::new();
    if let Some(more) = LOG.allow() {
        warn!(
            "uid {sender}: a datagram from an abstract name dropped unanswered: over \
             {whose} time for telling abstract names' owners ({} ms a second a user, {} ms \
             in all: each look walks every Unix socket here){more}",
            WALKING_PER_USER.as_millis(),
            WALKING_IN_ALL.as_millis()
        );
    }
    Err(format!(
        "who owns its name is to be looked up, and {whose} time for that is spent for now"
    ))
}
