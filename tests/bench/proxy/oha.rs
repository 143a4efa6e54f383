//! Runs oha, the load generator, pinned to CPU 0 inside a namespace, and reads its output.
//!
//! Open-loop runs write `--output-format csv`: one line per successful request, its duration
//! measured from the scheduled send time (`--latency-correction`), so the runs of one
//! configuration pool into one histogram. Closed-loop runs write `--output-format json`.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use hdrhistogram::Histogram;
use serde::Deserialize;
use trellis_tests::netns::PodNs;

/// The CPU the generator runs on; the server and the proxies get the other one.
pub(crate) const GENERATOR_CPU: &str = "0";

/// `oha --version`, or `None` when it is not installed.
pub(crate) fn version() -> Option<String> {
    let out = Command::new("oha").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Arguments of an open-loop run at `rate` requests per second over `conns` connections.
pub(crate) fn open_loop(url: &str, rate: u32, conns: u32, duration: Duration) -> Vec<String> {
    let mut args = common(url, conns, duration);
    args.extend([
        "-q".to_string(),
        rate.to_string(),
        "--latency-correction".into(),
    ]);
    args.extend(["--output-format".into(), "csv".into()]);
    args
}

/// Arguments of a closed-loop run over `conns` connections.
pub(crate) fn closed_loop(url: &str, conns: u32, duration: Duration) -> Vec<String> {
    let mut args = common(url, conns, duration);
    args.extend(["--output-format".into(), "json".into()]);
    args
}

/// HTTP/1.1 keep-alive for `duration`, waiting for requests still in flight at the end so
/// none is counted as aborted.
fn common(url: &str, conns: u32, duration: Duration) -> Vec<String> {
    vec![
        "--no-tui".into(),
        "-c".into(),
        conns.to_string(),
        "-z".into(),
        format!("{}s", duration.as_secs()),
        "-w".into(),
        "--http-version".into(),
        "1.1".into(),
        "--disable-compression".into(),
        url.to_string(),
    ]
}

/// The command line that [`run`] executes, for the record.
pub(crate) fn command_line(pod: &PodNs, args: &[String]) -> String {
    format!(
        "ip netns exec {} taskset -c {GENERATOR_CPU} oha {}",
        pod.ns(),
        args.join(" ")
    )
}

/// Runs oha with `args` inside `pod` and writes its output to `out`; returns the output.
pub(crate) async fn run(pod: &PodNs, args: &[String], out: &Path) -> String {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        pod.ns(),
        "taskset",
        "-c",
        GENERATOR_CPU,
        "oha",
    ])
    .args(args);
    let output = cmd
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run oha: {e}"));
    assert!(
        output.status.success(),
        "{} failed: {}",
        command_line(pod, args),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(out, &output.stdout).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    String::from_utf8(output.stdout).expect("oha prints UTF-8")
}

/// The successful requests of an open-loop run.
#[derive(Debug)]
pub(crate) struct OpenLoop {
    /// Latency from the scheduled send time, in microseconds.
    pub(crate) latency_us: Histogram<u64>,
    /// Requests with a 2xx status.
    pub(crate) ok: u64,
    /// Requests with another status.
    pub(crate) failed_status: u64,
}

/// Parses oha's CSV (`request-start,DNS,DNS+dialup,Response-delay,request-duration,bytes,
/// status`).
pub(crate) fn parse_csv(text: &str) -> OpenLoop {
    let mut run = OpenLoop {
        latency_us: Histogram::new(3).expect("a histogram"),
        ok: 0,
        failed_status: 0,
    };
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 7, "unexpected oha CSV line {line:?}");
        let secs: f64 = fields[4].parse().expect("a request duration");
        let status: u16 = fields[6].parse().expect("a status code");
        if (200..300).contains(&status) {
            run.ok += 1;
            run.latency_us
                .record((secs * 1e6).round() as u64)
                .expect("a latency in range");
        } else {
            run.failed_status += 1;
        }
    }
    run
}

/// What the bench reads of oha's JSON summary.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    pub(crate) summary: Totals,
    #[serde(default)]
    pub(crate) status_code_distribution: BTreeMap<String, u64>,
    #[serde(default)]
    pub(crate) error_distribution: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Totals {
    /// Wall time of the run in seconds.
    pub(crate) total: f64,
}

impl Summary {
    /// Responses with a 2xx status.
    pub(crate) fn ok(&self) -> u64 {
        self.status_code_distribution
            .iter()
            .filter(|(code, _)| code.starts_with('2'))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that failed: errors and non-2xx statuses.
    pub(crate) fn failed(&self) -> u64 {
        let statuses: u64 = self.status_code_distribution.values().sum();
        self.error_distribution.values().sum::<u64>() + statuses - self.ok()
    }

    /// 2xx responses per second of the run.
    pub(crate) fn ok_per_sec(&self) -> f64 {
        self.ok() as f64 / self.summary.total.max(f64::EPSILON)
    }
}

/// Parses oha's JSON output.
pub(crate) fn parse_json(text: &str) -> Summary {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("oha JSON: {e}: {text:.300}"))
}
