//! What a user reads: --help with examples, completions and man pages from the same
//! definitions.

mod common;

use common::{netecho, ok};

#[test]
fn every_subcommand_help_ends_with_examples() {
    for sub in ["serve", "send", "bench", "completions", "manpage"] {
        let help = ok(&netecho(&[sub, "--help"], b""));
        let tail = &help[help
            .rfind("Examples:")
            .unwrap_or_else(|| panic!("{sub}: {help}"))..];
        let examples = tail
            .lines()
            .filter(|l| l.trim_start().starts_with("netecho"))
            .count();
        assert!((2..=4).contains(&examples), "{sub}: {tail}");
    }
}

#[test]
fn completions_for_each_shell_know_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&netecho(&["completions", shell], b""));
        for word in ["serve", "send", "bench", "proto", "unix-seqpacket"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
}

#[test]
fn man_pages_are_generated() {
    let page = ok(&netecho(&["manpage"], b""));
    assert!(page.contains(".TH netecho 1"), "{page}");
    assert!(page.contains("serve"));
    let serve = ok(&netecho(&["manpage", "serve"], b""));
    assert!(serve.contains(".TH netecho-serve 1"));
    assert!(serve.contains("\\-\\-model"), "{serve}");
}

#[test]
fn every_example_fits_eighty_columns_so_none_wraps_in_a_class_terminal() {
    let mut commands = vec![""];
    commands.extend(common::SUBCOMMANDS);
    for command in commands {
        // Wide: clap wraps nothing, so each line is as written.
        let out = std::process::Command::new(common::bin())
            .args([command, "--help"].into_iter().filter(|a| !a.is_empty()))
            .env("COLUMNS", "1000")
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let examples = &help[help.rfind("Examples:").unwrap_or(help.len())..];
        let wide: Vec<&str> = examples
            .lines()
            .filter(|l| l.chars().count() > 80)
            .collect();
        assert_eq!(wide, Vec::<&str>::new(), "netecho {command} --help");
    }
}

/// The long flags `command --help` lists as its options (not those its text mentions).
fn help_flags(command: &str) -> Vec<String> {
    let help = ok(&netecho(&[command, "--help"], b""));
    help.lines()
        .filter(|l| (2..=6).contains(&(l.len() - l.trim_start().len())))
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix(['-']).map_or(l, |_| {
                l.split_once(", ")
                    .map_or(l, |(short, rest)| match short.len() {
                        2 => rest,
                        _ => l,
                    })
            });
            l.starts_with("--")
                .then(|| l.split([' ', '=', ',', '.']).next().unwrap().to_string())
        })
        .collect()
}

/// The long flags a line of a completion script offers, where the shell's syntax puts them.
fn offered(shell: &str, line: &str) -> Vec<String> {
    match shell {
        "bash" => line
            .trim()
            .strip_prefix("opts=\"")
            .map(|opts| {
                opts.trim_end_matches('"')
                    .split(' ')
                    .filter(|w| w.starts_with("--"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        // '(--pin --insecure)--ca=[help]...' or '*--verbose[help]'
        _ => {
            let Some(spec) = line.strip_prefix('\'') else {
                return Vec::new();
            };
            let spec = spec.split_once(')').map_or(spec, |(conflicts, rest)| {
                match conflicts.starts_with('(') {
                    true => rest,
                    false => spec,
                }
            });
            let spec = spec.trim_start_matches('*');
            match spec.starts_with("--") {
                true => vec![spec.split(['=', '[']).next().unwrap().to_string()],
                false => Vec::new(),
            }
        }
    }
}

/// The lines of `command`'s part of a bash or zsh completion script.
fn part<'a>(shell: &str, script: &'a str, command: &str) -> Vec<&'a str> {
    let (start, end) = match shell {
        "bash" => (format!("netecho__subcmd__{command})"), ";;"),
        _ => (format!("({command})"), "&& ret=0"),
    };
    let lines: Vec<&str> = script.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.trim() == start)
        .unwrap_or_else(|| panic!("{shell}: no part for {command}"));
    lines[first + 1..]
        .iter()
        .take_while(|l| l.trim() != end)
        .copied()
        .collect()
}

#[test]
fn completions_offer_only_what_each_commands_help_shows() {
    for shell in ["bash", "zsh"] {
        let script = ok(&netecho(&["completions", shell], b""));
        for command in common::SUBCOMMANDS {
            let shown = help_flags(command);
            assert!(
                shown.contains(&"--help".to_string()),
                "{command}: {shown:?}"
            );
            let lines = part(shell, &script, command);
            let flags: Vec<String> = lines.iter().flat_map(|l| offered(shell, l)).collect();
            assert!(flags.contains(&"--help".to_string()), "{shell} {command}");
            for flag in &flags {
                assert!(
                    shown.contains(flag),
                    "{shell} offers {command} {flag}, not in its --help"
                );
            }
            // zsh also names positional arguments: only those the usage line shows.
            for positional in lines.iter().filter_map(|l| l.strip_prefix("':")) {
                let name = positional
                    .trim_start_matches(':')
                    .split(' ')
                    .next()
                    .unwrap();
                let usage = ok(&netecho(&[command, "--help"], b""));
                assert!(
                    usage.contains(&name.to_uppercase()),
                    "{shell} offers {command}'s {name}, not in its --help"
                );
            }
        }
    }
    // The other side's TLS flags are taken only to be refused: never offered.
    for shell in ["bash", "zsh"] {
        let script = ok(&netecho(&["completions", shell], b""));
        let flags = |command| -> Vec<String> {
            let lines = part(shell, &script, command);
            lines.iter().flat_map(|l| offered(shell, l)).collect()
        };
        let (serve, send) = (flags("serve"), flags("send"));
        assert!(serve.contains(&"--cert".to_string()), "{shell}: {serve:?}");
        assert!(!serve.contains(&"--pin".to_string()), "{shell}: {serve:?}");
        assert!(send.contains(&"--pin".to_string()), "{shell}: {send:?}");
        assert!(!send.contains(&"--cert".to_string()), "{shell}: {send:?}");
    }
}

#[test]
fn the_help_of_v_says_what_serve_logs_at_each_level() {
    let help = ok(&netecho(&["--help"], b""));
    let text = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("-v for each read's size, -vv also for each message's bytes"),
        "{help}"
    );
    // As serve does: -v a line per read, -vv the bytes too.
    let one = common::Server::start(&["-v", "--addr", "127.0.0.1:0"]);
    ok(&netecho(&["send", &one.url(), "hello"], b""));
    one.wait_log("read 5 bytes");
    one.wait_log("1 reads");
    assert!(!one.stderr().contains("b'hello'"), "{}", one.stderr());
    let two = common::Server::start(&["-vv", "--addr", "127.0.0.1:0"]);
    ok(&netecho(&["send", &two.url(), "hello"], b""));
    two.wait_log("b'hello'");
}

