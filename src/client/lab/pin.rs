//! Where the lab's two sides run: the servers on one core, the measuring client and its load
//! threads on another, the same two for every row, so rows and runs compare (README: "Lab:
//! numbers a class can compare" says which cores and why).

use anyhow::{Result, bail};

/// The two cores of a lab, as the kernel numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Cores {
    pub client: usize,
    pub server: usize,
}

impl Cores {
    /// The first two cores this process may run on: the client on the first, the servers on
    /// the second. `None` on a single core, where there is nothing to choose.
    pub(super) fn choose() -> Option<Cores> {
        let allowed = allowed().ok()?;
        match allowed[..] {
            [client, server, ..] => Some(Cores { client, server }),
            _ => None,
        }
    }
}

/// The cores the calling thread may run on, lowest first.
fn allowed() -> Result<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Keeps the calling thread, and every thread and process it starts from now on, on `core`.
pub(super) fn pin(core: usize) -> Result<()> {
    // SAFETY: the set is built with the libc macros and passed with its own size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(core, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_setaffinity(0, size, &set) } != 0 {
        bail!(
            "sched_setaffinity to core {core}: {} (the lab pins its client and servers to \
             keep rounds comparable)",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_runs_where_it_was_put() {
        let cores = allowed().unwrap();
        let last = *cores.last().unwrap();
        let thread = || std::thread::Builder::new().name("pinned".into());
        thread()
            .spawn(move || {
                pin(last).unwrap();
                assert_eq!(allowed().unwrap(), vec![last]);
                // Threads it starts inherit the core.
                thread()
                    .spawn(move || assert_eq!(allowed().unwrap(), vec![last]))
                    .unwrap()
                    .join()
                    .unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        if cores.len() >= 2 {
            let c = Cores::choose().unwrap();
            assert_ne!(c.client, c.server);
        }
    }
}
