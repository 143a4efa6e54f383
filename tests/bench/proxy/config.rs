//! What the proxy benchmark runs: durations, repetitions, rates and configurations, from
//! the command line (`quick`) and `TRELLIS_BENCH_*` variables.

use std::{path::PathBuf, time::Duration};

/// A way to serve the client's requests; see `benchmarking.md` §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Setup {
    /// Generator and nginx in the server namespace, over loopback: the physical floor.
    Direct,
    /// Client namespace to server namespace over the bridge, no proxies: the baseline.
    DirectVeth,
    /// Meshed client and server pods: the Trellis proxy pair over mTLS.
    Trellis,
    /// As `trellis`, through a Service with a table of [`crate::topology::ROUTES`] HTTPRoutes
    /// (the request matches the last, least specific one): what routing costs.
    TrellisRoutes,
}

impl Setup {
    pub(crate) const ALL: [Setup; 4] = [
        Setup::Direct,
        Setup::DirectVeth,
        Setup::Trellis,
        Setup::TrellisRoutes,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Setup::Direct => "direct",
            Setup::DirectVeth => "direct-veth",
            Setup::Trellis => "trellis",
            Setup::TrellisRoutes => "trellis-routes",
        }
    }

    fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .unwrap_or_else(|| {
                panic!(
                    "unknown configuration {name:?}; known: direct, direct-veth, trellis, trellis-routes"
                )
            })
    }
}

/// One experiment; the two kinds are never mixed (`benchmarking.md` §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Load {
    /// Open loop at this many requests per second, latency from the scheduled send time.
    Rate(u32),
    /// Closed loop with many connections: maximum throughput.
    Capacity,
}

impl Load {
    pub(crate) fn label(self) -> String {
        match self {
            Load::Rate(rps) => format!("{rps} RPS"),
            Load::Capacity => "capacity".to_string(),
        }
    }

    /// A name usable in file names.
    pub(crate) fn slug(self) -> String {
        match self {
            Load::Rate(rps) => format!("rate{rps}"),
            Load::Capacity => "capacity".to_string(),
        }
    }
}

/// Where the proxy client dials the server in the `trellis` configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dial {
    /// The server pod's IP: no Service routing in the path.
    PodIp,
    /// The Service's cluster IP.
    Service,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// `quick` or `full`.
    pub(crate) profile: &'static str,
    pub(crate) setups: Vec<Setup>,
    pub(crate) rates: Vec<u32>,
    pub(crate) capacity: bool,
    pub(crate) reps: usize,
    /// Measured time of one open-loop run.
    pub(crate) duration: Duration,
    /// Measured time of one closed-loop run.
    pub(crate) capacity_duration: Duration,
    /// Unmeasured load before every run, at the same rate and connection count.
    pub(crate) warmup: Duration,
    /// Quiet time between the last proxy's `/ready` and the idle memory reading.
    pub(crate) settle: Duration,
    /// Connections of the open-loop runs.
    pub(crate) conns: u32,
    /// Connections of the closed-loop runs.
    pub(crate) capacity_conns: u32,
    pub(crate) dial: Dial,
    /// Root of the results; each run writes into `<out>/<timestamp>/`.
    pub(crate) out: PathBuf,
    /// Length of the one extra, unmeasured run per configuration and load recorded by
    /// `perf` for a flame graph (`TRELLIS_BENCH_CPU_PROFILE` seconds; 0 records none).
    pub(crate) cpu_profile: Duration,
    /// Write the summary even when the machine was busy at the start (`TRELLIS_BENCH_FORCE=1`).
    pub(crate) force: bool,
    /// The `TRELLIS_BENCH_*` variables that were set, as `NAME=value`.
    pub(crate) overrides: Vec<String>,
}

/// Every variable [`Config::from_env`] reads.
const VARIABLES: [&str; 17] = [
    "TRELLIS_BENCH_PROFILE",
    "TRELLIS_BENCH_REPS",
    "TRELLIS_BENCH_DURATION",
    "TRELLIS_BENCH_CAPACITY_DURATION",
    "TRELLIS_BENCH_WARMUP",
    "TRELLIS_BENCH_SETTLE",
    "TRELLIS_BENCH_RATES",
    "TRELLIS_BENCH_CONNS",
    "TRELLIS_BENCH_CAPACITY_CONNS",
    "TRELLIS_BENCH_CAPACITY",
    "TRELLIS_BENCH_CONFIGS",
    "TRELLIS_BENCH_DIAL",
    "TRELLIS_BENCH_OUT",
    "TRELLIS_BENCH_PROXY",
    "TRELLIS_BENCH_CPU_PROFILE",
    "TRELLIS_BENCH_FORCE",
    "TRELLIS_KUBECONFIG",
];

