//! The Markdown report of the real-apiserver mode: per policy count, the operator's cold start
//! beside the reference client's (the floor), what each cost the API server, and what an
//! operator restart over policies in sync wrote.

use std::fmt::Write as _;
use std::time::Duration;

use crate::machine::Machine;
use crate::run::{ColdStart, RealRow};
use crate::runs::RunSeconds;

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
        let _ = writeln!(out, "Operator: {}\n", crate::binaries::OPERATOR_BUILD);
        let _ = writeln!(
            out,
            "Cold start of N new policies (resync {}s): until every policy is Ready for its \
             generation, seen by a watch. The reference client does only one LIST, one token, and \
             per policy one GET, one PUT, one status write and one Event; it runs twice, writing \
             a bare Ready condition, then the status the operator writes for a new policy (the ids \
             by key, the times, the Ready condition, the inputs' digest), each on a fresh control \
             plane. Kubernetes requests are \
             the operator's (or the reference client's) ServiceAccount's, from the API server's \
             audit log; API server CPU is kube-apiserver's and etcd's together, the audit log \
             included. The restart column: what a restarted operator asked of the API server \
             until it had checked every policy once (and {}s more).\n",
            self.resync.as_secs(),
            3
        );
        out.push_str(
            "| N | cold start s operator / reference / reference with the operator's status \
             | ratio to reference (goal ≤ 1.2) / to reference with the operator's status \
             | k8s writes per policy operator / reference | k8s reads operator / reference \
             | API server CPU s operator / reference / reference with the operator's status \
             | operator CPU s / peak RSS MiB | restart in sync: k8s writes (reads) | WARN lines |\n",
        );
        out.push_str("|---:|---|---|---|---|---|---|---|---:|\n");
        let mut mismatches = Vec::new();
        for (count, row) in &self.rows {
            match row {
                Ok(row) => {
                    out.push_str(&real_row(row));
                    if !row.status_mismatch.is_empty() {
                        mismatches.push(format!("{count}: {}", row.status_mismatch.join(", ")));
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "| {count} | failed: {} |", e.replace('|', "/"));
                }
            }
        }
        for (count, row) in &self.rows {
            if let Ok(row) = row.as_ref()
                && row.runs.len() > 1
            {
                out.push_str(&runs_note(*count, &row.runs));
            }
        }
        if !mismatches.is_empty() {
            let _ = writeln!(
                out,
                "\nThe second reference's status did not have the operator's fields \
                 (-: only the operator's, +: only the reference's): {}",
                mismatches.join("; ")
            );
        }
        out
    }
}

/// `operator / reference`, with "(over)" past the goal; n/a unless both converged.
fn ratio(operator: &ColdStart, reference: &ColdStart) -> String {
    if !(operator.waited.all && reference.waited.all) {
        return "n/a".into();
    }
    let ratio =
        operator.waited.elapsed.as_secs_f64() / reference.waited.elapsed.as_secs_f64().max(0.001);
    format!(
        "{ratio:.2}{}",
        if ratio <= GOAL_RATIO { "" } else { " (over)" }
    )
}

/// Every run's seconds, side by side, and the ratio within each run, after the table.
fn runs_note(count: usize, runs: &[RunSeconds]) -> String {
    let list = |side: fn(&RunSeconds) -> f64| {
        runs.iter()
            .map(|r| format!("{:.1}", side(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ratios = runs
        .iter()
        .map(|r| {
            if r.converged {
                format!("{:.2}", r.operator / r.reference.max(0.001))
            } else {
                "n/a (a side did not converge)".to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\n{count} policies, {} runs (each side's figures in the table are from its median run): \
         cold start s operator {}; reference {}; reference with the operator's status {}; \
         operator / reference within each run {ratios}.\n",
        runs.len(),
        list(|r| r.operator),
        list(|r| r.reference),
        list(|r| r.reference_same_status),
    )
}

fn real_row(r: &RealRow) -> String {
    let n = r.count;
    let usage = r.at_convergence.map_or("n/a".into(), |u| {
        format!("{:.1} / {:.1}", u.cpu_seconds, u.peak_rss_mib)
    });
    let restart = r
        .restart
        .as_ref()
        .map_or("n/a".into(), |c| format!("{} ({})", c.writes, c.reads));
    format!(
        "| {n} | {} / {} / {} | {} / {} | {} / {} | {} / {} | {:.1} / {:.1} / {:.1} | {usage} | {restart} | {} |\n",
        cold(&r.operator, n),
        cold(&r.reference, n),
        cold(&r.reference_same_status, n),
        ratio(&r.operator, &r.reference),
        ratio(&r.operator, &r.reference_same_status),
        per(r.operator.calls.writes, n),
        per(r.reference.calls.writes, n),
        r.operator.calls.reads,
        r.reference.calls.reads,
        r.operator.api_server_cpu,
        r.reference.api_server_cpu,
        r.reference_same_status.api_server_cpu,
        r.warn_lines.map_or("n/a".into(), |w| w.to_string()),
    )
}
