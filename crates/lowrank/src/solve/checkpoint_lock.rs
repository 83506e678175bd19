//! One run at a time per checkpoint file.
//!
//! Two processes resuming the same checkpoint would each write it in turn
//! (atomically, so the file stays whole, but holding whichever run wrote
//! last, with the other's iterations lost). A run that checkpoints first
//! creates `<checkpoint>.lock` holding its process id, exclusively
//! (`create_new`), and removes it when it ends, however it ends short of the
//! process being killed. A lock whose process no longer exists (a run that
//! was killed) is taken over; on systems where that cannot be checked the
//! error says which file to delete.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The exclusive use of one checkpoint file, released on drop.
#[derive(Debug)]
pub(crate) struct CheckpointLock {
    /// Held for its `Drop`, which removes the lock file.
    _held: ProcessLock,
}

impl CheckpointLock {
    /// Take the lock of the checkpoint `ckpt`, or explain who holds it.
    pub(crate) fn acquire(ckpt: &Path) -> Result<CheckpointLock> {
        let mut name = ckpt.file_name().map(|s| s.to_os_string()).unwrap_or_else(|| "checkpoint".into());
        name.push(".lock");
        let busy = |pid: u32| {
            format!(
                "checkpoint {} is in use by another run (process {pid}); wait for it to end, or give this run another \
                 checkpoint file",
                ckpt.display()
            )
        };
        ProcessLock::acquire(&ckpt.with_file_name(name), &busy).map(|held| CheckpointLock { _held: held })
    }
}

/// A lock file held by this process (its id inside, created exclusively),
/// removed on drop: one process at a time on a checkpoint, a sweep
/// directory, and the like. A lock whose process no longer exists (it was
/// killed) is taken over; where that cannot be checked (not Linux) the error
/// says which file to delete.
#[derive(Debug)]
pub struct ProcessLock {
    path: PathBuf,
}

impl ProcessLock {
    /// Take the lock file `path`, or fail with `busy(owner pid)` (plus, off
    /// Linux, which file to delete if that process is gone).
    pub fn acquire(path: &Path, busy: &dyn Fn(u32) -> String) -> Result<ProcessLock> {
        // a stale lock is removed and the creation tried once more
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut f) => {
                    let me = std::process::id();
                    f.write_all(format!("{me}\n").as_bytes()).map_err(|e| Error::io(path, e))?;
                    return Ok(ProcessLock { path: path.to_path_buf() });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    match owner {
                        Some(pid) if process_exists(pid) => {
                            let hint = if cfg!(target_os = "linux") {
                                String::new()
                            } else {
                                format!(" (if that process is gone, delete {})", path.display())
                            };
                            return Err(Error::invalid(format!("{}{hint}", busy(pid))));
                        }
                        // its process is gone (or the file is not a lock
                        // this program wrote whole): take it over
                        _ => {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                }
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Err(Error::invalid(format!("cannot take the lock {}", path.display())))
    }
}

impl Drop for ProcessLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process with id `pid` exists (Linux: `/proc/<pid>`; elsewhere
/// assumed, so a lock is never taken from a live run).
fn process_exists(pid: u32) -> bool {
    if cfg!(target_os = "linux") { Path::new(&format!("/proc/{pid}")).exists() } else { true }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_run_and_a_dead_owners_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("run.ckpt");
        let lock = dir.path().join("run.ckpt.lock");
        let first = CheckpointLock::acquire(&ck).unwrap();
        assert_eq!(std::fs::read_to_string(&lock).unwrap().trim(), std::process::id().to_string());
        let e = CheckpointLock::acquire(&ck).unwrap_err().to_string();
        assert!(e.contains("in use by another run") && e.contains("run.ckpt"), "{e}");
        drop(first);
        assert!(!lock.exists(), "the lock is removed when the run ends");
        // a lock left by a process that no longer exists (pid beyond the
        // kernel's maximum), and a garbled one, are taken over
        for stale in ["4294967295\n", "garbage"] {
            std::fs::write(&lock, stale).unwrap();
            if cfg!(target_os = "linux") || stale == "garbage" {
                let l = CheckpointLock::acquire(&ck).unwrap();
                drop(l);
            }
        }
        // a directory that does not exist: an error naming the lock file
        let e = CheckpointLock::acquire(&dir.path().join("no/such/dir/x.ckpt")).unwrap_err().to_string();
        assert!(e.contains("x.ckpt.lock"), "{e}");
    }
}
