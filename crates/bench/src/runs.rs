//! Several real-apiserver runs of one policy count made into one row: on 2 cores a cold start
//! moves by a tenth of a second from run to run (a few percent at 1 000 policies), so one run
//! can land on either side of a goal. Each side's figure is its median run's.

use crate::run::{ColdStart, RealRow};

/// One run's cold-start seconds: the operator's, the reference client's, and the reference
/// client's writing the operator's status.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSeconds {
    /// The operator.
    pub operator: f64,
    /// The reference client writing a bare condition.
    pub reference: f64,
    /// The reference client writing the operator's status.
    pub reference_same_status: f64,
    /// Whether every side converged in this run (its seconds are the time waited otherwise).
    pub converged: bool,
}

impl RunSeconds {
    /// The seconds of `row`'s three cold starts.
    pub fn of(row: &RealRow) -> Self {
        let secs = |c: &ColdStart| c.waited.elapsed.as_secs_f64();
        Self {
            operator: secs(&row.operator),
            reference: secs(&row.reference),
            reference_same_status: secs(&row.reference_same_status),
            converged: [&row.operator, &row.reference, &row.reference_same_status]
                .iter()
                .all(|c| c.waited.all),
        }
    }
}

/// The run of `rows` whose `side` took the median time (the lower middle of an even count);
/// a run where that side did not converge, if there is one: it is not hidden by the others.
fn median_by(rows: &[RealRow], side: impl Fn(&RealRow) -> &ColdStart) -> Option<&RealRow> {
    if let Some(unfinished) = rows.iter().find(|r| !side(r).waited.all) {
        return Some(unfinished);
    }
    let mut sorted: Vec<&RealRow> = rows.iter().collect();
    sorted.sort_by_key(|r| side(r).waited.elapsed);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// One row out of several runs of the same policy count: each side's cold start (with what it
/// cost the API server) from the run where that side took the median time; the operator's other
/// figures (memory, restart, log) from its median run; every run's seconds in `runs`.
/// `None` for no run.
pub fn median_row(rows: Vec<RealRow>) -> Option<RealRow> {
    let runs: Vec<RunSeconds> = rows.iter().map(RunSeconds::of).collect();
    let reference = median_by(&rows, |r| &r.reference)?.reference.clone();
    let same = median_by(&rows, |r| &r.reference_same_status)?
        .reference_same_status
        .clone();
    let mut row = median_by(&rows, |r| &r.operator)?.clone();
    row.reference = reference;
    row.reference_same_status = same;
    row.runs = runs;
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converge::Waited;
    use std::time::Duration;

    fn cold(secs: f64) -> ColdStart {
        ColdStart {
            waited: Waited {
                elapsed: Duration::from_secs_f64(secs),
                done: 10,
                all: true,
            },
            calls: Default::default(),
            api_server_cpu: secs * 2.0,
        }
    }

    fn row(operator: f64, reference: f64, same: f64) -> RealRow {
        RealRow {
            count: 10,
            reference: cold(reference),
            reference_same_status: cold(same),
            status_mismatch: vec![],
            operator: cold(operator),
            at_convergence: None,
            restart: None,
            warn_lines: Some(0),
            log: format!("/tmp/operator-{operator}.log").into(),
            runs: vec![],
        }
    }

    #[test]
    fn each_side_is_its_median_run() {
        let rows = vec![row(3.3, 2.6, 3.0), row(3.1, 2.8, 2.8), row(3.2, 2.5, 2.9)];
        let median = median_row(rows).expect("a row");
        assert_eq!(median.operator.waited.elapsed, Duration::from_secs_f64(3.2));
        assert_eq!(
            median.reference.waited.elapsed,
            Duration::from_secs_f64(2.6)
        );
        assert_eq!(
            median.reference_same_status.waited.elapsed,
            Duration::from_secs_f64(2.9)
        );
        assert_eq!(median.reference.api_server_cpu, 5.2, "its own run's cost");
        assert_eq!(median.log.to_str(), Some("/tmp/operator-3.2.log"));
        let operators: Vec<f64> = median.runs.iter().map(|r| r.operator).collect();
        assert_eq!(operators, [3.3, 3.1, 3.2], "every run, in order");
    }

    #[test]
    fn a_run_that_did_not_converge_is_not_hidden_by_the_median() {
        let mut stuck = row(3.4, 2.6, 2.9);
        stuck.operator.waited.all = false;
        let rows = vec![row(3.1, 2.6, 2.9), stuck, row(3.2, 2.6, 2.9)];
        let median = median_row(rows).expect("a row");
        assert!(!median.operator.waited.all);
        assert_eq!(
            median.runs.iter().map(|r| r.converged).collect::<Vec<_>>(),
            [true, false, true]
        );
    }

    #[test]
    fn one_run_is_its_own_median_and_none_is_no_row() {
        let median = median_row(vec![row(3.0, 2.5, 2.7)]).expect("a row");
        assert_eq!(median.runs.len(), 1);
        assert_eq!(median.operator.waited.elapsed, Duration::from_secs(3));
        assert!(median_row(vec![]).is_none());
    }
}
