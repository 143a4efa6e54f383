//! Facts about the machine and the build, recorded beside every result.

use std::process::Command;

/// The first line of what `program args` prints, or `unknown`.
fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// The time now in UTC, as `20260101T120000Z` (`compact`) or `2026-01-01 12:00:00 UTC`.
pub(crate) fn utc_now(compact: bool) -> String {
    let format = if compact {
        "+%Y%m%dT%H%M%SZ"
    } else {
        "+%Y-%m-%d %H:%M:%S UTC"
    };
    first_line("date", &["-u", format])
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn commit() -> String {
    let root = trellis_tests::cluster::repo_root();
    let root = root.to_string_lossy();
    let head = first_line("git", &["-C", &root, "rev-parse", "--short=12", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", &root, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes in the work tree)")
    } else {
        head
    }
}

/// Whether bridged frames cross the root namespace's iptables (`br_netfilter`).
fn br_netfilter() -> String {
    match std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables") {
        Ok(v) => format!("loaded, bridge-nf-call-iptables={}", v.trim()),
        Err(_) => "not loaded".to_string(),
    }
}

/// The 1, 5 and 15 minute load averages: other work on the machine shows up here.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The 1-minute load average per core when it is above 1.0 (the machine is doing other work
/// and the figures would not be comparable), else `None`.
pub(crate) fn busy() -> Option<f64> {
    let one: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let per_core = one / cores as f64;
    (per_core > 1.0).then_some(per_core)
}

/// The proxy binary measured: its path, the cargo profile it was built with (from its
/// `target/<profile>/` directory) and its SHA-256.
pub(crate) fn binary(path: &std::path::Path) -> String {
    let profile = path
        .parent()
        .and_then(|dir| dir.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| ["release", "debug", "bench"].contains(&name.as_str()))
        .map_or_else(
            || "profile unknown (not under target/<profile>/)".to_string(),
            |p| format!("profile {p}"),
        );
    let sha = first_line("sha256sum", &[&path.display().to_string()]);
    let sha = sha.split_whitespace().next().unwrap_or("?").to_string();
    format!("{}, {profile}, sha256 {sha}", path.display())
}

/// `(fact, value)` pairs for the report.
pub(crate) fn facts(oha: &str, nginx: &str, proxy_binary: &str) -> Vec<(String, String)> {
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_default();
    [
        ("date", utc_now(false)),
        ("commit", commit()),
        ("rustc", first_line("rustc", &["--version"])),
        ("kernel", first_line("uname", &["-sr"])),
        (
            "CPU",
            format!("{} × {}", first_line("nproc", &["--all"]), cpu_model()),
        ),
        ("memory", mem_total),
        ("oha", oha.to_string()),
        ("nginx", nginx.to_string()),
        ("proxy binary", binary(std::path::Path::new(proxy_binary))),
        ("br_netfilter", br_netfilter()),
        ("load average at the start", load_average()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
