//! One measured run: a warm-up, then oha under one load against one configuration while
//! the CPU time and resident memory of its nginx and proxies are recorded.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    config::{Config, Load, Setup},
    oha::{self, OpenLoop},
    procfs::{self, RssSampler, RssStats},
    topology::Target,
};

/// What oha reported.
#[derive(Debug)]
pub(crate) enum Outcome {
    Open(OpenLoop),
    Closed,
}

/// One measured run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) setup: Setup,
    pub(crate) load: Load,
    /// Successful (2xx) requests.
    pub(crate) ok: u64,
    /// Requests answered with an error or a non-2xx status (closed loop: also transport
    /// errors).
    pub(crate) failed: u64,
    /// Open loop: requests scheduled but not answered. oha's CSV lists only answers, so
    /// transport errors land here, as do the one or two requests oha drops when the
    /// deadline falls while they wait for a connection.
    pub(crate) unanswered: u64,
    /// Successful requests per second of the measured window.
    pub(crate) ok_per_sec: f64,
    pub(crate) outcome: Outcome,
    /// CPU-ms per 1,000 successful requests of each of the target's processes.
    pub(crate) cpu_ms_per_1k: Vec<f64>,
    /// `VmRSS` of each of the target's processes, sampled every 100 ms.
    pub(crate) rss: Vec<RssStats>,
}

impl Run {
    /// Whether requests failed, too many went unanswered, or an open-loop run fell short of
    /// its rate: its latency should be read with care.
    pub(crate) fn suspect(&self, config: &Config) -> bool {
        let Load::Rate(rps) = self.load else {
            return self.failed > 0;
        };
        let scheduled = f64::from(rps) * config.duration.as_secs_f64();
        self.failed > 0
            || self.unanswered as f64 > (scheduled * 0.001).max(2.0)
            || self.ok_per_sec < 0.99 * f64::from(rps)
    }
}

/// The bench's record of commands and raw files.
pub(crate) struct Recorder {
    /// Where raw oha outputs go.
    pub(crate) raw_dir: PathBuf,
    /// Every oha command line, in order.
    pub(crate) commands: Vec<String>,
    /// `getconf CLK_TCK`.
    pub(crate) clock_ticks: u64,
}

impl Recorder {
    pub(crate) fn new(raw_dir: PathBuf) -> Self {
        std::fs::create_dir_all(&raw_dir).unwrap();
        Self {
            raw_dir,
            commands: Vec::new(),
            clock_ticks: procfs::clock_ticks(),
        }
    }
}

fn args(config: &Config, target: &Target, load: Load, warmup: bool) -> Vec<String> {
    let duration = match (warmup, load) {
        (true, _) => config.warmup,
        (false, Load::Rate(_)) => config.duration,
        (false, Load::Capacity) => config.capacity_duration,
    };
    oha_args(config, target, load, duration)
}

/// oha's arguments for `load` on `target` for `duration`: open loop at the rate, or closed
/// loop at capacity, over the configured connections.
pub(crate) fn oha_args(
    config: &Config,
    target: &Target,
    load: Load,
    duration: Duration,
) -> Vec<String> {
    match load {
        Load::Rate(rps) => oha::open_loop(&target.url, rps, config.conns, duration),
        Load::Capacity => oha::closed_loop(&target.url, config.capacity_conns, duration),
    }
}

/// Warms up, then measures `load` on `target`; `rep` numbers the raw file.
pub(crate) async fn run(
    config: &Config,
    target: &Target,
    load: Load,
    rep: usize,
    rec: &mut Recorder,
) -> Run {
    let warm = args(config, target, load, true);
    oha::run(&target.client, &warm, &rec.raw_dir.join("warmup.out")).await;

    let args = args(config, target, load, false);
    let ext = match load {
        Load::Rate(_) => "csv",
        Load::Capacity => "json",
    };
    let raw: PathBuf = rec.raw_dir.join(format!(
        "{rep}-{}-{}.{ext}",
        load.slug(),
        target.setup.name()
    ));
    rec.commands.push(format!(
        "{}  # {} {} rep {rep} -> {}",
        oha::command_line(&target.client, &args),
        target.setup.name(),
        load.label(),
        file_name(&raw)
    ));
    let pids: Vec<u32> = target.processes.iter().map(|p| p.pid).collect();
    let cpu_before: Vec<u64> = pids.iter().map(|&p| procfs::cpu_ticks(p)).collect();
    let sampler = RssSampler::start(pids.clone());
    let text = oha::run(&target.client, &args, &raw).await;
    let rss = sampler.finish();
    let cpu_after: Vec<u64> = pids.iter().map(|&p| procfs::cpu_ticks(p)).collect();

    let (ok, failed, unanswered, ok_per_sec, outcome) = match load {
        Load::Rate(rps) => {
            let run = oha::parse_csv(&text);
            let secs = config.duration.as_secs_f64();
            let scheduled = (f64::from(rps) * secs).round() as u64;
            let unanswered = scheduled.saturating_sub(run.ok + run.failed_status);
            let (ok, failed) = (run.ok, run.failed_status);
            (ok, failed, unanswered, ok as f64 / secs, Outcome::Open(run))
        }
        Load::Capacity => {
            let summary = oha::parse_json(&text);
            let (ok, failed) = (summary.ok(), summary.failed());
            (ok, failed, 0, summary.ok_per_sec(), Outcome::Closed)
        }
    };
    let cpu_ms_per_1k = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(b, a)| {
            let ms = (a - b) as f64 * 1000.0 / rec.clock_ticks as f64;
            ms * 1000.0 / ok.max(1) as f64
        })
        .collect();
    Run {
        setup: target.setup,
        load,
        ok,
        failed,
        unanswered,
        ok_per_sec,
        outcome,
        cpu_ms_per_1k,
        rss,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
