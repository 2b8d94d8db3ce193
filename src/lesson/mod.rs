//! `netecho lesson`: the socket lesson's server and client walked one call at a time on real
//! sockets on loopback, each step named as the lesson names it (buy the phone = socket(),
//! plug in the card = bind(), ...), with the call, its result and the Python line that does
//! the same; and on demand the failure modes the lesson talks about, as they really happen.

mod backlog;
mod calls;
mod disconnect;
mod empty_send;
mod half_close;
mod loops;
mod reset;
mod reuseaddr;
mod setup;
mod short_recv;
mod sticky;
mod teacher;
mod text;
mod walk;

use anyhow::Result;

use crate::choice::{Choice, from_str_by_name};

pub(crate) use teacher::Teacher;
pub(crate) use text::Lang;

/// What `lesson` is asked: which walk, in which language, waiting for Enter or not.
pub(crate) struct LessonConfig {
    /// One failure mode; without it, the lesson's server and client.
    pub demo: Option<Demo>,
    /// List the demonstrations and stop.
    pub list: bool,
    /// Run through without waiting for Enter (also when stdin is not a terminal).
    pub auto: bool,
    pub lang: Lang,
}

/// The failure modes the lesson talks about, each shown on real sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Demo {
    EmptySend,
    ShortRecv,
    Sticky,
    Reset,
    HalfClose,
    Reuseaddr,
    Backlog,
    Disconnect,
    Loops,
}

impl Choice for Demo {
    const ALL: &'static [Demo] = &[
        Demo::EmptySend,
        Demo::ShortRecv,
        Demo::Sticky,
        Demo::Reset,
        Demo::HalfClose,
        Demo::Reuseaddr,
        Demo::Backlog,
        Demo::Disconnect,
        Demo::Loops,
    ];

    fn name(self) -> &'static str {
        match self {
            Demo::EmptySend => "empty-send",
            Demo::ShortRecv => "short-recv",
            Demo::Sticky => "sticky",
            Demo::Reset => "reset",
            Demo::HalfClose => "half-close",
            Demo::Reuseaddr => "reuseaddr",
            Demo::Backlog => "backlog",
            Demo::Disconnect => "disconnect",
            Demo::Loops => "loops",
        }
    }

    fn help(self) -> &'static str {
        self.summary(Lang::En)
    }
}

from_str_by_name!(Demo);

impl Demo {
    /// The demonstration after this one in the list; none after the last.
    fn next(self) -> Option<Demo> {
        let at = Demo::ALL.iter().position(|&d| d == self)?;
        Demo::ALL.get(at + 1).copied()
    }

    /// One line on what the demonstration shows.
    pub(crate) fn summary(self, lang: Lang) -> &'static str {
        let (en, zh) = match self {
            Demo::EmptySend => ("send(b\"\"): what an empty message is", "发送空消息会怎样"),
            Demo::ShortRecv => (
                "recv(1024) of a longer message",
                "recv(1024) 收一条更长的消息",
            ),
            Demo::Sticky => (
                "two sends read as one (sticky packets)",
                "两次发送一次收到（粘包）",
            ),
            Demo::Reset => ("a reset: ECONNRESET", "连接被重置：ECONNRESET"),
            Demo::HalfClose => (
                "shutdown(SHUT_WR): a half-close",
                "半关闭：shutdown(SHUT_WR)",
            ),
            Demo::Reuseaddr => (
                "address already in use, SO_REUSEADDR",
                "地址已被占用与 SO_REUSEADDR",
            ),
            Demo::Backlog => (
                "listen(1): the backlog filling up",
                "listen(1)：等待队列满了",
            ),
            Demo::Disconnect => (
                "recv returns b\"\" at disconnect",
                "对方挂断时 recv 返回 b\"\"",
            ),
            Demo::Loops => (
                "two messages, then a second client: the two loops",
                "两条消息，再来第二个客户端：两个循环",
            ),
        };
        lang.pick(en, zh)
    }
}

pub(crate) fn run(config: LessonConfig) -> Result<()> {
    let lang = config.lang;
    if config.list {
        let list: String = Demo::ALL
            .iter()
            .map(|&demo| format!("{:<12}{}\n", demo.name(), demo.summary(lang)))
            .collect();
        return crate::error::write_stdout(list.as_bytes());
    }
    let mut t = Teacher::new(lang, Teacher::waits(config.auto));
    match config.demo {
        None => walk::run(&mut t)?,
        Some(demo) => {
            show(demo, &mut t)?;
            t.next(demo.next().map(|next| (next.name(), next.summary(lang))));
        }
    }
    t.finish().map_err(crate::error::stdout_write)
}

fn show(demo: Demo, t: &mut Teacher) -> Result<()> {
    match demo {
        Demo::EmptySend => empty_send::run(t),
        Demo::ShortRecv => short_recv::run(t),
        Demo::Sticky => sticky::run(t),
        Demo::Reset => reset::run(t),
        Demo::HalfClose => half_close::run(t),
        Demo::Reuseaddr => reuseaddr::run(t),
        Demo::Backlog => backlog::run(t),
        Demo::Disconnect => disconnect::run(t),
        Demo::Loops => loops::run(t),
    }
}
