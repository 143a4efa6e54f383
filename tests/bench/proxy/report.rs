//! The summary: markdown tables computed from the measured runs, every figure beside the
//! `direct-veth` baseline of the same invocation, as an added value and as a ratio.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::{
    config::{Config, Load, Setup},
    measure::{Outcome, Run},
    procfs::Memory,
};

/// The configuration every figure is compared with.
const BASELINE: Setup = Setup::DirectVeth;

/// Median and range of the values of several runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spread {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Spread {
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.min,
            self.max,
            d = decimals
        )
    }
}

/// Idle memory of one process, after `/ready` and the settle time.
#[derive(Clone, Debug)]
pub(crate) struct Idle {
    pub(crate) label: String,
    pub(crate) memory: Memory,
    /// Whether this is the baseline's process.
    pub(crate) baseline: bool,
}

/// Everything the summary is made of.
pub(crate) struct Results<'a> {
    pub(crate) config: &'a Config,
    pub(crate) runs: &'a [Run],
    pub(crate) idle: &'a [Idle],
    /// Roles of each setup's processes, in the order of `Run::cpu_ms_per_1k`.
    pub(crate) roles: &'a dyn Fn(Setup) -> Vec<&'static str>,
    /// Outcome of the mTLS and connection checks, one line each.
    pub(crate) checks: &'a [String],
    /// Machine and build facts, `(key, value)`.
    pub(crate) facts: &'a [(String, String)],
}

impl Results<'_> {
    fn runs(&self, setup: Setup, load: Load) -> impl Iterator<Item = &Run> {
        self.runs
            .iter()
            .filter(move |r| r.setup == setup && r.load == load)
    }

    fn pooled(&self, setup: Setup, rate: u32) -> Option<Histogram<u64>> {
        let mut pooled: Option<Histogram<u64>> = None;
        for run in self.runs(setup, Load::Rate(rate)) {
            if let Outcome::Open(open) = &run.outcome {
                match &mut pooled {
                    Some(h) => h.add(&open.latency_us).expect("compatible histograms"),
                    None => pooled = Some(open.latency_us.clone()),
                }
            }
        }
        pooled
    }

    /// Per-run values of percentile `q` (ms) of one setup at one rate.
    fn per_run_ms(&self, setup: Setup, rate: u32, q: f64) -> Option<Spread> {
        Spread::of(
            self.runs(setup, Load::Rate(rate))
                .filter_map(|r| match &r.outcome {
                    Outcome::Open(o) => Some(ms(&o.latency_us, q)),
                    Outcome::Closed => None,
                }),
        )
    }

    fn cpu(&self, setup: Setup, load: Load, process: usize) -> Option<Spread> {
        Spread::of(
            self.runs(setup, load)
                .filter_map(|r| r.cpu_ms_per_1k.get(process).copied()),
        )
    }

    fn proxies_cpu(&self, setup: Setup, load: Load) -> Option<Spread> {
        let roles = (self.roles)(setup);
        Spread::of(self.runs(setup, load).map(|r| {
            roles
                .iter()
                .zip(&r.cpu_ms_per_1k)
                .filter(|(role, _)| role.ends_with("proxy"))
                .map(|(_, cpu)| cpu)
                .sum::<f64>()
        }))
    }

    fn failed(&self, setup: Setup, load: Load) -> u64 {
        self.runs(setup, load).map(|r| r.failed).sum()
    }

    fn unanswered(&self, setup: Setup, load: Load) -> u64 {
        self.runs(setup, load).map(|r| r.unanswered).sum()
    }

    fn throughput(&self, setup: Setup, load: Load) -> Option<Spread> {
        Spread::of(self.runs(setup, load).map(|r| r.ok_per_sec))
    }
}

/// Percentile `q` of `h` (µs) in ms.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

/// The whole summary, as markdown.
pub(crate) fn markdown(r: &Results<'_>, title: &str) -> String {
    let mut out = format!("# {title}\n\n");
    facts(&mut out, r);
    latency(&mut out, r);
    capacity(&mut out, r);
    cpu(&mut out, r);
    memory(&mut out, r);
    targets(&mut out, r);
    let _ = writeln!(out, "## Checks\n");
    for line in r.checks {
        let _ = writeln!(out, "- {line}");
    }
    out
}

fn facts(out: &mut String, r: &Results<'_>) {
    let _ = writeln!(out, "| fact | value |\n|---|---|");
    for (k, v) in r.facts {
        let _ = writeln!(out, "| {k} | {} |", v.replace('|', "\\|"));
    }
    let c = r.config;
    let _ = writeln!(
        out,
        "\nProfile `{}`: {} repetitions interleaved (every configuration once per load, then \
         the next repetition), {} s warm-up before every run, open loop {} s over {} \
         connections, closed loop {} s over {} connections, idle memory read {} s after the \
         last proxy was ready. HTTP/1.1 keep-alive, 1 KiB body, oha on CPU 0, nginx and the \
         proxies on CPU 1. Latencies: the runs' histograms pooled (run min–max in brackets), \
         from the scheduled send time. Other figures: median of runs (min–max).\n",
        c.profile,
        c.reps,
        c.warmup.as_secs(),
        c.duration.as_secs(),
        c.conns,
        c.capacity_duration.as_secs(),
        c.capacity_conns,
        c.settle.as_secs(),
    );
}

