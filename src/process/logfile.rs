//! The job's log: written by the supervisor with a size cap and rotation
//! (`NAME.log`, `NAME.log.1` ... `NAME.log.N`), read backwards for "the last N lines".

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::files::{self, ProcessFiles};
use crate::error::{Error, Result};

/// Appends lines to `NAME.log`, rotating when the next line would pass `max_bytes`.
pub struct RotatingLog {
    files: ProcessFiles,
    file: File,
    size: u64,
    max_bytes: u64,
    backups: u32,
    /// Writes that failed (e.g. a full disk), and the last failure.
    failed_writes: u64,
    last_failure: Option<String>,
}

impl RotatingLog {
    /// Opens (appending) or creates the log (mode 0640).
    pub fn open(files: &ProcessFiles, max_bytes: u64, backups: u32) -> Result<Self> {
        let file = files::open_or_create(&files.log, 0o640, true)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            files: files.clone(),
            file,
            size,
            max_bytes: max_bytes.max(1024),
            backups,
            failed_writes: 0,
            last_failure: None,
        })
    }

    /// Writes one chunk (normally a line with its newline). A failure is counted (see
    /// [`RotatingLog::lost_lines`]) and returned.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let written = self.try_write(bytes);
        if let Err(e) = &written {
            self.failed_writes += 1;
            self.last_failure = Some(e.to_string());
        }
        written
    }

    fn try_write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(format!("cannot write {}", self.files.log.display()), e))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// How many writes failed and why, if any did: `"N log line(s) could not be written
    /// (reason)"`.
    pub fn lost_lines(&self) -> Option<String> {
        (self.failed_writes > 0).then(|| {
            format!(
                "{} log line(s) could not be written ({})",
                self.failed_writes,
                self.last_failure.as_deref().unwrap_or("unknown error")
            )
        })
    }

    fn rotate(&mut self) -> Result<()> {
        if self.backups == 0 {
            self.file
                .set_len(0)
                .map_err(|e| Error::io("cannot truncate the log", e))?;
            self.size = 0;
            return Ok(());
        }
        let _ = files::remove_if_present(&self.files.rotated_log(self.backups));
        for n in (1..self.backups).rev() {
            let from = self.files.rotated_log(n);
            if std::fs::symlink_metadata(&from).is_ok() {
                let _ = std::fs::rename(&from, self.files.rotated_log(n + 1));
            }
        }
        std::fs::rename(&self.files.log, self.files.rotated_log(1))
            .map_err(|e| Error::io(format!("cannot rotate {}", self.files.log.display()), e))?;
        self.file = files::open_or_create(&self.files.log, 0o640, true)?;
        self.size = 0;
        Ok(())
    }
}

/// The last `lines` lines of a file, reading backwards in blocks (cheap on huge logs).
/// A missing file gives an empty string.
pub fn tail(path: &Path, lines: usize) -> Result<String> {
    let Some(mut file) = files::open_existing(path)? else {
        return Ok(String::new());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if lines == 0 || len == 0 {
        return Ok(String::new());
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = len;
    const BLOCK: u64 = 16 * 1024;
    loop {
        let start = pos.saturating_sub(BLOCK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::io("cannot read the log", e))?;
        file.read_exact(&mut chunk)
            .map_err(|e| Error::io("cannot read the log", e))?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        pos = start;
        // +1: the file normally ends with a newline.
        let newlines = buf.iter().filter(|b| **b == b'\n').count();
        if newlines > lines || pos == 0 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    let from = all.len().saturating_sub(lines);
    Ok(all[from..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_cap_and_keeps_n_backups() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProcessFiles::new(dir.path(), "aggregation").unwrap();
        let mut log = RotatingLog::open(&files, 1024, 2).unwrap();
        let line = [b'x'; 99];
        for _ in 0..100 {
            log.write(&[&line[..], b"\n"].concat()).unwrap();
        }
        assert!(std::fs::metadata(&files.log).unwrap().len() <= 1024);
        assert!(files.rotated_log(1).exists());
        assert!(files.rotated_log(2).exists());
        assert!(!files.rotated_log(3).exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&files.log).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn tail_reads_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        assert_eq!(tail(&p, 3).unwrap(), "line 49997\nline 49998\nline 49999");
        assert_eq!(tail(&p, 1).unwrap(), "line 49999");
        assert_eq!(tail(&dir.path().join("missing"), 5).unwrap(), "");
        std::fs::write(&p, "only\n").unwrap();
        assert_eq!(tail(&p, 10).unwrap(), "only");
    }
}
