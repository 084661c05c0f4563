//! `gate-firmware-sim`: a ticket gate on the command line.
//!
//! ```text
//! gate-firmware-sim --mqtt mqtt://127.0.0.1:18830 --gate metro/central/g1 scan pass.png
//! # with offline mode: trusted validator keys and a local store
//! gate-firmware-sim --gate metro/central/g1 --trust 0x3b6a… --snapshot-dir /var/lib/gate text KP2.…
//! gate-firmware-sim --snapshot-dir /var/lib/gate journal
//! # an inspector's handheld: the pass against a snapshot file, no MQTT
//! gate-firmware-sim --trust 0x3b6a… inspect --snapshot snapshot.json --text KP2.…
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use ed25519_dalek::VerifyingKey;
use gate_firmware_sim::{
    display, inspect, load_snapshot, read_qr, GateSetup, Journal, OfflineOptions, SimGate, JOURNAL_FILE, SNAPSHOT_FILE,
};
use kippu_domain::card::Card;

#[derive(Parser)]
#[command(about = "A simulated Kippu ticket gate")]
struct Cli {
    /// Broker URL.
    #[arg(long, env = "KIPPU_MQTT_URL", default_value = "mqtt://127.0.0.1:18830")]
    mqtt: String,
    /// Gate path `operator/station/gate`.
    #[arg(long, default_value = "metro/central/g1")]
    gate: String,
    /// Trusted validator public key (Ed25519, 32 bytes hex); repeat or comma-separate.
    /// Verdicts and snapshots not signed by one of them are ignored.
    #[arg(long = "trust", env = "KIPPU_VALIDATOR_KEYS", value_delimiter = ',')]
    trust: Vec<String>,
    /// Directory for the last verified snapshot (and the journal unless --journal).
    /// With --trust this enables offline mode.
    #[arg(long, env = "KIPPU_GATE_SNAPSHOT_DIR")]
    snapshot_dir: Option<PathBuf>,
    /// Journal of entries allowed offline (JSON lines). With --trust this enables offline mode.
    #[arg(long, env = "KIPPU_GATE_JOURNAL")]
    journal: Option<PathBuf>,
    /// How long a scan waits for its verdict, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Offline anti-passback with neighbours: where this gate listens on the station LAN (UDP).
    #[arg(long, requires = "station_key")]
    station_listen: Option<std::net::SocketAddr>,
    /// File with this gate's Ed25519 secret (hex), which signs the entries it tells neighbours.
    #[arg(long)]
    station_key: Option<PathBuf>,
    /// A neighbour: `op/station/gate=<public key hex>@<ip:port>`; repeat for each.
    #[arg(long = "neighbour")]
    neighbours: Vec<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read a QR image (PNG) and present it.
    Scan {
        /// Image file.
        image: PathBuf,
    },
    /// Present QR text directly (as a handheld reader would send it).
    Text {
        /// The QR text.
        text: String,
    },
    /// Inspector's handheld: check a pass against a snapshot file, without MQTT.
    Inspect(InspectArgs),
    /// Show the taps allowed offline and not yet acknowledged by a validator.
    Journal {
        /// Print the pending taps as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Connect, forward the journaled taps and report.
    Forward,
    /// Make a simulated contactless card: writes its secret to FILE and prints its card
    /// number (the public key a traveler binds to a ticket on the ticket page).
    NewCard {
        /// Where the card's secret goes (hex).
        file: PathBuf,
    },
    /// Hold a simulated card (made by `new-card`) to the reader: challenge, answer, verdict.
    Tap {
        /// The card's secret file.
        card: PathBuf,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "pass")]
struct PassInput {
    /// A QR image (PNG).
    #[arg(long)]
    image: Option<PathBuf>,
    /// The QR text.
    #[arg(long)]
    text: Option<String>,
}

#[derive(Args)]
struct InspectArgs {
    /// Signed snapshot file (default: `<snapshot-dir>/snapshot.json`).
    #[arg(long)]
    snapshot: Option<PathBuf>,
    #[command(flatten)]
    pass: PassInput,
}

fn trusted_keys(hexes: &[String]) -> anyhow::Result<Vec<VerifyingKey>> {
    hexes
        .iter()
        .filter(|h| !h.trim().is_empty())
        .map(|h| {
            let raw =
                hex::decode(h.trim().trim_start_matches("0x")).with_context(|| format!("--trust {h:?} is not hex"))?;
            let raw: [u8; 32] = raw.try_into().map_err(|_| anyhow::anyhow!("--trust {h:?} is not 32 bytes"))?;
            VerifyingKey::from_bytes(&raw).with_context(|| format!("--trust {h:?} is not an Ed25519 public key"))
        })
        .collect()
}

fn read_card(path: &std::path::Path) -> anyhow::Result<Card> {
    let text = std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))?;
    let raw = hex::decode(text.trim()).with_context(|| format!("{} is not a card file", path.display()))?;
    let secret: [u8; 32] = raw.try_into().map_err(|_| anyhow::anyhow!("{} is not a card file", path.display()))?;
    Ok(Card::from_secret(secret))
}

impl Cli {
    fn journal_path(&self) -> Option<PathBuf> {
        self.journal.clone().or_else(|| self.snapshot_dir.as_ref().map(|d| d.join(JOURNAL_FILE)))
    }