impl Config {
    /// The loads of one repetition, in order.
    pub(crate) fn loads(&self) -> Vec<Load> {
        let mut loads: Vec<Load> = self.rates.iter().copied().map(Load::Rate).collect();
        if self.capacity {
            loads.push(Load::Capacity);
        }
        loads
    }

    /// Reads the configuration: `quick` as an argument (or `TRELLIS_BENCH_PROFILE=quick`)
    /// picks short runs, and each `TRELLIS_BENCH_*` variable overrides one setting.
    pub(crate) fn from_env() -> Self {
        let env = trellis_tests::cluster::env;
        let quick = std::env::args().skip(1).any(|a| a == "quick")
            || env("TRELLIS_BENCH_PROFILE").as_deref() == Some("quick");
        let secs = |name: &str, quick_default: u64, full_default: u64| {
            let s = env(name).map_or(if quick { quick_default } else { full_default }, |v| {
                v.parse()
                    .unwrap_or_else(|e| panic!("{name}={v:?} is not a number of seconds: {e}"))
            });
            Duration::from_secs(s)
        };
        let number = |name: &str, default: u64| -> u64 {
            env(name).map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
            })
        };
        let rates = env("TRELLIS_BENCH_RATES").map_or_else(
            || vec![200, 1000, 3000],
            |v| {
                v.split(',')
                    .filter(|r| !r.trim().is_empty())
                    .map(|r| {
                        r.trim()
                            .parse()
                            .unwrap_or_else(|e| panic!("TRELLIS_BENCH_RATES: {r:?}: {e}"))
                    })
                    .collect()
            },
        );
        let setups = env("TRELLIS_BENCH_CONFIGS").map_or_else(
            || Setup::ALL.to_vec(),
            |v| v.split(',').map(|s| Setup::parse(s.trim())).collect(),
        );
        assert!(
            setups.contains(&Setup::DirectVeth) && setups.contains(&Setup::Trellis),
            "TRELLIS_BENCH_CONFIGS must hold direct-veth (the baseline) and trellis"
        );
        let dial = match env("TRELLIS_BENCH_DIAL").as_deref() {
            None | Some("pod") => Dial::PodIp,
            Some("service") => Dial::Service,
            Some(other) => panic!("TRELLIS_BENCH_DIAL={other:?}: use pod or service"),
        };
        let out = env("TRELLIS_BENCH_OUT").map_or_else(
            || trellis_tests::cluster::repo_root().join("target/bench/proxy"),
            PathBuf::from,
        );
        Self {
            profile: if quick { "quick" } else { "full" },
            setups,
            rates,
            capacity: env("TRELLIS_BENCH_CAPACITY").as_deref() != Some("0"),
            reps: usize::try_from(number("TRELLIS_BENCH_REPS", 3)).unwrap(),
            duration: secs("TRELLIS_BENCH_DURATION", 5, 20),
            capacity_duration: secs("TRELLIS_BENCH_CAPACITY_DURATION", 5, 15),
            warmup: secs("TRELLIS_BENCH_WARMUP", 2, 5),
            settle: secs("TRELLIS_BENCH_SETTLE", 10, 10),
            conns: u32::try_from(number("TRELLIS_BENCH_CONNS", 16)).unwrap(),
            capacity_conns: u32::try_from(number("TRELLIS_BENCH_CAPACITY_CONNS", 64)).unwrap(),
            dial,
            out,
            cpu_profile: secs("TRELLIS_BENCH_CPU_PROFILE", 3, 5),
            force: env("TRELLIS_BENCH_FORCE").as_deref() == Some("1"),
            overrides: VARIABLES
                .iter()
                .filter_map(|name| env(name).map(|v| format!("{name}={v}")))
                .collect(),
        }
    }
}
