//! The job's files in the PID directory and the only code that opens them. In a shared
//! directory such as `/tmp` nothing is trusted: no symlink is followed (`O_NOFOLLOW`),
//! new files are created exclusively (`O_EXCL`), and an existing file must be a regular
//! file owned by us with a single link.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::libc;

use crate::error::{Error, Result};

/// Every file name starts with this.
pub const FILE_PREFIX: &str = "invenio-community-stats-";

/// The four files of one named job.
#[derive(Clone, Debug)]
pub struct ProcessFiles {
    /// The PID directory.
    pub dir: PathBuf,
    /// The process name (`event-migration`, ...).
    pub name: String,
    /// `NAME.pid`: the worker's PID.
    pub pid: PathBuf,
    /// `NAME.status`: the JSON status.
    pub status: PathBuf,
    /// `NAME.log`: the job's output (rotated).
    pub log: PathBuf,
    /// `NAME.lock`: held (flock) by the job for its whole life; never deleted.
    pub lock: PathBuf,
}

/// Checks a process name: `[a-z0-9][a-z0-9-]*`, at most 64 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid process name {name:?}: use lowercase letters, digits and '-' (e.g. event-migration)"
        )))
    }
}

impl ProcessFiles {
    /// The files of `name` in `dir` (the name is validated).
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        validate_name(name)?;
        let base = format!("{FILE_PREFIX}{name}");
        Ok(Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            pid: dir.join(format!("{base}.pid")),
            status: dir.join(format!("{base}.status")),
            log: dir.join(format!("{base}.log")),
            lock: dir.join(format!("{base}.lock")),
        })
    }

    /// The `n`-th rotated log (`NAME.log.1` is the newest).
    pub fn rotated_log(&self, n: u32) -> PathBuf {
        let mut s = self.log.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }
}

/// Checks the PID directory; with `create`, creates it (mode 0700) when missing and
/// requires it to be writable. A directory another local user could tamper with is
/// refused: one that is itself a symbolic link (a symlinked parent such as `/var/run` is
/// fine), one owned by another user (except a root-owned sticky one such as `/tmp`), one
/// that others can write without the sticky bit.
pub fn prepare_dir(dir: &Path, create: bool) -> Result<()> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Error::invalid(format!(
                "PID directory {shown} is a symbolic link; give the directory itself"
            )))
        }
        Ok(meta) if meta.is_dir() => check_dir_owner(dir, &meta)?,
        Ok(_) => {
            return Err(Error::invalid(format!(
                "PID directory {shown} is not a directory"
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(format!("cannot create PID directory {shown}"), e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Not bad input: no job has been started there yet (exit 1, like "no job named").
            return Err(Error::Process(format!(
                "PID directory {shown} does not exist: no job was started there"
            )));
        }
        Err(e) => return Err(Error::io(format!("cannot access PID directory {shown}"), e)),
    }
    if create
        && nix::unistd::access(
            dir,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_err()
    {
        return Err(Error::invalid(format!(
            "PID directory {shown} is not writable"
        )));
    }
    Ok(())
}

/// A PID directory must be ours, or a root-owned sticky one (`/tmp`); others may write in
/// it only with the sticky bit (then they cannot remove or rename our files).
fn check_dir_owner(dir: &Path, meta: &std::fs::Metadata) -> Result<()> {
    const STICKY: u32 = 0o1000;
    let mode = meta.mode();
    let sticky = mode & STICKY != 0;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && !(meta.uid() == 0 && sticky) {
        return Err(Error::invalid(format!(
            "PID directory {} is owned by another user (uid {}); use a directory of your own",
            dir.display(),
            meta.uid()
        )));
    }
    if mode & 0o022 != 0 && !sticky {
        return Err(Error::invalid(format!(
            "PID directory {} can be written by other users and has no sticky bit; use a directory of your own \
             (mode 0700) or set the sticky bit",
            dir.display()
        )));
    }
    Ok(())
}

fn check_trusted(file: &File, path: &Path) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?;
    if !meta.file_type().is_file() {
        return Err(Error::Process(format!(
            "{} is not a regular file; refusing to use it",
            path.display()
        )));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(Error::Process(format!(
            "{} is owned by another user; refusing to use it",
            path.display()
        )));
    }
    if meta.nlink() != 1 {
        return Err(Error::Process(format!(
            "{} has several hard links; refusing to use it",
            path.display()
        )));
    }
    Ok(())
}

fn symlink_error(path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        Error::Process(format!(
            "{} is a symbolic link; refusing to follow it",
            path.display()
        ))
    } else {
        Error::io(format!("cannot open {}", path.display()), e)
    }
}

/// Opens an existing file for reading without following symlinks; `None` if missing.
pub fn open_existing(path: &Path) -> Result<Option<File>> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => {
            check_trusted(&f, path)?;
            Ok(Some(f))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(symlink_error(path, e)),
    }
}

