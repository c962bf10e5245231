//! The three kinds of run, each with fresh processes: a scale run per policy count (cold start,
//! steady state, apply latency, drift), the idle run (memory of a small quiet operator) and the
//! slow-service run (how long policies wait for their drift check when the service is slow).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::converge::{Wait, Waited, wait_all};
use crate::error::Result;
use crate::kube::ApiCalls;
use crate::measure::{self, Latency, Steady};
use crate::policy::Policy;
use crate::procfs::{self, Usage};
use crate::reference::StatusShape;
use crate::sim::IdentityCalls;
use crate::world::{self, ApiServer, Operator, STOP_LIMIT, World};

/// The longest cold start waited for.
const COLD_START_LIMIT: Duration = Duration::from_secs(300);
/// How often a restart looks at the identity service's counters.
const RESTART_POLL: Duration = Duration::from_millis(500);
/// Policies of the idle run.
pub const IDLE_POLICIES: usize = 10;
/// How long the idle run stays quiet before reading memory.
const IDLE_WAIT: Duration = Duration::from_secs(10);
/// The slow service's latency per Setting request.
pub const SLOW_LATENCY_MS: u64 = 100;
/// The slow run's resync interval.
pub const SLOW_RESYNC: Duration = Duration::from_secs(10);
/// How long the slow run watches the checks after cold start.
pub const SLOW_WINDOW: Duration = Duration::from_secs(40);

/// What runs share.
pub struct Setup<'a> {
    /// The binaries under test.
    pub bins: &'a Binaries,
    /// Extra operator flags.
    pub operator_args: &'a [String],
    /// Where each run's directory goes.
    pub root: &'a Path,
    /// The Kubernetes API the runs measure against.
    pub api: &'a ApiServer,
}

/// The figures of one scale run; steps after a failed cold start are `None`.
#[derive(Clone, Debug)]
pub struct ScaleRow {
    /// Policies.
    pub count: usize,
    /// Cold start.
    pub cold: Waited,
    /// Identity requests during cold start.
    pub cold_calls: IdentityCalls,
    /// Operator memory and CPU right after convergence.
    pub at_convergence: Option<Usage>,
    /// Steady-state requests per policy per resync.
    pub steady: Option<Steady>,
    /// Operator memory after the steady-state window.
    pub steady_usage: Option<Usage>,
    /// Apply latency of single edits.
    pub latency: Option<Latency>,
    /// Drift correction of every policy.
    pub drift: Option<Waited>,
    /// Operator memory and CPU at the end.
    pub at_end: Option<Usage>,
    /// Whether the operator exited within 10 s of SIGTERM.
    pub exited_on_sigterm: bool,
    /// WARN lines in the operator's log.
    pub warn_lines: Option<usize>,
    /// The operator's log.
    pub log: PathBuf,
}

/// Starts a world, creates `count` policies and starts the operator; returns with the operator
/// just spawned (the simulator's counters reset right before).
async fn prepare(
    setup: &Setup<'_>,
    label: &str,
    count: usize,
    resync: Duration,
    latency_ms: u64,
    extra_args: &[String],
) -> Result<(World, Operator, Instant)> {
    let world = populated_world(setup, label, count, resync, latency_ms).await?;
    let args: Vec<String> = setup
        .operator_args
        .iter()
        .chain(extra_args)
        .cloned()
        .collect();
    let operator = world.spawn_operator(setup.bins, &args)?;
    eprintln!("  operator log: {}", operator.log.display());
    Ok((world, operator, Instant::now()))
}

/// Starts a world and creates `count` policies; the counters reset right after.
async fn populated_world(
    setup: &Setup<'_>,
    label: &str,
    count: usize,
    resync: Duration,
    latency_ms: u64,
) -> Result<World> {
    let world = World::start(setup.bins, setup.api, &setup.root.join(label), latency_ms).await?;
    let creating = Instant::now();
    world
        .kube
        .set_up(count, &world.identity_url, resync)
        .await?;
    eprintln!(
        "  created {count} policies in {:.1} s",
        creating.elapsed().as_secs_f64()
    );
    world.sim.reset().await?;
    world.kube.reset_counters().await?;
    Ok(world)
}

