//! The directory `serve --files DIR` serves: names resolved inside it only, regular files
//! only, and uploads that never stand under their final name until verified.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};

/// A file name a client asked for that cannot be served, worded for the client and the log.
#[derive(Debug)]
pub(crate) struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The served directory.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    root: PathBuf,
    /// DIR, opened once at start: downloads are resolved beneath this handle, so swapping a
    /// subdirectory for a symlink between a check and the open leads nowhere outside.
    dir: Arc<OwnedFd>,
    pub upload: bool,
    pub max_file: u64,
    /// Serve a file with more than one hard link (--follow-hardlinks).
    pub follow_hardlinks: bool,
}

impl Store {
    pub(crate) fn open(dir: &Path, upload: bool, max_file: u64) -> Result<Store> {
        let root = fs::canonicalize(dir)
            .with_context(|| format!("--files {}: no such directory", dir.display()))?;
        if !root.is_dir() {
            return Err(anyhow!("--files {}: not a directory", dir.display()));
        }
        remove_stale_partials(&root);
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&root)
            .with_context(|| format!("--files {}: cannot open it", dir.display()))?;
        Ok(Store {
            root,
            dir: Arc::new(OwnedFd::from(dir)),
            upload,
            max_file,
            follow_hardlinks: false,
        })
    }

    /// The path of `name` inside the directory, refusing anything that could leave it: an
    /// absolute path, `..`, an empty name.
    fn inside(&self, name: &str) -> Result<PathBuf, Refused> {
        let path = Path::new(name);
        if name.is_empty() || name.contains('\0') {
            return Err(Refused(format!("'{name}' is not a file name")));
        }
        for part in path.components() {
            match part {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => {
                    return Err(Refused(format!(
                        "'{name}': '..' may not leave the served directory"
                    )));
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(Refused(format!(
                        "'{name}': absolute paths are refused; name a file in the served directory"
                    )));
                }
            }
        }
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        if file.starts_with('.') && file.contains(".netecho-") && file.ends_with(".part") {
            return Err(Refused(format!(
                "'{name}' is a transfer still being written; it appears under its own name \
                 once verified"
            )));
        }
        Ok(self.root.join(path))
    }

    /// Opens `name` for download: a regular file inside the directory, after following any
    /// symlinks (which may not lead out of it).
    pub(crate) fn open_file(&self, name: &str) -> Result<(File, u64), Refused> {
        let path = self.inside(name)?;
        let file = match open_beneath(&self.dir, name) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => self.open_by_path(name, &path)?,
            Err(e) => {
                return Err(match e.raw_os_error() {
                    Some(libc::ENOENT) => Refused(format!("'{name}': no such file")),
                    Some(libc::EXDEV | libc::ELOOP) => Refused(format!(
                        "'{name}': a symlink that leads out of the served directory"
                    )),
                    _ => Refused(format!("'{name}': {e}")),
                });
            }
            Ok(file) => file,
        };
        self.check_file(name, file)
    }

    /// Opens `name` by its path, checked first (kernels before 5.6 have no openat2).
    fn open_by_path(&self, name: &str, path: &Path) -> Result<File, Refused> {
        let real = fs::canonicalize(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Refused(format!("'{name}': no such file")),
            _ => Refused(format!("'{name}': {e}")),
        })?;
        if !real.starts_with(&self.root) {
            return Err(Refused(format!(
                "'{name}': a symlink that leads out of the served directory"
            )));
        }
        // O_NOFOLLOW on the resolved path: if it was swapped for a symlink since, refuse.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&real)
            .map_err(|e| Refused(format!("'{name}': {e}")))?;
        Ok(file)
    }

    /// The opened handle's own type and size (never the path's, which may have changed).
    fn check_file(&self, name: &str, file: File) -> Result<(File, u64), Refused> {
        let meta = file
            .metadata()
            .map_err(|e| Refused(format!("'{name}': {e}")))?;
        if meta.is_dir() {
            return Err(Refused(format!("'{name}' is a directory; name a file")));
        }
        if !meta.is_file() {
            return Err(Refused(format!(
                "'{name}' is not a regular file (a device, socket or pipe)"
            )));
        }
        if meta.nlink() > 1 && !self.follow_hardlinks {
            return Err(Refused(format!(
                "'{name}' has {} hard links, and one may lead out of the served directory \
                 (serve --follow-hardlinks serves such files)",
                meta.nlink()
            )));
        }
        if meta.len() > self.max_file {
            return Err(Refused(format!(
                "'{name}' is {} bytes, over the {}-byte limit (--max-file)",
                meta.len(),
                self.max_file
            )));
        }
        Ok((file, meta.len()))
    }

    /// Where an upload of `name` of `size` bytes goes: checked like a download, and never a
    /// path outside the directory or over an existing file.
    pub(crate) fn upload_path(&self, name: &str, size: u64) -> Result<PathBuf, Refused> {
        if !self.upload {
            return Err(Refused(
                "uploads are off on this server (serve --upload turns them on)".into(),
            ));
        }
        if size > self.max_file {
            return Err(Refused(format!(
                "{size} bytes is over the {}-byte limit (--max-file)",
                self.max_file
            )));
        }
        let path = self.inside(name)?;
        let parent = path.parent().unwrap_or(&self.root);
        let real_parent = fs::canonicalize(parent)
            .map_err(|_| Refused(format!("'{name}': no such directory")))?;
        if !real_parent.starts_with(&self.root) {
            return Err(Refused(format!(
                "'{name}': a symlink that leads out of the served directory"
            )));
        }
        let target = real_parent.join(
            path.file_name()
                .ok_or_else(|| Refused(format!("'{name}' is not a file name")))?,
        );
        // Uploads never replace what is there: a served file belongs to the server's owner.
        match fs::symlink_metadata(&target) {
            Ok(_) => Err(Refused(format!(
                "'{name}' already exists on the server; put it under another name"
            ))),
            Err(_) => Ok(target),
        }
    }
}

