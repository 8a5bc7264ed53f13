//! The job's files in the PID directory and the only code that opens them. In a shared
//! directory such as `/tmp` nothing is trusted: no symlink is followed (`O_NOFOLLOW`),
//! new files are created exclusively (`O_EXCL`), and an existing file must be a regular
//! file owned by us with a single link.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
/// requires it to be writable.
pub fn prepare_dir(dir: &Path, create: bool) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::invalid(format!(
                "PID directory {} is not a directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    Error::io(format!("cannot create PID directory {}", dir.display()), e)
                })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(format!(
                "PID directory {} does not exist",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(Error::io(
                format!("cannot access PID directory {}", dir.display()),
                e,
            ))
        }
    }
    if create
        && nix::unistd::access(
            dir,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_err()
    {
        return Err(Error::invalid(format!(
            "PID directory {} is not writable",
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
    let mut text = String::new();
    file.take(max)
        .read_to_string(&mut text)
        .map_err(|e| Error::Process(format!("cannot read {}: {e}", path.display())))?;
    Ok(Some(text))
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` atomically: a new temp file (`O_EXCL`, mode 0600) in the same
/// directory, written and fsynced, renamed over `path`, then the directory fsynced.
/// A symlink planted at `path` is replaced, never followed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    let written = file.write_all(bytes).and_then(|_| file.sync_data());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(format!("cannot write {}", tmp.display()), e));
    }
    drop(file);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(format!("cannot replace {}", path.display()), e));
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
