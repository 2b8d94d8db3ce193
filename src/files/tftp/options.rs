//! The options a TFTP request may carry, and what the server agrees to: blksize (RFC 2348),
//! tsize (RFC 2349), timeout (RFC 2349) and windowsize (RFC 7440). Unknown options, and
//! values out of range, are left out of the OACK, which RFC 2347 lets a server do.

use std::time::Duration;

/// RFC 1350's block size, when the client asks for no other.
pub(crate) const PLAIN_BLOCK: u16 = 512;
/// The largest block agreed: netecho's own datagram protocol's largest, below RFC 2348's
/// 65464 (a block and its headers within one UDP datagram).
pub(crate) const MAX_BLOCK: u16 = crate::files::datagram::MAX_BLOCK;
/// RFC 2348's smallest block.
const MIN_BLOCK: u16 = 8;
/// The most blocks sent before waiting for an ACK: with the largest block, under 4 MB in
/// flight per transfer.
pub(crate) const MAX_WINDOW: u16 = 64;
/// The retransmission interval when the client names none.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest retransmission interval agreed (RFC 2349 allows 255 s): with the bounded
/// number of tries, a silent client holds a transfer for under a minute.
const MAX_TIMEOUT_SECS: u64 = 10;

/// What one transfer runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub block: u16,
    pub window: u16,
    pub timeout: Duration,
    /// The size the client announced (WRQ) or asked for (RRQ), if it asked.
    pub tsize: Option<u64>,
}

impl Default for Agreed {
    fn default() -> Agreed {
        Agreed {
            block: PLAIN_BLOCK,
            window: 1,
            timeout: DEFAULT_TIMEOUT,
            tsize: None,
        }
    }
}

/// The options of a request the server takes, and the OACK's pairs in the order the
/// client sent them. `size` is the file's size for a download (what tsize answers).
pub(crate) fn negotiate(
    asked: &[(&str, &str)],
    size: Option<u64>,
) -> (Agreed, Vec<(String, String)>) {
    let mut agreed = Agreed::default();
    let mut oack = Vec::new();
    for (name, value) in asked {
        let name = name.to_ascii_lowercase();
        // Options are decimal numbers; anything else is left out.
        let Ok(n) = value.parse::<u64>() else {
            continue;
        };
        let answer = match name.as_str() {
            "blksize" if n >= u64::from(MIN_BLOCK) => {
                agreed.block = n.min(u64::from(MAX_BLOCK)) as u16;
                u64::from(agreed.block)
            }
            "windowsize" if n >= 1 => {
                agreed.window = n.min(u64::from(MAX_WINDOW)) as u16;
                u64::from(agreed.window)
            }
            "timeout" if (1..=MAX_TIMEOUT_SECS).contains(&n) => {
                agreed.timeout = Duration::from_secs(n);
                n
            }
            // A download answers with the file's size; an upload's size is echoed.
            "tsize" => {
                let t = size.unwrap_or(n);
                agreed.tsize = Some(t);
                t
            }
            _ => continue,
        };
        if oack.iter().all(|(k, _)| *k != name) {
            oack.push((name, answer.to_string()));
        }
    }
    (agreed, oack)
}

/// Leaves options out of the OACK (tsize first, whose answer may be longer than its
/// question, then timeout and windowsize) until it is at most `limit` bytes; the transfer
/// then runs as if they had not been asked for.
pub(crate) fn fit(agreed: &mut Agreed, oack: &mut Vec<(String, String)>, limit: usize) {
    let len = |oack: &[(String, String)]| {
        2 + oack
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
    };
    for drop in ["tsize", "timeout", "windowsize", "blksize"] {
        if len(oack) <= limit {
            return;
        }
        oack.retain(|(k, _)| k != drop);
        match drop {
            "tsize" => agreed.tsize = None,
            "timeout" => agreed.timeout = DEFAULT_TIMEOUT,
            "windowsize" => agreed.window = 1,
            _ => agreed.block = PLAIN_BLOCK,
        }
    }
}

/// Cuts the agreed blksize to at most `most` bytes (not below RFC 2348's smallest), in the
/// OACK too; a request that asked for no blksize is left as it is.
pub(crate) fn cap_block(agreed: &mut Agreed, oack: &mut [(String, String)], most: usize) {
    let Some((_, value)) = oack.iter_mut().find(|(k, _)| k == "blksize") else {
        return;
    };
    let most = u16::try_from(most).unwrap_or(u16::MAX).max(MIN_BLOCK);
    agreed.block = agreed.block.min(most);
    *value = agreed.block.to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bounded_and_unknown_options_left_out() {
        let (agreed, oack) = negotiate(
            &[
                ("BLKSIZE", "65464"),
                ("windowsize", "1000"),
                ("timeout", "255"),
                ("tsize", "0"),
                ("multicast", ""),
                ("blksize", "x"),
            ],
            Some(1234),
        );
        assert_eq!(agreed.block, MAX_BLOCK);
        assert_eq!(agreed.window, MAX_WINDOW);
        assert_eq!(agreed.timeout, DEFAULT_TIMEOUT, "255 s is over the bound");
        assert_eq!(agreed.tsize, Some(1234));
        let names: Vec<_> = oack.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(names, ["blksize=60000", "windowsize=64", "tsize=1234"]);
    }

    #[test]
    fn a_block_below_eight_bytes_is_not_taken() {
        let (agreed, oack) = negotiate(&[("blksize", "4")], None);
        assert_eq!(agreed.block, PLAIN_BLOCK);
        assert!(oack.is_empty());
    }

    #[test]
    fn an_oack_is_cut_to_its_limit_tsize_first() {
        let (mut agreed, mut oack) =
            negotiate(&[("blksize", "1428"), ("tsize", "0")], Some(123_456_789));
        fit(&mut agreed, &mut oack, 2 + "blksize\x001428\x00".len());
        assert_eq!(oack, [("blksize".to_string(), "1428".to_string())]);
        assert_eq!(agreed.tsize, None);
        assert_eq!(agreed.block, 1428);
        fit(&mut agreed, &mut oack, 4);
        assert!(oack.is_empty());
        assert_eq!(agreed, Agreed::default());
    }

    #[test]
    fn a_block_is_capped_only_where_blksize_was_asked() {
        let (mut agreed, mut oack) = negotiate(&[("blksize", "60000"), ("tsize", "0")], Some(9));
        cap_block(&mut agreed, &mut oack, 40);
        assert_eq!(agreed.block, 40);
        assert_eq!(oack[0], ("blksize".to_string(), "40".to_string()));
        let (mut agreed, mut oack) = negotiate(&[("tsize", "0")], Some(9));
        cap_block(&mut agreed, &mut oack, 40);
        assert_eq!(agreed.block, PLAIN_BLOCK, "no blksize to answer with");
    }
}
