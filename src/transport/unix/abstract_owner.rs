//! Who owns an abstract name in this server's network namespace, told at a bounded cost.
//! The kernel tells it by walking every Unix socket in the namespace (up to 65,536), which
//! any user can make long: a dump to find a name, and even a single-socket request (by
//! inode) walks them all in the kernel. Done for every datagram, in the loop that receives
//! and answers, a flood of small datagrams would stall the server for every client. So the
//! socket a dump found is remembered by name and trusted for a moment (as long as looks
//! take here, scaled); after that a datagram from the name re-checks that one socket (a
//! name bound again since is looked up afresh); and the time spent walking is budgeted in
//! all, each sending user held to a fair share of it: a datagram over budget gets no reply.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::fair_share::FairShare;
use crate::logging::Throttle;
use crate::transport::sock_diag::{self, UnixSocket};

/// Names remembered at once; past this, the oldest is forgotten (and looked up afresh).
const REMEMBERED: usize = 256;
/// How long a socket found at a name is taken to be still there without asking, at most:
/// within it another user's socket may take the name unseen (the owner's closed, another
/// bound there) and get the replies to a sender at that name in another network namespace;
/// a client sending all the time costs 4 walks a second where walks are long.
const TRUSTED: Duration = Duration::from_millis(250);
/// Within that, a socket is trusted this many times as long as the look that found it (or
/// last re-checked it) took: where walks are short (a few thousand sockets, well under a
/// millisecond) the name is looked at again after a few milliseconds, and re-checking a
/// client that sends all the time takes at most a fiftieth of the server's time.
const TRUST_PER_LOOK: u32 = 50;
/// Time a second spent walking for the datagrams of one user, on average, at most: a
/// client's few names are told at once (a walk of a few thousand sockets takes a
/// millisecond or less), a flood of fresh names among many sockets is not. Measured, not
/// counted, as a walk's cost grows with the sockets any user may make; a walk longer than
/// its user's share is paid off over the seconds after it, before the user's next.
const WALKING_PER_USER: Duration = Duration::from_millis(100);
/// The same for all users together, so many users cannot add up to a stall either. It is
/// shared fairly ([`FairShare`]): among N users walking in the last second each gets a
/// (N+1)th of it (and never more than [`WALKING_PER_USER`]), so a few users (one person's
/// subordinate uids) flooding from fresh names leave a share to a user who was not walking.
const WALKING_IN_ALL: Duration = Duration::from_millis(250);
/// Users whose share is kept at once; past this, those not walking lately are forgotten
/// (the budget in all still holds).
const USERS: usize = 1024;

/// The sockets found at names lately, oldest first, each with when its trust ends.
static KNOWN: Mutex<VecDeque<(Vec<u8>, UnixSocket, Instant)>> = Mutex::new(VecDeque::new());
/// The walking time of all users, each user's share, in microseconds.
static SPENT: Mutex<Option<FairShare<u32>>> = Mutex::new(None);

/// The owner of the datagram socket bound at the abstract `name` here (`None`: none is),
/// for a datagram `sender` (a uid) sent from that name. Refused, as advice: the kernel
/// cannot tell, or telling would take a walk over the sender's budget or the server's.
pub(crate) fn owner(name: &[u8], sender: u32) -> Result<Option<u32>, String> {
    let known = remembered(name);
    if let Some((socket, until)) = known
        && Instant::now() < until
    {
        return Ok(Some(socket.uid));
    }
    let walking = within_budget(sender)?;
    if let Some((socket, _)) = known {
        if sock_diag::still_bound(socket, name) {
            remember(name, socket, walking.began);
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
        remember(name, socket, walking.began);
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

/// The owner of the socket last found at the abstract `name`, trusted or not, without a
/// walk: whom a datagram sent from it counts against, told after [`owner`] vouched for the
/// name (a root sender's name is not looked up, nor one forgotten since: `None`).
pub(crate) fn last_owner(name: &[u8]) -> Option<u32> {
    remembered(name).map(|(socket, _)| socket.uid)
}

fn forget(name: &[u8]) {
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(n, ..)| n != name);
}

/// Remembers `socket` as seen at `name` now, by a look begun at `looked`: trusted
/// [`TRUST_PER_LOOK`] times as long as the look took, at most [`TRUSTED`].
fn remember(name: &[u8], socket: UnixSocket, looked: Instant) {
    let now = Instant::now();
    let until = now + (now.duration_since(looked) * TRUST_PER_LOOK).min(TRUSTED);
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(n, ..)| n != name);
    if known.len() >= REMEMBERED {
        known.pop_front();
    }
    known.push_back((name.to_vec(), socket, until));
}

/// The time spent walking for a user's datagram, counted against the budget when dropped.
struct Walking {
    /// Whose share pays: the sender's uid, a subordinate uid as its owner's.
    person: u32,
    began: Instant,
}

impl Drop for Walking {
    fn drop(&mut self) {
        let now = Instant::now();
        let took = now.duration_since(self.began).as_micros();
        let took = u64::try_from(took).unwrap_or(u64::MAX);
        with_budget(|budget| budget.spend(self.person, took, now));
    }
}

/// `f` on the budget of walking time, in microseconds: [`WALKING_IN_ALL`] a second in all,
/// a fair share of it a user, at most [`WALKING_PER_USER`].
fn with_budget<T>(f: impl FnOnce(&mut FairShare<u32>) -> T) -> T {
    let micros = |d: Duration| d.as_micros() as u64;
    let mut spent = SPENT.lock().unwrap_or_else(|e| e.into_inner());
    f(spent.get_or_insert_with(|| {
        FairShare::new(
            micros(WALKING_IN_ALL),
            micros(WALKING_IN_ALL),
            micros(WALKING_PER_USER),
            USERS,
        )
    }))
}

/// A walk for `sender`'s datagram, to be counted when it ends; refused (said in a throttled
/// line) when the sender owes its share of walking, or all users together owe a second's.
fn within_budget(sender: u32) -> Result<Walking, String> {
    let now = Instant::now();
    // One person's many uids (/etc/subuid) walk on one share.
    let person = crate::endpoint::person_of(sender);
    let (mine, all) = with_budget(|budget| {
        let mine = budget.own_holds(person, now);
        (mine, mine && budget.holds(person, now))
    });
    if all {
        return Ok(Walking { person, began: now });
    }
    let whose = if mine {
        "all users' time"
    } else {
        "its user's share of the time"
    };
    // A flood of fresh names causes this line at will: throttled.
    static LOG: Throttle = Throttle::new();
    if let Some(more) = LOG.allow() {
        warn!(
            "uid {sender}: a datagram from an abstract name dropped unanswered: over \
             {whose} for telling abstract names' owners ({} ms a second in all, shared \
             among the users asking, at most {} ms a user: each look walks every Unix \
             socket here){more}",
            WALKING_IN_ALL.as_millis(),
            WALKING_PER_USER.as_millis()
        );
    }
    Err(format!(
        "who owns its name is to be looked up, and {whose} for that is spent for now"
    ))
}
