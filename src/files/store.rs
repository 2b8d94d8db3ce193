//! The directory `serve --files DIR` serves: names resolved inside it only, regular files
//! only, and uploads that never stand under their final name until verified.

use std::ffi::{CStr, CString};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};

/// What a refusal is about, for a protocol that carries a code for it (TFTP's error
/// codes, mapped in one place: `tftp::code`); the words say the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// No such file.
    NotFound,
    /// A name or file the server may not serve or write (outside DIR, uploads off, a device).
    Access,
    /// No room: over --max-file, the free space or the free inodes, or a write that failed so.
    DiskFull,
    /// An upload's name is taken.
    Exists,
    /// A packet the protocol does not allow (a block larger than agreed).
    Illegal,
    /// Anything else.
    Other,
}

impl Kind {
    /// The kind of a failed system call's error.
    pub(crate) fn of_io(e: &io::Error) -> Kind {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EFBIG | libc::EDQUOT) => Kind::DiskFull,
            Some(libc::EEXIST) => Kind::Exists,
            Some(libc::ENOENT) => Kind::NotFound,
            Some(libc::EACCES | libc::EPERM | libc::EROFS) => Kind::Access,
            _ => Kind::Other,
        }
    }

    /// The kind of an error: of the first [`Refused`] or system call error in its chain.
    pub(crate) fn of(e: &anyhow::Error) -> Kind {
        e.chain()
            .find_map(|cause| {
                if let Some(refused) = cause.downcast_ref::<Refused>() {
                    Some(refused.kind)
                } else if let Some(write) = cause.downcast_ref::<super::FileWrite>() {
                    Some(Kind::of_io(&write.0))
                } else {
                    cause.downcast_ref::<io::Error>().map(Kind::of_io)
                }
            })
            .unwrap_or(Kind::Other)
    }
}

/// A file name a client asked for that cannot be served, worded for the client and the log,
/// and of what kind.
#[derive(Debug)]
pub(crate) struct Refused {
    pub kind: Kind,
    pub text: String,
}

impl Refused {
    pub(crate) fn new(kind: Kind, text: impl Into<String>) -> Refused {
        Refused {
            kind,
            text: text.into(),
        }
    }

    fn access(text: impl Into<String>) -> Refused {
        Refused::new(Kind::Access, text)
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Refused {}

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

/// Why the file `name` a client asked for could not be opened, in words for the client.
fn not_served(name: &str, e: &io::Error) -> Refused {
    let kind = match Kind::of_io(e) {
        Kind::NotFound => Kind::NotFound,
        _ => Kind::Access,
    };
    Refused::new(
        kind,
        match e.raw_os_error() {
            Some(libc::ENOENT) => format!("'{name}': no such file"),
            Some(libc::EXDEV | libc::ELOOP) => {
                format!("'{name}': a symlink that leads out of the served directory")
            }
            Some(libc::ENOTDIR) => format!(
                "'{name}' names a file as a directory (a '/' after a file's name); name the file \
             without it"
            ),
            Some(libc::EACCES) => format!("'{name}': the server may not read it"),
            _ => format!("'{name}': {e}"),
        },
    )
}

/// Why `--files DIR` cannot be served, worded as the Unix path errors are.
fn dir_error(dir: &Path, e: &std::io::Error) -> anyhow::Error {
    let shown = dir.display();
    match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!(
            "--files {shown}: the directory does not exist; create it first or choose another \
             path"
        ),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "--files {shown}: {}",
            crate::error::may_not_enter(&shown.to_string())
        ),
        _ => anyhow!("--files {shown}: cannot open it: {e}"),
    }
}