/// Opens (creating it with `mode` if missing) a file for appending/locking, without
/// following symlinks and only if it is ours.
pub fn open_or_create(path: &Path, mode: u32, append: bool) -> Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if append {
        options.append(true);
    } else {
        options.write(true);
    }
    let file = options.open(path).map_err(|e| symlink_error(path, e))?;
    check_trusted(&file, path)?;
    Ok(file)
}

/// Reads a small file (at most `max` bytes); `None` if missing.
pub fn read_small(path: &Path, max: u64) -> Result<Option<String>> {
    let Some(file) = open_existing(path)? else {
        return Ok(None);
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > max {
        return Err(Error::Process(format!(
            "{} holds {size} bytes, more than this package ever writes there ({max}): it is not ours; remove it",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(max)
        .read_to_string(&mut text)
        .map_err(|e| Error::Process(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(text))
}

/// An unpredictable 64-bit number (another local user must not guess temp-file names).
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // Without /dev/urandom: the clock's nanoseconds and the PID, still not predictable
        // to the second.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_ne_bytes(bytes)
}

/// Replaces `path` atomically: a new temp file with an unpredictable name (`O_EXCL`,
/// `O_NOFOLLOW`, mode 0600; another name is tried if one exists) in the same directory,
/// written and fsynced, renamed over `path`, then the directory fsynced. A symlink planted
/// at `path` is replaced, never followed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    try_write_atomic(path, bytes).map_err(|(what, e)| Error::io(what, e))
}

/// [`write_atomic`], or, when the disk is full (the temp file gets no space), an overwrite
/// in place of the existing file if it is at least as long: its blocks are already
/// allocated. `bytes` is padded with spaces to the file's length (callers write documents
/// that allow trailing whitespace, such as JSON). Not atomic for a reader, but it lets a
/// job record how it ended on a full disk instead of being found `lost`.
pub fn write_atomic_or_in_place(path: &Path, bytes: &[u8]) -> Result<()> {
    match try_write_atomic(path, bytes) {
        Ok(()) => Ok(()),
        Err((what, e)) if is_disk_full(&e) => {
            overwrite_in_place(path, bytes).map_err(|_| Error::io(what, e))
        }
        Err((what, e)) => Err(Error::io(what, e)),
    }
}

/// No space (or quota) left on the file system.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

fn overwrite_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    check_trusted(&file, path).map_err(|e| std::io::Error::other(e.to_string()))?;
    let len = file.metadata()?.len() as usize;
    if bytes.len() > len {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
    }
    let mut padded = bytes.to_vec();
    padded.resize(len, b' ');
    file.write_all_at(&padded, 0)?;
    file.sync_data()
}

type IoFailure = (String, std::io::Error);

fn try_write_atomic(path: &Path, bytes: &[u8]) -> std::result::Result<(), IoFailure> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(".{file_name}.{:016x}.tmp", random_u64()));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp);
        match opened {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err((format!("cannot create {}", tmp.display()), e)),
        }
    };
    let written = file.write_all(bytes).and_then(|_| file.sync_data());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err((format!("cannot write {}", tmp.display()), e));
    }
    drop(file);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err((format!("cannot replace {}", path.display()), e));
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes a file if it is ours and not a symlink (a planted symlink is removed itself,
/// its target untouched).
pub fn remove_if_present(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            if meta.file_type().is_file() && meta.uid() != nix::unistd::geteuid().as_raw() {
                return Err(Error::Process(format!(
                    "{} is owned by another user; not removing it",
                    path.display()
                )));
            }
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("cannot access {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_cannot_be_planted_in_advance() {
        // Another local user cannot pre-create the temp files: their names are not derived
        // from the PID and a counter (the names of an older version are all taken here).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.status");
        for n in 0..200 {
            std::fs::write(
                dir.path()
                    .join(format!(".job.status.{}.{n}.tmp", std::process::id())),
                b"planted",
            )
            .unwrap();
        }
        for round in 0..50u8 {
            write_atomic(&path, &[round]).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), vec![round]);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(
            left.len(),
            201,
            "only the planted files and the status remain"
        );
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn names_are_validated() {
        for ok in ["event-migration", "aggregation", "a1"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "Event",
            "-x",
            "a b",
            "x.y",
            &"a".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(open_existing(&link)
            .unwrap_err()
            .to_string()
            .contains("symbolic link"));
        assert!(open_or_create(&link, 0o600, true).is_err());
        write_atomic(&link, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn hard_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "x").unwrap();
        std::fs::hard_link(&a, dir.path().join("b")).unwrap();
        assert!(open_existing(&a).is_err());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.status");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "2");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn new_pid_dir_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run/x");
        prepare_dir(&p, true).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(prepare_dir(&dir.path().join("missing"), false).is_err());
        let f = dir.path().join("file");
        std::fs::write(&f, "").unwrap();
        assert!(prepare_dir(&f, true).is_err());
    }
}
