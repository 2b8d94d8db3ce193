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
