//! The layers ARCHITECTURE.md draws, checked over src/: every `use crate::...` (and every
//! `crate::` path written inline) points down its layers or sideways, never up. Test code
//! is left out (a test may reach anywhere to set up what it checks). Reads the sources with
//! std alone; no binary is started.

use std::fs;
use std::path::{Path, PathBuf};

/// The layers, top to bottom; `Beside` is the rooms any layer may use, which use only each
/// other.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Layer {
    CommandLine,
    Commands,
    Services,
    Transport,
    Codecs,
    Beside,
}

/// Each room's layer, as ARCHITECTURE.md's drawing names it: the longest prefix of a module
/// path listed here decides (`transport::framing` is a codec inside `transport`).
const ROOMS: &[(&str, Layer)] = &[
    ("cli", Layer::CommandLine),
    ("habits", Layer::CommandLine),
    ("docs", Layer::CommandLine),
    ("client", Layer::Commands),
    ("relay", Layer::Commands),
    ("server", Layer::Commands),
    ("lesson", Layer::Commands),
    ("lifecycle", Layer::Commands),
    ("service", Layer::Services),
    ("files", Layer::Services),
    ("access", Layer::Services),
    ("transport", Layer::Transport),
    ("transport::framing", Layer::Codecs),
    ("packet", Layer::Codecs),
    ("labwire", Layer::Codecs),
    ("files::packet", Layer::Codecs),
    ("files::hash", Layer::Codecs),
    ("files::tftp::codec", Layer::Codecs),
    ("endpoint", Layer::Beside),
    ("error", Layer::Beside),
    ("choice", Layer::Beside),
    ("units", Layer::Beside),
    ("hexdump", Layer::Beside),
    ("signal", Layer::Beside),
    ("slots", Layer::Beside),
    ("impair", Layer::Beside),
    ("fair_share", Layer::Beside),
    ("explain", Layer::Beside),
    ("logging", Layer::Beside),
    ("report", Layer::Beside),
    ("wrap", Layer::Beside),
];

/// Upward imports that stay, as (importing module, imported path), each with its reason in
/// ARCHITECTURE.md's "Known exceptions". None.
const EXCEPTIONS: &[(&str, &str)] = &[];

fn layer(path: &str) -> Option<Layer> {
    if path.is_empty() {
        return Some(Layer::CommandLine); // main.rs, the crate root
    }
    ROOMS
        .iter()
        .filter(|(room, _)| path == *room || path.starts_with(&format!("{room}::")))
        .max_by_key(|(room, _)| room.len())
        .map(|&(_, layer)| layer)
}

/// The rule an import from `me` to `to` breaks, if any.
fn broken_rule(me: Layer, to: Layer) -> Option<&'static str> {
    match (me, to) {
        (Layer::Beside, Layer::Beside) => None,
        (Layer::Beside, _) => Some("a room beside the layers uses only the rooms beside them"),
        (_, Layer::Beside) => None,
        _ if to < me => Some("arrows point only downward"),
        _ => None,
    }
}

/// `src` with comments, string and char literals blanked (newlines kept), so braces and
/// `crate::` inside them are not code.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        let end = match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => find(b, i, b"\n"),
            b'/' if b.get(i + 1) == Some(&b'*') => find(b, i + 2, b"*/") + 2,
            b'r' if raw_string_hashes(b, i).is_some() => {
                let hashes = raw_string_hashes(b, i).unwrap();
                let close = [b"\"".as_slice(), &vec![b'#'; hashes]].concat();
                find(b, i + 2 + hashes, &close) + close.len()
            }
            b'"' => quoted_end(b, i, b'"'),
            b'\'' if is_char_literal(b, i) => quoted_end(b, i, b'\''),
            _ => {
                i += 1;
                continue;
            }
        };
        let end = end.min(b.len());
        for c in &mut out[i..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find(b: &[u8], from: usize, what: &[u8]) -> usize {
    (from..b.len())
        .find(|&i| b[i..].starts_with(what))
        .unwrap_or(b.len())
}

/// `r"` or `r#"` at `i` (`br"` too; not inside an identifier): how many `#`s.
fn raw_string_hashes(b: &[u8], i: usize) -> Option<usize> {
    let prefix = if i > 0 && b[i - 1] == b'b' { i - 1 } else { i };
    if prefix > 0 && is_ident(b[prefix - 1]) {
        return None;
    }
    let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
    (b.get(i + 1 + hashes) == Some(&b'"')).then_some(hashes)
}

/// A char literal (`'{'`, `'\n'`, `'\u{200B}'`), not a lifetime (`'a`).
fn is_char_literal(b: &[u8], i: usize) -> bool {
    match b.get(i + 1) {
        Some(b'\\') => true,
        Some(_) => {
            let len = std::str::from_utf8(&b[i + 1..(i + 5).min(b.len())])
                .or_else(|e| std::str::from_utf8(&b[i + 1..i + 1 + e.valid_up_to()]))
                .ok()
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8);
            b.get(i + 1 + len) == Some(&b'\'')
        }
        None => false,
    }
}

