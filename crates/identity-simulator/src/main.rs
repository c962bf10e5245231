//! The `identity-simulator` binary: the identity service simulator on a loopback port, to try
//! policies (or the operator's `run`) without a real identity service.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use identity_simulator::SimulatorConfig;
use tracing_subscriber::EnvFilter;

/// Serves the identity service's Setting API on loopback, with canned credentials (printed at
/// start) and an admin API for faults, counters and drift by hand.
#[derive(Debug, Parser)]
#[command(name = "identity-simulator", version, about)]
struct Args {
    /// Port to listen on (loopback only); 0 picks a free port (the banner says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Path prefix of the identity service.
    #[arg(long, default_value = "/identity_")]
    prefix: String,
    /// Lifetime of the client-credentials tokens it issues (e.g. 90s, 5m, 1h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    token_lifetime: Duration,
    /// Every Setting request is answered after this many milliseconds (a slow service; the
    /// `latencyMs` fault from the start).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

/// `<number><unit>` with unit `s`, `m` or `h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 90s, 5m or 1h");
    let unit = text.chars().last().ok_or_else(bad)?;
    let seconds_per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        _ => return Err(bad()),
    };
    let count: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    count
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let config = SimulatorConfig {
        bind: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        prefix: args.prefix,
        token_lifetime: args.token_lifetime,
        setting_latency: Duration::from_millis(args.latency_ms),
        ..SimulatorConfig::default()
    };
    match identity_simulator::serve_until_shutdown(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: simulator: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_nonsense_is_refused() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "h", "5", "1d", "-1s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
