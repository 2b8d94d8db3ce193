//! How the lesson speaks: numbered steps, the call and its result, the Python line, notes,
//! every line within 80 columns, and a pause for Enter between steps on a terminal.

use std::cell::Cell;
use std::io::{self, BufRead, Write};

use super::text::{Lang, wrap};

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
}

impl Teacher {
    pub(crate) fn new(lang: Lang, wait: bool) -> Teacher {
        Teacher {
            lang,
            wait,
            step: 0,
            blank: Cell::new(false),
        }
    }

    fn print(&self, text: &str, first: &str, rest: &str) {
        self.blank.set(false);
        let mut out = io::stdout().lock();
        for line in wrap(text, first, rest, WIDTH) {
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = out.flush();
    }

    /// The demonstration's title, with a blank line after it.
    pub(crate) fn title(&self, en: &str, zh: &str) {
        self.print(self.lang.pick(en, zh), "== ", "   ");
        println!();
        self.blank.set(true);
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
            println!();
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
        for line in lines {
            debug_assert!(line.len() + 2 <= WIDTH, "{line}");
            println!("{}", format!("  {line}").trim_end());
        }
    }

    /// Waits for Enter on a terminal (end of input stops waiting for good).
    pub(crate) fn pause(&mut self) {
        if !self.wait {
            return;
        }
        print!("{}", self.lang.pick("  [Enter] ", "  [回车] "));
        let _ = io::stdout().flush();
        let mut line = String::new();
        if matches!(io::stdin().lock().read_line(&mut line), Ok(0) | Err(_)) {
            self.wait = false;
            println!();
        }
    }
}
