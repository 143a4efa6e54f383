//! Proxy benchmark (issue #6, `benchmarking.md` §2–§4): one invocation measures `direct`
//! (loopback), `direct-veth` (two namespaces on the bridge, no proxies: the baseline) and
//! `trellis` (meshed client and server pods, the proxy pair over mTLS), interleaved, and
//! reports added latency at fixed rates (oha, open loop, corrected for coordinated
//! omission), maximum throughput (closed loop), CPU-ms per 1,000 requests and resident
//! memory idle and under load, each beside the baseline of the same run.
//!
//! Run: `cargo bench -p trellis-tests --bench proxy [-- quick]` as root, with the local
//! cluster up (`tests/cluster/cluster up`), nginx (`apt-get install -y nginx-light`) and oha
//! (`cargo install oha --locked`). `quick` takes about 5 minutes, the default about 20.
//! `TRELLIS_BENCH_{REPS,DURATION,CAPACITY_DURATION,WARMUP,SETTLE,RATES,CONNS,CAPACITY_CONNS,
//! CAPACITY,CONFIGS,DIAL,OUT,PROXY}` override single settings (see `proxy/config.rs`);
//! `TRELLIS_BENCH_PROXY=<path>` measures another `trellis-proxy` build, such as a baseline. Raw oha
//! output, the commands and `summary.md` go to `target/bench/proxy/<UTC timestamp>/`.
//!
//! After the measured runs, one unmeasured run per configuration and load is recorded with
//! `perf` (`apt-get install -y linux-perf`) and drawn as `cpu-<load>-<config>.svg` with inferno
//! (`cargo install inferno --locked`); `TRELLIS_BENCH_CPU_PROFILE=<seconds>` sets its length,
//! 0 skips it. The summary names the proxy binary, its cargo profile and SHA-256. When the
//! 1-minute load average is above 1.0 per core at the start, the bench warns and writes no
//! summary, unless `TRELLIS_BENCH_FORCE=1`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs,
    reason = "a benchmark binary reports on stdout and fails by panicking"
)]

#[path = "proxy/checks.rs"]
mod checks;
#[path = "proxy/config.rs"]
mod config;
#[path = "proxy/flame.rs"]
mod flame;
#[path = "proxy/machine.rs"]
mod machine;
#[path = "proxy/measure.rs"]
mod measure;
#[path = "proxy/nginx.rs"]
mod nginx;
#[path = "proxy/oha.rs"]
mod oha;
#[path = "proxy/procfs.rs"]
mod procfs;
#[path = "proxy/report.rs"]
mod report;
#[path = "proxy/topology.rs"]
mod topology;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use kube::Client;
use trellis_api::well_known;
use trellis_tests::{bins, k8s::with_temp_ns, mesh::admin_get};

use crate::{
    checks::MeshCounts,
    config::{Config, Setup},
    measure::{Outcome, Recorder, Run},
    report::{Idle, Results},
    topology::Topology,
};

/// Versions of oha and nginx, or how to install what is missing.
fn prerequisites() -> Result<(String, String), Vec<String>> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("run as root: the bench makes network namespaces and iptables rules".into());
    }
    let oha = oha::version();
    if oha.is_none() {
        missing.push("oha is not installed: cargo install oha --locked".into());
    }
    let nginx = nginx::version();
    if nginx.is_none() {
        missing.push("nginx is not installed: apt-get install -y nginx-light".into());
    }
    match (oha, nginx) {
        (Some(o), Some(n)) if missing.is_empty() => Ok((o, n)),
        _ => Err(missing),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let config = Config::from_env();
    let busy = machine::busy();
    if let Some(load) = busy {
        eprintln!(
            "proxy bench: WARNING: the load average is {load:.2} per core (above 1.0): other \
             work would skew the figures, so no summary will be written \
             (TRELLIS_BENCH_FORCE=1 writes it anyway)"
        );
    }
    let (oha_version, nginx_version) = prerequisites().unwrap_or_else(|missing| {
        for m in missing {
            eprintln!("proxy bench: {m}");
        }
        std::process::exit(1);
    });
    // Build the binaries on both cores, then keep this process (and the control plane it
    // starts) on the generator's CPU, away from nginx and the proxies.
    // The mesh's pods run this binary (`TRELLIS_BENCH_PROXY`, or this checkout's build).
    let proxy_binary = bins::proxy();
    topology::pin_all_threads(std::process::id(), oha::GENERATOR_CPU);
    let dir = config.out.join(machine::utc_now(true));
    std::fs::create_dir_all(&dir).unwrap();
    let facts = machine::facts(
        &oha_version,
        &nginx_version,
        &proxy_binary.display().to_string(),
    );
    let runs = config.reps * config.setups.len() * config.loads().len();
    let per_run = config.warmup + config.duration.max(config.capacity_duration);
    println!(
        "proxy bench ({} profile): {runs} runs of at most {} s each; results in {}",
        config.profile,
        per_run.as_secs(),
        dir.display()
    );
    with_temp_ns("bench-proxy", move |client, ns| async move {
        bench(client, ns, config, dir, facts, busy).await;
    })
    .await;
}