/// Waits until every policy is Ready for its generation (at most 5 minutes).
async fn cold_start(
    world: &World,
    operator: &mut Operator,
    count: usize,
    since: Instant,
) -> Result<Waited> {
    let wait = Wait {
        what: "cold start",
        count,
        since,
        limit: COLD_START_LIMIT,
    };
    let waited = wait_all(
        &world.kube,
        Some(&mut operator.process),
        wait,
        Policy::converged,
    )
    .await?;
    if waited.all {
        eprintln!(
            "  cold start: all {count} converged in {:.1} s",
            waited.elapsed.as_secs_f64()
        );
    }
    Ok(waited)
}

/// Stops the operator (SIGTERM, 10 s) and the stand-ins; whether the operator exited in time.
async fn finish(world: World, operator: Operator) -> bool {
    let exited = operator.process.terminate(STOP_LIMIT).await;
    world.stop().await;
    exited
}

/// One scale run with `count` policies resynced every `resync`.
pub async fn scale(setup: &Setup<'_>, count: usize, resync: Duration) -> Result<ScaleRow> {
    eprintln!("• scale run: {count} policies, resync {resync:?}");
    let (mut world, mut operator, spawned) =
        prepare(setup, &format!("n{count}"), count, resync, 0, &[]).await?;
    let cold = cold_start(&world, &mut operator, count, spawned).await?;
    let cold_calls = world.sim.calls().await?;
    let pid = operator.process.pid()?;
    let at_convergence = procfs::usage(pid);
    let mut row = ScaleRow {
        count,
        cold,
        cold_calls,
        at_convergence,
        steady: None,
        steady_usage: None,
        latency: None,
        drift: None,
        at_end: None,
        exited_on_sigterm: false,
        warn_lines: None,
        log: operator.log.clone(),
    };
    if cold.all {
        eprintln!(
            "  steady state: watching for {:?}",
            resync.mul_f64(measure::STEADY_WINDOW)
        );
        row.steady = Some(measure::steady(&world, count, resync).await?);
        row.steady_usage = procfs::usage(pid);
        eprintln!("  apply latency: {} edits", measure::EDITS);
        row.latency = Some(measure::apply_latency(&world, count).await?);
        world.check_running()?;
        eprintln!("  drift of every policy");
        let drift = measure::drift(&world, &mut operator.process, count, resync).await?;
        eprintln!(
            "  drift: {}/{count} corrected in {:.1} s",
            drift.done,
            drift.elapsed.as_secs_f64()
        );
        row.drift = Some(drift);
    }
    row.at_end = procfs::usage(pid);
    row.exited_on_sigterm = finish(world, operator).await;
    row.warn_lines = world::warn_lines(&row.log);
    Ok(row)
}

/// The idle run's figures.
#[derive(Clone, Debug)]
pub struct IdleRow {
    /// Whether the policies converged.
    pub converged: bool,
    /// Memory after [`IDLE_WAIT`] without work.
    pub usage: Option<Usage>,
}

/// [`IDLE_POLICIES`] policies, converged, then 10 s without work: resident memory.
pub async fn idle(setup: &Setup<'_>, resync: Duration) -> Result<IdleRow> {
    eprintln!("• idle run: {IDLE_POLICIES} policies");
    let (world, mut operator, spawned) =
        prepare(setup, "idle", IDLE_POLICIES, resync, 0, &[]).await?;
    let cold = cold_start(&world, &mut operator, IDLE_POLICIES, spawned).await?;
    tokio::time::sleep(IDLE_WAIT).await;
    let usage = procfs::usage(operator.process.pid()?);
    finish(world, operator).await;
    Ok(IdleRow {
        converged: cold.all,
        usage,
    })
}

