//! Reading strace(1) output: the UDP control messages a call carried, and what it returned.

/// The lines of a trace that call `call` with a UDP control message of `kind` (103
/// UDP_SEGMENT, 104 UDP_GRO, as strace may name them or not).
pub fn with_cmsg<'t>(trace: &'t str, call: &str, kind: u32) -> Vec<&'t str> {
    let names = [
        format!("cmsg_type=0x{kind:x}"),
        if kind == 103 {
            "UDP_SEGMENT"
        } else {
            "UDP_GRO"
        }
        .to_string(),
    ];
    trace
        .lines()
        .filter(|l| l.contains(&format!("{call}(")) && l.contains("SOL_UDP"))
        .filter(|l| names.iter().any(|n| l.contains(n.as_str())))
        .collect()
}

/// The bytes a line's result says went out or came in.
pub fn result(line: &str) -> usize {
    line.rsplit("= ")
        .next()
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or(0)
}
