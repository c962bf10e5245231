//! The Markdown report of the real-apiserver mode: per policy count, the operator's cold start
//! beside the reference client's (the floor), what each cost the API server, and what an
//! operator restart over policies in sync wrote.

use std::fmt::Write as _;
use std::time::Duration;

use crate::machine::Machine;
use crate::run::{ColdStart, RealRow};

/// The goal: the operator's cold start within this factor of the reference client's.
pub const GOAL_RATIO: f64 = 1.2;

/// Everything measured on the real API server.
pub struct RealReport {
    /// Where.
    pub machine: Machine,
    /// When, and on which commit.
    pub measured: String,
    /// How the benchmark was called.
    pub command: String,
    /// The policies' resync interval.
    pub resync: Duration,
    /// The kube-apiserver version.
    pub api_server: String,
    /// One result per policy count (an error message when the run failed).
    pub rows: Vec<(usize, Result<RealRow, String>)>,
}

fn per(n: u64, count: usize) -> String {
    format!("{:.2}", n as f64 / count as f64)
}

fn cold(c: &ColdStart, count: usize) -> String {
    if c.waited.all {
        format!("{:.1}", c.waited.elapsed.as_secs_f64())
    } else {
        format!(
            "> {:.1} ({}/{count})",
            c.waited.elapsed.as_secs_f64(),
            c.waited.done
        )
    }
}

impl RealReport {
    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "Measured: {}\n", self.measured);
        let _ = writeln!(
            out,
            "Machine: {} ({} cores), {}; kube-apiserver {} and etcd on loopback\n",
            m.cpu, m.cores, m.os, self.api_server
        );
        let _ = writeln!(out, "Command: `{}`\n", self.command);
        let _ = writeln!(
            out,
            "Cold start of N new policies (resync {}s): until every policy is Ready for its \
             generation, polled by LIST. The reference client does only one LIST, one token, and \
             per policy one GET, one PUT, one status write and one Event. Kubernetes requests are \
             the operator's (or the reference client's) ServiceAccount's, from the API server's \
             audit log; API server CPU is kube-apiserver's and etcd's together, the audit log \
             included. The restart column: what a restarted operator asked of the API server \
             until it had checked every policy once (and {}s more).\n",
            self.resync.as_secs(),
            3
        );
        out.push_str(
            "| N | cold start s operator / reference | ratio (goal ≤ 1.2) \
             | k8s writes per policy operator / reference | k8s reads operator / reference \
             | API server CPU s operator / reference | operator CPU s / peak RSS MiB \
             | restart in sync: k8s writes (reads) | WARN lines |\n",
        );
        out.push_str("|---:|---|---:|---|---|---|---|---|---:|\n");
        for (count, row) in &self.rows {
            match row {
                Ok(row) => out.push_str(&real_row(row)),
                Err(e) => {
                    let _ = writeln!(out, "| {count} | failed: {} |", e.replace('|', "/"));
                }
            }
        }
        out
    }
}

fn real_row(r: &RealRow) -> String {
    let n = r.count;
    let ratio = if r.operator.waited.all && r.reference.waited.all {
        let ratio = r.operator.waited.elapsed.as_secs_f64()
            / r.reference.waited.elapsed.as_secs_f64().max(0.001);
        format!(
            "{ratio:.2}{}",
            if ratio <= GOAL_RATIO { "" } else { " (over)" }
        )
    } else {
        "n/a".into()
    };
    let usage = r.at_convergence.map_or("n/a".into(), |u| {
        format!("{:.1} / {:.1}", u.cpu_seconds, u.peak_rss_mib)
    });
    let restart = r
        .restart
        .as_ref()
        .map_or("n/a".into(), |c| format!("{} ({})", c.writes, c.reads));
    format!(
        "| {n} | {} / {} | {ratio} | {} / {} | {} / {} | {:.1} / {:.1} | {usage} | {restart} | {} |\n",
        cold(&r.operator, n),
        cold(&r.reference, n),
        per(r.operator.calls.writes, n),
        per(r.reference.calls.writes, n),
        r.operator.calls.reads,
        r.reference.calls.reads,
        r.operator.api_server_cpu,
        r.reference.api_server_cpu,
        r.warn_lines.map_or("n/a".into(), |w| w.to_string()),
    )
}