    fn setup(&self, trusted: Vec<VerifyingKey>) -> anyhow::Result<GateSetup> {
        let mut setup = GateSetup::new(&self.mqtt, &self.gate);
        setup.timeout = Duration::from_millis(self.timeout_ms);
        if let (false, Some(journal)) = (trusted.is_empty(), self.journal_path()) {
            let mut opts = OfflineOptions::in_dir(self.snapshot_dir.clone().unwrap_or_default());
            opts.journal = journal;
            opts.snapshot_dir = self.snapshot_dir.clone();
            opts.station = self.station()?;
            setup.offline = Some(opts);
        }
        setup.trusted_validators = trusted;
        Ok(setup)
    }

    fn station(&self) -> anyhow::Result<Option<gate_firmware_sim::StationLink>> {
        let (Some(bind), Some(key_file)) = (self.station_listen, &self.station_key) else { return Ok(None) };
        let key = read_card(key_file).map(|c| ed25519_dalek::SigningKey::from_bytes(&c.secret()))?;
        let neighbours = self
            .neighbours
            .iter()
            .map(|n| {
                let (gate, rest) = n.split_once('=').with_context(|| format!("--neighbour {n:?}: gate=key@addr"))?;
                let (key, addr) = rest.split_once('@').with_context(|| format!("--neighbour {n:?}: gate=key@addr"))?;
                let key = trusted_keys(&[key.to_owned()])?.remove(0);
                Ok((gate.to_owned(), key, addr.parse().with_context(|| format!("--neighbour {n:?}: bad address"))?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(gate_firmware_sim::StationLink { bind, key, neighbours }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let cli = Cli::parse();
    let trusted = trusted_keys(&cli.trust)?;
    match &cli.cmd {
        Cmd::Inspect(args) => {
            if trusted.is_empty() {
                bail!("inspect needs --trust keys to verify the snapshot");
            }
            let path = match (&args.snapshot, &cli.snapshot_dir) {
                (Some(p), _) => p.clone(),
                (None, Some(dir)) => dir.join(SNAPSHOT_FILE),
                (None, None) => bail!("inspect needs --snapshot or --snapshot-dir"),
            };
            let now = kippu_mqtt::now_unix();
            let snapshot = load_snapshot(&path, &trusted, now)?;
            let text = match (&args.pass.image, &args.pass.text) {
                (Some(image), _) => {
                    match read_qr(&std::fs::read(image).with_context(|| format!("reading {}", image.display()))?) {
                        Ok(t) => t,
                        Err(e) => {
                            let v =
                                kippu_domain::VerdictMessage::deny("", kippu_domain::DenyReason::UnreadableQr, None);
                            println!("{}  [inspect: {e}]", display(&v));
                            std::process::exit(1);
                        }
                    }
                }
                (None, Some(t)) => t.clone(),
                (None, None) => unreachable!("clap requires one"),
            };
            let verdict = inspect(&snapshot, &text, now);
            println!("{}  [inspect, snapshot issued {}]", display(&verdict), snapshot.issued_at);
            std::process::exit(if verdict.open { 0 } else { 1 });
        }
        Cmd::Journal { json } => {
            let Some(path) = cli.journal_path() else { bail!("journal needs --journal or --snapshot-dir") };
            let contents = Journal::read(&path).with_context(|| format!("reading {}", path.display()))?;
            for tap in &contents.pending {
                if *json {
                    println!("{}", serde_json::to_string(tap)?);
                } else {
                    let ticket = tap.ticket.map(|t| format!("ticket #{t}")).unwrap_or_else(|| "ticket ?".into());
                    println!("{}  scan {}  {ticket}  {}  snapshot {}", tap.at, tap.scan.id, tap.gate, tap.snapshot);
                }
            }
            if !*json {
                println!(
                    "{} pending, {} acknowledged, {} unreadable  [{}]",
                    contents.pending.len(),
                    contents.acked,
                    contents.unreadable,
                    path.display()
                );
            }
            Ok(())
        }
        Cmd::Forward => {
            let setup = cli.setup(trusted)?;
            if setup.offline.is_none() {
                bail!("forward needs --trust and --journal or --snapshot-dir");
            }
            let gate = SimGate::connect_with(setup).await?;
            let report = gate.forward_journal().await;
            println!(
                "forwarded {}, acknowledged {}, disputed {}, still pending {}  [{}]",
                report.sent, report.acknowledged, report.disputed, report.remaining, cli.gate
            );
            gate.disconnect().await;
            std::process::exit(if report.remaining == 0 { 0 } else { 1 });
        }
        Cmd::NewCard { file } => {
            let card = Card::from_secret(rand::random());
            std::fs::write(file, hex::encode(card.secret()))
                .with_context(|| format!("could not write {}", file.display()))?;
            println!("{}", hex::encode(card.public_key()));
            Ok(())
        }
        Cmd::Scan { .. } | Cmd::Text { .. } | Cmd::Tap { .. } => {
            let gate = SimGate::connect_with(cli.setup(trusted)?).await?;
            if gate.has_offline_mode() && gate.snapshot().is_none() {
                // A fresh process: give the retained config a moment to arrive.
                gate.wait_snapshot(0, Duration::from_secs(2)).await;
            }
            let outcome = match &cli.cmd {
                Cmd::Scan { image } => gate.present_image_outcome(&std::fs::read(image)?).await?,
                Cmd::Text { text } => gate.present_text_outcome(text).await?,
                Cmd::Tap { card } => gate.tap_card(&read_card(card)?).await?,
                _ => unreachable!(),
            };
            let mark = if outcome.offline { "  (offline)" } else { "" };
            println!("{}  [{}]{mark}", display(&outcome.verdict), cli.gate);
            if !outcome.offline && !gate.pending_taps().is_empty() {
                gate.forward_journal().await;
            }
            gate.disconnect().await;
            std::process::exit(if outcome.verdict.open { 0 } else { 1 });
        }
    }
}
