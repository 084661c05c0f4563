//! `kippu`: run the platform.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kippu", about = "Kippu: open MaaS ticketing")]
struct Cli {
    /// TOML configuration file (environment variables KIPPU_* override it).
    #[arg(long, global = true, env = "KIPPU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the whole platform; with no configuration, the embedded default
    /// (SQLite, in-process MQTT broker, anvil child, loopback Stripe, demo data).
    Dev,
    /// Send a GTFS-Realtime TripUpdate with a delay to a running platform (dev routes).
    FeedDelay {
        /// Web app URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// GTFS trip id (the demo bus timetable has trips "1" to "15").
        #[arg(long, default_value = "1")]
        trip: String,
        /// Delay in minutes.
        #[arg(long, default_value_t = 20)]
        minutes: i32,
        /// Report this run cancelled instead of late (travelers waiting at its stops are not carried).
        #[arg(long)]
        cancel: bool,
        /// Send this GTFS-Realtime protobuf file instead (a recorded or third-party feed).
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        /// With --file: replay the recording as if sent now (timestamps moved, delays kept);
        /// without it an old recording is refused as stale, as it should be.
        #[arg(long, requires = "file")]
        as_live: bool,
    },
    /// Run one more gate validator beside a running platform: it shares the platform's database
    /// and broker (`KIPPU_DATABASE_URL`, `KIPPU_MQTT_URL`) and splits the scans with the other
    /// validators through `$share/validators/...`.
    Validator {
        /// Serve only this operator's gates (slug); all operators by default.
        #[arg(long)]
        operator: Option<String>,
        /// Seconds between re-reads of tickets, revocations and card bindings from the database.
        #[arg(long, default_value_t = 10)]
        refresh_secs: u64,
    },
    /// Close the clearing period of a running platform (dev routes): plans settled by
    /// usage are re-apportioned, redeemed vouchers paid from the insurer's claim, operators paid.
    ClosePeriod {
        /// Web app URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

/// Ctrl-C or SIGTERM: both must reach `shutdown`, or the anvil child outlives us.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,rumqttd=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Dev => {
            let mut cfg = kippu::Config::load(cli.config.as_deref())?;
            // The demo needs its hand-fed delays and period close unless the configuration says otherwise.
            cfg.web.dev_routes.get_or_insert(true);
            // Passkeys need a domain for their relying party ID; on the loopback that is localhost.
            if cfg.web.public_url.is_none() {
                if let Some(port) = cfg.web.bind.strip_prefix("127.0.0.1:") {
                    cfg.web.public_url = Some(format!("http://localhost:{port}"));
                }
            }
            let stack = kippu::start(cfg).await?;
            println!();
            println!("Kippu is running.");
            println!("  web app         {}", stack.web_url);
            println!("  operator report {}/operators/report", stack.web_url);
            println!("  gates           {}/gates", stack.web_url);
            println!("  issuer portal   {}/portal/issuers/usf  (staff password: {})", stack.web_url, cfg_portal_hint());
            println!("  MQTT broker     {}  (per-gate logins and topic ACL)", stack.mqtt_url);
            if let Some((gate, url)) = stack.gate_mqtt_urls.first() {
                println!("  a gate's login  {gate}: gate-firmware-sim --mqtt '{url}' --gate {gate} scan pass.png");
            }
            println!("  chain (anvil)   {}  FareToken {:#x}", stack.rpc_url, stack.deployment.fare);
            println!("  Stripe (fake)   {}", stack.stripe_url);
            println!("  database        {}", stack.database_url);
            println!("  delay insurance {}/operators/insurance", stack.web_url);
            println!("Create an account (or sign in as a demo traveler), top up, buy a plan, open a ticket's pass and present it to a gate.");
            println!("Delay cover pays who was affected: open the bus pass, pick run 1 on the on-board");
            println!("validator and present it, then report that run late (or tap at the library stop");
            println!("gate and report a run due there cancelled, e.g. --trip 5 --cancel):");
            println!("  cargo run -p kippu -- feed-delay --trip 1 --minutes 20");
            println!("A real agency recording: board with run 17921312 typed in, then replay it as live:");
            println!("  cargo run -p kippu -- feed-delay --file services/kippu-gtfs/testdata/agency-rt/ovapi-trip-updates-subset.pb --as-live");
            println!("Ctrl-C stops everything.");
            wait_for_stop().await?;
            println!("stopping…");
            stack.shutdown().await;
        }
        Cmd::Validator { operator, refresh_secs } => {
            let cfg = kippu::Config::load(cli.config.as_deref())?;
            let every = std::time::Duration::from_secs(refresh_secs.max(1));
            kippu::validator::run(&cfg, operator, every, wait_for_stop()).await?;
        }
        Cmd::FeedDelay { url, trip, minutes, cancel, file, as_live } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let feed = match file {
                Some(path) => {
                    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    if as_live {
                        kippu_gtfs::restamp(&bytes, now)?
                    } else {
                        bytes
                    }
                }
                None if cancel => kippu_gtfs::encode_feed(
                    now,
                    &kippu_gtfs::FeedSpec { cancelled: vec![trip.clone()], ..Default::default() },
                ),
                None => kippu_gtfs::encode_trip_updates(now, &[(trip.clone(), None, minutes * 60)]),
            };
            let r = reqwest::Client::new().post(format!("{url}/dev/gtfs-rt")).body(feed).send().await?;
            println!("{}", r.text().await?);
        }
        Cmd::ClosePeriod { url } => {
            let r = reqwest::Client::new().post(format!("{url}/dev/close-period")).send().await?;
            let ok = r.status().is_success();
            println!("{}", r.text().await?);
            anyhow::ensure!(ok, "the close failed");
        }
    }
    Ok(())
}

/// What `kippu dev` tells about the portal password: the public dev default, or that one is configured.
fn cfg_portal_hint() -> String {
    match std::env::var("KIPPU_PORTAL_PASSWORD") {
        Ok(v) if !v.is_empty() => "set by KIPPU_PORTAL_PASSWORD".into(),
        _ => kippu::config::DEV_PORTAL_PASSWORD.into(),
    }
}
