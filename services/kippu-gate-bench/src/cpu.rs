//! CPU accounting from /proc: who burnt the machine's cores during a measured phase.
//!
//! This process is split by thread name (the gates' runtime, the embedded broker's
//! rumqttd threads, the rest); child processes (validators, Mosquitto) are counted
//! whole; the machine line is /proc/stat, so load from outside the bench (other
//! builds on a shared host) shows up as "other".

use std::collections::BTreeMap;
use std::time::Instant;

/// Linux reports times in USER_HZ clock ticks, 100 per second on every mainstream arch.
const TICKS_PER_SEC: f64 = 100.0;
/// Thread-name prefix of the bench's own tokio workers.
pub(crate) const GATE_THREADS: &str = "bench-gates";

/// Processes to watch besides this one: (label, pid).
#[derive(Debug, Clone, Default)]
pub(crate) struct Watch {
    pub(crate) children: Vec<(String, u32)>,
}

/// One reading.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    at: Instant,
    ticks: BTreeMap<String, u64>,
    machine_busy: u64,
}

/// CPU use between two snapshots, in cores (1.0 = one core fully busy).
#[derive(Debug, Clone)]
pub(crate) struct Usage {
    pub(crate) parts: Vec<(String, f64)>,
    pub(crate) machine: f64,
}

impl Usage {
    /// `gates 0.45  broker 0.60 … | machine 1.90 of 2, other 0.10`.
    pub(crate) fn line(&self) -> String {
        let ours: f64 = self.parts.iter().map(|(_, c)| c).sum();
        let parts: Vec<String> = self.parts.iter().map(|(l, c)| format!("{l} {:.2}", c)).collect();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        format!(
            "{} | bench total {:.2}, machine {:.2} of {cores}, other processes {:.2}",
            parts.join(", "),
            ours,
            self.machine,
            (self.machine - ours).max(0.0)
        )
    }
}

impl Watch {
    /// Reads every counter now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut ticks = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for task in dir.flatten() {
                if let Some((comm, t)) = read_stat(&task.path().join("stat")) {
                    let label = if comm.starts_with(GATE_THREADS) {
                        "gates+load"
                    } else if comm.starts_with("router-") || comm.starts_with("kippu-v4") || comm == "timer" {
                        "embedded broker"
                    } else {
                        "bench other"
                    };
                    *ticks.entry(label.to_owned()).or_default() += t;
                }
            }
        }
        for (label, pid) in &self.children {
            if let Some((_, t)) = read_stat(std::path::Path::new(&format!("/proc/{pid}/stat"))) {
                *ticks.entry(label.clone()).or_default() += t;
            }
        }
        Snapshot { at: Instant::now(), ticks, machine_busy: machine_busy().unwrap_or(0) }
    }
}

impl Snapshot {
    /// Use from `self` (earlier) to `later`.
    pub(crate) fn until(&self, later: &Snapshot) -> Usage {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let cores = |from: u64, to: u64| to.saturating_sub(from) as f64 / TICKS_PER_SEC / secs;
        let parts = later
            .ticks
            .iter()
            .map(|(label, t)| (label.clone(), cores(self.ticks.get(label).copied().unwrap_or(0), *t)))
            .collect();
        Usage { parts, machine: cores(self.machine_busy, later.machine_busy) }
    }
}

/// (comm, utime + stime) of a /proc stat file.
fn read_stat(path: &std::path::Path) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // After the comm: state(3) ppid(4) … utime(14) stime(15); index 0 here is field 3.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Busy ticks of the whole machine (user, nice, system, irq, softirq, steal).
fn machine_busy() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0))
}
