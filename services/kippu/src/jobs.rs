//! Supervised background jobs: the ledger follower, the reconciler, tap batches, gate
//! snapshots, period closes, the delay-feed poller.
//!
//! Each job is named, has its own `[jobs.<name>]` configuration section (on/off and its
//! back-off; its interval keeps the key it always had), runs each round in its own task so a
//! panic is caught like an error, backs off exponentially after a failure and returns to its
//! interval after a success, and exports `kippu_job_last_success_seconds{job}`,
//! `kippu_job_failures_total{job}` and `kippu_job_running{job}`.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

/// A job's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSettings {
    /// Whether this process runs the job.
    pub enabled: bool,
    /// First wait after a failed round (milliseconds); doubles with each failure in a row.
    pub backoff_initial_ms: u64,
    /// Longest wait after failures in a row (seconds).
    pub backoff_max_secs: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self { enabled: true, backoff_initial_ms: 500, backoff_max_secs: 60 }
    }
}

/// The jobs' sections: `[jobs.follower]`, `[jobs.reconciler]`, `[jobs.tap_batches]`,
/// `[jobs.snapshots]`, `[jobs.period_close]`, `[jobs.delay_feed]`, `[jobs.outbox]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// The ledger follower (interval: `chain.poll_ms`).
    pub follower: JobSettings,
    /// Reconciliation of the ledger with the contracts (interval: `chain.reconcile_secs`).
    pub reconciler: JobSettings,
    /// Tap batches: rides recorded on chain, roots anchored (interval: `settlement.anchor_secs`).
    pub tap_batches: JobSettings,
    /// Signed offline snapshots to the gates (interval: `snapshot_secs` here).
    pub snapshots: SnapshotJob,
    /// Scheduled period closes (period: `settlement.period_secs`; 0 = off).
    pub period_close: JobSettings,
    /// The GTFS-Realtime poller (interval: `insurance.poll_secs`; off without `insurance.feed_url`).
    pub delay_feed: JobSettings,
    /// The chain-write outbox's sender (a round every `chain.poll_ms`, and at once when a
    /// write is recorded here). Until leader election (issue 21), run it in one process only.
    pub outbox: JobSettings,
}

/// The snapshot publisher's section: a job's settings and its interval.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotJob {
    /// Whether this process publishes snapshots.
    pub enabled: bool,
    /// Seconds between snapshots.
    pub every_secs: u64,
    /// First wait after a failed round (milliseconds).
    pub backoff_initial_ms: u64,
    /// Longest wait after failures in a row (seconds).
    pub backoff_max_secs: u64,
}

impl Default for SnapshotJob {
    fn default() -> Self {
        let d = JobSettings::default();
        Self {
            enabled: true,
            every_secs: 30,
            backoff_initial_ms: d.backoff_initial_ms,
            backoff_max_secs: d.backoff_max_secs,
        }
    }
}

impl SnapshotJob {
    /// As plain job settings.
    pub fn settings(&self) -> JobSettings {
        JobSettings {
            enabled: self.enabled,
            backoff_initial_ms: self.backoff_initial_ms,
            backoff_max_secs: self.backoff_max_secs,
        }
    }
}

/// The wait after `failures` failed rounds in a row: doubling from the initial wait, capped.
pub fn backoff(settings: &JobSettings, failures: u32) -> Duration {
    let initial = Duration::from_millis(settings.backoff_initial_ms.max(1));
    let max = Duration::from_secs(settings.backoff_max_secs.max(1)).max(initial);
    initial.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(30))).min(max)
}

/// One round of a job.
pub type Round = Box<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Runs the process's jobs.
#[derive(Default)]
pub struct Supervisor {
    tasks: Vec<JoinHandle<()>>,
    names: BTreeMap<&'static str, Duration>,
}