fn latency(out: &mut String, r: &Results<'_>) {
    let _ = writeln!(
        out,
        "## Latency at fixed rates (open loop)\n\n\
         | rate | configuration | p50 ms | p99 ms | p99.9 ms | max ms | added p50 ms | \
         added p99 ms | p50 ratio | p99 ratio | achieved req/s | failed / unanswered |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for &rate in &r.config.rates {
        let Some(base) = r.pooled(BASELINE, rate) else {
            continue;
        };
        for &setup in &r.config.setups {
            let Some(h) = r.pooled(setup, rate) else {
                continue;
            };
            let range = |q| {
                r.per_run_ms(setup, rate, q)
                    .map(|s| format!(" ({:.3}–{:.3})", s.min, s.max))
                    .unwrap_or_default()
            };
            let compare = if setup == BASELINE {
                "baseline | | | ".to_string()
            } else {
                format!(
                    "{:+.3} | {:+.3} | {:.2}x | {:.2}x",
                    ms(&h, 0.5) - ms(&base, 0.5),
                    ms(&h, 0.99) - ms(&base, 0.99),
                    ms(&h, 0.5) / ms(&base, 0.5).max(1e-6),
                    ms(&h, 0.99) / ms(&base, 0.99).max(1e-6),
                )
            };
            let achieved = r
                .throughput(setup, Load::Rate(rate))
                .map(|s| s.show(0))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {rate} | {} | {:.3}{} | {:.3}{} | {:.3} | {:.3} | {compare} | {achieved} | {} / {} |",
                setup.name(),
                ms(&h, 0.5),
                range(0.5),
                ms(&h, 0.99),
                range(0.99),
                ms(&h, 0.999),
                h.max() as f64 / 1000.0,
                r.failed(setup, Load::Rate(rate)),
                r.unanswered(setup, Load::Rate(rate)),
            );
        }
    }
    let _ = writeln!(out);
}

fn capacity(out: &mut String, r: &Results<'_>) {
    if !r.config.capacity {
        return;
    }
    let Some(base) = r.throughput(BASELINE, Load::Capacity) else {
        return;
    };
    let _ = writeln!(
        out,
        "## Maximum throughput (closed loop, {} connections)\n\n\
         | configuration | req/s | ratio to direct-veth | failed |\n|---|---|---|---|",
        r.config.capacity_conns
    );
    for &setup in &r.config.setups {
        let Some(t) = r.throughput(setup, Load::Capacity) else {
            continue;
        };
        let ratio = if setup == BASELINE {
            "baseline".to_string()
        } else {
            format!("{:.2}x", t.median / base.median.max(1e-6))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {ratio} | {} |",
            setup.name(),
            t.show(0),
            r.failed(setup, Load::Capacity)
        );
    }
    let _ = writeln!(out);
}

