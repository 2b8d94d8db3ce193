//! Text laid out in a terminal's columns, where a Chinese or full-width character takes two
//! and a combining mark or a zero-width character none: how many a text takes, and the
//! text in lines of a width, for log lines, the last `error:`, notes under a table and the
//! lesson alike. Control characters never reach it: a log line, an error and a peer's
//! words have them escaped first (`logging`, [`printable`]).

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The terminal columns `text` takes.
pub(crate) fn columns(text: &str) -> usize {
    text.width()
}

/// `text` in lines of at most `width` columns, the first after `first`, the others after
/// `rest`, none ending in spaces. Lines break at spaces and between any two wide characters
/// (Chinese has no spaces); a piece wider than a line keeps a line of its own; a
/// `backquoted command` stays on one line when it fits one, so that it can be copied as
/// typed.
pub(crate) fn lines(text: &str, first: &str, rest: &str, width: usize) -> Vec<String> {
    let whole = width.saturating_sub(columns(first).max(columns(rest)));
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut used = columns(first);
    let mut empty = true;
    for Piece { space, text } in pieces(text, whole) {
        let gap = usize::from(space && !empty);
        if !empty && used + gap + columns(&text) > width {
            let full = std::mem::replace(&mut line, rest.to_string());
            lines.push(full.trim_end().to_string());
            used = columns(rest);
            empty = true;
        }
        if space && !empty {
            line.push(' ');
            used += 1;
        }
        used += columns(&text);
        line.push_str(&text);
        empty = false;
    }
    lines.push(line.trim_end().to_string());
    lines
}

/// [`lines`] as one text, each line ending in a line break.
pub(crate) fn paragraph(text: &str, first: &str, rest: &str, width: usize) -> String {
    lines(text, first, rest, width)
        .into_iter()
        .map(|line| line + "\n")
        .collect()
}

/// What a line may break before, and whether a space came before it (kept when the two
/// stay on one line).
#[derive(Debug, PartialEq)]
struct Piece {
    space: bool,
    text: String,
}

/// The pieces of `text`, the pieces of a backquoted span joined into one when it takes at
/// most `whole` columns. A piece with an odd number of backquotes opens or closes a span
/// (`` `netecho ``, `` 5000`, ``); a span never closed is pieces like any others.
fn pieces(text: &str, whole: usize) -> Vec<Piece> {
    let odd = |piece: &Piece| piece.text.matches('`').count() % 2 == 1;
    let mut out = Vec::new();
    let mut span = Vec::new();
    for piece in breaks(text) {
        match (span.is_empty(), odd(&piece)) {
            (true, false) => out.push(piece),
            (true, true) | (false, false) => span.push(piece),
            (false, true) => {
                span.push(piece);
                out.extend(joined(std::mem::take(&mut span), whole));
            }
        }
    }
    out.extend(span);
    out
}

/// A backquoted span's pieces as one, when it takes at most `whole` columns.
fn joined(span: Vec<Piece>, whole: usize) -> Vec<Piece> {
    let mut text = String::new();
    for (i, piece) in span.iter().enumerate() {
        if i > 0 && piece.space {
            text.push(' ');
        }
        text.push_str(&piece.text);
    }
    match columns(&text) <= whole {
        true => vec![Piece {
            space: span[0].space,
            text,
        }],
        false => span,
    }
}

/// The places a line may break between: a run of narrow characters up to a space, or one
/// wide character.
fn breaks(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut space = false;
    let mut word = String::new();
    let flush = |out: &mut Vec<Piece>, word: &mut String, space: &mut bool| {
        if !word.is_empty() {
            let text = std::mem::take(word);
            out.push(Piece {
                space: std::mem::take(space),
                text,
            });
        }
    };
    for c in text.chars() {
        if c.is_whitespace() {
            flush(&mut out, &mut word, &mut space);
            space = true;
        } else if c.width() == Some(2) {
            flush(&mut out, &mut word, &mut space);
            word.push(c);
            flush(&mut out, &mut word, &mut space);
        } else {
            word.push(c);
        }
    }
    flush(&mut out, &mut word, &mut space);
    out
}

/// Characters that change or hide the text around them where it is shown: controls (a
/// newline forges a line, an escape a colour), and the format characters that reorder or
/// hide text (bidi embeddings, overrides and isolates, zero-width spaces and joiners, the
/// byte order mark).
pub(crate) fn hides_text(c: char) -> bool {
    let format = matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    );
    c.is_control() || format
}

/// Text a peer chose (a message, its error) as one printable line: control characters
/// and the format characters that reorder text escaped ([`hides_text`]), so it cannot forge
/// a line of a log or of a summary on stdout. A peer's socket
/// name is written by [`crate::endpoint::escape_name`], which reads back.
pub(crate) fn printable(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().any(hides_text) {
        name.chars()
            .map(|c| {
                if hides_text(c) {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        name.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_characters_take_two_columns_and_marks_none() {
        assert_eq!(columns("abc"), 3);
        assert_eq!(columns("中文"), 4);
        assert_eq!(columns("ＡＢ"), 4);
        assert_eq!(columns("e\u{301}"), 1);
        assert_eq!(columns("a\u{200b}b"), 2);
    }

    #[test]
    fn chinese_breaks_between_characters_and_counts_two_columns_each() {
        let lines = lines("买手机就是 socket() 调用，插卡就是 bind()", "", "", 20);
        for line in &lines {
            assert!(columns(line) <= 20, "{line:?}");
        }
        assert_eq!(
            lines.concat().replace(' ', ""),
            "买手机就是socket()调用，插卡就是bind()"
        );
    }

    #[test]
    fn english_breaks_at_spaces_after_its_prefixes() {
        assert_eq!(
            lines("one two three four", "- ", "  ", 9),
            ["- one two", "  three", "  four"]
        );
        assert_eq!(paragraph("a b c", "  ", "  ", 5), "  a b\n  c\n");
        assert_eq!(paragraph("abcdefgh", "", "", 4), "abcdefgh\n");
        assert_eq!(
            lines("注意 一二", "注意：", "      ", 10),
            ["注意：注意", "      一二"]
        );
    }

    #[test]
    fn a_backquoted_command_stays_whole_when_it_fits_a_line() {
        let text = "listens with `netecho serve --addr :5000` instead";
        assert_eq!(
            paragraph(text, "", "  ", 30),
            "listens with\n  `netecho serve --addr :5000`\n  instead\n"
        );
        assert_eq!(
            lines("先运行`netecho serve`再试", "", "", 16),
            ["先运行", "`netecho serve`", "再试"]
        );
        // Too long for a line, or never closed: words like any others.
        assert_eq!(lines("a `b c d` e", "", "", 4), ["a `b", "c d`", "e"]);
        assert_eq!(lines("a `b c d", "", "", 4), ["a `b", "c d"]);
    }
}
