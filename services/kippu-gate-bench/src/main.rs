//! `kippu-gate-bench`: the gate protocol end to end under load.
//!
//! N gates (real [`GateClient`](kippu_mqtt::GateClient)s, verifying the verdict
//! signatures) fire device-signed passes open-loop at M scans/s through an MQTT
//! broker (the embedded rumqttd or a private Mosquitto) to one or more validator
//! *processes* (this binary re-executed as `validator`, each one
//! [`ValidatorService`] on a shared subscription). Prints sustained scans/s and
//! gate-to-verdict latency percentiles per configuration, and where the CPU went.
//! After each configuration a few probe scans check the validators still answer.
//!
//! ```text
//! cargo run --release -p kippu-gate-bench                       # both brokers × 1, 2 validators, 5,000/s, 10 s
//! cargo run --release -p kippu-gate-bench -- --mode max         # ramp 2,000 → 10,000/s, 5 s a step
//! cargo run --release -p kippu-gate-bench -- --brokers mosquitto --validators 2 --rate 8000
//! cargo run --release -p kippu-gate-bench -- micro              # per-step CPU cost, no MQTT
//! ```
//!
//! Experiments that change what is measured (printed in the header when used):
//! `--nodelay gates,validators,broker` (TCP_NODELAY), `--unverified-gates`,
//! `--cold-validators`, `--mosquitto-conf LINE`.
//!
//! Exit status 2 when a scan was denied or failed, or a validator stopped answering.

mod cpu;
mod load;
mod micro;
mod nodelay;
mod procs;
mod world;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kippu_domain::TicketState;
use kippu_mqtt::{EmbeddedBroker, MqttUrl, TapRecorder, TicketLookup, ValidatorOptions, ValidatorService};

use crate::load::{Phase, PhaseResult};
use crate::procs::{Mosquitto, ValidatorProc};

#[derive(Parser, Debug)]
#[command(name = "kippu-gate-bench", about = "Gate protocol load bench: scans/s and gate-to-verdict latency")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Per-step CPU cost of the protocol in this process (no MQTT).
    Micro {
        /// Scans to decide (all in one pass window).
        #[arg(long, default_value_t = 100_000)]
        scans: u64,
        /// Simulated travelers (one phone each).
        #[arg(long, default_value_t = 1000)]
        travelers: u64,
        /// World seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Internal: one validator process (started by the bench itself).
    #[command(hide = true)]
    Validator(ValidatorArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Warm-up, then a fixed rate for `--seconds`.
    Fixed,
    /// Warm-up, then each `--ramp` rate for `--stage-seconds`; reports the highest sustained.
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Broker {
    /// rumqttd inside this process (`EmbeddedBroker::start`).
    Embedded,
    /// A private Mosquitto child on a free port.
    Mosquitto,
}

impl Broker {
    fn label(self) -> &'static str {
        match self {
            Broker::Embedded => "embedded",
            Broker::Mosquitto => "mosquitto",
        }
    }
}

/// Who gets `TCP_NODELAY` forced on (experiment; see `nodelay.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum NoDelay {
    /// The gates' connections (rumqttc in this process).
    Gates,
    /// The validator processes' connections (rumqttc).
    Validators,
    /// The broker's side: rumqttd's accepted sockets, or Mosquitto's `set_tcp_nodelay true`.
    Broker,
}

