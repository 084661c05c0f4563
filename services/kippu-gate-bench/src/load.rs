//! The open-loop load: gates fire scans on a fixed schedule whatever the
//! verdicts do, and each scan's gate-to-verdict latency is recorded.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use kippu_domain::DenyReason;
use kippu_mqtt::{GateClient, GateOptions, MqttUrl};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cpu::{Usage, Watch};
use crate::world;

/// One phase of constant offered rate.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    pub(crate) label: String,
    pub(crate) rate: f64,
    pub(crate) secs: f64,
    /// Warm-up phases run but are not reported.
    pub(crate) measured: bool,
}

impl Phase {
    pub(crate) fn scans(&self) -> u64 {
        (self.rate * self.secs).round() as u64
    }
}

/// How one scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Open,
    Denied(DenyReason),
    Timeout,
    Error,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Publish-to-verdict (the `scan` call), microseconds.
    latency_us: u32,
    /// How late the scan left against its schedule, microseconds.
    lag_us: u32,
    /// When the verdict came, microseconds after the phase's start.
    done_us: u64,
    outcome: Outcome,
}

/// Figures of one phase.
#[derive(Debug, Clone)]
pub(crate) struct PhaseResult {
    pub(crate) phase: Phase,
    pub(crate) sent: u64,
    pub(crate) opened: u64,
    pub(crate) denied: Vec<(DenyReason, u64)>,
    pub(crate) timeouts: u64,
    pub(crate) errors: u64,
    /// Opened scans per second, from the phase's start to the last verdict.
    pub(crate) achieved: f64,
    /// Sorted latencies in microseconds (timeouts and errors excluded).
    latencies: Vec<u32>,
    pub(crate) lag_p99_us: u32,
    pub(crate) cpu: Option<Usage>,
}

impl PhaseResult {
    /// Latency percentile in milliseconds (`q` in 0..=1).
    pub(crate) fn pct_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let idx = ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[idx] as f64 / 1000.0
    }

    pub(crate) fn denials(&self) -> u64 {
        self.denied.iter().map(|(_, n)| n).sum()
    }

    /// Whether the rate was sustained: ≥ 99 % of it opened on time and p99 within `p99_ms`.
    pub(crate) fn sustained(&self, p99_ms: f64) -> bool {
        self.achieved >= 0.99 * self.phase.rate && self.pct_ms(0.99) <= p99_ms
    }
}

/// `gates` gates, connected and trusting the validators' verdict key.
/// With `verify` off they trust no key and believe every verdict unchecked.
pub(crate) async fn connect_gates(
    url: &MqttUrl,
    gates: usize,
    seed: u64,
    verify: bool,
) -> Result<Vec<Arc<GateClient>>> {
    let trusted = if verify { vec![world::verdict_key(seed).verifying_key()] } else { Vec::new() };
    let mut set = JoinSet::new();
    for g in 0..gates {
        let (url, trusted) = (url.clone(), trusted.clone());
        set.spawn(async move {
            let c =
                GateClient::connect_with(&url, world::gate_path(g), GateOptions { trusted_validators: trusted }).await;
            (g, c)
        });
    }
    let mut out: Vec<Option<Arc<GateClient>>> = (0..gates).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (g, c) = joined?;
        out[g] = Some(Arc::new(c.with_context(|| format!("gate {g} could not connect"))?));
    }
    Ok(out.into_iter().map(|c| c.expect("every gate joined")).collect())
}

/// Disconnects the gates cleanly (their in-flight scans must be over).
pub(crate) async fn disconnect_gates(gates: Vec<Arc<GateClient>>) {
    for g in gates {
        if let Ok(g) = Arc::try_unwrap(g) {
            g.disconnect().await;
        }
    }
}

