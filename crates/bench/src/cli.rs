//! The benchmark's command line.

use std::time::Duration;

use clap::Parser;

/// Measures the operator binary against the Kubernetes API emulator and the identity simulator,
/// each in its own process, and prints a Markdown table (progress goes to stderr).
#[derive(Debug, Parser)]
#[command(name = "bench", about)]
pub struct Args {
    /// Policy counts to measure, one fresh set of processes each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    pub policies: Vec<usize>,
    /// The policies' `resyncInterval` (whole seconds, at least 10s; e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_resync)]
    pub resync: Duration,
    /// Policies of the slow-service case (100 ms per identity request, resync 10s); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    pub slow_policies: usize,
    /// Policies of the request-budget case (all on one identity server, 20 ms per request, the
    /// operator limited to `--budget-rps` and `--budget-in-flight`); 0 skips it.
    #[arg(long, default_value_t = 1000)]
    pub budget_policies: usize,
    /// The budget case's `--identity-requests-per-second`.
    #[arg(long, default_value_t = 50)]
    pub budget_rps: u32,
    /// The budget case's `--identity-max-in-flight`.
    #[arg(long, default_value_t = 4)]
    pub budget_in_flight: u32,
    /// Also writes the report into this Markdown file, between its benchmark markers (e.g.
    /// `docs/benchmarks.md`), dated and with the machine and commit.
    #[arg(long, value_name = "PATH")]
    pub write: Option<std::path::PathBuf>,
    /// The Kubernetes API to measure against: the emulator, or a real kube-apiserver and etcd
    /// (`CONTROL_PLANE_BIN`, else built by `tests/control-plane/build`), where each policy count
    /// runs the reference client and the operator's cold start and restart (see
    /// docs/benchmarks.md).
    #[arg(long, value_enum, default_value = "emulator")]
    pub api_server: ApiServerKind,
    /// With `--api-server real`: runs of each policy count (each side on fresh control planes,
    /// in turn); the report gives each side's median run and every run's seconds.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Extra flag for the operator's `run`, repeatable (e.g. `--operator-arg=--concurrency=16`).
    #[arg(long = "operator-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub operator_args: Vec<String>,
}

/// `--api-server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiServerKind {
    /// The repository's Kubernetes API emulator.
    Emulator,
    /// A real kube-apiserver and etcd.
    Real,
}

impl Args {
    /// Refuses values that make no benchmark; the message names the flag.
    pub fn check(&self) -> Result<(), String> {
        if self.policies.is_empty() || self.policies.contains(&0) {
            return Err("--policies needs counts above 0".into());
        }
        if self.runs == 0 {
            return Err("--runs needs at least 1".into());
        }
        if self.budget_policies > 0 && (self.budget_rps == 0 || self.budget_in_flight == 0) {
            return Err("--budget-rps and --budget-in-flight must be above 0".into());
        }
        Ok(())
    }
}

/// `<n>s`, `<n>m` or `<n>h`, at least 10 s (the operator's minimum `resyncInterval`).
pub fn parse_resync(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a whole duration like 30s, 2m or 1h");
    let unit = text.chars().last().ok_or_else(bad)?;
    let per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => return Err(bad()),
    };
    let count: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    let seconds = count.checked_mul(per_unit).ok_or_else(bad)?;
    if seconds < 10 {
        return Err(format!("{text:?} is below the operator's minimum of 10s"));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resync_parses_whole_durations_of_at_least_ten_seconds() {
        assert_eq!(parse_resync("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_resync("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "5s", "10", "1.5m", "s", "99999999999999999999h"] {
            assert!(parse_resync(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn operator_args_take_hyphen_values() {
        let args = Args::try_parse_from([
            "bench",
            "--policies",
            "100,1000",
            "--operator-arg=--concurrency=16",
            "--operator-arg",
            "--log-format=json",
        ])
        .expect("parses");
        assert_eq!(args.policies, [100, 1000]);
        assert_eq!(
            args.operator_args,
            ["--concurrency=16", "--log-format=json"]
        );
        assert!(args.check().is_ok());
    }
}