async fn bench(
    client: Client,
    ns: String,
    config: Config,
    dir: PathBuf,
    mut facts: Vec<(String, String)>,
    busy: Option<f64>,
) {
    let topology = topology::build(client, &ns, &config, &dir).await;
    println!(
        "mesh up (logs in {}); settling {} s before the idle memory reading",
        topology.mesh.log_dir().display(),
        config.settle.as_secs()
    );
    tokio::time::sleep(config.settle).await;
    let idle = idle_memory(&topology);
    let mut rec = Recorder::new(dir.join("raw"));
    preflight(&config, &topology, &mut rec).await;

    let mut runs: Vec<Run> = Vec::new();
    for rep in 1..=config.reps {
        for load in config.loads() {
            for &setup in &config.setups {
                let run = measure::run(&config, topology.target(setup), load, rep, &mut rec).await;
                println!(
                    "rep {rep}/{} {:>9} {:>11}: {}",
                    config.reps,
                    load.label(),
                    setup.name(),
                    progress(&run)
                );
                runs.push(run);
            }
        }
    }

    let mut checks = mesh_checks(&config, &topology, &runs, &dir).await;
    checks.extend(cpu_profiles(&config, &topology, &dir).await);
    let trellis = topology.target(Setup::Trellis);
    facts.push(("trellis dials".into(), trellis.url.clone()));
    facts.push(("load average at the end".into(), machine::load_average()));
    facts.push((
        "settings from the environment".into(),
        if config.overrides.is_empty() {
            "none".to_string()
        } else {
            config.overrides.join(" ")
        },
    ));
    keep_logs(&topology, &dir);
    let roles = |setup: Setup| -> Vec<&'static str> {
        topology
            .target(setup)
            .processes
            .iter()
            .map(|p| p.role)
            .collect()
    };
    let results = Results {
        config: &config,
        runs: &runs,
        idle: &idle,
        roles: &roles,
        checks: &checks,
        facts: &facts,
    };
    let summary = report::markdown(&results, "Trellis proxy benchmark");
    match busy {
        Some(load) if !config.force => println!(
            "NOT writing summary.md: the load average was {load:.2} per core at the start \
             (TRELLIS_BENCH_FORCE=1 writes it anyway)"
        ),
        _ => std::fs::write(dir.join("summary.md"), &summary).unwrap(),
    }
    std::fs::write(dir.join("commands.txt"), rec.commands.join("\n") + "\n").unwrap();
    println!("\n{summary}");
    println!("raw output, commands and summary.md in {}", dir.display());
    drop(topology);
}

/// One unmeasured, `perf`-recorded run per configuration and load, drawn as flame graphs
/// next to the results; returns a line per graph with its hottest functions (self time).
async fn cpu_profiles(config: &Config, topology: &Topology, dir: &Path) -> Vec<String> {
    if config.cpu_profile.is_zero() {
        return vec!["No CPU profiles (TRELLIS_BENCH_CPU_PROFILE=0).".to_string()];
    }
    if let Err(missing) = flame::available() {
        return vec![format!("No CPU profiles: {missing}.")];
    }
    let mut lines = Vec::new();
    for load in config.loads() {
        for &setup in &config.setups {
            match flame::record(config, topology.target(setup), load, dir).await {
                Ok(svg) => {
                    let hot = flame::top_self(&svg.with_extension("folded"), 5);
                    println!("flame graph {}: {}", svg.display(), hot.join("; "));
                    lines.push(format!(
                        "CPU profile {} at {} (`{}`), hottest by self time: {}.",
                        setup.name(),
                        load.label(),
                        svg.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        hot.join("; ")
                    ));
                }
                Err(e) => lines.push(format!(
                    "No CPU profile of {} at {}: {e}.",
                    setup.name(),
                    load.label()
                )),
            }
        }
    }
    lines
}

