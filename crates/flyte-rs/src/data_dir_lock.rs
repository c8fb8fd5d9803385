//! One server per data dir: an exclusive `flock` on `<data_dir>/flyte-rs.lock`, taken before
//! anything else touches the data dir (leftover task processes, the SQLite file, blobs, logs).
//!
//! The kernel drops the lock when its owner's descriptor closes, so a server killed by
//! SIGKILL (or a crash) never leaves a stale lock behind; the PID written into the file only
//! serves the message that names the owner. The lock covers the data dir whatever the
//! metadata store is: with PostgreSQL the data dir still holds the blobs, task work dirs
//! and logs. Two servers on one PostgreSQL database with *different* data dirs are not
//! detected here.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The lock file's name inside the data dir.
pub const LOCK_FILE: &str = "flyte-rs.lock";

/// Held while the server runs; dropping it (or the process dying) releases the data dir.
#[derive(Debug)]
pub struct DataDirLock {
    // Never read: holding the open descriptor is what keeps the lock.
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the data dir for this process, or fails with a message naming the dir and the
    /// PID of the server that holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false) // the owner's PID stays readable until we hold the lock
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot lock the data dir {}: cannot open {}",
                    data_dir.display(),
                    path.display()
                )
            })?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let owner = match pid.trim() {
                    "" => "a PID not yet recorded".to_string(),
                    pid => format!("PID {pid}"),
                };
                anyhow::bail!(
                    "the data dir {} is in use by another flyte-rs server ({owner}, lock file {}); \
                     stop that server or start this one with another --data-dir",
                    data_dir.display(),
                    path.display()
                );
            }
            Err(e) => {
                return Err(std::io::Error::from(e)).with_context(|| {
                    format!(
                        "cannot lock the data dir {} ({})",
                        data_dir.display(),
                        path.display()
                    )
                });
            }
        }
        // Ours now: record who holds it for the next one that asks.
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::debug!(path = %path.display(), "data dir locked");
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_names_the_owner_and_a_released_one_can_be_taken() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just as another process would.
        let err = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(again.path(), dir.path().join(LOCK_FILE));
    }
}
