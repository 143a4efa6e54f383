//! CPU profiles: after the measured runs, one more run per configuration and load with
//! `perf record` attached to the target's processes (so sampling never skews a measured
//! figure), folded and drawn as a flame graph by inferno. Needs Debian's `linux-perf` and
//! `cargo install inferno`; without them the bench says so and measures without profiles.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::process::Command;

use crate::{
    config::{Config, Load},
    measure, oha,
    topology::Target,
};

/// Sampling frequency, in Hz: prime, so it does not beat with the runtime's timers.
const FREQUENCY: &str = "499";
/// Bytes of stack copied per sample for DWARF unwinding (the release build has no frame
/// pointers).
const STACK_BYTES: &str = "8192";

/// `Err` naming what to install when `perf` or inferno is missing.
pub(crate) fn available() -> Result<(), String> {
    let found = |program: &str, arg: &str| {
        std::process::Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !found("perf", "--version") {
        return Err("perf is not installed: apt-get install -y linux-perf".into());
    }
    if !found("inferno-flamegraph", "--help") {
        return Err("inferno is not installed: cargo install inferno --locked".into());
    }
    Ok(())
}

/// Profiles `target`'s processes under `load` for `config.cpu_profile`, writing
/// `<stem>.folded` and `<stem>.svg` into `dir`; returns the SVG, or why there is none.
pub(crate) async fn record(
    config: &Config,
    target: &Target,
    load: Load,
    dir: &Path,
) -> Result<PathBuf, String> {
    let stem = format!("cpu-{}-{}", load.slug(), target.setup.name());
    let data = dir.join(format!("{stem}.perf.data"));
    let pids: Vec<String> = target.processes.iter().map(|p| p.pid.to_string()).collect();
    let secs = config.cpu_profile.as_secs().to_string();
    let perf = Command::new("perf")
        .args(["record", "-F", FREQUENCY, "--call-graph"])
        .arg(format!("dwarf,{STACK_BYTES}"))
        .arg("-o")
        .arg(&data)
        .args(["-p", &pids.join(","), "--", "sleep", &secs])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("perf record: {e}"))?;
    let args = measure::oha_args(config, target, load, config.cpu_profile);
    oha::run(&target.client, &args, &dir.join(format!("{stem}.oha"))).await;
    let out = perf
        .wait_with_output()
        .await
        .map_err(|e| format!("perf record: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "perf record: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let folded = dir.join(format!("{stem}.folded"));
    let svg = dir.join(format!("{stem}.svg"));
    let title = format!("{} at {}", target.setup.name(), load.label());
    let script = format!(
        "perf script -i {data} 2>/dev/null | inferno-collapse-perf > {folded} && \
         inferno-flamegraph --title '{title}' < {folded} > {svg}",
        data = data.display(),
        folded = folded.display(),
        svg = svg.display(),
    );
    let drawn = Command::new("sh")
        .args(["-c", &script])
        .output()
        .await
        .map_err(|e| format!("fold and draw: {e}"))?;
    // The raw samples are large and the folded stacks hold what the graph shows.
    let _ = std::fs::remove_file(&data);
    if !drawn.status.success() {
        return Err(format!(
            "fold and draw: {}",
            String::from_utf8_lossy(&drawn.stderr).trim()
        ));
    }
    Ok(svg)
}

/// The `n` functions with the most samples (self time) in `folded`, as `percent name` lines.
pub(crate) fn top_self(folded: &Path, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(folded) else {
        return Vec::new();
    };
    let mut counts: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut total = 0u64;
    for line in text.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        let leaf = stack.rsplit(';').next().unwrap_or(stack);
        *counts.entry(leaf).or_default() += count;
        total += count;
    }
    let mut sorted: Vec<(&str, u64)> = counts.into_iter().collect();
    sorted.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    sorted
        .into_iter()
        .take(n)
        .map(|(name, count)| {
            format!(
                "{:5.1} % {name}",
                count as f64 * 100.0 / total.max(1) as f64
            )
        })
        .collect()
}