/// Copies the control plane's and the proxies' logs next to the results.
fn keep_logs(topology: &Topology, dir: &Path) {
    let logs = topology.mesh.log_dir();
    for name in ["control-plane.log", "proxy-client.log", "proxy-web.log"] {
        if let Err(e) = std::fs::copy(logs.join(name), dir.join(name)) {
            println!("cannot keep {name}: {e}");
        }
    }
}

/// One line about a finished run.
fn progress(run: &Run) -> String {
    let cpu: Vec<String> = run
        .cpu_ms_per_1k
        .iter()
        .map(|c| format!("{c:.1}"))
        .collect();
    let head = match &run.outcome {
        Outcome::Open(o) => format!(
            "p50 {:.3} ms, p99 {:.3} ms",
            o.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
            o.latency_us.value_at_quantile(0.99) as f64 / 1000.0
        ),
        Outcome::Closed => "closed loop".to_string(),
    };
    format!(
        "{head}, {:.0} req/s, {} failed, {} unanswered, CPU-ms/1k [{}]",
        run.ok_per_sec,
        run.failed,
        run.unanswered,
        cpu.join(", ")
    )
}

/// `VmRSS`/`VmHWM` of the baseline nginx, the meshed nginx and both proxies.
fn idle_memory(topology: &Topology) -> Vec<Idle> {
    let mut idle = Vec::new();
    for setup in [Setup::DirectVeth, Setup::Trellis] {
        for p in &topology.target(setup).processes {
            idle.push(Idle {
                label: format!("{} {}", setup.name(), p.role),
                memory: procfs::memory(p.pid),
                baseline: setup == Setup::DirectVeth,
            });
        }
    }
    idle
}

/// A short closed-loop run through the mesh, then the mTLS check: the bench stops here if
/// the proxies do not carry the requests over mTLS.
async fn preflight(config: &Config, topology: &Topology, rec: &mut Recorder) {
    let target = topology.target(Setup::Trellis);
    let args = oha::closed_loop(&target.url, config.conns, Duration::from_secs(1));
    let text = oha::run(&target.client, &args, &rec.raw_dir.join("preflight.json")).await;
    let ok = oha::parse_json(&text).ok();
    counts(topology).await.verify(
        ok.max(1),
        &topology.client_identity,
        &topology.server_identity,
    );
    println!("preflight: {ok} requests through the proxy pair, all over mTLS");
}

async fn counts(topology: &Topology) -> MeshCounts {
    let client = topology.mesh.metrics("client").await;
    let server = topology.mesh.metrics("web").await;
    MeshCounts::read(
        &client,
        &server,
        &topology.client_identity,
        &topology.server_identity,
    )
}

/// Checks the proxies' counters against the measured trellis runs and keeps their metrics.
async fn mesh_checks(
    config: &Config,
    topology: &Topology,
    runs: &[Run],
    dir: &Path,
) -> Vec<String> {
    for (pod, file) in [
        ("client", "client-proxy.metrics"),
        ("web", "server-proxy.metrics"),
    ] {
        std::fs::write(dir.join(file), topology.mesh.metrics(pod).await).unwrap();
    }
    let sent: u64 = runs
        .iter()
        .filter(|r| r.setup == Setup::Trellis)
        .map(|r| r.ok)
        .sum();
    let mut lines =
        counts(topology)
            .await
            .verify(sent, &topology.client_identity, &topology.server_identity);
    let suspect: Vec<String> = runs
        .iter()
        .filter(|r| r.suspect(config))
        .map(|r| {
            format!(
                "{} {} ({} failed, {} unanswered, {:.0} req/s)",
                r.setup.name(),
                r.load.label(),
                r.failed,
                r.unanswered,
                r.ok_per_sec
            )
        })
        .collect();
    lines.push(if suspect.is_empty() {
        "Every open-loop run achieved its rate with no failed request and at most 0.1 % \
         (or 2) of its scheduled requests unanswered at the deadline; no closed-loop request \
         failed."
            .to_string()
    } else {
        format!(
            "Runs with failures, unanswered requests or below 99 % of their rate (read their \
             latency with care): {}",
            suspect.join("; ")
        )
    });
    for pod in ["client", "web"] {
        let admin = SocketAddr::from((
            topology.mesh.pod(pod).net.addr(),
            well_known::PROXY_ADMIN_PORT,
        ));
        let ready = matches!(admin_get(admin, "/ready").await, Some((200, _)));
        lines.push(format!(
            "The {pod} pod's proxy was {}ready at the end.",
            if ready { "" } else { "NOT " }
        ));
    }
    lines
}
