//! Child processes (emulator, simulator, operator): started with their output in log files,
//! killed when dropped — also when the benchmark fails or panics — and stopped politely with
//! SIGTERM when a step wants to see them exit. Each runs in a process group of its own, and
//! signals go to the whole group: an operator started through a wrapper
//! (`BENCH_OPERATOR_WRAPPER`, e.g. heaptrack, which runs it as its child) stops with it
//! instead of running on, unseen, beside the next measurement.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::error::{BenchError, Result};

/// A running child process. Dropping it kills the process and its group (SIGKILL).
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
            .process_group(0)
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
            let sent = signal_group("TERM", pid);
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
        if let Some(pid) = self.child.id() {
            signal_group("KILL", pid);
        }
        let _ = self.child.start_kill();
    }
}

/// Sends `signal` to the process group `pid` leads (each child leads its own); whether it was
/// sent. `kill` from the OS: no signal-sending dependency for one call.
fn signal_group(signal: &str, pid: u32) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A log file's path in the run directory.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether process `pid` still runs (a zombie counts as gone).
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    #[tokio::test]
    async fn dropping_a_process_also_stops_what_it_started() {
        let dir = std::env::temp_dir().join(format!("bench-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A wrapper that runs the real process as its child, as heaptrack does.
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 300 & echo $!; wait"]);
        let mut wrapper =
            Process::spawn("wrapper", command, &log_path(&dir, "wrapper"), true).expect("spawn");
        let child: u32 = wrapper
            .read_until(Duration::from_secs(10), |line| line.trim().parse().ok())
            .await
            .expect("the child's pid");
        assert!(running(child), "the wrapped process started");
        drop(wrapper);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while running(child) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !running(child),
            "the wrapped process outlived the benchmark's handle"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
