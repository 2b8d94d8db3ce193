//! The lesson's two languages and text laid out in 80 terminal columns, where a Chinese
//! character takes two.

use crate::choice::{Choice, from_str_by_name};

/// The lesson's language: English, or Chinese as the lesson was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    #[default]
    En,
    Zh,
}

impl Choice for Lang {
    const ALL: &'static [Lang] = &[Lang::En, Lang::Zh];

    fn name(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "Chinese (中文), the lesson's language",
        }
    }
}

from_str_by_name!(Lang);

impl Lang {
    /// The text in this language.
    pub(crate) fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }
}

/// The terminal columns one character takes: two for CJK and full-width forms.
fn char_columns(c: char) -> usize {
    match c as u32 {
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 => 2,
        _ => 1,
    }
}

/// The terminal columns `text` takes.
pub(crate) fn columns(text: &str) -> usize {
    text.chars().map(char_columns).sum()
}

/// The pieces a line may break between: a run of narrow characters up to a space, or one
/// wide character (Chinese breaks between any two characters). Each with whether a space
/// came before it.
fn pieces(text: &str) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut space = false;
    let mut word = String::new();
    let flush = |out: &mut Vec<(bool, String)>, word: &mut String, space: &mut bool| {
        if !word.is_empty() {
            out.push((*space, std::mem::take(word)));
            *space = false;
        }
    };
    for c in text.chars() {
        if c == ' ' {
            flush(&mut out, &mut word, &mut space);
            space = true;
        } else if char_columns(c) == 2 {
            flush(&mut out, &mut word, &mut space);
            out.push((space, c.to_string()));
            space = false;
        } else {
            word.push(c);
        }
    }
    flush(&mut out, &mut word, &mut space);
    out
}

/// `text` in lines of at most `width` columns, the first after `first`, the others after
/// `rest` (a piece longer than a line keeps a line of its own).
pub(super) fn wrap(text: &str, first: &str, rest: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    for (space, piece) in pieces(text) {
        let gap = usize::from(space && !empty);
        if !empty && columns(&line) + gap + columns(&piece) > width {
            lines.push(std::mem::replace(&mut line, rest.to_string()));
            empty = true;
        }
        if space && !empty {
            line.push(' ');
        }
        line.push_str(&piece);
        empty = false;
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_breaks_between_characters_and_counts_two_columns_each() {
        let lines = wrap("买手机就是 socket() 调用，插卡就是 bind()", "", "", 20);
        for line in &lines {
            assert!(columns(line) <= 20, "{line:?}");
        }
        assert_eq!(
            lines.concat().replace(' ', ""),
            "买手机就是socket()调用，插卡就是bind()"
        );
    }

    #[test]
    fn english_breaks_at_spaces() {
        let lines = wrap("one two three four", "- ", "  ", 9);
        assert_eq!(lines, ["- one two", "  three", "  four"]);
    }
}