#[derive(Args, Debug, Clone)]
struct BenchArgs {
    /// Fixed rate, or a ramp to find the highest sustained rate.
    #[arg(long, value_enum, default_value_t = Mode::Fixed)]
    mode: Mode,
    /// Gates (MQTT connections) sharing the load evenly.
    #[arg(long, default_value_t = 50)]
    gates: usize,
    /// Offered scans per second, all gates together (fixed mode).
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Measured seconds (fixed mode).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds before the measurement (at the first rate).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Rates of the ramp (max mode).
    #[arg(long, value_delimiter = ',', default_value = "2000,4000,6000,8000,10000")]
    ramp: Vec<f64>,
    /// Seconds per ramp step (max mode).
    #[arg(long, default_value_t = 5.0)]
    stage_seconds: f64,
    /// Brokers to run through, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "embedded,mosquitto")]
    brokers: Vec<Broker>,
    /// Validator process counts to run with, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    validators: Vec<usize>,
    /// Simulated travelers (one phone each; scans cycle through them).
    #[arg(long, default_value_t = 1000)]
    travelers: u64,
    /// World seed (keys, phones, tickets).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long a gate waits for a verdict.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// p99 bound (ms) a ramp step must meet to count as sustained.
    #[arg(long, default_value_t = 10.0)]
    target_p99_ms: f64,
    /// Mosquitto binary (else `mosquitto` on PATH); the broker is skipped if absent.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto: PathBuf,
    /// Extra line for the generated mosquitto.conf (repeatable), e.g. "set_tcp_nodelay true".
    #[arg(long = "mosquitto-conf")]
    mosquitto_conf: Vec<String>,
    /// Experiment: force TCP_NODELAY (Nagle off) on these sides' MQTT sockets, which
    /// kippu-mqtt, rumqttd and the default Mosquitto config leave with Nagle on.
    #[arg(long, value_enum, value_delimiter = ',')]
    nodelay: Vec<NoDelay>,
    /// Experiment: gates trust no key, so they skip verifying verdict signatures
    /// (on this 2-core host the 50 simulated gates' Ed25519 checks compete with the
    /// broker and validators; real gates verify on their own CPUs).
    #[arg(long)]
    unverified_gates: bool,
    /// Before each configuration, wait up to this many seconds for the machine to
    /// be idle (other processes under 0.25 cores), since this host is shared.
    #[arg(long, default_value_t = 60)]
    wait_idle: u64,
    /// Start validators with an empty certificate cache instead of prewarmed: the
    /// warm-up then opens with one secp256k1 recovery per phone (a startup burst).
    #[arg(long)]
    cold_validators: bool,
    /// Where validators record taps before answering, as the platform's do: `sqlite` (a fresh
    /// file per configuration), a PostgreSQL server URL (a scratch database per configuration),
    /// or `memory` (an in-process channel: no durable write, for comparison).
    #[arg(long, default_value = "sqlite")]
    tap_store: String,
}

#[derive(Args, Debug, Clone)]
struct ValidatorArgs {
    #[arg(long)]
    mqtt: String,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    travelers: u64,
    #[arg(long)]
    tickets: u64,
    #[arg(long)]
    gates: usize,
    #[arg(long)]
    group: String,
    #[arg(long)]
    index: usize,
    /// Force TCP_NODELAY on the validator's connection once subscribed.
    #[arg(long)]
    nodelay: bool,
    /// Recover every phone's certificate (expiring then) before subscribing.
    #[arg(long)]
    prewarm_expiry: Option<u64>,
    /// Database the taps are recorded in (none: counted in memory only).
    #[arg(long)]
    taps: Option<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.cmd {
        Some(Cmd::Micro { scans, travelers, seed }) => {
            micro::run(scans, travelers, seed);
            Ok(())
        }
        Some(Cmd::Validator(a)) => tokio::runtime::Runtime::new()?.block_on(validator_main(a)),
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread().thread_name(cpu::GATE_THREADS).enable_all().build()?;
            let clean = rt.block_on(bench_main(cli.bench))?;
            if !clean {
                std::process::exit(2);
            }
            Ok(())
        }
    }
}

/// Every ticket is preloaded; a miss stays a miss.
struct NoLookup;

#[async_trait::async_trait]
impl TicketLookup for NoLookup {
    async fn ticket(&self, _id: u64) -> Option<TicketState> {
        None
    }
}

