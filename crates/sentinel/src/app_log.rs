//! Where the application log lines go (spec §5 SEN-R45, decision 20): stdout when
//! `logging.stdout` is `#true`, and also `logging.file` when that is set. The file is
//! opened (parent directories created) when logging starts, before any listener binds, so
//! bind failures reach it; a reload reopens it, so `kill -HUP` works with log rotation and
//! a changed path. A failed write to the file is counted in
//! `sentinel_log_write_errors_total` and stdout logging continues.
//!
//! Each line reaches [`AppLogWriter`] as one `write` (ron-kernel's JSON layer formats the
//! whole line first), and the file is opened in append mode, so lines never interleave.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use ron_metrics::Counter;
use tracing_subscriber::fmt::MakeWriter;

/// The application log destinations, shared by the log layer and reloads.
pub struct AppLog {
    stdout: bool,
    file: Mutex<Option<OpenFile>>,
    /// `sentinel_log_write_errors_total`, once the metrics exist.
    errors: OnceLock<Counter>,
    /// Errors counted before the metrics existed (a file that failed to open at start).
    early_errors: AtomicU64,
}

struct OpenFile {
    path: PathBuf,
    file: File,
}

/// Why the log file could not be opened; the caller logs it (after the lock is released:
/// the log line itself goes through [`AppLog`]).
#[derive(Debug)]
pub struct OpenError {
    /// The configured path.
    pub path: PathBuf,
    /// The OS error.
    pub error: io::Error,
}

impl AppLog {
    /// Destinations for `stdout` and `file`; a file that cannot be opened is reported and
    /// left out (stdout logging continues).
    pub fn new(stdout: bool, file: Option<&Path>) -> (Arc<AppLog>, Option<OpenError>) {
        let log = Arc::new(AppLog {
            stdout,
            file: Mutex::new(None),
            errors: OnceLock::new(),
            early_errors: AtomicU64::new(0),
        });
        let err = log.reopen(file).err();
        (log, err)
    }

    /// Opens `file` (a reload: same or new path) in place of the current one; `None`
    /// stops file logging. On failure the file log is off until the next reload.
    pub fn reopen(&self, file: Option<&Path>) -> Result<(), OpenError> {
        let opened = match file {
            None => Ok(None),
            Some(path) => open(path).map(|file| {
                Some(OpenFile {
                    path: path.to_path_buf(),
                    file,
                })
            }),
        };
        match opened {
            Ok(f) => {
                *self.file.lock() = f;
                Ok(())
            }
            Err(error) => {
                *self.file.lock() = None;
                self.count_error();
                Err(OpenError {
                    path: file.map(Path::to_path_buf).unwrap_or_default(),
                    error,
                })
            }
        }
    }

    /// The path of the open log file, if any.
    pub fn file_path(&self) -> Option<PathBuf> {
        self.file.lock().as_ref().map(|f| f.path.clone())
    }

    /// Counts write errors in `counter` from now on (and the ones seen before).
    pub fn count_errors_in(&self, counter: Counter) {
        let early = self.early_errors.swap(0, Ordering::AcqRel);
        if early > 0 {
            counter.inc_by(early);
        }
        let _ = self.errors.set(counter);
    }

    fn count_error(&self) {
        match self.errors.get() {
            Some(c) => c.inc(),
            None => {
                self.early_errors.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn write_line(&self, line: &[u8]) {
        if self.stdout {
            // Nowhere better to report a failed stdout write.
            let _ = io::stdout().lock().write_all(line);
        }
        let mut guard = self.file.lock();
        if let Some(f) = guard.as_mut()
            && f.file.write_all(line).is_err()
        {
            drop(guard);
            self.count_error();
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The `MakeWriter` the log layer writes through.
#[derive(Clone)]
pub struct AppLogWriter(pub Arc<AppLog>);

/// One log line's writer.
pub struct LineWriter<'a>(&'a AppLog);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for AppLogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_the_file_and_a_reopen_follows_a_rotation() {
        let dir = std::env::temp_dir().join(format!("sentinel-app-log-{}", std::process::id()));
        let path = dir.join("nested").join("sentinel.log");
        let (log, err) = AppLog::new(false, Some(&path));
        assert!(err.is_none());
        let w = AppLogWriter(log.clone());
        w.make_writer().write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.join("rotated.log")).unwrap();
        w.make_writer().write_all(b"two\n").unwrap();
        log.reopen(Some(&path)).unwrap();
        w.make_writer().write_all(b"three\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("rotated.log")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_unopenable_file_is_reported_and_counted_once_metrics_exist() {
        let (log, err) = AppLog::new(false, Some(Path::new("/proc/nope/sentinel.log")));
        assert!(err.is_some());
        assert_eq!(log.file_path(), None);
        assert_eq!(log.early_errors.load(Ordering::Acquire), 1);
    }
}