impl Supervisor {
    /// Runs `round` every `every` while the job is enabled: the first round at once, a failed
    /// or panicked round retried after the back-off, then the interval again once one succeeds.
    pub fn every(&mut self, name: &'static str, settings: &JobSettings, every: Duration, round: Round) {
        if !settings.enabled {
            tracing::info!(job = name, "job disabled in this process");
            return;
        }
        self.names.insert(name, every);
        let settings = settings.clone();
        self.tasks.push(tokio::spawn(async move {
            metrics::gauge!("kippu_job_running", "job" => name).set(1.0);
            let mut failures = 0u32;
            loop {
                // In its own task: a panic in a round is a failed round, not a dead job.
                let outcome = tokio::spawn(round()).await;
                let wait = match outcome {
                    Ok(Ok(())) => {
                        failures = 0;
                        metrics::gauge!("kippu_job_last_success_seconds", "job" => name).set(
                            std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0.0, |d| d.as_secs_f64()),
                        );
                        every
                    }
                    Ok(Err(e)) => {
                        failures += 1;
                        metrics::counter!("kippu_job_failures_total", "job" => name).increment(1);
                        tracing::warn!(job = name, failures, error = format!("{e:#}"), "job round failed");
                        backoff(&settings, failures)
                    }
                    Err(panic) => {
                        failures += 1;
                        metrics::counter!("kippu_job_failures_total", "job" => name).increment(1);
                        tracing::error!(job = name, failures, error = %panic, "job round panicked");
                        backoff(&settings, failures)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }));
    }

    /// Keeps a task that should run forever (a server, a subscription) running: restarted
    /// after the back-off whenever it returns or panics.
    pub fn service(&mut self, name: &'static str, settings: &JobSettings, run: Round) {
        if !settings.enabled {
            return;
        }
        self.names.insert(name, Duration::ZERO);
        let settings = settings.clone();
        self.tasks.push(tokio::spawn(async move {
            metrics::gauge!("kippu_job_running", "job" => name).set(1.0);
            let mut failures = 0u32;
            loop {
                let started = tokio::time::Instant::now();
                let outcome = tokio::spawn(run()).await;
                // A service that ran a while before stopping is restarted at once the next time.
                if started.elapsed() > Duration::from_secs(settings.backoff_max_secs.max(1)) {
                    failures = 0;
                }
                failures += 1;
                metrics::counter!("kippu_job_failures_total", "job" => name).increment(1);
                match outcome {
                    Ok(Ok(())) => tracing::warn!(job = name, "service stopped; restarting"),
                    Ok(Err(e)) => tracing::warn!(job = name, error = format!("{e:#}"), "service failed; restarting"),
                    Err(panic) => tracing::error!(job = name, error = %panic, "service panicked; restarting"),
                }
                tokio::time::sleep(backoff(&settings, failures)).await;
            }
        }));
    }

    /// Adds a plain task to stop with the others.
    pub fn task(&mut self, handle: JoinHandle<()>) {
        self.tasks.push(handle);
    }

    /// The jobs started, with their intervals (zero for services).
    pub fn started(&self) -> &BTreeMap<&'static str, Duration> {
        &self.names
    }

    /// Stops every job.
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn backoff_doubles_from_the_initial_wait_up_to_the_cap() {
        let s = JobSettings { enabled: true, backoff_initial_ms: 100, backoff_max_secs: 1 };
        let waits: Vec<u128> = (1..=6).map(|f| backoff(&s, f).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&s, u32::MAX), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_or_panicking_round_is_retried_after_the_backoff_and_the_job_goes_on() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let mut sup = Supervisor::default();
        let settings = JobSettings { enabled: true, backoff_initial_ms: 1_000, backoff_max_secs: 60 };
        sup.every(
            "test",
            &settings,
            Duration::from_secs(10),
            Box::new(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    match n {
                        0 => anyhow::bail!("first round fails"),
                        1 => panic!("second round panics"),
                        _ => Ok(()),
                    }
                })
            }),
        );
        // Rounds at 0 s (fails), 1 s (panics, after 1 s back-off), 3 s (after 2 s), then 13 s.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(sup.started().get("test"), Some(&Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_disabled_job_does_not_run() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let mut sup = Supervisor::default();
        let off = JobSettings { enabled: false, ..Default::default() };
        sup.every(
            "off",
            &off,
            Duration::from_secs(1),
            Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                Box::pin(async { Ok(()) })
            }),
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        assert!(sup.started().is_empty());
    }
}