/// Counts the taps a validator recorded.
struct Counted {
    inner: Arc<dyn TapRecorder>,
    taps: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl TapRecorder for Counted {
    async fn record(&self, taps: &[kippu_domain::validation::Tap]) -> std::result::Result<(), String> {
        self.inner.record(taps).await?;
        self.taps.fetch_add(taps.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// One validator process: builds the same world, serves the shared subscription,
/// prints `ready` once subscribed, and its counts when stdin closes.
async fn validator_main(a: ValidatorArgs) -> Result<()> {
    let url = MqttUrl::parse(&a.mqtt)?;
    let mut validator = world::validator(a.seed, a.travelers, a.gates, a.tickets);
    if let Some(expiry) = a.prewarm_expiry {
        world::prewarm(&mut validator, a.seed, a.travelers, expiry);
    }
    let taps = Arc::new(AtomicU64::new(0));
    let recorder: Arc<dyn TapRecorder> = match &a.taps {
        Some(url) => Arc::new(kippu::validator::StoreTaps(kippu_store::Store::connect(url).await?)),
        None => {
            let (tap_tx, mut tap_rx) = tokio::sync::mpsc::channel::<kippu_domain::validation::Tap>(4096);
            tokio::spawn(async move { while tap_rx.recv().await.is_some() {} });
            Arc::new(tap_tx)
        }
    };
    let recorder = Arc::new(Counted { inner: recorder, taps: taps.clone() });
    let opts = ValidatorOptions {
        shared: true,
        group: a.group.clone(),
        operator: Some(world::OPERATOR.into()),
        signer: Some(Arc::new(world::verdict_key(a.seed))),
    };
    let client_id = format!("kippu-bench-validator-{}-{}", a.index, std::process::id());
    let handle = ValidatorService::spawn_with(
        &url,
        &client_id,
        opts,
        Arc::new(tokio::sync::Mutex::new(validator)),
        Arc::new(NoLookup),
        recorder,
    )
    .await?;
    let forced = if a.nodelay { nodelay::force(|_, _| true) } else { 0 };
    println!("ready pid={} nodelay={forced}", std::process::id());
    // Until the parent closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    println!("verdicts={} taps={}", handle.verdicts(), taps.load(Ordering::Relaxed));
    handle.abort();
    std::process::exit(0);
}

/// One table row: a configuration's phase.
struct Row {
    broker: &'static str,
    validators: usize,
    result: PhaseResult,
}

impl Row {
    fn header() -> String {
        format!(
            "{:<10} {:>4} {:<9} {:>9} {:>10} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7}",
            "broker",
            "val",
            "phase",
            "offered/s",
            "achieved/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "timeouts",
            "denials"
        )
    }

    fn line(&self) -> String {
        let r = &self.result;
        format!(
            "{:<10} {:>4} {:<9} {:>9.0} {:>10.0} {:>7.2} {:>7.2} {:>8.2} {:>7.1} {:>8} {:>7}",
            self.broker,
            self.validators,
            r.phase.label,
            r.phase.rate,
            r.achieved,
            r.pct_ms(0.50),
            r.pct_ms(0.99),
            r.pct_ms(0.999),
            r.pct_ms(1.0),
            r.timeouts,
            r.denials() + r.errors
        )
    }
}

/// Where `validators` processes and the gates meet.
struct Target<'a> {
    broker: Broker,
    url: MqttUrl,
    mosquitto_pid: Option<u32>,
    validators: usize,
    index: usize,
    args: &'a BenchArgs,
    phones: &'a Arc<Vec<kippu_domain::device_pass::Device>>,
    cert_expiry: u64,
}

/// Runs every configuration and prints the table; `Ok(false)` when a scan was
/// denied or failed (every scan of the bench should open).
async fn bench_main(args: BenchArgs) -> Result<bool> {
    anyhow::ensure!(args.gates > 0 && args.travelers > 0, "--gates and --travelers must be positive");
    anyhow::ensure!(args.rate > 0.0 && args.ramp.iter().all(|r| *r > 0.0), "rates must be positive");
    facts(&args);
    let now = kippu_mqtt::now_unix();
    let cert_expiry = now + 86_400;
    let phones = Arc::new(tokio::task::block_in_place(|| world::phones(args.seed, args.travelers, cert_expiry)));

    let mut embedded: Option<EmbeddedBroker> = None;
    let mut mosquitto: Option<Mosquitto> = None;
    let mut rows: Vec<Row> = Vec::new();
    let mut ramp_lines = Vec::new();
    let mut clean = true;
    let mut index = 0;
    println!("\n{}", Row::header());
    for &broker in &args.brokers {
        let (url, mosquitto_pid) = match broker {
            Broker::Embedded => {
                if embedded.is_none() {
                    // rumqttd cannot be stopped: one broker serves every embedded configuration.
                    let started = tokio::task::block_in_place(|| {
                        EmbeddedBroker::start((std::net::Ipv4Addr::LOCALHOST, 0).into())
                    })?;
                    embedded = Some(started);
                }
                (embedded.as_ref().expect("started").mqtt_url(), None)
            }
            Broker::Mosquitto => {
                if mosquitto.is_none() {
                    let Some(bin) = Mosquitto::find(&args.mosquitto) else {
                        println!("mosquitto  skipped: no {} and no mosquitto on PATH", args.mosquitto.display());
                        continue;
                    };
                    let mut conf = args.mosquitto_conf.clone();
                    if args.nodelay.contains(&NoDelay::Broker) {
                        conf.push("set_tcp_nodelay true".into());
                    }
                    mosquitto = Some(tokio::task::block_in_place(|| Mosquitto::start(&bin, &conf))?);
                }
                let m = mosquitto.as_ref().expect("started");
                (MqttUrl::parse(&m.url())?, Some(m.pid))
            }
        };
        for &validators in &args.validators {
            index += 1;
            wait_idle(args.wait_idle).await;
            let target = Target {
                broker,
                url: url.clone(),
                mosquitto_pid,
                validators,
                index,
                args: &args,
                phones: &phones,
                cert_expiry,
            };
            match run_config(&target).await {
                Ok((results, stats)) => {
                    for r in results.into_iter().filter(|r| r.phase.measured) {
                        let row = Row { broker: broker.label(), validators, result: r };
                        println!("{}", row.line());
                        let r = &row.result;
                        if let Some(cpu) = &r.cpu {
                            println!("    cpu cores: {}", cpu.line());
                        }
                        println!("    schedule lag p99 {:.2} ms", r.lag_p99_us as f64 / 1000.0);
                        if r.denials() + r.errors > 0 {
                            clean = false;
                            println!(
                                "    WARNING: not every scan opened: {} of {} opened, denials {:?}, {} errors",
                                r.opened, r.sent, r.denied, r.errors
                            );
                        }
                        rows.push(row);
                    }
                    for line in &stats {
                        println!("    {line}");
                    }
                    if stats.iter().any(|l| l.contains("NOT ANSWERING")) {
                        clean = false;
                    }
                    if args.mode == Mode::Max {
                        let mine: Vec<&Row> =
                            rows.iter().filter(|r| r.broker == broker.label() && r.validators == validators).collect();
                        let best = mine
                            .iter()
                            .filter(|r| r.result.sustained(args.target_p99_ms))
                            .map(|r| r.result.phase.rate)
                            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
                        let line = format!(
                            "{:<10} {:>4}  max sustained (achieved ≥ 99 %, p99 ≤ {} ms): {}",
                            broker.label(),
                            validators,
                            args.target_p99_ms,
                            best.map_or("none of the steps".into(), |b| format!("{b:.0} scans/s"))
                        );
                        println!("    {}", line.split_whitespace().skip(2).collect::<Vec<_>>().join(" "));
                        ramp_lines.push(line);
                    }
                }
                Err(e) => {
                    clean = false;
                    println!("{:<10} {:>4} FAILED: {e:#}", broker.label(), validators);
                }
            }
        }
    }
    drop(mosquitto);
    println!("\nSummary ({} gates, {} s per measurement):", args.gates, measured_secs(&args));
    println!("{}", Row::header());
    for r in &rows {
        println!("{}", r.line());
    }
    for l in &ramp_lines {
        println!("{l}");
    }
    Ok(clean)
}

fn measured_secs(args: &BenchArgs) -> f64 {
    match args.mode {
        Mode::Fixed => args.seconds,
        Mode::Max => args.stage_seconds,
    }
}

/// The phases of one configuration, grouped: a group's passes are generated
/// together and its phases run back to back.
fn plan(args: &BenchArgs) -> Vec<Vec<Phase>> {
    let warm = |rate| Phase { label: "warm-up".into(), rate, secs: args.warmup, measured: false };
    let mut groups = match args.mode {
        Mode::Fixed => vec![vec![
            warm(args.rate),
            Phase { label: "measure".into(), rate: args.rate, secs: args.seconds, measured: true },
        ]],
        Mode::Max => args
            .ramp
            .iter()
            .map(|&rate| {
                vec![Phase { label: format!("ramp {rate:.0}"), rate, secs: args.stage_seconds, measured: true }]
            })
            .collect(),
    };
    if args.mode == Mode::Max {
        groups[0].insert(0, warm(args.ramp[0]));
    }
    for g in &mut groups {
        g.retain(|p| p.scans() > 0);
    }
    groups
}

/// The database a configuration's validators record their taps in, made for it alone.
enum TapStore {
    Memory,
    Sqlite(PathBuf),
    Postgres(kippu_store::scratch::ScratchDatabase),
}

impl TapStore {
    /// Creates it with its schema, before any validator starts (two validators migrating one
    /// fresh SQLite file at once would race).
    async fn create(kind: &str, tag: &str) -> Result<Self> {
        let store = match kind {
            "memory" => return Ok(Self::Memory),
            "sqlite" => Self::Sqlite(std::env::temp_dir().join(format!("kippu-gate-bench-{tag}.db"))),
            pg if pg.starts_with("postgres") => {
                Self::Postgres(kippu_store::scratch::ScratchDatabase::create(pg, "kippu_bench").await?)
            }
            other => anyhow::bail!("--tap-store: sqlite, memory or a postgres:// URL, not {other:?}"),
        };
        let url = store.url().expect("a database");
        kippu_store::Store::connect(&url).await.with_context(|| format!("tap store {url}"))?;
        Ok(store)
    }

    fn url(&self) -> Option<String> {
        match self {
            Self::Memory => None,
            Self::Sqlite(path) => Some(format!("sqlite://{}", path.display())),
            Self::Postgres(db) => Some(db.url.clone()),
        }
    }

    /// Removes it once the validators are gone.
    async fn remove(self) {
        match self {
            Self::Memory => {}
            Self::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Self::Postgres(db) => {
                if let Err(e) = db.drop_now().await {
                    eprintln!("scratch database not dropped: {e}");
                }
            }
        }
    }
}

/// One broker × validator-count configuration: start the validators, connect the
/// gates, run the phases, tear down. Returns every phase and the validators' counts.
async fn run_config(t: &Target<'_>) -> Result<(Vec<PhaseResult>, Vec<String>)> {
    let args = t.args;
    let groups = plan(args);
    let tickets: u64 = groups.iter().flatten().map(Phase::scans).sum::<u64>() + probe_phase().scans();
    let group = format!("bench{}x{}", std::process::id(), t.index);
    let taps = TapStore::create(&args.tap_store, &group).await?;
    let mut procs = Vec::new();
    for i in 0..t.validators {
        let argv: Vec<String> = [
            ("--mqtt", t.url.to_string()),
            ("--seed", args.seed.to_string()),
            ("--travelers", args.travelers.to_string()),
            ("--tickets", tickets.to_string()),
            ("--gates", args.gates.to_string()),
            ("--group", group.clone()),
            ("--index", i.to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .chain(args.nodelay.contains(&NoDelay::Validators).then(|| "--nodelay".to_owned()))
        .chain(
            (!args.cold_validators)
                .then(|| ["--prewarm-expiry".to_owned(), t.cert_expiry.to_string()])
                .into_iter()
                .flatten(),
        )
        .chain(taps.url().into_iter().flat_map(|u| ["--taps".to_owned(), u.to_owned()]))
        .collect();
        procs.push(ValidatorProc::spawn(&argv).await.with_context(|| format!("validator {}", i + 1))?);
    }
    let mut watch = cpu::Watch::default();
    for (i, p) in procs.iter().enumerate() {
        watch.children.push((format!("validator#{}", i + 1), p.pid));
    }
    if let Some(pid) = t.mosquitto_pid {
        watch.children.push(("mosquitto".into(), pid));
    }
    let gates = load::connect_gates(&t.url, args.gates, args.seed, !args.unverified_gates).await?;
    let port = t.url.port;
    let mut forced = Vec::new();
    if args.nodelay.contains(&NoDelay::Gates) {
        forced.push(format!("gates {} sockets", nodelay::force(|_, peer| peer.port() == port)));
    }
    if args.nodelay.contains(&NoDelay::Broker) {
        match t.broker {
            Broker::Embedded => {
                forced.push(format!("broker {} sockets", nodelay::force(|local, _| local.port() == port)))
            }
            Broker::Mosquitto => forced.push("broker set_tcp_nodelay true".into()),
        }
    }
    if args.nodelay.contains(&NoDelay::Validators) {
        forced.push("validators (see their ready line)".into());
    }
    if !forced.is_empty() {
        println!("    TCP_NODELAY forced on: {}", forced.join(", "));
    }

    let timeout = Duration::from_millis(args.timeout_ms);
    let mut results = Vec::new();
    let mut notes = Vec::new();
    let mut slot = 0u64;
    for phases in groups {
        let done = run_group(t, &gates, &phases, &mut slot, timeout, &watch).await?;
        let overloaded = done.last().is_some_and(|r| r.timeouts * 100 > r.sent);
        results.extend(done);
        if overloaded && args.mode == Mode::Max {
            notes.push(format!(
                "ramp stopped after {:.0}/s: more than 1 % of its scans timed out",
                results.last().map_or(0.0, |r: &PhaseResult| r.phase.rate)
            ));
            break;
        }
    }
    // Are the validators still answering once the load is over? An overloaded
    // validator should catch up; one that stays silent has wedged.
    tokio::time::sleep(timeout + Duration::from_secs(1)).await;
    let probe = [probe_phase()];
    let probed = run_group(t, &gates, &probe, &mut slot, timeout, &watch).await?;
    let probed = probed.first().map_or(0, |r| r.opened);
    load::disconnect_gates(gates).await;
    let mut stats = notes;
    for (i, p) in procs.into_iter().enumerate() {
        stats.push(format!("validator#{}: {}", i + 1, p.stop().await));
    }
    taps.remove().await;
    let n = probe[0].scans();
    let verdict = if probed == n { "validators alive" } else { "VALIDATORS NOT ANSWERING (wedged?)" };
    stats.push(format!("after the load, {probed}/{n} probe scans opened: {verdict}"));
    Ok((results, stats))
}

/// 20 scans at 20/s, sent 3 s after the load ended.
fn probe_phase() -> Phase {
    Phase { label: "probe".into(), rate: 20.0, secs: 1.0, measured: false }
}

/// Generates the passes of `phases` (slots from `slot` on, each signed for the
/// window it is scheduled in) and runs them back to back.
async fn run_group(
    t: &Target<'_>,
    gates: &[Arc<kippu_mqtt::GateClient>],
    phases: &[Phase],
    slot: &mut u64,
    timeout: Duration,
    watch: &cpu::Watch,
) -> Result<Vec<PhaseResult>> {
    let scans: u64 = phases.iter().map(Phase::scans).sum();
    // Plan the start after generation (timed on this machine, with margin).
    let lead = gen_secs(t.phones, scans) * 1.5 + 0.3;
    let start_unix = unix_f64() + lead;
    let phones = t.phones.clone();
    let plan = phases.to_vec();
    let base = *slot;
    let passes = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let (mut from, mut at) = (base, start_unix);
        for p in &plan {
            let n = p.scans();
            let (rate, phase_at, phase_from) = (p.rate, at, from);
            out.push(world::passes(&phones, from..from + n, |k| (phase_at + (k - phase_from) as f64 / rate) as u64));
            from += n;
            at += p.secs;
        }
        out
    })
    .await?;
    *slot += scans;
    let wait = (start_unix - unix_f64()).max(0.0);
    let start = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
    Ok(load::drive(gates, phases, passes, start, timeout, watch).await)
}

/// Waits (up to `max_secs`) until the machine's CPU use over a second is under
/// 0.25 cores, and says so when it had to wait or gave up.
async fn wait_idle(max_secs: u64) {
    let watch = cpu::Watch::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(max_secs);
    let mut waited = false;
    loop {
        let before = watch.snapshot();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let busy = before.until(&watch.snapshot()).machine;
        if busy < 0.25 {
            if waited {
                println!("    (waited for other processes to go idle)");
            }
            return;
        }
        if std::time::Instant::now() >= deadline {
            println!(
                "    (machine still {busy:.2} cores busy with other processes after {max_secs} s; running anyway)"
            );
            return;
        }
        waited = true;
    }
}

/// Seconds to generate `n` passes on this machine (timed on a small sample).
fn gen_secs(phones: &[kippu_domain::device_pass::Device], n: u64) -> f64 {
    let sample = 400.min(n.max(1));
    let t = std::time::Instant::now();
    let _ = world::passes(phones, 0..sample, |_| 0);
    t.elapsed().as_secs_f64() * n as f64 / sample as f64
}

fn unix_f64() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Machine and run facts, so figures are read against what produced them.
fn facts(args: &BenchArgs) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown");
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("kippu-gate-bench");
    println!("  machine: nproc {nproc}, {model}, kernel {}", read("/proc/sys/kernel/osrelease").trim());
    println!("  load average at start: {}", read("/proc/loadavg").trim());
    if cfg!(debug_assertions) {
        println!("  WARNING: debug build; run with --release for meaningful figures");
    }
    let mosq = Mosquitto::find(&args.mosquitto).map(|b| format!("{} ({})", Mosquitto::version(&b), b.display()));
    println!("  mosquitto: {}", mosq.unwrap_or_else(|| "not found".into()));
    let load = match args.mode {
        Mode::Fixed => format!("{:.0} scans/s for {} s after {} s warm-up", args.rate, args.seconds, args.warmup),
        Mode::Max => {
            format!("ramp {:?} scans/s, {} s a step after {} s warm-up", args.ramp, args.stage_seconds, args.warmup)
        }
    };
    println!(
        "  load: {} gates, {load}, {} travelers, verdict timeout {} ms, device passes (KP2), signed verdicts",
        args.gates, args.travelers, args.timeout_ms
    );
    if args.unverified_gates {
        println!("  EXPERIMENT: gates do not verify verdict signatures");
    }
    if !args.nodelay.is_empty() {
        println!("  EXPERIMENT: TCP_NODELAY forced on {:?}", args.nodelay);
    }
    println!(
        "  validators: {}",
        if args.cold_validators {
            "cold (empty certificate cache at start)"
        } else {
            "certificate cache prewarmed (one recovery per phone before subscribing)"
        }
    );
    println!("  latency: client side, from just before the gate publishes its scan (QoS 1) to the verified verdict");
}