impl Store {
    pub(crate) fn open(dir: &Path, upload: bool, max_file: u64) -> Result<Store> {
        let root = fs::canonicalize(dir).map_err(|e| dir_error(dir, &e))?;
        if !root.is_dir() {
            return Err(anyhow!("--files {}: not a directory", dir.display()));
        }
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&root)
            .map_err(|e| dir_error(dir, &e))?;
        let dir = OwnedFd::from(dir);
        // Only a server that writes into DIR cleans up after itself there: a read-only one
        // removes nothing.
        if upload {
            remove_stale_partials(&root, &dir);
        }
        Ok(Store {
            root,
            dir: Arc::new(dir),
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
            return Err(Refused::access(format!("'{name}' is not a file name")));
        }
        for part in path.components() {
            match part {
                Component::Normal(_) | Component::CurDir => {}
                Component::ParentDir => return Err(Refused::access(parent_dir(name))),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(Refused::access(format!(
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
            return Err(Refused::access(format!(
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
            Err(e) => return Err(not_served(name, &e)),
            Ok(file) => file,
        };
        self.check_file(name, file)
    }

    /// Opens `name` by its path, checked first (kernels before 5.6 have no openat2).
    fn open_by_path(&self, name: &str, path: &Path) -> Result<File, Refused> {
        let real = fs::canonicalize(path).map_err(|e| not_served(name, &e))?;
        if !real.starts_with(&self.root) {
            return Err(Refused::access(format!(
                "'{name}': a symlink that leads out of the served directory"
            )));
        }
        // O_NOFOLLOW on the resolved path: if it was swapped for a symlink since, refuse.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&real)
            .map_err(|e| Refused::access(format!("'{name}': {e}")))?;
        Ok(file)
    }

    /// The opened handle's own type and size (never the path's, which may have changed).
    fn check_file(&self, name: &str, file: File) -> Result<(File, u64), Refused> {
        let meta = file
            .metadata()
            .map_err(|e| Refused::access(format!("'{name}': {e}")))?;
        if meta.is_dir() {
            return Err(Refused::access(format!(
                "'{name}' is a directory; name a file"
            )));
        }
        if !meta.is_file() {
            return Err(Refused::access(format!(
                "'{name}' is not a regular file (a device, socket or pipe)"
            )));
        }
        if meta.nlink() > 1 && !self.follow_hardlinks {
            return Err(Refused::access(format!(
                "'{name}' has {} hard links, and one may lead out of the served directory \
                 (serve --follow-hardlinks serves such files)",
                meta.nlink()
            )));
        }
        if meta.len() > self.max_file {
            return Err(Refused::new(
                Kind::DiskFull,
                format!(
                    "'{name}' is {} bytes, over the {}-byte limit (--max-file)",
                    meta.len(),
                    self.max_file
                ),
            ));
        }
        Ok((file, meta.len()))
    }

    /// Where an upload of `name` of `size` bytes goes: checked like a download, its
    /// directory opened beneath DIR's handle, and never over an existing file. Every later
    /// step of the upload is relative to that directory's handle.
    pub(crate) fn upload_path(&self, name: &str, size: u64) -> Result<Place, Refused> {
        if !self.upload {
            return Err(Refused::access(
                "uploads are off on this server (serve --upload turns them on)",
            ));
        }
        if size > self.max_file {
            return Err(Refused::new(
                Kind::DiskFull,
                format!(
                    "{size} bytes is over the {}-byte limit (--max-file)",
                    self.max_file
                ),
            ));
        }
        self.inside(name)?;
        upload_name(name)?;
        let path = Path::new(name);
        let file = path
            .file_name()
            .ok_or_else(|| Refused::access(format!("'{name}' is not a file name")))?;
        // Messages name the upload as the client did, never by the server's own path.
        let shown = PathBuf::from(name);
        let parent = path.parent().unwrap_or(Path::new(""));
        let dir = if parent.components().all(|c| c == Component::CurDir) {
            Arc::clone(&self.dir)
        } else {
            Arc::new(
                open_dir_beneath(&self.dir, parent).map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOENT | libc::ENOTDIR) => {
                        Refused::access(format!("'{name}': no such directory"))
                    }
                    Some(libc::EXDEV | libc::ELOOP) => Refused::access(format!(
                        "'{name}': a symlink that leads out of the served directory"
                    )),
                    _ => Refused::access(format!("'{name}': {e}")),
                })?,
            )
        };
        let place = Place {
            dir,
            name: c_name(file.as_bytes()).map_err(|e| Refused::access(format!("'{name}': {e}")))?,
            shown,
            flag: "NAME",
        };
        // Uploads never replace what is there: a served file belongs to the server's owner.
        match place.existing() {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Err(Refused::new(
                    Kind::Exists,
                    format!("'{name}' already exists on the server; put it under another name"),
                ));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
                return Err(Refused::access(format!(
                    "'{name}': the name is too long for the server's file system"
                )));
            }
            Err(e) => return Err(Refused::access(format!("'{name}': {e}"))),
        }
        // Checked again, and promised, once the temporary file exists (Partial::reserve_upload).
        if let Some(refused) = no_inodes(place.dir.as_raw_fd(), name) {
            return Err(refused);
        }
        match room(place.dir.as_raw_fd(), &promised()) {
            Some(free) if size > free => Err(no_room(name, size, free)),
            _ => Ok(place),
        }
    }
}

/// The longest upload name, and the longest part of one (NAME_MAX): a longer one would be
/// refused only at the final rename, after all its data.
const MAX_UPLOAD_NAME: usize = 1024;
const MAX_NAME_PART: usize = 255;

/// Refuses an upload name the server could not store under that very name.
fn upload_name(name: &str) -> Result<(), Refused> {
    // A newline or an escape sequence in a stored name would forge lines or colours in
    // whatever later lists DIR (ls, find, a backup's log), which netecho cannot escape; a
    // bidi override or a zero-width character would make it read as another name there.
    if name.chars().any(crate::wrap::hides_text) {
        return Err(Refused::access(format!(
            "'{}': control characters (a newline, an escape, DEL, a bidi override, a \
             zero-width character) are refused in an uploaded name; rename the file or give \
             another NAME",
            crate::wrap::printable(name)
        )));
    }
    if name.ends_with('/') {
        return Err(Refused::access(format!(
            "'{name}' ends with '/'; name a file (DIR/NAME)"
        )));
    }
    if name.len() > MAX_UPLOAD_NAME
        || Path::new(name)
            .components()
            .any(|c| c.as_os_str().len() > MAX_NAME_PART)
    {
        return Err(Refused::access(format!(
            "the name is too long ({} bytes; at most {MAX_UPLOAD_NAME}, and {MAX_NAME_PART} \
             between slashes)",
            name.len()
        )));
    }
    Ok(())
}

/// Where a file is written: a directory's handle and a name in it. Creating, linking,
/// renaming and removing are all relative to the handle, so a directory on the way there
/// swapped for a symlink meanwhile leads nowhere else.
#[derive(Clone, Debug)]
pub(crate) struct Place {
    dir: Arc<OwnedFd>,
    name: CString,
    /// The path, for messages only.
    shown: PathBuf,
    /// What named the path (get's -o, lab's --plot), for the advice in messages.
    flag: &'static str,
}

impl Place {
    /// The type (S_IFMT bits) of what has the name already (a file, a directory, a symlink,
    /// a device), or None when nothing has it.
    fn existing(&self) -> io::Result<Option<libc::mode_t>> {
        match stat_at(&self.dir, &self.name) {
            Ok(st) => Ok(Some(st.st_mode & libc::S_IFMT)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the name may be taken: anything there, or a stat that failed.
    fn taken(&self) -> bool {
        !matches!(self.existing(), Ok(None))
    }

    /// Whether a file may be written here: nothing has the name, or (with `overwrite`)
    /// something [`Place::replaceable`].
    fn writable(&self, overwrite: bool) -> Result<()> {
        if !overwrite && self.taken() {
            return Err(Refused::new(
                Kind::Exists,
                format!(
                    "{} already exists; choose another name ({}) or add --force to replace it",
                    self.shown.display(),
                    self.flag
                ),
            )
            .into());
        }
        self.replaceable()
    }

    /// Refuses to replace what is not a regular file (or a symlink): a device node, a FIFO,
    /// a socket or a directory is never swapped for the download.
    fn replaceable(&self) -> Result<()> {
        let shown = self.shown.display();
        let mut kind = self.existing().with_context(|| format!("{shown}"))?;
        if kind == Some(libc::S_IFLNK) && through_magic_link(&self.dir, &self.name) {
            // /dev/stdout, /dev/fd/N: the link, replaced, would be gone for every program.
            return Err(anyhow!(
                "{shown} leads to an open file descriptor (through /proc), which is never \
                 replaced, even with --force: {}",
                self.advice()
            ));
        }
        if kind == Some(libc::S_IFLNK) {
            // A symlink is replaced as a file is, unless it leads to what may not be (a
            // device, a FIFO); a dangling one may be.
            kind = follow_at(&self.dir, &self.name)
                .map_or(Some(libc::S_IFREG), |st| Some(st.st_mode & libc::S_IFMT));
        }
        match kind {
            Some(libc::S_IFDIR) => Err(anyhow!(
                "{shown} is a directory, which is never replaced by a file"
            )),
            Some(libc::S_IFREG | libc::S_IFLNK) | None => Ok(()),
            Some(_) => Err(anyhow!(
                "{shown} is not a regular file (a device, FIFO or socket), which is never \
                 replaced, even with --force: {}",
                self.advice()
            )),
        }
    }

    /// What to do instead of writing where a refusal says no.
    fn advice(&self) -> String {
        match self.flag {
            "-o" => "name a file with -o, or give -o - for standard output".into(),
            flag => format!("name a file with {flag}"),
        }
    }

    /// Refuses, before anything is made, a directory this user may not create files in.
    fn may_create(&self) -> Result<()> {
        let dir = self.shown.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new(".")).display();
        // Safety: a valid descriptor and C string for the call.
        let rc = unsafe {
            libc::faccessat(
                self.dir.as_raw_fd(),
                c".".as_ptr(),
                libc::W_OK,
                libc::AT_EACCESS,
            )
        };
        match io::Error::last_os_error().raw_os_error() {
            _ if rc == 0 => Ok(()),
            Some(libc::EROFS) => Err(anyhow!(
                "{} {}: {dir} is on a read-only file system; choose another path",
                self.flag,
                self.shown.display()
            )),
            _ => Err(anyhow!(
                "{} {}: this user may not create files in {dir}; choose a directory you own, \
                 such as /tmp",
                self.flag,
                self.shown.display()
            )),
        }
    }
}

/// What names a place to write: a path the user gave (its directory opened by path once),
/// or a [`Place`] resolved beneath a served directory.
pub(crate) trait Destination {
    fn place(&self) -> Result<Place>;
}

impl Destination for Place {
    fn place(&self) -> Result<Place> {
        Ok(self.clone())
    }
}

/// A file netecho writes for the user (get's OUT, lab's --html, bench's --plot), and the
/// option that named it, which its refusals advise changing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output<'a> {
    pub flag: &'static str,
    pub path: &'a Path,
}

impl Destination for Output<'_> {
    fn place(&self) -> Result<Place> {
        let (flag, path) = (self.flag, self.path);
        if path.as_os_str().as_bytes().ends_with(b"/") {
            let dir = path.display().to_string();
            return Err(anyhow!(
                "{dir} ends with '/', which names a directory, never a file to write"
            ));
        }
        let file = path
            .file_name()
            .with_context(|| format!("{}: no file name", path.display()))?;
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(parent)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => anyhow!(
                    "{flag} {}: directory {} does not exist; create it or choose another path",
                    path.display(),
                    parent.display()
                ),
                _ => anyhow!(
                    "{flag} {}: open the directory {}: {e}",
                    path.display(),
                    parent.display()
                ),
            })?;
        Ok(Place {
            dir: Arc::new(OwnedFd::from(dir)),
            name: c_name(file.as_bytes())?,
            shown: path.to_path_buf(),
            flag,
        })
    }
}

/// A path given with get's -o.
impl Destination for Path {
    fn place(&self) -> Result<Place> {
        Output {
            flag: "-o",
            path: self,
        }
        .place()
    }
}

/// Refuses, before a client connects (or a lab measures), an output that [`Partial::create`]
/// would refuse; one naming a directory is answered with the path of `name`'s file in it.
pub(crate) fn check_output(output: Output<'_>, overwrite: bool, name: &str) -> Result<()> {
    let (out, flag) = (output.path, output.flag);
    let names_a_directory = if out.is_dir() {
        "is a directory"
    } else if out.as_os_str().as_bytes().ends_with(b"/") {
        "ends with '/', which names a directory"
    } else {
        // What is never replaced says so first: advice to add --force would only lead to
        // a second refusal.
        let place = output.place()?;
        place.replaceable()?;
        place.writable(overwrite)?;
        return place.may_create();
    };
    let file = Path::new(name).file_name().unwrap_or_default();
    Err(anyhow!(
        "{} {names_a_directory}: give {flag} the file's own path ({flag} {})",
        out.display(),
        out.join(file).display()
    ))
}

/// Writes `bytes` to `output` as get writes a download: into a new file beside it, renamed
/// into place, so a symlink at the path is never written through and an existing file is
/// replaced only with `overwrite` (and never half-written).
pub(crate) fn write_output(output: Output<'_>, overwrite: bool, bytes: &[u8]) -> Result<()> {
    let mut partial = Partial::create(&output, overwrite)?;
    io::Write::write_all(&mut partial.file, bytes)
        .with_context(|| format!("write {}", output.path.display()))?;
    partial.commit(overwrite)
}

impl Destination for PathBuf {
    fn place(&self) -> Result<Place> {
        self.as_path().place()
    }
}

/// The pid in a temporary file's name, if it is exactly one that [`Partial::create`] makes:
/// `.NAME.netecho-PID-N.part`, NAME of 1 to [`TEMP_NAME`] bytes, PID and N in digits.
fn partial_pid(file: &[u8]) -> Option<i32> {
    let rest = file.strip_prefix(b".")?.strip_suffix(b".part")?;
    let at = rest.windows(9).rposition(|w| w == b".netecho-")?;
    let (name, tail) = (&rest[..at], &rest[at + 9..]);
    let dash = tail.iter().position(|&b| b == b'-')?;
    let (pid, n) = (&tail[..dash], &tail[dash + 1..]);
    let digits =
        |d: &[u8], max: usize| (1..=max).contains(&d.len()) && d.iter().all(u8::is_ascii_digit);
    if name.is_empty() || name.len() > TEMP_NAME || !digits(pid, 10) || !digits(n, 20) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

/// Bytes of the final name kept in a temporary file's name, so that it fits NAME_MAX (255).
const TEMP_NAME: usize = 100;

/// Whether a temporary file found at start is stale: netecho's own name, a regular file of
/// this user, its process gone from this PID namespace, and no process (of another
/// namespace, sharing DIR) holding the lock every transfer holds on its file while written.
fn stale(dir: &OwnedFd, name: &CStr, meta: &libc::stat) -> Option<i32> {
    let pid = partial_pid(name.to_bytes())?;
    if meta.st_mode & libc::S_IFMT != libc::S_IFREG
        || meta.st_uid != nix::unistd::geteuid().as_raw()
    {
        return None;
    }
    let gone = pid > 0
        && pid != std::process::id() as i32
        && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
    if !gone {
        return None;
    }
    let flags =
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    let file = open_at(dir, name, flags, 0).ok()?;
    let same = file
        .metadata()
        .is_ok_and(|m| m.ino() == meta.st_ino && m.dev() == meta.st_dev);
    // Safety: a valid descriptor for the call; the lock goes with the file's close.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    (same && free).then_some(pid)
}

/// Removes temporary files left in DIR by a netecho that died mid-transfer (killed, or the
/// machine stopped): see [`stale`] for which. Subdirectories are searched through
/// handles, symlinks never followed, at most [`STALE_SCAN`] entries looked at.
fn remove_stale_partials(root: &Path, dir: &OwnedFd) {
    let Ok(top) = open_at(dir, c".", DIR_FLAGS, 0) else {
        return;
    };
    let mut dirs = vec![(OwnedFd::from(top), PathBuf::new())];
    let mut seen = 0usize;
    while let Some((dir, rel)) = dirs.pop() {
        let Ok(entries) = entries(&dir, STALE_SCAN - seen) else {
            continue;
        };
        seen += entries.len();
        for name in entries {
            let Ok(meta) = stat_at(&dir, &name) else {
                continue;
            };
            let shown = rel.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
            if meta.st_mode & libc::S_IFMT == libc::S_IFDIR {
                if let Ok(sub) = open_at(&dir, &name, DIR_FLAGS | libc::O_NOFOLLOW, 0) {
                    dirs.push((OwnedFd::from(sub), shown));
                }
                continue;
            }
            let Some(pid) = stale(&dir, &name, &meta) else {
                continue;
            };
            if unlink_at(&dir, &name).is_ok() {
                tracing::info!(
                    "removed {}: left by netecho process {pid}, which is gone",
                    crate::wrap::printable(&root.join(shown).to_string_lossy())
                );
            }
        }
        if seen >= STALE_SCAN {
            return;
        }
    }
}

/// Directory entries looked at for stale temporary files at start.
const STALE_SCAN: usize = 100_000;

/// How a directory handle is opened: for reading its entries and as the base of *at calls.
const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;

/// openat2(2) of `name` beneath `dir` for reading: no `..`, absolute symlink or symlink
/// leading out of `dir` at the moment of the open (RESOLVE_BENEATH), no /proc magic links;
/// non-blocking and never a controlling terminal, since the type is checked after.
fn open_beneath(dir: &OwnedFd, name: &str) -> io::Result<File> {
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    openat2_beneath(dir, name.as_bytes(), flags).map(File::from)
}

/// The directory `path` (relative) beneath `dir`, as [`open_beneath`] resolves names. A
/// kernel without openat2 (before 5.6) walks it one component at a time instead, following
/// no symlink at all.
fn open_dir_beneath(dir: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    match openat2_beneath(dir, path.as_os_str().as_bytes(), DIR_FLAGS) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => walk_beneath(dir, path),
        other => other,
    }
}

/// The directory `path` beneath `dir`, one component at a time, refusing every symlink.
fn walk_beneath(dir: &OwnedFd, path: &Path) -> io::Result<OwnedFd> {
    let mut at = OwnedFd::from(open_at(dir, c".", DIR_FLAGS, 0)?);
    for part in path.components() {
        let Component::Normal(part) = part else {
            continue;
        };
        let part = c_name(part.as_bytes()).map_err(io::Error::other)?;
        at = OwnedFd::from(open_at(&at, &part, DIR_FLAGS | libc::O_NOFOLLOW, 0)?);
    }
    Ok(at)
}

fn openat2_beneath(dir: &OwnedFd, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    openat2(
        dir,
        name,
        flags,
        libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    )
}

/// Whether `name` in `dir` resolves through a /proc magic link (/dev/stdout is a symlink to
/// /proc/self/fd/1): refused with RESOLVE_NO_MAGICLINKS, found without it.
fn through_magic_link(dir: &OwnedFd, name: &CStr) -> bool {
    let flags = libc::O_PATH | libc::O_CLOEXEC;
    let name = name.to_bytes();
    openat2(dir, name, flags, libc::RESOLVE_NO_MAGICLINKS)
        .is_err_and(|e| e.raw_os_error() == Some(libc::ELOOP))
        && openat2(dir, name, flags, 0).is_ok()
}

/// openat2(2) of `name` relative to `dir`, resolved as `resolve` (RESOLVE_*) says.
fn openat2(dir: &OwnedFd, name: &[u8], flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let path = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the name"))?;
    // Safety: open_how is plain data; zero is a valid value of every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = resolve;
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
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// One path component as a C string: no NUL, no slash.
fn c_name(name: &[u8]) -> Result<CString> {
    if name.contains(&b'/') {
        return Err(anyhow!("a slash in a file name"));
    }
    CString::new(name).map_err(|_| anyhow!("a NUL in a file name"))
}

/// openat(2) relative to `dir`.
fn open_at(dir: &OwnedFd, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
    // Safety: a valid descriptor and C string for the call.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: the kernel just returned this descriptor, owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// fstatat(2) of `name` in `dir`, a final symlink not followed.
fn stat_at(dir: &OwnedFd, name: &CStr) -> io::Result<libc::stat> {
    fstatat(dir, name, libc::AT_SYMLINK_NOFOLLOW)
}

/// fstatat(2) of `name` in `dir`, symlinks followed.
fn follow_at(dir: &OwnedFd, name: &CStr) -> io::Result<libc::stat> {
    fstatat(dir, name, 0)
}

fn fstatat(dir: &OwnedFd, name: &CStr, flags: libc::c_int) -> io::Result<libc::stat> {
    // Safety: stat is plain data, filled in by the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // Safety: a valid descriptor, C string and stat buffer for the call.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// unlinkat(2) of a file `name` in `dir`.
fn unlink_at(dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    // Safety: a valid descriptor and C string for the call.
    let rc = unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Renames `from` to `to`, both in `dir`; with `replace` false, never over an existing
/// file (renameat2 RENAME_NOREPLACE).
fn rename_at(dir: &OwnedFd, from: &CStr, to: &CStr, replace: bool) -> io::Result<()> {
    let flags = if replace { 0 } else { libc::RENAME_NOREPLACE };
    let fd = dir.as_raw_fd();
    // Safety: a valid descriptor and C strings for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            fd,
            from.as_ptr(),
            fd,
            to.as_ptr(),
            flags,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// linkat(2): a second name `to` for the file `from`, both in `dir`; fails if `to` exists.
fn link_at(dir: &OwnedFd, from: &CStr, to: &CStr) -> io::Result<()> {
    let fd = dir.as_raw_fd();
    // Safety: a valid descriptor and C strings for the call.
    let rc = unsafe { libc::linkat(fd, from.as_ptr(), fd, to.as_ptr(), 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The names in directory `dir` but `.` and `..`, at most `max`, read through a handle of
/// their own (the directory's position is not shared with `dir`).
fn entries(dir: &OwnedFd, max: usize) -> io::Result<Vec<CString>> {
    let own = open_at(dir, c".", DIR_FLAGS, 0)?;
    // Safety: fdopendir takes over the descriptor on success; closed below by closedir.
    let stream = unsafe { libc::fdopendir(own.as_raw_fd()) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(own);
    let mut names = Vec::new();
    while names.len() < max {
        // Safety: a live directory stream; the entry is valid until the next readdir.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            break;
        }
        // Safety: d_name is a NUL-terminated name inside the entry.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    // Safety: the stream from fdopendir, closed once.
    unsafe { libc::closedir(stream) };
    Ok(names)
}

/// Temporary files being written right now (their directory's handle and name), so that a
/// stop signal, which ends the process without running destructors, can still remove them.
static LIVE: Mutex<Vec<(Arc<OwnedFd>, CString)>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<(Arc<OwnedFd>, CString)>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every temporary file of a transfer still under way: for a server that stops, or
/// a client interrupted, in the middle of one.
pub(crate) fn remove_partials() {
    let mut live = live();
    // Under the lock: no transfer starts a new temporary file after this.
    STOPPED.store(true, std::sync::atomic::Ordering::Relaxed);
    for (dir, temp) in live.drain(..) {
        let _ = unlink_at(&dir, &temp);
    }
}

/// Set once the temporary files were removed for a stop: a transfer still running then
/// makes no new one.
static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Temporary names tried for one file: another user who can write to the directory may
/// have made the next ones (the pid and counter are easy to guess), so a taken name is
/// skipped, but not forever.
const TEMP_TRIES: u64 = 100;

/// Creates `.NAME.netecho-PID-N.part` beside `place`, N unique per transfer of this
/// process (two uploads of one name never share a file), skipping names already taken.
fn create_temp(place: &Place) -> Result<(CString, File)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = String::from_utf8_lossy(place.name.as_bytes()).into_owned();
    let mut end = name.len().min(TEMP_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    // O_EXCL: a name someone put there meanwhile (a symlink too) is never written through.
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let dir = place.shown.parent().unwrap_or(Path::new("."));
    let mut tries = 0;
    loop {
        tries += 1;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = format!(".{}.netecho-{}-{n}.part", &name[..end], std::process::id());
        let shown = dir.join(&temp);
        let temp = c_name(temp.as_bytes())?;
        match open_at(&place.dir, &temp, flags, 0o644) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && tries < TEMP_TRIES => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                return Err(anyhow!(
                    "create {}: the last of {TEMP_TRIES} temporary names tried, all taken \
                     (another user who can write to {} may be making them); write into a \
                     directory only you can write to",
                    shown.display(),
                    dir.display()
                ));
            }
            Err(e) => return Err(e).with_context(|| format!("create {}", shown.display())),
        }
    }
}

/// A file being written under a temporary name beside its final one, renamed into place
/// only when complete and verified; removed if dropped before that.
pub(crate) struct Partial {
    place: Place,
    temp: CString,
    pub file: File,
    done: bool,
}

impl Partial {
    /// Creates the temporary file for `target`. With `overwrite` false, an existing target is
    /// an error now (and the rename will not replace one that appears meanwhile).
    pub(crate) fn create<D: Destination + ?Sized>(target: &D, overwrite: bool) -> Result<Partial> {
        let place = target.place()?;
        place.writable(overwrite)?;
        // Created and registered under one lock: a stop signal's remove_partials either
        // sees the file or runs before it exists, never between the two.
        let mut live = live();
        if STOPPED.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(anyhow!("stopping: no new transfer is written"));
        }
        let (temp, file) = create_temp(&place)?;
        // Held while the file is written: a server starting on the same directory from
        // another PID namespace, where this pid means nothing, sees it in use.
        // Safety: a valid descriptor for the call; the lock goes with the file's close.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        live.push((Arc::clone(&place.dir), temp.clone()));
        drop(live);
        Ok(Partial {
            place,
            temp,
            file,
            done: false,
        })
    }

    /// Moves the verified file to its final name, in the directory its temporary file was
    /// created in. No fsync, as curl, wget and scp do none: the rename already means a
    /// killed transfer never leaves a partial file under the name, and waiting for the disk
    /// would cost a 1 GiB download seconds.
    pub(crate) fn commit(mut self, overwrite: bool) -> Result<()> {
        let (dir, name, shown) = (&self.place.dir, &self.place.name, &self.place.shown);
        if overwrite {
            // What appeared there meanwhile (a FIFO, a device) is not replaced either.
            self.place.replaceable()?;
            rename_at(dir, &self.temp, name, true)
                .with_context(|| format!("rename to {}", shown.display()))?;
            self.done = true;
            return Ok(());
        }
        let appeared = || {
            anyhow::Error::new(Refused::new(
                Kind::Exists,
                format!(
                    "{} appeared during the transfer; it was left as it is",
                    shown.display()
                ),
            ))
        };
        match rename_at(dir, &self.temp, name, false) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Err(appeared()),
            // A file system without RENAME_NOREPLACE: link(2) also fails if the name exists.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                match link_at(dir, &self.temp, name) {
                    Ok(()) => {
                        let _ = unlink_at(dir, &self.temp);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => return Err(appeared()),
                    // Nor hard links (vfat, some network mounts): a rename, checked first,
                    // is the best it allows.
                    Err(_) if !self.place.taken() => rename_at(dir, &self.temp, name, true)
                        .with_context(|| format!("rename to {}", shown.display()))?,
                    Err(e) => {
                        return Err(e).with_context(|| format!("link {}", shown.display()));
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("rename to {}", shown.display())),
        }
        self.done = true;
        Ok(())
    }
}

impl Partial {
    /// Refuses, before anything is written, `size` bytes over `max` or over the space free
    /// on the file system the file is written to.
    pub(crate) fn check_room(&self, size: u64, max: Option<u64>) -> Result<()> {
        check_max(size, max)?;
        self.reserve(size, None).map_err(|free| {
            anyhow!(
                "the file is {size} bytes, and only {free} bytes are free where {} goes; \
                 free some space or choose another -o",
                self.place.shown.display()
            )
        })
    }

    /// Promises an upload's announced `size` bytes of room, counted with the other uploads
    /// of its `owner` (admit::owner), or refuses it (the client's `name` in the words): see
    /// [`PROMISED`].
    pub(crate) fn reserve_upload(
        &self,
        name: &str,
        size: u64,
        owner: Option<String>,
    ) -> Result<(), Refused> {
        self.reserve(size, owner)
            .map_err(|free| no_room(name, size, free))
    }

    /// Promises `size` bytes of room to this file, or the bytes free when fewer.
    fn reserve(&self, size: u64, owner: Option<String>) -> Result<(), u64> {
        let mut promised = promised();
        match room(self.file.as_raw_fd(), &promised) {
            Some(free) if size > free => return Err(free),
            // No figure to go by: the writes say if the disk fills.
            None => return Ok(()),
            Some(_) => {}
        }
        if let (Some(dev), Ok(file)) = (device(self.file.as_raw_fd()), self.file.try_clone()) {
            promised.push(Promise {
                temp: self.temp.clone(),
                dev,
                file,
                bytes: size,
                owner,
            });
        }
        Ok(())
    }
}

/// An upload refused for want of room on the server's file system.
fn no_room(name: &str, size: u64, free: u64) -> Refused {
    Refused::new(
        Kind::DiskFull,
        format!(
            "'{name}' is {size} bytes, and the server has {:.1} MB free for it (less what uploads \
         under way still need); put a smaller file, or ask the server's owner to free space",
            free as f64 / 1e6
        ),
    )
}

/// Room promised to a transfer under way: its announced size, and its file, whose size
/// says how much of the promise is written already.
struct Promise {
    temp: CString,
    /// The file system (st_dev) it is on.
    dev: u64,
    file: File,
    bytes: u64,
    /// Whose it is (admit::owner); `None`: its own alone (a download, a Unix socket's client).
    owner: Option<String>,
}

/// Room promised to transfers under way. What is promised and not yet written counts as
/// taken when the next one asks, so parallel uploads never together promise more than the
/// disk has. A count rather than fallocate(2) of each temporary file: a client that
/// announces a large size and then sends little holds back only other uploads, never the
/// space the rest of the system (logs, other users) writes to; and it needs nothing of the
/// file system.
///
/// What one owner's uploads have yet to write counts at most 1/(owners + 1) of the free
/// space, and at most a half ([`SHARE`]), the owners being those with promises: one more
/// owner always finds room. Otherwise a client that announces the whole disk and trickles
/// just over the minimum pace would refuse every other upload for as long as it keeps the
/// pace (weeks, for 4 GiB).
/// Past its share, an owner's uploads compete for the space with everyone's, and a write
/// that finds the disk full is told to its sender.
static PROMISED: Mutex<Vec<Promise>> = Mutex::new(Vec::new());

/// The most of the free space one owner's promises may hold back from the others: a half.
const SHARE: u64 = 2;

fn promised() -> std::sync::MutexGuard<'static, Vec<Promise>> {
    PROMISED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes free for a new transfer on the file system of `fd`: what statvfs gives an
/// unprivileged user (f_bavail: never the blocks kept for root, which keep root's logs
/// and daemons going on a full disk, even when netecho runs as root), less what the
/// transfers in `promised` on it have yet to write. None when statvfs fails.
fn room(fd: RawFd, promised: &[Promise]) -> Option<u64> {
    // Safety: statvfs is plain data, filled in by the call on a valid descriptor.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(fd, &mut fs) } != 0 {
        return None;
    }
    let free = (fs.f_bavail as u64).saturating_mul(fs.f_frsize as u64);
    let dev = device(fd)?;
    // What each owner (or ownerless promise, alone) has yet to write, up to its share.
    let mut owed: std::collections::HashMap<&[u8], u64> = std::collections::HashMap::new();
    for p in promised.iter().filter(|p| p.dev == dev) {
        let written = p.file.metadata().map_or(0, |m| m.len());
        let key = p.owner.as_ref().map_or(p.temp.as_bytes(), |o| o.as_bytes());
        *owed.entry(key).or_default() += p.bytes.saturating_sub(written);
    }
    // Each owner's share shrinks as more hold promises, so one more always finds room.
    let share = free / (owed.len() as u64 + 1).max(SHARE);
    let owed: u64 = owed.values().map(|&o| o.min(share)).sum();
    Some(free.saturating_sub(owed))
}

/// The refusal of an upload of `name` where `fd` is when its file system has no inode left
/// for the file (statvfs f_favail 0): refused at once, as for space, not at the first
/// write. A file system that counts no inodes (f_files 0: btrfs) is never refused so.
fn no_inodes(fd: RawFd, name: &str) -> Option<Refused> {
    // Safety: statvfs is plain data, filled in by the call on a valid descriptor.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatvfs(fd, &mut fs) } != 0 || fs.f_files == 0 || fs.f_favail > 0 {
        return None;
    }
    Some(Refused::new(
        Kind::DiskFull,
        format!(
            "'{name}': the server's file system has no free inodes (room for new files) left; \
             ask the server's owner to remove files"
        ),
    ))
}

/// The device (st_dev) of the file system `fd` is on.
fn device(fd: RawFd) -> Option<u64> {
    // Safety: stat is plain data, filled in by the call on a valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_dev)
}

/// Refuses a download of `size` bytes over get's --max-file.
pub(crate) fn check_max(size: u64, max: Option<u64>) -> Result<()> {
    match max {
        Some(max) if size > max => Err(anyhow!(
            "the file is {size} bytes, over the {max}-byte limit (get --max-file raises it)"
        )),
        _ => Ok(()),
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        live().retain(|(_, temp)| temp != &self.temp);
        promised().retain(|p| p.temp != self.temp);
        if !self.done {
            let _ = unlink_at(&self.place.dir, &self.temp);
        }
    }
}

/// Why a name with `..` is refused: every `..` is, since a symlink on the way could take it
/// elsewhere than it reads; one that stays inside the directory as it reads is shown the
/// name without it.
fn parent_dir(name: &str) -> String {
    let mut kept: Vec<&std::ffi::OsStr> = Vec::new();
    for part in Path::new(name).components() {
        match part {
            Component::Normal(part) => kept.push(part),
            Component::ParentDir if kept.pop().is_some() => {}
            Component::ParentDir => {
                return format!("'{name}': '..' may not leave the served directory");
            }
            _ => {}
        }
    }
    let plain: PathBuf = kept.iter().collect();
    match plain.to_str().filter(|p| !p.is_empty()) {
        Some(plain) => format!("'{name}': '..' is not accepted in a name; give it as '{plain}'"),
        None => {
            format!("'{name}': '..' is not accepted in a name; name a file in the served directory")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_directories_are_opened_beneath_dir() {
        let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("in")).unwrap();
        let store = Store::open(dir.path(), true, 1 << 20).unwrap();
        for name in ["x", "a/x", "a/b/x", "./a/y", "in/z"] {
            let mut partial = Partial::create(&store.upload_path(name, 2).unwrap(), false).unwrap();
            std::io::Write::write_all(&mut partial.file, b"hi").unwrap();
            partial.commit(false).unwrap();
        }
        assert_eq!(fs::read(dir.path().join("a/x")).unwrap(), b"hi");
        for (name, why) in [
            ("out/x", "leads out"),
            ("nope/x", "no such directory"),
            ("a/x", "already exists"),
            ("../x", "'..'"),
        ] {
            let err = store.upload_path(name, 2).unwrap_err().text;
            assert!(err.contains(why), "{name}: {err}");
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // Without openat2: one component at a time, and no symlink at all.
        let root = OwnedFd::from(File::open(dir.path()).unwrap());
        assert!(walk_beneath(&root, Path::new("a/b")).is_ok());
        for path in ["out", "in", "a/nope"] {
            assert!(walk_beneath(&root, Path::new(path)).is_err(), "{path}");
        }
    }

    #[test]
    fn a_stale_temporary_file_of_a_dead_process_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        // No process has pid 2^22 + 1 (above the kernel's pid_max limit).
        let dead = ".f.netecho-4194305-0.part";
        fs::write(dir.path().join("sub").join(dead), b"x").unwrap();
        let mine = format!(".f.netecho-{}-0.part", std::process::id());
        fs::write(dir.path().join(&mine), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(".g.netecho-4194305-1.part"))
            .unwrap();
        Store::open(dir.path(), true, 1 << 20).unwrap();
        assert!(!dir.path().join("sub").join(dead).exists());
        assert!(dir.path().join(&mine).exists());
        assert!(fs::symlink_metadata(dir.path().join(".g.netecho-4194305-1.part")).is_ok());
    }

    #[test]
    fn only_names_netecho_makes_are_taken_for_its_temporary_files() {
        assert_eq!(partial_pid(b".a.b.netecho-12-3.part"), Some(12));
        let long = format!(".{}.netecho-12-3.part", "n".repeat(TEMP_NAME + 1));
        for name in [
            ".netecho-12-3.part",
            ".a.netecho-+12-3.part",
            ".a.netecho-12-+3.part",
            ".a.netecho-12-3.part.keep",
            ".a.netecho-12-.part",
            ".a.netecho--3.part",
            "a.netecho-12-3.part",
            &long,
        ] {
            assert_eq!(partial_pid(name.as_bytes()), None, "{name}");
        }
    }

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
            let err = store.open_file(name).unwrap_err().text;
            assert!(err.contains(why), "{name}: {err}");
        }
        let devices = Store::open(Path::new("/dev"), false, 1 << 30).unwrap();
        assert!(devices.upload_path("x", 1).is_err(), "uploads are off");
        assert!(
            devices
                .open_file("null")
                .unwrap_err()
                .text
                .contains("not a regular file")
        );
    }
}