/// Runs `phases` back to back from `start`, phase `i` presenting `passes[i]`,
/// scan `j` overall going to gate `j % gates`. Scans leave on schedule whether or
/// not earlier verdicts came back. CPU is sampled over each measured phase.
pub(crate) async fn drive(
    gates: &[Arc<GateClient>],
    phases: &[Phase],
    passes: Vec<Vec<String>>,
    start: Instant,
    timeout: Duration,
    watch: &Watch,
) -> Vec<PhaseResult> {
    let mut set: JoinSet<(usize, Sample)> = JoinSet::new();
    let mut phase_start = start;
    let mut starts = Vec::new();
    let mut cpu = Vec::new();
    let mut slot = 0usize;
    for (i, (phase, texts)) in phases.iter().zip(passes).enumerate() {
        tokio::time::sleep_until(phase_start).await;
        let before = phase.measured.then(|| watch.snapshot());
        starts.push(phase_start);
        let step = 1.0 / phase.rate;
        for (k, pass) in texts.into_iter().enumerate() {
            let due = phase_start + Duration::from_secs_f64(k as f64 * step);
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            let gate = gates[slot % gates.len()].clone();
            slot += 1;
            set.spawn(async move {
                let t0 = Instant::now();
                let verdict = gate.scan(&pass, timeout).await;
                let t1 = Instant::now();
                let outcome = match verdict {
                    Ok(v) if v.open => Outcome::Open,
                    Ok(v) if v.reason == Some(DenyReason::Timeout) => Outcome::Timeout,
                    Ok(v) => Outcome::Denied(v.reason.unwrap_or(DenyReason::MalformedScan)),
                    Err(e) => {
                        tracing::warn!(error = %e, "scan failed");
                        Outcome::Error
                    }
                };
                let us = |d: Duration| d.as_micros().min(u32::MAX as u128) as u32;
                let sample = Sample {
                    latency_us: us(t1 - t0),
                    lag_us: us(t0.saturating_duration_since(due)),
                    done_us: (t1 - phase_start).as_micros() as u64,
                    outcome,
                };
                (i, sample)
            });
        }
        phase_start += Duration::from_secs_f64(phase.secs);
        if let Some(before) = before {
            tokio::time::sleep_until(phase_start).await;
            cpu.push((i, before.until(&watch.snapshot())));
        }
    }
    let mut samples: Vec<Vec<Sample>> = phases.iter().map(|_| Vec::new()).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, s)) = joined {
            samples[i].push(s);
        }
    }
    phases
        .iter()
        .zip(samples)
        .enumerate()
        .map(|(i, (phase, s))| {
            let usage = cpu.iter().find(|(p, _)| *p == i).map(|(_, u)| u.clone());
            summarize(phase.clone(), s, usage)
        })
        .collect()
}

fn summarize(phase: Phase, samples: Vec<Sample>, cpu: Option<Usage>) -> PhaseResult {
    let mut denied: Vec<(DenyReason, u64)> = Vec::new();
    let (mut opened, mut timeouts, mut errors) = (0, 0, 0);
    let mut latencies = Vec::with_capacity(samples.len());
    let mut lags: Vec<u32> = samples.iter().map(|s| s.lag_us).collect();
    let mut last_done = 0u64;
    for s in &samples {
        match s.outcome {
            Outcome::Open => {
                opened += 1;
                latencies.push(s.latency_us);
                last_done = last_done.max(s.done_us);
            }
            Outcome::Denied(r) => {
                latencies.push(s.latency_us);
                match denied.iter_mut().find(|(d, _)| *d == r) {
                    Some((_, n)) => *n += 1,
                    None => denied.push((r, 1)),
                }
            }
            Outcome::Timeout => timeouts += 1,
            Outcome::Error => errors += 1,
        }
    }
    latencies.sort_unstable();
    lags.sort_unstable();
    let lag_p99_us = lags.get((lags.len() * 99 / 100).min(lags.len().saturating_sub(1))).copied().unwrap_or(0);
    // The span covers the whole offered schedule even if the last verdicts came early.
    let span = (last_done as f64 / 1e6).max(phase.secs);
    let achieved = if opened == 0 { 0.0 } else { opened as f64 / span };
    PhaseResult {
        sent: samples.len() as u64,
        phase,
        opened,
        denied,
        timeouts,
        errors,
        achieved,
        latencies,
        lag_p99_us,
        cpu,
    }
}