/// The slow-service run's figures.
#[derive(Clone, Debug)]
pub struct SlowRow {
    /// Policies.
    pub count: usize,
    /// Cold start.
    pub cold: Waited,
    /// Policies checked at least once in the window.
    pub checked: usize,
    /// The longest gap between two checks of one policy.
    pub longest_gap: Duration,
    /// The longest a checked policy waited from the window's start for its first check.
    pub worst_first_wait: Duration,
    /// The longest time since a checked policy's last check at the window's end.
    pub worst_since_last: Duration,
    /// The window's actual length.
    pub window: Duration,
    /// Setting GETs per policy per resync interval.
    pub gets_per_resync: f64,
    /// WARN lines in the operator's log.
    pub warn_lines: Option<usize>,
}

/// `count` policies against a service answering every Setting request after 100 ms, resync
/// 10 s: cold start, then 40 s of checks per partition.
pub async fn slow(setup: &Setup<'_>, count: usize) -> Result<SlowRow> {
    eprintln!("• slow-service run: {count} policies, {SLOW_LATENCY_MS} ms per Setting request");
    let (world, mut operator, spawned) =
        prepare(setup, "slow", count, SLOW_RESYNC, SLOW_LATENCY_MS, &[]).await?;
    let cold = cold_start(&world, &mut operator, count, spawned).await?;
    world.sim.reset().await?;
    eprintln!("  watching checks for {SLOW_WINDOW:?}");
    tokio::time::sleep(SLOW_WINDOW).await;
    operator.process.check_running()?;
    let checks = world.sim.checks().await?;
    let log = operator.log.clone();
    finish(world, operator).await;
    let ms = Duration::from_millis;
    let max = |f: &dyn Fn(&crate::sim::ScopeChecks) -> u64| {
        checks.scopes.iter().map(f).max().unwrap_or(0)
    };
    let gets: u64 = checks.scopes.iter().map(|s| s.gets).sum();
    let window = ms(checks.window_ms);
    Ok(SlowRow {
        count,
        cold,
        checked: checks.scopes.len(),
        longest_gap: ms(max(&|s| s.longest_gap_ms)),
        worst_first_wait: ms(max(&|s| s.first_get_ms)),
        worst_since_last: ms(max(&|s| checks.window_ms.saturating_sub(s.last_get_ms))),
        window,
        gets_per_resync: gets as f64
            / count as f64
            / (window.as_secs_f64() / SLOW_RESYNC.as_secs_f64()).max(f64::EPSILON),
        warn_lines: world::warn_lines(&log),
    })
}

/// The request-budget run's figures.
#[derive(Clone, Debug)]
pub struct BudgetRow {
    /// Policies, all on one identity server.
    pub count: usize,
    /// The operator's `--identity-requests-per-second`.
    pub rps: u32,
    /// The operator's `--identity-max-in-flight`.
    pub in_flight: u32,
    /// Cold start.
    pub cold: Waited,
    /// What the identity service saw during the cold start.
    pub load: crate::sim::Load,
    /// WARN lines in the operator's log.
    pub warn_lines: Option<usize>,
}

/// Each budget-run request takes this long at the service, so requests overlap.
pub const BUDGET_LATENCY_MS: u64 = 20;

/// `count` policies on one identity server, the operator held to `rps` requests per second and
/// `in_flight` at once: cold start, and the most requests per second and in flight the service
/// saw meanwhile.
pub async fn budget(
    setup: &Setup<'_>,
    count: usize,
    rps: u32,
    in_flight: u32,
) -> Result<BudgetRow> {
    eprintln!("• request-budget run: {count} policies, {rps} requests/s, {in_flight} in flight");
    let args = [
        format!("--identity-requests-per-second={rps}"),
        format!("--identity-max-in-flight={in_flight}"),
    ];
    let (world, mut operator, spawned) = prepare(
        setup,
        "budget",
        count,
        Duration::from_secs(600),
        BUDGET_LATENCY_MS,
        &args,
    )
    .await?;
    let cold = cold_start(&world, &mut operator, count, spawned).await?;
    let load = world.sim.load().await?;
    eprintln!(
        "  service saw {} requests, at most {} per second and {} in flight",
        load.requests, load.peak_per_second, load.peak_in_flight
    );
    let log = operator.log.clone();
    finish(world, operator).await;
    Ok(BudgetRow {
        count,
        rps,
        in_flight,
        cold,
        load,
        warn_lines: world::warn_lines(&log),
    })
}

