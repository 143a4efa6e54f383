//! CPU time and memory of processes, from `/proc/<pid>/stat` and `/proc/<pid>/status`
//! (`benchmarking.md` §2.3).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

/// How often [`RssSampler`] reads `VmRSS`.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`).
pub(crate) fn clock_ticks() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("getconf CLK_TCK prints a number")
}

/// User plus system CPU time of every thread of `pid`, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // The command name may hold spaces and parentheses: fields count from its last ')'.
    let after_comm = &stat[stat.rfind(')').expect("a comm field") + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); `fields[0]` is field 3 (state).
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a tick count") };
    field(14) + field(15)
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    /// `VmRSS`: resident now.
    pub(crate) rss_kib: u64,
    /// `VmHWM`: the highest resident size so far.
    pub(crate) hwm_kib: u64,
}

/// `VmRSS` and `VmHWM` of `pid`; zeros if it is gone.
pub(crate) fn memory(pid: u32) -> Memory {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Memory::default();
    };
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    }
}

/// Mean and peak of the `VmRSS` samples of one process.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RssStats {
    pub(crate) mean_kib: f64,
    pub(crate) peak_kib: u64,
}

/// Reads `VmRSS` of some processes every 100 ms on a thread of its own until finished.
pub(crate) struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Vec<u64>>>,
}

impl RssSampler {
    pub(crate) fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = vec![Vec::new(); pids.len()];
            while !flag.load(Ordering::Relaxed) {
                for (pid, out) in pids.iter().zip(&mut samples) {
                    out.push(memory(*pid).rss_kib);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        Self { stop, thread }
    }

    /// Stops sampling; one [`RssStats`] per process, in the order given to `start`.
    pub(crate) fn finish(self) -> Vec<RssStats> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().expect("the sampler thread");
        samples
            .iter()
            .map(|s| RssStats {
                mean_kib: s.iter().sum::<u64>() as f64 / s.len().max(1) as f64,
                peak_kib: s.iter().copied().max().unwrap_or(0),
            })
            .collect()
    }
}
