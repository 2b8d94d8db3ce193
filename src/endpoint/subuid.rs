//! Subordinate uids (/etc/subuid): useradd gives each user a range of them (65,536 on
//! Debian and Ubuntu), which newuidmap maps into the user's namespaces, and which the kernel
//! reports as users of their own (SO_PEERCRED, SCM_CREDENTIALS, sock_diag). Counted as
//! such, one person would hold a share per uid; so counts and budgets fold a subordinate
//! uid into its owner's. Who owns what (--allow uid:N, a socket file's owner) stays exact.

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use tracing::debug;

/// Where useradd and usermod record each user's subordinate uids.
const SUBUID: &str = "/etc/subuid";
/// Lines read at most: a range per user, a few thousand users at most on a host that has
/// the file. A longer file is not used (nothing folds): reading it stays bounded.
const MAX_LINES: usize = 4096;
/// Bytes read at most: [`MAX_LINES`] lines of a long user name and two numbers.
const MAX_BYTES: u64 = MAX_LINES as u64 * 64;

/// The person `uid` is, for counts and budgets: the owner of the /etc/subuid range holding
/// it, else `uid` itself. The file is read once, at the first call; missing, unreadable,
/// malformed or too long, nothing folds (said at debug level).
pub(crate) fn person_of(uid: u32) -> u32 {
    static RANGES: OnceLock<Vec<Range>> = OnceLock::new();
    let ranges = RANGES.get_or_init(|| ranges_in(Path::new(SUBUID)).unwrap_or_else(unused));
    fold(ranges, uid)
}

/// Says why the file is not used, at debug level: most hosts have none, and a server works
/// the same without it; nothing folds.
fn unused(why: String) -> Vec<Range> {
    debug!("{why}; each subordinate uid counts as a user of its own");
    Vec::new()
}

/// One user's subordinate uids: `start..end`, owned by the user `name`.
#[derive(Debug)]
struct Range {
    start: u32,
    end: u64,
    name: String,
    /// `name`'s uid, looked up (getpwnam) when a uid of the range is first folded: most
    /// ranges are never asked for, and a name no user has any more folds nothing.
    owner: OnceLock<Option<u32>>,
}

impl Range {
    fn owner(&self) -> Option<u32> {
        *self.owner.get_or_init(|| {
            let owner = match self.name.parse::<u32>() {
                Ok(uid) => Some(uid),
                Err(_) => nix::unistd::User::from_name(&self.name)
                    .ok()
                    .flatten()
                    .map(|user| user.uid.as_raw()),
            };
            if owner.is_none() {
                debug!("{SUBUID}: no user {} owns its range", self.name);
            }
            owner
        })
    }
}

/// `uid`'s owner in `ranges` (sorted, apart), or `uid` itself.
fn fold(ranges: &[Range], uid: u32) -> u32 {
    let after = ranges.partition_point(|r| r.start <= uid);
    let holding = after.checked_sub(1).map(|i| &ranges[i]);
    match holding {
        Some(range) if u64::from(uid) < range.end => range.owner().unwrap_or(uid),
        _ => uid,
    }
}

/// The ranges a subuid file at `path` lists (`name:start:count` a line), sorted by start;
/// why none are used when it is missing, malformed (overlapping ranges too) or too long.
fn ranges_in(path: &Path) -> Result<Vec<Range>, String> {
    let at = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{at}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{at}: {e}"))?;
    if text.len() as u64 > MAX_BYTES || text.lines().count() > MAX_LINES {
        return Err(format!(
            "{at}: longer than {MAX_LINES} lines or {MAX_BYTES} bytes"
        ));
    }
    let mut ranges = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let malformed = || format!("{at} line {}: not name:start:count", n + 1);
        ranges.push(range(line).ok_or_else(malformed)?);
    }
    ranges.sort_by_key(|r| r.start);
    if let Some(pair) = ranges.windows(2).find(|w| u64::from(w[1].start) < w[0].end) {
        let (a, b) = (&pair[0].name, &pair[1].name);
        return Err(format!("{at}: the ranges of {a} and {b} overlap"));
    }
    Ok(ranges)
}

/// One line's range; `None` when malformed (a count of 0, or past the last uid, too).
fn range(line: &str) -> Option<Range> {
    let mut fields = line.split(':');
    let (name, start, count) = (fields.next()?, fields.next()?, fields.next()?);
    let (start, count): (u32, u32) = (start.parse().ok()?, count.parse().ok()?);
    let end = u64::from(start) + u64::from(count);
    let fits = fields.next().is_none() && !name.is_empty() && count > 0 && end <= 1 << 32;
    fits.then(|| Range {
        start,
        end,
        name: name.to_string(),
        owner: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(text: &str) -> Result<Vec<Range>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subuid");
        std::fs::write(&path, text).unwrap();
        ranges_in(&path)
    }

    #[test]
    fn a_subordinate_uid_folds_into_its_owner_and_others_stay() {
        let ranges = ranges("1000:100000:65536\nroot:165536:10\n\nnobody-here-xyz:300000:5\n");
        let ranges = ranges.unwrap();
        assert_eq!(fold(&ranges, 100000), 1000);
        assert_eq!(fold(&ranges, 165535), 1000);
        assert_eq!(fold(&ranges, 165536), 0, "by name");
        assert_eq!(fold(&ranges, 165546), 165546, "past the range's end");
        assert_eq!(fold(&ranges, 99999), 99999);
        assert_eq!(fold(&ranges, 1000), 1000);
        assert_eq!(
            fold(&ranges, 300001),
            300001,
            "a name no user has folds nothing"
        );
        assert_eq!(fold(&[], 100000), 100000);
    }

    #[test]
    fn a_missing_malformed_or_overlapping_file_folds_nothing() {
        let missing = ranges_in(Path::new("/nonexistent/subuid")).unwrap_err();
        assert!(missing.contains("/nonexistent/subuid"), "{missing}");
        for text in [
            "1000:100000\n",
            "1000:x:65536\n",
            "1000:100000:0\n",
            ":100000:10\n",
            "1000:100000:10:extra\n",
            "1000:4294967295:2\n",
            "1000:100000:65536\n1001:165535:65536\n",
        ] {
            let why = ranges(text).unwrap_err();
            assert!(why.contains("subuid"), "{text:?}: {why}");
        }
        let many = "\n".repeat(MAX_LINES + 1);
        assert!(ranges(&many).unwrap_err().contains("longer than"));
        // Cut short, a long file's last line could read as another range: none is used.
        let long = format!("{}1000:100000:65536\n", " ".repeat(MAX_BYTES as usize - 10));
        assert!(ranges(&long).unwrap_err().contains("longer than"));
    }
}