/// How long a restarted operator may take to check every policy once.
const RESTART_LIMIT: Duration = Duration::from_secs(300);
/// How long the restart step keeps counting after every policy was checked.
const RESTART_SETTLE: Duration = Duration::from_secs(3);

/// One side of a real-apiserver cold start: how long, and what it cost the API server.
#[derive(Clone, Debug)]
pub struct ColdStart {
    /// Until every policy was Ready for its generation.
    pub waited: Waited,
    /// The client's requests to the API server (from its audit log).
    pub calls: ApiCalls,
    /// CPU seconds of kube-apiserver and etcd together.
    pub api_server_cpu: f64,
}

/// The figures of one real-apiserver run: the operator's cold start beside the reference
/// client's, and an operator restart over policies in sync.
#[derive(Clone, Debug)]
pub struct RealRow {
    /// Policies.
    pub count: usize,
    /// The reference client (the floor), writing a bare `Ready` status.
    pub reference: ColdStart,
    /// The reference client writing the status the operator writes.
    pub reference_same_status: ColdStart,
    /// Status fields the operator wrote that the second reference did not, or the reverse
    /// (`-path` / `+path`); empty when they match.
    pub status_mismatch: Vec<String>,
    /// The operator.
    pub operator: ColdStart,
    /// Operator memory and CPU right after convergence.
    pub at_convergence: Option<Usage>,
    /// The restarted operator's requests until it had checked every policy once (and a few
    /// seconds more); `None` when it did not check them all in time.
    pub restart: Option<ApiCalls>,
    /// WARN lines in the operator's log.
    pub warn_lines: Option<usize>,
    /// The operator's log.
    pub log: PathBuf,
    /// With `--runs` above 1, each run's cold-start seconds (see [`crate::runs::median_row`]);
    /// empty from [`real_scale`].
    pub runs: Vec<crate::runs::RunSeconds>,
}

/// CPU seconds of the world's kube-apiserver and etcd so far.
fn api_server_cpu(world: &World) -> f64 {
    world.api_server_pids().map_or(0.0, |(apiserver, etcd)| {
        [apiserver, etcd]
            .into_iter()
            .filter_map(procfs::usage)
            .map(|u| u.cpu_seconds)
            .sum()
    })
}

/// The reference client's cold start over `count` new policies, on a fresh control plane.
async fn reference_cold_start(
    setup: &Setup<'_>,
    count: usize,
    run: &str,
    resync: Duration,
    shape: StatusShape,
) -> Result<ColdStart> {
    let name = match shape {
        StatusShape::Minimal => format!("reference{count}{run}"),
        StatusShape::AsTheOperator => format!("reference-same-status{count}{run}"),
    };
    let world = populated_world(setup, &name, count, resync, 0).await?;
    let kubeconfig = std::fs::read_to_string(world.operator_kubeconfig()).map_err(|source| {
        crate::error::BenchError::File {
            path: world.operator_kubeconfig().display().to_string(),
            source,
        }
    })?;
    let token = crate::reference::kubeconfig_token(&kubeconfig)?;
    let ca = world.api_server_ca().unwrap_or_default();
    let client = world.kube.as_user(&ca, &token)?;
    let cpu_before = api_server_cpu(&world);
    let since = Instant::now();
    let identity = world.identity_url.clone();
    let applying =
        tokio::spawn(async move { crate::reference::apply_all(&client, &identity, shape).await });
    let wait = Wait {
        what: "reference client",
        count,
        since,
        limit: COLD_START_LIMIT,
    };
    let waited = wait_all(&world.kube, None, wait, Policy::converged).await?;
    applying
        .await
        .map_err(|e| crate::error::BenchError::process("reference client", e))??;
    eprintln!(
        "  reference client: {}/{count} Ready in {:.1} s",
        waited.done,
        waited.elapsed.as_secs_f64()
    );
    let calls = world.kube.api_calls().await?;
    let api_server_cpu = api_server_cpu(&world) - cpu_before;
    world.stop().await;
    Ok(ColdStart {
        waited,
        calls,
        api_server_cpu,
    })
}