fn cpu(out: &mut String, r: &Results<'_>) {
    let _ = writeln!(
        out,
        "## CPU-ms per 1,000 requests\n\n\
         The proxies' cost beside the app's (nginx in `direct-veth`) at the same load. \
         100 CPU-ms per 1,000 requests is 0.1 core at 1,000 RPS.\n\n\
         | load | configuration | nginx | client proxy | server proxy | proxy pair | \
         pair ÷ baseline nginx |\n|---|---|---|---|---|---|---|"
    );
    let mut loads = r.config.loads();
    loads.sort();
    for load in loads {
        let Some(base) = r.cpu(BASELINE, load, 0) else {
            continue;
        };
        for &setup in &r.config.setups {
            let roles = (r.roles)(setup);
            let cell = |role: &str| {
                roles
                    .iter()
                    .position(|x| *x == role)
                    .and_then(|i| r.cpu(setup, load, i))
                    .map(|s| s.show(1))
                    .unwrap_or_else(|| "–".to_string())
            };
            let (pair, ratio) = match r.proxies_cpu(setup, load) {
                Some(p) if roles.len() > 1 => (
                    p.show(1),
                    format!("{:.2}x", p.median / base.median.max(1e-6)),
                ),
                _ => ("–".to_string(), "–".to_string()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {pair} | {ratio} |",
                load.label(),
                setup.name(),
                cell("nginx"),
                cell("client proxy"),
                cell("server proxy"),
            );
        }
    }
    let _ = writeln!(out);
}

fn memory(out: &mut String, r: &Results<'_>) {
    let base_idle = r
        .idle
        .iter()
        .find(|i| i.baseline)
        .map_or(0, |i| i.memory.rss_kib);
    let _ = writeln!(
        out,
        "## Memory\n\nIdle (after `/ready`, identity certified, no traffic yet):\n\n\
         | process | VmRSS MiB | VmHWM MiB | VmRSS ÷ baseline nginx |\n|---|---|---|---|"
    );
    for i in r.idle {
        let _ = writeln!(
            out,
            "| {}{} | {:.1} | {:.1} | {:.2}x |",
            i.label,
            if i.baseline { " (baseline)" } else { "" },
            mib(i.memory.rss_kib as f64),
            mib(i.memory.hwm_kib as f64),
            i.memory.rss_kib as f64 / base_idle.max(1) as f64,
        );
    }
    let _ = writeln!(
        out,
        "\nUnder load (`VmRSS` every 100 ms; mean: median of the runs' means, peak: highest \
         sample of all runs):\n\n\
         | load | process | mean MiB | peak MiB | baseline nginx mean / peak MiB |\n\
         |---|---|---|---|---|"
    );
    let mut loads = r.config.loads();
    loads.sort();
    for load in loads {
        let Some((base_mean, base_peak)) = rss(r, BASELINE, load, 0) else {
            continue;
        };
        let roles = (r.roles)(Setup::Trellis);
        for (i, role) in roles.iter().enumerate() {
            let Some((mean, peak)) = rss(r, Setup::Trellis, load, i) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | trellis {role} | {mean:.1} | {peak:.1} | {base_mean:.1} / {base_peak:.1} |",
                load.label()
            );
        }
    }
    let _ = writeln!(out);
}

/// Median of the runs' mean `VmRSS` and the highest sample, in MiB.
fn rss(r: &Results<'_>, setup: Setup, load: Load, process: usize) -> Option<(f64, f64)> {
    let stats: Vec<_> = r
        .runs(setup, load)
        .filter_map(|run| run.rss.get(process).copied())
        .collect();
    let mean = Spread::of(stats.iter().map(|s| s.mean_kib))?.median;
    let peak = stats.iter().map(|s| s.peak_kib).max()?;
    Some((mib(mean), mib(peak as f64)))
}

/// The targets of `benchmarking.md` §6 at the rate nearest 1,000 RPS.
fn targets(out: &mut String, r: &Results<'_>) {
    let Some(&rate) = r.config.rates.iter().min_by_key(|&&x| x.abs_diff(1000)) else {
        return;
    };
    let (Some(base), Some(mesh)) = (r.pooled(BASELINE, rate), r.pooled(Setup::Trellis, rate))
    else {
        return;
    };
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let added_p50 = ms(&mesh, 0.5) - ms(&base, 0.5);
    let added_p99 = ms(&mesh, 0.99) - ms(&base, 0.99);
    let _ = writeln!(
        out,
        "## Targets (`benchmarking.md` §6)\n\n| target | measured | verdict |\n|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| added p50 ≤ 0.3 ms at {rate} RPS | {added_p50:+.3} ms | {} |",
        verdict(added_p50 <= 0.3)
    );
    let _ = writeln!(
        out,
        "| added p99 ≤ 1 ms at {rate} RPS | {added_p99:+.3} ms | {} |",
        verdict(added_p99 <= 1.0)
    );
    let roles = (r.roles)(Setup::Trellis);
    for (i, role) in roles
        .iter()
        .enumerate()
        .filter(|(_, x)| x.ends_with("proxy"))
    {
        if let Some(idle) = r.idle.iter().find(|x| x.label == format!("trellis {role}")) {
            let mb = idle.memory.rss_kib as f64 * 1024.0 / 1e6;
            let _ = writeln!(
                out,
                "| idle RSS ≤ 10 MB, {role} | {mb:.2} MB ({:.2} MiB) | {} |",
                mib(idle.memory.rss_kib as f64),
                verdict(mb <= 10.0)
            );
        }
        if let Some(c) = r.cpu(Setup::Trellis, Load::Rate(rate), i) {
            let _ = writeln!(
                out,
                "| ≤ 100 CPU-ms per 1,000 requests, {role}, {rate} RPS | {:.1} | {} |",
                c.median,
                verdict(c.median <= 100.0)
            );
        }
        if let Some((_, peak)) = rss(r, Setup::Trellis, Load::Rate(rate), i) {
            let mb = peak * 1024.0 * 1024.0 / 1e6;
            let _ = writeln!(
                out,
                "| (tracked) RSS under load ≤ 20 MB, {role}, {rate} RPS over {} connections \
                 | peak {mb:.1} MB | {} |",
                r.config.conns,
                verdict(mb <= 20.0)
            );
        }
    }
    let _ = writeln!(out);
}
