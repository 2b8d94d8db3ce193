//! The server models by name, for `--model`, its help and the log lines.

use super::Model;
use crate::choice::{Choice, from_str_by_name};

impl Choice for Model {
    const ALL: &'static [Model] = &[
        Model::Iterative,
        Model::Threads,
        Model::Event,
        Model::Fork,
        Model::Uring,
    ];

    fn name(self) -> &'static str {
        match self {
            Model::Iterative => "iterative",
            Model::Threads => "threads",
            Model::Event => "event",
            Model::Fork => "fork",
            Model::Uring => "uring",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Model::Iterative => "One client at a time, as a first socket lesson writes it",
            Model::Threads => "A thread per connection",
            Model::Event => "Non-blocking sockets on epoll, a fixed number of threads",
            Model::Fork => "A process per connection, as inetd and `socat ... fork` do",
            Model::Uring => {
                "io_uring (Linux 6.0+): a ring per core, multishot accept and receive into \
                 provided buffers, replies sent in batches"
            }
        }
    }
}

from_str_by_name!(Model);