#[test]
fn readme_says_which_models_serve_quic_as_serve_does() {
    let readme = include_str!("../README.md");
    let unqualified = |claim: &str| {
        readme
            .split(claim)
            .skip(1)
            .any(|after| !after.chars().take(40).collect::<String>().contains("but"))
    };
    assert!(!unqualified("every model serves every protocol"));
    assert!(!unqualified("Every server model"));
    let out = netecho(
        &[
            "serve",
            "--model",
            "uring",
            "--proto",
            "quic",
            "--addr",
            "127.0.0.1:0",
        ],
        b"",
    );
    let line = common::fails(&out, 2);
    assert!(line.contains("--model event"), "{line}");
}

/// A command of README's first examples as (subcommand, protocol, address), the protocol
/// as `--proto` or the address's scheme names it, else tcp (unix for a path); None for a
/// line that is not `netecho serve` or `netecho send`.
fn example(line: &str) -> Option<(String, String, String)> {
    let command = line.split(" #").next()?.rsplit("| ").next()?;
    let words: Vec<&str> = command
        .split_whitespace()
        .skip_while(|w| *w == "sudo")
        .collect();
    let sub = match words.as_slice() {
        ["netecho", sub @ ("serve" | "send"), ..] => sub.to_string(),
        _ => return None,
    };
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1]);
    let addr = match after("--addr") {
        Some(addr) => addr,
        None if sub == "send" => words[2..]
            .iter()
            .find(|w| !w.starts_with('-') && after("--proto") != Some(**w))?,
        None => "127.0.0.1:3234",
    };
    let (scheme, addr) = match addr.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.trim_end_matches('6')), rest),
        None => (None, addr),
    };
    let proto = after("--proto")
        .or(scheme)
        .unwrap_or(if addr.starts_with('/') { "unix" } else { "tcp" });
    Some((sub, proto.to_string(), addr.to_string()))
}

#[test]
fn every_send_in_readme_s_first_examples_has_a_server_there() {
    // A reader runs the block top to bottom: each send needs a serve above it that listens
    // where it sends ([::] also takes IPv4).
    let readme = include_str!("../README.md");
    let after_table = readme
        .split("| `raw` | SOCK_RAW")
        .nth(1)
        .expect("the protocol table");
    let block = after_table
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let mut servers = Vec::new();
    let mut sends = 0;
    for line in block.lines() {
        let Some((sub, proto, addr)) = example(line) else {
            continue;
        };
        if sub == "serve" {
            servers.push((proto, addr));
            continue;
        }
        sends += 1;
        let port = |a: &str| a.rsplit_once(':').map(|(_, p)| p.to_string());
        let answered = servers.iter().any(|(p, a)| {
            *p == proto
                && (*a == addr
                    || (a.starts_with("[::]:") && port(a) == port(&addr))
                    || (proto == "raw" && a == &addr))
        });
        assert!(answered, "no server in README's examples answers: {line}");
    }
    assert!(sends >= 4, "{block}");
}

#[test]
fn every_help_lists_its_own_flags_first_and_the_shared_ones_together_at_the_end() {
    // -v, -q, -4 and -6 work everywhere; among a subcommand's first flags they would split
    // its own (--proto, -v, --addr, -q, -4, --transform, -6, ...).
    let shared = ["-v", "-q", "-4", "-6", "-h"];
    for sub in common::SUBCOMMANDS {
        let help = ok(&netecho(&[sub, "-h"], b""));
        let flags: Vec<&str> = help
            .lines()
            .filter(|l| l.starts_with("  -"))
            .filter_map(|l| l.split_whitespace().next())
            .map(|f| f.trim_end_matches(','))
            .collect();
        let tail = &flags[flags.len().saturating_sub(shared.len())..];
        assert_eq!(tail, shared, "{sub} -h:\n{help}");
    }
}