/// Where the literal opened by `quote` at `i` ends (one past its closing quote).
fn quoted_end(b: &[u8], i: usize, quote: u8) -> usize {
    let mut j = i + 1;
    while j < b.len() && b[j] != quote {
        j += if b[j] == b'\\' { 2 } else { 1 };
    }
    j + 1
}

/// One past the `}` closing the block opened at `open`.
fn block_end(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code.bytes().enumerate().skip(open) {
        depth += i32::from(c == b'{') - i32::from(c == b'}');
        if depth == 0 {
            return i + 1;
        }
    }
    code.len()
}

/// The inline modules of `code`: name and the byte range of their block, `#[cfg(test)]`
/// ones marked.
fn inline_mods(code: &str) -> Vec<(String, usize, usize, bool)> {
    let mut mods = Vec::new();
    for (at, _) in code.match_indices("mod ") {
        if at > 0 && is_ident(code.as_bytes()[at - 1]) {
            continue;
        }
        let rest = &code[at + 4..];
        let name: String = rest
            .bytes()
            .take_while(|&c| is_ident(c))
            .map(char::from)
            .collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let attributes = code[..at].lines().rev().map(str::trim);
        let test = attributes
            .take_while(|l| l.starts_with("#[") || l.is_empty())
            .any(|l| l == "#[cfg(test)]");
        mods.push((name, open, block_end(code, open), test));
    }
    mods
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e` (an `as` rename dropped).
fn expand(body: &str) -> Vec<String> {
    let body = body.trim();
    let Some(open) = body.find('{') else {
        return vec![body.split(" as ").next().unwrap_or(body).trim().to_string()];
    };
    let (base, inner) = (
        &body[..open],
        &body[open + 1..body.rfind('}').unwrap_or(body.len())],
    );
    let (mut parts, mut depth, mut from) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        depth += i32::from(c == '{') - i32::from(c == '}');
        if c == ',' && depth == 0 {
            parts.push(&inner[from..i]);
            from = i + 1;
        }
    }
    parts.push(&inner[from..]);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(&format!("{base}{}", p.trim())))
        .collect()
}

/// `path` as seen from module `here`, from the crate root.
fn resolve(here: &[String], path: &str) -> String {
    let mut segs: Vec<&str> = path.split("::").map(str::trim).collect();
    let mut base: Vec<String> = here.to_vec();
    if segs[0] == "crate" {
        base.clear();
        segs.remove(0);
    }
    while let Some(&first) = segs.first() {
        match first {
            "super" => drop(base.pop()),
            "self" => {}
            _ => break,
        }
        segs.remove(0);
    }
    base.extend(segs.iter().filter(|s| **s != "self").map(|s| s.to_string()));
    base.join("::")
}

struct Import {
    line: usize,
    from: String,
    to: String,
}

/// Every path into the crate that the non-test code of `src` (the file of `module`) names.
fn imports(module: &[String], src: &str) -> Vec<Import> {
    let code = code_only(src);
    let mods = inline_mods(&code);
    let in_test = |at: usize| mods.iter().any(|&(_, s, e, test)| test && s < at && at < e);
    let here = |at: usize| {
        let mut m = module.to_vec();
        m.extend(
            mods.iter()
                .filter(|(_, s, e, _)| *s < at && at < *e)
                .map(|x| x.0.clone()),
        );
        m
    };
    let line = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut uses = Vec::new();
    for (at, _) in code.match_indices("use ") {
        let rest = code[at + 4..].trim_start();
        let rooted = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| rest.starts_with(p));
        if (at > 0 && is_ident(code.as_bytes()[at - 1])) || !rooted || in_test(at) {
            continue;
        }
        let end = at + code[at..].find(';').unwrap_or(code.len() - at);
        uses.push(at..end);
        for path in expand(&code[code.len() - rest.len()..end]) {
            let to = resolve(&here(at), &path);
            found.push(Import {
                line: line(at),
                from: here(at).join("::"),
                to,
            });
        }
    }
    for (at, _) in code.match_indices("crate::") {
        let inside_use = uses.iter().any(|r| r.contains(&at));
        if (at > 0 && is_ident(code.as_bytes()[at - 1])) || inside_use || in_test(at) {
            continue;
        }
        let path: String = code[at..]
            .bytes()
            .take_while(|&c| is_ident(c) || c == b':')
            .map(char::from)
            .collect();
        let to = resolve(&here(at), path.trim_end_matches(':'));
        found.push(Import {
            line: line(at),
            from: here(at).join("::"),
            to,
        });
    }
    found
}

/// Every `.rs` file under `dir` but the test files (`tests.rs`, `*_tests.rs`).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ readable") {
        let path = entry.expect("src/ entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            sources(&path, out);
        } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
            out.push(path);
        }
    }
}

/// The module a file under `root` is: `transport/mod.rs` is `transport`, `main.rs` the root.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "main")) {
        segs.pop();
    }
    segs
}

/// Each upward import in `src` of `module`, as one line naming it and the rule it breaks.
fn upward(file: &str, module: &[String], src: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for import in imports(module, src) {
        let (Some(me), Some(to)) = (layer(&import.from), layer(&import.to)) else {
            continue;
        };
        let excepted = EXCEPTIONS
            .iter()
            .any(|(from, to)| import.from == *from && import.to.starts_with(to));
        if let Some(rule) = broken_rule(me, to).filter(|_| !excepted) {
            lines.push(format!(
                "{file}:{}: {} ({me:?}) uses {} ({to:?}): {rule}",
                import.line, import.from, import.to
            ));
        }
    }
    lines
}

fn src_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_points_up_the_layers() {
    let root = src_root();
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in &files {
        let src = fs::read_to_string(file).unwrap();
        let shown = file
            .strip_prefix(root.parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        found.extend(upward(&shown, &module_of(&root, file), &src));
    }
    assert!(
        found.is_empty(),
        "imports against ARCHITECTURE.md's layers (move the code down, or list the import \
         in EXCEPTIONS and in ARCHITECTURE.md's Known exceptions with why):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_has_a_layer() {
    let main = fs::read_to_string(src_root().join("main.rs")).unwrap();
    let missing: Vec<&str> = main
        .lines()
        .filter_map(|l| l.strip_prefix("mod ")?.strip_suffix(';'))
        .filter(|m| layer(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "give these a room in ROOMS and in ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn the_check_sees_an_upward_import_and_nothing_else() {
    let module = ["transport".to_string(), "tcp".to_string()];
    let src = r#"
        use crate::endpoint::Proto;
        use super::{framing::Framing, Conn};
        use crate::{signal::Wake, server::{Model, config::ServeConfig}};
        const URL: &str = "crate::client::send is text"; // crate::relay in a comment
        const BRACE: char = '{';
        fn f() { let _ = crate::service::echo::Transform::Upper; }
        #[cfg(test)]
        mod tests {
            use crate::client::exchange::Session;
        }
    "#;
    let found = upward("src/transport/tcp.rs", &module, src);
    let to: Vec<&str> = found
        .iter()
        .map(|l| l.split(" uses ").nth(1).unwrap())
        .collect();
    assert_eq!(
        to,
        [
            "server::Model (Commands): arrows point only downward",
            "server::config::ServeConfig (Commands): arrows point only downward",
            "service::echo::Transform::Upper (Services): arrows point only downward",
        ],
        "{found:#?}"
    );
    let beside = upward(
        "src/wrap.rs",
        &["wrap".to_string()],
        "use crate::transport::Conn;",
    );
    assert_eq!(beside.len(), 1, "{beside:?}");
    assert!(beside[0].contains("a room beside the layers uses only the rooms beside them"));
}