/// The pid in a temporary file's name (`.NAME.netecho-PID-N.part`), if it is one.
fn partial_pid(file: &str) -> Option<i32> {
    let rest = file.strip_prefix('.')?.strip_suffix(".part")?;
    let (_, tail) = rest.rsplit_once(".netecho-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes temporary files left under `root` by a netecho that died mid-transfer (killed,
/// or the machine stopped): netecho's own names only, and only when the process named in
/// them is gone. Subdirectories are searched, symlinks never followed, at most
/// [`STALE_SCAN`] entries looked at.
fn remove_stale_partials(root: &Path) {
    let mut dirs = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > STALE_SCAN {
                return;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let Some(pid) = partial_pid(&name.to_string_lossy()) else {
                continue;
            };
            let gone = pid > 0
                && pid != std::process::id() as i32
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    == Err(nix::errno::Errno::ESRCH);
            if kind.is_file() && gone && fs::remove_file(entry.path()).is_ok() {
                tracing::info!(
                    "removed {}: left by netecho process {pid}, which is gone",
                    crate::transport::printable(&entry.path().to_string_lossy())
                );
            }
        }
    }
}

/// Directory entries looked at for stale temporary files at start.
const STALE_SCAN: usize = 100_000;

/// openat2(2) of `name` beneath `dir` for reading: no `..`, absolute symlink or symlink
/// leading out of `dir` at the moment of the open (RESOLVE_BENEATH), no /proc magic links;
/// non-blocking and never a controlling terminal, since the type is checked after.
fn open_beneath(dir: &OwnedFd, name: &str) -> io::Result<File> {
    let path = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the name"))?;
    // Safety: open_how is plain data; zero is a valid value of every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // Safety: the pointers are valid for the call, the size is open_how's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: the kernel just returned this descriptor, owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
}

/// Temporary files being written right now, so that a stop signal, which ends the process
/// without running destructors, can still remove them.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every temporary file of a transfer still under way: for a server that stops, or
/// a client interrupted, in the middle of one.
pub(crate) fn remove_partials() {
    let mut live = live();
    // Under the lock: no transfer starts a new temporary file after this.
    STOPPED.store(true, std::sync::atomic::Ordering::Relaxed);
    for temp in live.drain(..) {
        let _ = fs::remove_file(temp);
    }
}

/// Set once the temporary files were removed for a stop: a transfer still running then
/// makes no new one.
static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A file being written under a temporary name beside its final one, renamed into place
/// only when complete and verified; removed if dropped before that.
pub(crate) struct Partial {
    temp: PathBuf,
    target: PathBuf,
    pub file: File,
    done: bool,
}

impl Partial {
    /// Creates the temporary file for `target`. With `overwrite` false, an existing target is
    /// an error now (and the rename will not replace one that appears meanwhile).
    pub(crate) fn create(target: &Path, overwrite: bool) -> Result<Partial> {
        if !overwrite && fs::symlink_metadata(target).is_ok() {
            return Err(anyhow!(
                "{} already exists; choose another name (-o) or add --force to replace it",
                target.display()
            ));
        }
        let name = target
            .file_name()
            .context("no file name")?
            .to_string_lossy();
        // Short enough that the temporary name fits NAME_MAX (255) whatever the real one.
        let mut end = name.len().min(100);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let name = &name[..end];
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Unique per process and per transfer: two uploads of one name never share a file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.netecho-{}-{n}.part", std::process::id()));
        // Created and registered under one lock: a stop signal's remove_partials either
        // sees the file or runs before it exists, never between the two.
        let mut live = live();
        if STOPPED.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(anyhow!("stopping: no new transfer is written"));
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)
            .with_context(|| format!("create {}", temp.display()))?;
        live.push(temp.clone());
        drop(live);
        Ok(Partial {
            temp,
            target: target.to_path_buf(),
            file,
            done: false,
        })
    }

    /// Moves the verified file to its final name. No fsync, as curl, wget and scp do none:
    /// the rename already means a killed transfer never leaves a partial file under the
    /// name, and waiting for the disk would cost a 1 GiB download seconds.
    pub(crate) fn commit(mut self, overwrite: bool) -> Result<()> {
        if !overwrite {
            // link(2) fails if the target exists: no race with a file created meanwhile.
            match fs::hard_link(&self.temp, &self.target) {
                Ok(()) => {
                    let _ = fs::remove_file(&self.temp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(anyhow!(
                        "{} appeared during the transfer; it was left as it is",
                        self.target.display()
                    ));
                }
                // A file system without hard links (vfat, some network mounts): a rename,
                // checked first, is the best it allows.
                Err(_) if fs::symlink_metadata(&self.target).is_err() => {
                    fs::rename(&self.temp, &self.target)
                        .with_context(|| format!("rename to {}", self.target.display()))?;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("link {}", self.target.display()));
                }
            }
        } else {
            fs::rename(&self.temp, &self.target)
                .with_context(|| format!("rename to {}", self.target.display()))?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        live().retain(|t| t != &self.temp);
        if !self.done {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), b"hi").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/b.txt"), b"hey").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("in")).unwrap();
        let store = Store::open(dir.path(), false, 1 << 30).unwrap();
        assert_eq!(store.open_file("a.txt").unwrap().1, 2);
        assert_eq!(store.open_file("sub/b.txt").unwrap().1, 3);
        assert_eq!(
            store.open_file("in").unwrap().1,
            2,
            "a symlink inside is fine"
        );
        for (name, why) in [
            ("../etc/passwd", "'..'"),
            ("sub/../../x", "'..'"),
            ("/etc/passwd", "absolute"),
            ("out", "leads out"),
            ("sub", "directory"),
            ("nope", "no such file"),
            ("", "not a file name"),
        ] {
            let err = store.open_file(name).unwrap_err().0;
            assert!(err.contains(why), "{name}: {err}");
        }
        let devices = Store::open(Path::new("/dev"), false, 1 << 30).unwrap();
        assert!(
            devices
                .open_file("null")
                .unwrap_err()
                .0
                .contains("not a regular file")
        );
    }
}
