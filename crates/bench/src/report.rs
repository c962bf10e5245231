//! The Markdown report: the machine and command, one row per scale run, and a small table for
//! the slow-service and idle runs.

use std::fmt::Write as _;
use std::time::Duration;

use crate::converge::Waited;
use crate::machine::Machine;
use crate::procfs::Usage;
use crate::run::{
    BUDGET_LATENCY_MS, BudgetRow, IDLE_POLICIES, IdleRow, SLOW_LATENCY_MS, SLOW_RESYNC, ScaleRow,
    SlowRow,
};

/// The idle memory the operator should stay under.
const IDLE_TARGET_MIB: f64 = 32.0;

/// Everything measured.
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// When, and on which commit.
    pub measured: String,
    /// How the benchmark was called.
    pub command: String,
    /// The policies' resync interval in the scale runs.
    pub resync: Duration,
    /// One result per policy count (an error message when the run failed).
    pub scale: Vec<(usize, Result<ScaleRow, String>)>,
    /// The slow-service run, unless skipped.
    pub slow: Option<Result<SlowRow, String>>,
    /// The idle run.
    pub idle: Result<IdleRow, String>,
    /// The request-budget run, unless skipped.
    pub budget: Option<Result<BudgetRow, String>>,
}

/// Seconds with one decimal.
fn secs(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

/// One decimal of a usage figure, `n/a` when `/proc` could not tell.
fn figure(usage: Option<Usage>, pick: fn(&Usage) -> f64) -> String {
    usage.map_or("n/a".into(), |u| format!("{:.1}", pick(&u)))
}

fn per(n: u64, count: usize) -> String {
    format!("{:.2}", n as f64 / count as f64)
}

/// `12.3` when all converged, else `> 300.0 (k/N)`.
fn waited(w: &Waited, count: usize) -> String {
    if w.all {
        secs(w.elapsed)
    } else {
        format!("> {} ({}/{count})", secs(w.elapsed), w.done)
    }
}

impl Report {
    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "Measured: {}\n", self.measured);
        let _ = writeln!(out, "Machine: {} ({} cores), {}\n", m.cpu, m.cores, m.os);
        let _ = writeln!(out, "Command: `{}`\n", self.command);
        let _ = writeln!(out, "Operator: {}\n", crate::binaries::OPERATOR_BUILD);
        out.push_str(&self.scale_table());
        out.push('\n');
        out.push_str(&self.other_table());
        out
    }

    fn scale_table(&self) -> String {
        let mut out = format!(
            "Scale runs (resync {}s; steady figures: requests per policy in a window of 1.15 \
             resync intervals, in which every policy resyncs once):\n\n",
            self.resync.as_secs()
        );
        out.push_str(
            "| N | cold start s | cold start token / GET / PUT per policy (tokens) \
             | peak RSS MiB converged / end | CPU s converged / end \
             | steady GET / PUT / token | k8s reads / writes | RSS MiB steady \
             | apply p50 / p90 / p99 ms | drift correction s (corrected) \
             | exit ≤ 10 s after SIGTERM | WARN lines |\n",
        );
        out.push_str("|---:|---:|---|---|---|---|---|---:|---|---|---|---:|\n");
        for (count, row) in &self.scale {
            match row {
                Ok(row) => out.push_str(&scale_row(row)),
                Err(e) => {
                    let _ = writeln!(out, "| {count} | failed: {} |", e.replace('|', "/"));
                }
            }
        }
        out
    }

    fn other_table(&self) -> String {
        let mut out = String::from("| case | figure | value |\n|---|---|---|\n");
        match &self.slow {
            None => out.push_str("| slow service | skipped (--slow-policies 0) | |\n"),
            Some(Err(e)) => {
                let _ = writeln!(out, "| slow service | failed | {} |", e.replace('|', "/"));
            }
            Some(Ok(s)) => out.push_str(&slow_rows(s)),
        }
        match &self.budget {
            None => out.push_str("| request budget | skipped (--budget-policies 0) | |\n"),
            Some(Err(e)) => {
                let _ = writeln!(out, "| request budget | failed | {} |", e.replace('|', "/"));
            }
            Some(Ok(b)) => out.push_str(&budget_rows(b)),
        }
        let case = format!("idle ({IDLE_POLICIES} policies)");
        match &self.idle {
            Err(e) => {
                let _ = writeln!(out, "| {case} | failed | {} |", e.replace('|', "/"));
            }
            Ok(idle) => {
                let value = match idle.usage {
                    None => "n/a".to_owned(),
                    Some(u) => format!(
                        "{:.1} MiB ({} the {IDLE_TARGET_MIB:.0} MiB target){}",
                        u.rss_mib,
                        if u.rss_mib < IDLE_TARGET_MIB {
                            "under"
                        } else {
                            "OVER"
                        },
                        if idle.converged {
                            ""
                        } else {
                            "; NOT all converged"
                        }
                    ),
                };
                let _ = writeln!(out, "| {case} | VmRSS 10 s after convergence | {value} |");
            }
        }
        out
    }
}

