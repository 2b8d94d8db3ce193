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

/// `--help` and `--version` are output as a command's is: a reader gone (`| head` that
/// already quit) ends them as SIGPIPE ends `yes | head -1`, and a full disk is one line,
/// exit 1 (exec's own failures: 255), never a quiet 0 with nothing written.
#[test]
fn help_into_a_closed_or_full_stdout_ends_as_a_command_does() {
    for (args, failed) in [
        (&["--help"][..], 1),
        (&["serve", "--help"], 1),
        (&["lesson", "-h"], 1),
        (&["--version"], 1),
        (&["exec", "--help"], 255),
    ] {
        let (status, err) = common::written_to(args, common::with_closed_stdout);
        assert_eq!(common::shell_status(&status), 141, "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
        let (status, err) = common::written_to(args, common::with_full_stdout);
        assert_eq!(status.code(), Some(failed), "{args:?}: {err}");
        assert!(err.contains("stdout is full (ENOSPC)"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
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

#[test]
fn help_to_a_pipe_fits_eighty_columns_as_the_rest_of_netecho_does() {
    let mut commands = vec![""];
    commands.extend(common::SUBCOMMANDS);
    for command in commands {
        // No terminal on either stream and no $COLUMNS: `netecho serve --help | less`.
        let out = std::process::Command::new(common::bin())
            .args([command, "--help"].into_iter().filter(|a| !a.is_empty()))
            .env_remove("COLUMNS")
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        let wide: Vec<&str> = help.lines().filter(|l| l.chars().count() > 80).collect();
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
    one.wait_log("1 read;");
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
    // A quoted word ('[::]:3234', quoted for zsh) as the shell passes it on.
    let words: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.trim_matches('\''))
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

/// The example lines of `command`'s --help (the main help for ""), a line continued with `\`
/// joined to the next, each as (what a shell runs, the comment after `#`).
fn help_examples(command: &str) -> Vec<(String, String)> {
    let out = std::process::Command::new(common::bin())
        .args([command, "--help"].into_iter().filter(|a| !a.is_empty()))
        .env("COLUMNS", "1000")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let tail = &help[help.rfind("Examples:").map_or(help.len(), |i| i + 9)..];
    let parts: Vec<&str> = tail.split("\\\n").map(str::trim_start).collect();
    let joined = parts.join(" ");
    joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(" #") {
            Some((run, note)) => (run.trim_end().to_string(), note.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// What in `line` a shell would not run as it reads: a `[` outside quotes (zsh globs it:
/// "no matches found"), two commands at once (`&`, the second racing the first), or words
/// after a run of spaces (a note not marked with `#`).
fn paste_trouble(line: &str) -> Option<&'static str> {
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[') => return Some("an unquoted [ is a glob in zsh"),
            (None, '&') => return Some("a command in the background races the next"),
            _ => {}
        }
    }
    line.contains("   ")
        .then_some("a note after spaces is run as words: mark it with #")
}

#[test]
fn every_help_example_pastes_into_a_shell_as_written() {
    let mut commands = vec![""];
    commands.extend(common::SUBCOMMANDS);
    for command in commands {
        for (run, _) in help_examples(command) {
            assert_eq!(paste_trouble(&run), None, "netecho {command} --help: {run}");
            let syntax = std::process::Command::new("sh")
                .args(["-n", "-c", &run])
                .output()
                .unwrap();
            assert!(
                syntax.status.success(),
                "netecho {command} --help: sh cannot parse {run}"
            );
        }
    }
}

/// The Unix socket paths a help example names (`/tmp/cmd.sock`, `unix:///tmp/echo.sock`).
fn socket_paths(run: &str) -> Vec<&str> {
    let paths = run
        .split_whitespace()
        .filter_map(|w| w.find("/tmp/").map(|at| &w[at..]));
    paths.filter(|p| p.ends_with(".sock")).collect()
}

/// A client example at a Unix socket path (`exec /tmp/cmd.sock`) has a server at that path
/// among the examples of its help or of the main help: pasted, it finds the socket there.
#[test]
fn every_socket_path_a_help_example_talks_to_is_served_by_an_example() {
    let runs = |command: &str| -> Vec<String> {
        help_examples(command)
            .into_iter()
            .map(|(run, _)| run)
            .collect()
    };
    let main = runs("");
    let serves = |run: &String| run.contains("netecho serve") || run.contains("netecho relay");
    for command in common::SUBCOMMANDS {
        let own = runs(command);
        let served: Vec<&str> = own
            .iter()
            .chain(&main)
            .filter(|r| serves(r))
            .flat_map(|r| socket_paths(r))
            .collect();
        for run in own.iter().chain(&main).filter(|r| !serves(r)) {
            for path in socket_paths(run) {
                assert!(
                    served.contains(&path),
                    "netecho {command} --help: no example serves {path}: {run}"
                );
            }
        }
    }
}

/// Runs `script` with `netecho` the binary under test, in a network namespace of its own
/// (its loopback up, an eth0 with a peer) and over a /tmp of its own, so the fixed ports and paths
/// of the documentation are free; None where this process may not make namespaces.
fn in_private_namespace(test: &str, script: &str) -> Option<std::process::Output> {
    if !common::can_unshare(test) {
        return None;
    }
    // The binary is copied into the private /tmp, since the tmpfs hides a build under /tmp.
    const BIN_DIR: &str = "/tmp/.netecho-bin";
    let path = format!("{BIN_DIR}:{}", std::env::var("PATH").unwrap_or_default());
    let setup = format!(
        "exec 3< '{}' && ip link set lo up && ip link add eth0 type veth peer name eth1 && \
         ip link set eth1 up && ip link set eth0 up && ip addr add 10.9.9.1/24 dev eth0 && \
         mount -t tmpfs tmpfs /tmp && mkdir {BIN_DIR} && cat <&3 > {BIN_DIR}/netecho && \
         chmod +x {BIN_DIR}/netecho && exec 3<&- && cd /tmp || exit 99\n",
        common::bin()
    );
    let child = std::process::Command::new("unshare")
        .args(["-nm", "sh", "-c", &format!("{setup}{script}")])
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Some(common::output_within(
        child,
        script,
        std::time::Duration::from_secs(60),
    ))
}

/// A shell script that starts `server` as a second terminal would, waits (at most 10 s) for
/// its `listening` line, runs `client`, and stops the server.
fn two_terminals(server: &str, client: &str) -> String {
    format!(
        "( {server} ) >server.out 2>&1 &\n\
         i=0; until grep -q '^listening' server.out; do i=$((i+1)); \
         [ $i -gt 200 ] && {{ cat server.out >&2; exit 98; }}; sleep 0.05; done\n\
         {client}\nrc=$?\nkill $! 2>/dev/null; wait; exit $rc\n"
    )
}

#[test]
fn the_help_examples_for_two_terminals_run_as_written() {
    let test = "the_help_examples_for_two_terminals_run_as_written";
    let mut pairs = 0;
    let mut commands = vec![""];
    commands.extend(common::SUBCOMMANDS);
    for command in commands {
        let examples = help_examples(command);
        for pair in examples.windows(2) {
            let [(server, first), (client, second)] = pair else {
                continue;
            };
            if first != "in one terminal," {
                continue;
            }
            let want = second
                .strip_prefix("in another: ")
                .unwrap_or_else(|| panic!("netecho {command} --help: {second}"));
            pairs += 1;
            let Some(out) = in_private_namespace(test, &two_terminals(server, client)) else {
                return;
            };
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains(want),
                "netecho {command} --help: {server}, then {client}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // The main help's udp and unix pairs, and exec's.
    assert!(pairs >= 3, "{pairs} examples for two terminals");
}

/// Whether `command` names something to fill in: HOST, PROG, SHA256, C, a word in capitals
/// (1K and -P are values and flags).
fn fill_in(command: &str) -> bool {
    command.split([' ', ':', '/']).any(|w| {
        w.starts_with(|c: char| c.is_ascii_uppercase())
            && w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// The `netecho ...` commands of README's table of habits (its "in netecho" column) that
/// name nothing to fill in (HOST, PROG, SHA256).
fn readme_table_commands() -> Vec<String> {
    let readme = include_str!("../README.md");
    let table = readme
        .split("| in | you type | in netecho |")
        .nth(1)
        .expect("README has the table of habits");
    let column = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(3).unwrap());
    column
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|code| code.starts_with("netecho "))
        .filter(|code| !fill_in(code))
        .map(str::to_string)
        .collect()
}

/// The script `script(limit)` (a command under `timeout limit`) in a private namespace:
/// for 2 s, and once more for 20 s when it is a `server` that a loaded machine kept from
/// saying it listens within the first 2. `None` after a skip.
fn run_for_a_while(
    test: &str,
    server: bool,
    script: impl Fn(u32) -> String,
) -> Option<std::process::Output> {
    let mut out = in_private_namespace(test, &script(2))?;
    if server && !String::from_utf8_lossy(&out.stdout).contains("listening") {
        out = in_private_namespace(test, &script(20))?;
    }
    Some(out)
}

#[test]
fn every_command_of_readme_s_habit_table_runs_as_written() {
    let test = "every_command_of_readme_s_habit_table_runs_as_written";
    let commands = readme_table_commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for command in commands {
        // As typed, for a while: a server must listen, and nothing may be refused as usage.
        let server = command.starts_with("netecho serve");
        let Some(out) = run_for_a_while(test, server, |limit| {
            format!("timeout -s INT {limit} {command}\nrc=$?\n[ $rc = 124 ] || exit $rc")
        }) else {
            return;
        };
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_ne!(out.status.code(), Some(2), "README's `{command}`: {stderr}");
        assert_ne!(
            out.status.code(),
            Some(99),
            "{command}: no namespace: {stderr}"
        );
        if server {
            assert!(
                stdout.contains("listening"),
                "README's `{command}`: {stderr}"
            );
        }
    }
}

#[test]
fn every_help_example_runs_as_written_without_a_usage_error() {
    // Each example as a user pastes it, for at most 2 s, with the files it names at hand:
    // a server listens, and nothing is refused as usage (exit 2, sh's too). Completions
    // are left out: they write into the shell's own directories.
    let test = "every_help_example_runs_as_written_without_a_usage_error";
    let mut commands = vec![""];
    commands.extend(common::SUBCOMMANDS.iter().filter(|c| **c != "completions"));
    for command in commands {
        for (run, _) in help_examples(command) {
            if fill_in(&run) {
                continue;
            }
            let server = run.contains("netecho serve") || run.contains("netecho -v serve");
            let Some(out) = run_for_a_while(test, server, |limit| {
                format!(
                    "for f in input.txt notes.txt report.pdf data.bin; do echo x > $f; done\n\
                     cat > example.sh <<'EXAMPLE'\nsudo() {{ \"$@\"; }}\n{run}\nEXAMPLE\n\
                     timeout {limit} sh example.sh; rc=$?; [ $rc = 124 ] || exit $rc"
                )
            }) else {
                return;
            };
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_ne!(
                out.status.code(),
                Some(2),
                "netecho {command} --help: {run}: {stderr}"
            );
            assert_ne!(out.status.code(), Some(99), "{run}: no namespace: {stderr}");
            if server {
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(stdout.contains("listening"), "{run}: {stdout}{stderr}");
            }
        }
    }
}

/// Each subcommand's address help gives its example in its own words: bench --help tells of
/// bench, not of send's message or of serve's --addr.
#[test]
fn the_address_help_speaks_of_its_own_subcommand() {
    let cases = [
        ("serve", "serve --addr 4000"),
        ("send", "`send 127.0.0.1 42`"),
        ("bench", "`bench 127.0.0.1 4000`"),
        ("get", "`get 127.0.0.1 4000 NAME`"),
        ("put", "`put 127.0.0.1 4000 FILE`"),
        ("exec", "`exec 127.0.0.1 4000`"),
        ("relay", "relay 4000 TO"),
    ];
    for (sub, example) in cases {
        let help = ok(&netecho(&[sub, "--help"], b""));
        let said = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(said.contains(example), "{sub}: no {example:?} in {said}");
        for other in ["send 127.0.0.1 42", "serve --addr 4000"] {
            let own = example.contains(other);
            assert!(
                own || !said.contains(other),
                "{sub} tells of {other:?}: {said}"
            );
        }
    }
}
