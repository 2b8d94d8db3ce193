//! How the lesson speaks: numbered steps, the call and its result, the Python line, notes,
//! every line within 80 columns, and a pause for Enter between steps on a terminal.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, IsTerminal, Write};

use super::text::Lang;
use crate::wrap;

/// The width every line of the lesson fits in.
pub(super) const WIDTH: usize = 80;

/// Who makes a call: the lesson's server or its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    Server,
    Client,
}

/// Prints the lesson and waits for Enter between steps when asked to.
pub(crate) struct Teacher {
    pub lang: Lang,
    wait: bool,
    step: usize,
    /// A blank line was just printed.
    blank: Cell<bool>,
    /// The first write to stdout that failed (`| head` closed it, a full disk): the lesson
    /// runs on to its end and then reports it.
    failed: RefCell<Option<io::Error>>,
}

impl Teacher {
    pub(crate) fn new(lang: Lang, wait: bool) -> Teacher {
        Teacher {
            lang,
            wait,
            step: 0,
            blank: Cell::new(false),
            failed: RefCell::new(None),
        }
    }

    /// Whether to wait for Enter between steps: a person at a terminal reads the output.
    pub(crate) fn waits(auto: bool) -> bool {
        !auto && io::stdin().is_terminal() && io::stdout().is_terminal()
    }

    /// Writes `lines` to stdout, each ended by a newline; the first failure is kept.
    fn out<'a>(&self, lines: impl IntoIterator<Item = &'a str>) {
        if self.failed.borrow().is_some() {
            return;
        }
        let mut out = io::stdout().lock();
        let written = lines
            .into_iter()
            .try_for_each(|line| writeln!(out, "{}", line.trim_end()))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            *self.failed.borrow_mut() = Some(e);
        }
    }

    /// An empty line.
    pub(crate) fn blank_line(&self) {
        self.out([""]);
        self.blank.set(true);
    }

    /// The lesson's end: the first write to stdout that failed, if one did.
    pub(crate) fn finish(self) -> io::Result<()> {
        self.failed.into_inner().map_or(Ok(()), Err)
    }

    fn print(&self, text: &str, first: &str, rest: &str) {
        self.blank.set(false);
        let lines = wrap::lines(text, first, rest, WIDTH);
        self.out(lines.iter().map(String::as_str));
    }

    /// The demonstration's title, with a blank line after it.
    pub(crate) fn title(&self, en: &str, zh: &str) {
        self.print(self.lang.pick(en, zh), "== ", "   ");
        self.blank_line();
    }

    /// A paragraph in the lesson's language.
    pub(crate) fn say(&self, en: &str, zh: &str) {
        self.print(self.lang.pick(en, zh), "", "");
    }

    /// A note on what other systems do differently.
    pub(crate) fn note(&self, en: &str, zh: &str) {
        let first = self.lang.pick("note: ", "注意：");
        self.print(self.lang.pick(en, zh), first, "      ");
    }

    /// Starts the next step: its number, who takes it, and its name in the lesson.
    pub(crate) fn step(&mut self, who: Who, en: &str, zh: &str) {
        self.step += 1;
        let side = match (who, self.lang) {
            (Who::Server, Lang::En) => "server",
            (Who::Client, Lang::En) => "client",
            (Who::Server, Lang::Zh) => "服务器",
            (Who::Client, Lang::Zh) => "客户端",
        };
        let word = self.lang.pick("Step", "第");
        let head = match self.lang {
            Lang::En => format!("{word} {}. {side}: ", self.step),
            Lang::Zh => format!("{word} {} 步 {side}：", self.step),
        };
        if !self.blank.get() {
            self.blank_line();
        }
        self.print(self.lang.pick(en, zh), &head, "   ");
    }

    /// The system call as made, and what it returned.
    pub(crate) fn call(&self, call: &str, result: &str) {
        self.print(&format!("{call} = {result}"), "  ", "      ");
    }

    /// The line of the lesson's Python that makes the same call.
    pub(crate) fn python(&self, line: &str) {
        self.print(line, "  python: ", "          ");
    }

    /// A block of the lesson's Python, indented, each line as it stands (none wider than
    /// the lesson).
    pub(crate) fn code(&self, lines: &[&str]) {
        self.blank.set(false);
        let indented: Vec<String> = lines.iter().map(|line| format!("  {line}")).collect();
        debug_assert!(indented.iter().all(|l| l.len() <= WIDTH), "{indented:?}");
        self.out(indented.iter().map(String::as_str));
    }

    /// The last line of a demonstration: the command for the next one, `(name, summary)`,
    /// or, after the last, where the list is.
    pub(crate) fn next(&self, next: Option<(&str, &str)>) {
        self.blank_line();
        match next {
            Some((name, what)) => self.print(
                &format!("netecho lesson {name}{}{what}", self.lang.pick(": ", "：")),
                self.lang.pick("next: ", "下一个："),
                self.lang.pick("      ", "        "),
            ),
            None => self.say(
                "That was the last one; netecho lesson --list shows them all, netecho lab \
                 compares the protocols.",
                "这是最后一个；netecho lesson --list 列出全部，netecho lab 比较各个协议。",
            ),
        }
    }

    /// Waits for Enter on a terminal (end of input stops waiting for good).
    pub(crate) fn pause(&mut self) {
        if !self.wait {
            return;
        }
        {
            let mut out = io::stdout().lock();
            let _ = write!(out, "{}", self.lang.pick("  [Enter] ", "  [回车] "));
            let _ = out.flush();
        }
        let mut line = String::new();
        if matches!(io::stdin().lock().read_line(&mut line), Ok(0) | Err(_)) {
            self.wait = false;
            self.out([""]);
        }
    }
}
