//! Child processes (emulator, simulator, operator): started with their output in log files,
//! killed when dropped — also when the benchmark fails or panics — and stopped politely with
//! SIGTERM when a step wants to see them exit.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::error::{BenchError, Result};

/// A running child process. Dropping it kills the process (SIGKILL).
pub struct Process {
    name: String,
    child: Child,
    /// Kept open so a late line on stdout never meets a closed pipe.
    stdout: Option<Lines<BufReader<ChildStdout>>>,
}

impl Process {
    /// Starts `command` with stdin closed and stderr appended to `log`; stdout is piped when
    /// `read_stdout`, else also goes to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path, read_stdout: bool) -> Result<Self> {
        let file_error = |source| BenchError::File {
            path: log.display().to_string(),
            source,
        };
        let file = std::fs::File::create(log).map_err(file_error)?;
        let stdout = if read_stdout {
            Stdio::piped()
        } else {
            Stdio::from(file.try_clone().map_err(file_error)?)
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::process(name, format!("cannot start: {e}")))?;
        let stdout = child.stdout.take().map(|out| BufReader::new(out).lines());
        Ok(Self {
            name: name.to_owned(),
            child,
            stdout,
        })
    }

    /// The process id (for `/proc`).
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .ok_or_else(|| BenchError::process(&self.name, "has already exited"))
    }

    /// Reads stdout lines until `pick` returns a value, within `limit`.
    pub async fn read_until<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let name = self.name.clone();
        let lines = self
            .stdout
            .as_mut()
            .ok_or_else(|| BenchError::process(&name, "stdout is not piped"))?;
        let read = async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(found) = pick(&line) {
                            return Ok(found);
                        }
                    }
                    Ok(None) => return Err(BenchError::process(&name, "closed stdout (exited?)")),
                    Err(e) => return Err(BenchError::process(&name, format!("stdout: {e}"))),
                }
            }
        };
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| BenchError::Timeout {
                what: format!("{name} printing its address"),
                limit,
            })?
    }

    /// Fails when the process has exited (it should be running).
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::process(
                &self.name,
                format!("exited unexpectedly: {status}"),
            )),
            Err(e) => Err(BenchError::process(&self.name, e)),
        }
    }

    /// Sends SIGTERM and waits up to `limit`; true when it exited in time (else it is killed).
    pub async fn terminate(mut self, limit: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            // `kill` from the OS: no signal-sending dependency for one call.
            let sent = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .is_ok_and(|s| s.success());
            if !sent {
                eprintln!("  ! could not send SIGTERM to {}", self.name);
            }
        }
        let exited = tokio::time::timeout(limit, self.child.wait()).await;
        matches!(exited, Ok(Ok(_)))
    }
}

impl Drop for Process {
    /// Kills the process if it is still running (failed or panicked benchmark included).
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A log file's path in the run directory.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}