/// The status paths of the first policy as the operator wrote it against those the reference
/// client writes in [`StatusShape::AsTheOperator`]: `-path` only the operator's, `+path` only
/// the reference's.
async fn status_mismatch(world: &World) -> Result<Vec<String>> {
    let what = "get a policy's status";
    let url = format!(
        "{}/{}",
        world.kube.policies_url(),
        crate::manifests::policy_name(0)
    );
    let body = crate::http::send(world.kube.http().get(url), reqwest::StatusCode::OK, what).await?;
    let policy: serde_json::Value = crate::http::json(&body, what)?;
    let operator = crate::reference::status_paths(&policy["status"]);
    let reference = crate::reference::written_paths(StatusShape::AsTheOperator);
    let only_operator = operator.iter().filter(|p| !reference.contains(p));
    let only_reference = reference.iter().filter(|p| !operator.contains(p));
    Ok(only_operator
        .map(|p| format!("-{p}"))
        .chain(only_reference.map(|p| format!("+{p}")))
        .collect())
}

/// One real-apiserver run with `count` policies: the reference client's cold start, then the
/// operator's on a fresh control plane, then an operator restart over the policies in sync.
/// `run` is added to the names of its directories (e.g. `-run2`), so that each run keeps its
/// logs.
pub async fn real_scale(
    setup: &Setup<'_>,
    count: usize,
    run: &str,
    resync: Duration,
) -> Result<RealRow> {
    eprintln!("• real API server: {count} policies, reference client");
    let reference = reference_cold_start(setup, count, run, resync, StatusShape::Minimal).await?;
    eprintln!(
        "• real API server: {count} policies, reference client writing the operator's status"
    );
    let reference_same_status =
        reference_cold_start(setup, count, run, resync, StatusShape::AsTheOperator).await?;
    eprintln!("• real API server: {count} policies, operator");
    let world = populated_world(setup, &format!("real{count}{run}"), count, resync, 0).await?;
    let cpu_before = api_server_cpu(&world);
    let mut operator = world.spawn_operator(setup.bins, setup.operator_args)?;
    eprintln!("  operator log: {}", operator.log.display());
    let waited = cold_start(&world, &mut operator, count, Instant::now()).await?;
    let calls = world.kube.api_calls().await?;
    eprintln!("  operator's requests: {}", calls.by_resource);
    let operator_cold = ColdStart {
        waited,
        calls,
        api_server_cpu: api_server_cpu(&world) - cpu_before,
    };
    let at_convergence = procfs::usage(operator.process.pid()?);
    let status_mismatch = status_mismatch(&world).await?;
    if !status_mismatch.is_empty() {
        eprintln!(
            "  ! the reference's status differs from the operator's: {}",
            status_mismatch.join(", ")
        );
    }
    let log = operator.log.clone();
    let mut restart = None;
    if waited.all {
        operator.process.terminate(STOP_LIMIT).await;
        world.kube.reset_counters().await?;
        world.sim.reset().await?;
        let mut again =
            world.spawn_operator_named("operator-restarted", setup.bins, setup.operator_args)?;
        eprintln!("  restarted operator log: {}", again.log.display());
        let started = Instant::now();
        loop {
            again.process.check_running()?;
            if world.sim.calls().await?.get >= count as u64 {
                tokio::time::sleep(RESTART_SETTLE).await;
                let calls = world.kube.api_calls().await?;
                eprintln!(
                    "  restart: every policy checked in {:.1} s; requests: {}",
                    started.elapsed().as_secs_f64(),
                    calls.by_resource
                );
                restart = Some(calls);
                break;
            }
            if started.elapsed() > RESTART_LIMIT {
                eprintln!("  ! restart: not every policy checked in {RESTART_LIMIT:?}");
                break;
            }
            tokio::time::sleep(RESTART_POLL).await;
        }
        operator = again;
    }
    finish(world, operator).await;
    Ok(RealRow {
        count,
        reference,
        reference_same_status,
        status_mismatch,
        operator: operator_cold,
        at_convergence,
        restart,
        warn_lines: world::warn_lines(&log),
        log,
        runs: vec![],
    })
}
