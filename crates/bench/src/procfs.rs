//! The operator's memory and CPU time from `/proc` (Linux): what a pod's metrics would show.

/// Clock ticks per second of `/proc/PID/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// Memory and CPU of one process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// Resident memory now (`VmRSS`), MiB.
    pub rss_mib: f64,
    /// Peak resident memory so far (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
    /// User plus system CPU time so far, seconds.
    pub cpu_seconds: f64,
}

/// The usage of `pid`, or `None` when `/proc` cannot tell (not Linux, or the process is gone).
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(Usage {
        rss_mib: status_kib(&status, "VmRSS:")? / 1024.0,
        peak_rss_mib: status_kib(&status, "VmHWM:")? / 1024.0,
        cpu_seconds: cpu_ticks(&stat)? / CLK_TCK,
    })
}

/// A `kB` field of `/proc/PID/status`.
fn status_kib(status: &str, field: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `utime + stime` of `/proc/PID/stat` (fields 14 and 15; the command name in parentheses may
/// hold spaces, so fields are counted after its closing parenthesis).
fn cpu_ticks(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime (14) is index 11, stime (15) index 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_stat_fields_are_read() {
        let status = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240.0));
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480.0));
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(cpu_ticks(stat), Some(300.0));
    }

    #[test]
    fn this_process_is_measured() {
        let me = usage(std::process::id()).expect("Linux /proc");
        assert!(me.rss_mib > 0.0 && me.peak_rss_mib >= me.rss_mib);
    }
}