fn scale_row(row: &ScaleRow) -> String {
    let n = row.count;
    let calls = row.cold_calls;
    let opt = |s: Option<String>| s.unwrap_or_else(|| "n/a".into());
    let steady = row.steady.map(|s| {
        (
            format!("{:.2} / {:.2} / {:.2}", s.get, s.put, s.token),
            format!("{:.2} / {:.2}", s.reads, s.writes),
        )
    });
    let latency = row.latency.map(|l| {
        let mut text = format!("{:.0} / {:.0} / {:.0}", l.p50, l.p90, l.p99);
        if l.timed_out > 0 {
            let _ = write!(text, " ({} timed out)", l.timed_out);
        }
        text
    });
    let drift = row
        .drift
        .map(|d| format!("{} ({}/{n})", waited(&d, n), d.done));
    format!(
        "| {n} | {} | {} / {} / {} ({}) | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |\n",
        waited(&row.cold, n),
        per(calls.token, n),
        per(calls.get, n),
        per(calls.put, n),
        calls.token,
        figure(row.at_convergence, |u| u.peak_rss_mib),
        figure(row.at_end, |u| u.peak_rss_mib),
        figure(row.at_convergence, |u| u.cpu_seconds),
        figure(row.at_end, |u| u.cpu_seconds),
        opt(steady.as_ref().map(|s| s.0.clone())),
        opt(steady.map(|s| s.1)),
        figure(row.steady_usage, |u| u.rss_mib),
        opt(latency),
        opt(drift),
        if row.exited_on_sigterm { "yes" } else { "NO" },
        row.warn_lines.map_or("n/a".into(), |w| w.to_string()),
    )
}

fn slow_rows(s: &SlowRow) -> String {
    let case = format!(
        "slow service ({} policies, {SLOW_LATENCY_MS} ms per Setting request, resync {}s)",
        s.count,
        SLOW_RESYNC.as_secs()
    );
    let never = s.count.saturating_sub(s.checked);
    let first_wait = if never == 0 {
        format!("{} s", secs(s.worst_first_wait))
    } else {
        format!(
            "> {} s ({never} never checked; {} s among the checked)",
            secs(s.window),
            secs(s.worst_first_wait)
        )
    };
    let rows = [
        (
            "cold start s (policies converged)".to_owned(),
            if s.cold.all {
                format!("{} (all {})", waited(&s.cold, s.count), s.count)
            } else {
                waited(&s.cold, s.count)
            },
        ),
        (
            format!("policies checked at least once in {} s", secs(s.window)),
            format!("{}/{}", s.checked, s.count),
        ),
        (
            "longest gap between two checks of one policy".to_owned(),
            format!("{} s", secs(s.longest_gap)),
        ),
        (
            "worst wait from the window's start for a policy's first check".to_owned(),
            first_wait,
        ),
        (
            "longest time since a policy's last check at the window's end".to_owned(),
            format!("{} s", secs(s.worst_since_last)),
        ),
        (
            format!("Setting GETs per policy per {} s", SLOW_RESYNC.as_secs()),
            format!("{:.2}", s.gets_per_resync),
        ),
        (
            "WARN lines in the operator's log".to_owned(),
            s.warn_lines.map_or("n/a".into(), |w| w.to_string()),
        ),
    ];
    rows.iter()
        .map(|(figure, value)| format!("| {case} | {figure} | {value} |\n"))
        .collect()
}

fn budget_rows(b: &BudgetRow) -> String {
    let case = format!(
        "request budget ({} policies on one server, {} requests/s and {} in flight allowed, \
         {BUDGET_LATENCY_MS} ms per request)",
        b.count, b.rps, b.in_flight
    );
    // `slack`: requests start 1/rate apart at the operator, but arrive with network jitter, so
    // the service's one-second window may catch one more.
    let within = |seen: u64, limit: u32, slack: u64| {
        if seen <= u64::from(limit) {
            format!("{seen} (within {limit})")
        } else if seen <= u64::from(limit) + slack {
            format!("{seen} (limit {limit}; one more from arrival jitter)")
        } else {
            format!("{seen} (OVER {limit})")
        }
    };
    let least = b.load.requests as f64 / f64::from(b.rps.max(1));
    let rows = [
        (
            "cold start s (policies converged)".to_owned(),
            waited(&b.cold, b.count),
        ),
        (
            "identity requests (the budget allows them in no less than, s)".to_owned(),
            format!("{} ({least:.1})", b.load.requests),
        ),
        (
            "most requests the service saw within one second".to_owned(),
            within(b.load.peak_per_second, b.rps, 1),
        ),
        (
            "most requests the service saw in flight at once".to_owned(),
            within(b.load.peak_in_flight, b.in_flight, 0),
        ),
        (
            "WARN lines in the operator's log".to_owned(),
            b.warn_lines.map_or("n/a".into(), |w| w.to_string()),
        ),
    ];
    rows.iter()
        .map(|(figure, value)| format!("| {case} | {figure} | {value} |\n"))
        .collect()
}
