//! `kippu`: run the platform.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kippu_domain::audit::AuditAction;

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
    /// Run the platform in production. Refuses to start on a missing, short or public secret,
    /// a missing or foreign deployment, or an unconfigured Stripe; never deploys or seeds.
    Serve,
    /// Once per deployment: deploy the contracts with an explicit deployer key, grant each role
    /// to its own key, generate and seal the secrets, record the deployment.
    Init {
        /// File with the deployer's private key (hex). It pays for the deployment and then holds
        /// no role at all.
        #[arg(long)]
        deployer_key_file: PathBuf,
        /// Address of the cold admin key (kept offline: it only grants roles and pauses). When
        /// omitted, a key is generated into DATA_DIR/cold-admin.key for you to move offline.
        #[arg(long)]
        admin: Option<alloy::primitives::Address>,
        /// Wei the deployer sends each hot key for gas (on chains that charge gas).
        #[arg(long, default_value_t = 1_000_000_000_000_000_000)]
        fund_hot_keys_wei: u128,
        /// A host name or address gates reach the embedded broker at, for its TLS certificate
        /// (repeatable; localhost, 127.0.0.1 and the public URL's host are always included).
        #[arg(long)]
        mqtt_host: Vec<String>,
        /// E-mail of the consortium's first admin: a one-time link to set their password is
        /// printed once.
        #[arg(long)]
        admin_email: String,
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
    /// Gate credentials: each gate its own random MQTT password, shown once.
    Gate {
        #[command(subcommand)]
        cmd: GateCmd,
    },
    /// The catalogue: operators, products, bundles, cover terms, issuers.
    Catalog {
        #[command(subcommand)]
        cmd: CatalogCmd,
    },
    /// Organisations of the consortium (operators, issuers, the insurer).
    Org {
        #[command(subcommand)]
        cmd: OrgCmd,
    },
    /// Staff accounts: invite (a one-time link to set a password).
    Staff {
        #[command(subcommand)]
        cmd: StaffCmd,
    },
    /// API tokens of an organisation's machines (scanners, timetable uploads, reporting).
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// The audit log: who did what, chained so an edited or deleted row is found.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Close the clearing period now (plans settled by usage re-apportioned, redeemed vouchers
    /// paid from the insurer's claim, operators paid). `settlement.period_secs` closes on a schedule.
    ClosePeriod,
    /// Re-seal the keystore and the generated secrets under a new master key. No gate password
    /// or signature key changes.
    RotateMasterKey {
        /// The new master key's file (64 hex digits); generated when it does not exist.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Back up the database, the sealed secrets and the deployment record into one file. The
    /// master key is not in it: keep it apart.
    Backup {
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into the configured (empty) data directory and database.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// The demo: the whole platform on the embedded default (SQLite, in-process MQTT broker,
    /// anvil child, loopback Stripe, demo data, simulated gates).
    #[cfg(feature = "dev")]
    Dev,
    /// Demo: send a GTFS-Realtime TripUpdate with a delay to a running `kippu dev`.
    #[cfg(feature = "dev")]
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
        file: Option<PathBuf>,
        /// With --file: replay the recording as if sent now (timestamps moved, delays kept);
        /// without it an old recording is refused as stale, as it should be.
        #[arg(long, requires = "file")]
        as_live: bool,
    },
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Add an organisation and invite its first member of staff (prints their one-time link).
    Add {
        /// URL slug; an operator's or issuer's is the one its catalogue entry uses.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// operator, issuer or insurer.
        #[arg(long)]
        kind: kippu_domain::staff::OrgKind,
        /// E-mail of its first member of staff.
        #[arg(long)]
        staff_email: String,
    },
    /// List organisations.
    List,
}

#[derive(Subcommand)]
enum StaffCmd {
    /// Invite a member of staff, or print a fresh link for one who has an account.
    Invite {
        /// The organisation's slug (`kippu` for the consortium).
        #[arg(long)]
        organisation: String,
        /// Their e-mail.
        #[arg(long)]
        email: String,
        /// admin (consortium only), staff or auditor.
        #[arg(long, default_value = "staff")]
        role: kippu_domain::staff::Role,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Issue a token (printed once; stored hashed).
    Issue {
        /// The organisation it acts for.
        #[arg(long)]
        organisation: String,
        /// What it is for.
        #[arg(long)]
        name: String,
        /// A scope (repeatable): reports:read, timetable:read, timetable:write, vouchers:redeem,
        /// credentials:read, credentials:write, audit:read.
        #[arg(long, required = true)]
        scope: Vec<String>,
        /// Days it lives (at most 365).
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Revoke a token: refused from the next request on.
    Revoke {
        /// The organisation.
        #[arg(long)]
        organisation: String,
        /// The token's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check every entry's hash and link; exits 1 naming the first broken entry. Prints the
    /// head (`SEQ:HASH`): note it, and pass it to a later run as --expect-head to also find
    /// entries cut off the end.
    Verify {
        /// A head printed by an earlier run.
        #[arg(long)]
        expect_head: Option<String>,
    },
    /// The newest entries as CSV, filtered.
    List {
        /// Only this organisation's (slug).
        #[arg(long)]
        organisation: Option<String>,
        /// Only this action (e.g. `timetable.imported`).
        #[arg(long)]
        action: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum GateCmd {
    /// Register a gate and issue its credential (written to a 0600 file for the device).
    Add {
        /// `OPERATOR/STATION/GATE`.
        gate: String,
        /// Station name shown on the fleet page.
        #[arg(long)]
        station: String,
        /// The GTFS stop a stop gate stands at.
        #[arg(long)]
        stop: Option<String>,
        /// An on-board validator (names the run its vehicle works with each scan).
        #[arg(long)]
        on_board: bool,
        /// Where to write the device's file (default `OPERATOR_STATION_GATE.gate.toml` here).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The broker URL the gate connects to, written into its file.
        #[arg(long)]
        mqtt_url: Option<String>,
    },
    /// Replace a gate's credential; the old one stops working at once.
    Rotate {
        /// `OPERATOR/STATION/GATE`.
        gate: String,
        /// Where to write the device's file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The broker URL the gate connects to, written into its file.
        #[arg(long)]
        mqtt_url: Option<String>,
    },
    /// Revoke a gate's credential: it can no longer log in, and a live connection is cut.
    Revoke {
        /// `OPERATOR/STATION/GATE`.
        gate: String,
    },
    /// List gates and whether each has an active credential.
    List,
}

#[derive(Subcommand)]
enum CatalogCmd {
    /// List a catalogue file on chain (catalogue key) and in the database; idempotent.
    Apply {
        /// The catalogue (see deploy/catalog.example.toml).
        file: PathBuf,
    },
}

/// Ctrl-C or SIGTERM: both must reach `shutdown`, or a child process outlives us.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,rumqttd=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<kippu::serve::ServeError>() {
                Some(kippu::serve::ServeError::Refused(_)) => eprintln!("{e}"),
                _ => eprintln!("error: {e:#}"),
            }
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = kippu::Config::load(cli.config.as_deref())?;
    match cli.cmd {
        Cmd::Serve => {
            let stack = kippu::serve::serve(cfg).await?;
            println!("Kippu is serving on {}", stack.web_url);
            if let Some(m) = &stack.metrics_url {
                println!("  metrics {m}");
            }
            println!("  MQTT broker {}", stack.mqtt_url);
            wait_for_stop().await?;
            stack.shutdown().await;
        }
        Cmd::Init { deployer_key_file, admin, fund_hot_keys_wei, mqtt_host, admin_email } => {
            let opts = kippu::init::InitOptions {
                deployer_key_file,
                admin,
                fund_hot_keys_wei,
                voucher_operator_id: 0,
                mqtt_hosts: mqtt_host,
                admin_email,
            };
            let done = kippu::init::init(&cfg, &opts).await?;
            let d = &done.deployment;
            println!("Kippu is initialised on chain {} (block {}).", d.chain_id, d.deploy_block);
            println!("  deployment record  {}", done.deployment_file.display());
            println!("  sealed secrets     {}", done.secrets_file.display());
            match &done.master_key_file {
                Some(p) => println!(
                    "  master key         {} (move it to your secrets manager; see README \"Going live\")",
                    p.display()
                ),
                None => println!("  master key         from your configuration"),
            }
            if let Some(p) = &done.cold_admin_file {
                println!(
                    "  cold admin key     {} — move it OFFLINE now: it grants roles and pauses, nothing else",
                    p.display()
                );
            }
            println!("  first admin        {} (one-time link to set the password; shown once)", done.admin_invitation);
            if let Some((ca, cert, key)) = &done.broker_tls {
                println!(
                    "  broker TLS         {} (gates trust this CA), {}, {}",
                    ca.display(),
                    cert.display(),
                    key.display()
                );
                println!(
                    "                     serve them: [mqtt] tls_cert_file = {:?}, tls_key_file = {:?}",
                    cert, key
                );
            }
            println!("Next: `kippu catalog apply`, `kippu gate add`, then `kippu serve`.");
        }
        Cmd::Validator { operator, refresh_secs } => {
            let every = std::time::Duration::from_secs(refresh_secs.max(1));
            kippu::validator_process::run(&cfg, operator, every, wait_for_stop()).await?;
        }
        Cmd::Gate { cmd } => gate(&cfg, cmd).await?,
        Cmd::Catalog { cmd: CatalogCmd::Apply { file } } => {
            let catalog = kippu::catalog::Catalog::from_file(&file)?;
            let ops = kippu::ops::Ops::open(&cfg).await?;
            let authority = ops.authority();
            catalog.apply(&ops.chain, &ops.store, &ops.keystore, &authority).await?;
            let target = file.display().to_string();
            kippu::audit::record(&ops.store, "cli", "kippu", AuditAction::CatalogueApplied, &target).await?;
            println!(
                "catalogue applied: {} operators, {} products, {} bundles",
                catalog.operators.len(),
                catalog.products.len(),
                catalog.bundles.len()
            );
        }
        Cmd::ClosePeriod => {
            let ops = kippu::ops::Ops::open(&cfg).await?;
            let closed = ops.close_period().await?;
            let target = format!("period {}", closed.period_id);
            kippu::audit::record(&ops.store, "cli", "kippu", AuditAction::PeriodClosed, &target).await?;
            println!("{}", serde_json::to_string_pretty(&closed)?);
        }
        Cmd::Org { cmd } => {
            let store = kippu_store::Store::connect(&cfg.database_url()).await.context("connecting the database")?;
            match cmd {
                OrgCmd::Add { slug, name, kind, staff_email } => {
                    let link = kippu::staff::org_add(&cfg, &store, &slug, &name, kind, &staff_email).await?;
                    println!("organisation {slug} added; {staff_email} sets a password at (once):\n{link}");
                }
                OrgCmd::List => print!("{}", kippu::staff::org_list(&store).await?),
            }
        }
        Cmd::Staff { cmd: StaffCmd::Invite { organisation, email, role } } => {
            let store = kippu_store::Store::connect(&cfg.database_url()).await.context("connecting the database")?;
            let link = kippu::staff::invite(&cfg, &store, &organisation, &email, role).await?;
            println!("{email} sets a password at (once):\n{link}");
        }
        Cmd::Token { cmd } => {
            let store = kippu_store::Store::connect(&cfg.database_url()).await.context("connecting the database")?;
            match cmd {
                TokenCmd::Issue { organisation, name, scope, days } => {
                    let t = kippu::staff::token_issue(&store, &organisation, &name, &scope, days).await?;
                    eprintln!("token {} for {organisation}, valid {days} days (shown once):", t.token.id);
                    println!("{}", t.bearer);
                }
                TokenCmd::Revoke { organisation, id } => {
                    kippu::staff::token_revoke(&store, &organisation, &id).await?;
                    println!("token {id} revoked");
                }
            }
        }
        Cmd::Audit { cmd } => {
            let store = kippu_store::Store::connect(&cfg.database_url()).await.context("connecting the database")?;
            match cmd {
                AuditCmd::Verify { expect_head } => match kippu::audit::verify(&store, expect_head.as_deref()).await? {
                    Ok(v) => println!(
                        "audit log intact: {} entries, head {}",
                        v.entries,
                        v.head.as_deref().unwrap_or("(empty)")
                    ),
                    Err(broken) => {
                        eprintln!("audit log BROKEN: {broken}");
                        std::process::exit(1);
                    }
                },
                AuditCmd::List { organisation, action, limit } => {
                    let action = action
                        .map(|a| AuditAction::parse(&a).with_context(|| format!("no audit action {a:?}")))
                        .transpose()?;
                    let filter = kippu_store::AuditFilter { organisation, action, ..Default::default() };
                    print!("{}", kippu::audit::csv(&store, &filter, limit).await?);
                }
            }
        }
        Cmd::RotateMasterKey { new_key_file } => {
            let done = kippu::ops::rotate_master_key(&cfg, new_key_file.as_deref()).await?;
            println!("{done}");
        }
        Cmd::Backup { out } => {
            let summary = kippu::backup::backup(&cfg, &out).await?;
            println!("{summary}");
        }
        Cmd::Restore { from } => {
            let summary = kippu::backup::restore(&cfg, &from).await?;
            println!("{summary}");
        }
        #[cfg(feature = "dev")]
        Cmd::Dev => dev(cfg).await?,
        #[cfg(feature = "dev")]
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
    }
    Ok(())
}

async fn gate(cfg: &kippu::Config, cmd: GateCmd) -> anyhow::Result<()> {
    let store = kippu_store::Store::connect(&cfg.database_url()).await.context("connecting the database")?;
    let issued = match cmd {
        GateCmd::Add { gate, station, stop, on_board, out, mqtt_url } => {
            let path = kippu::gates::parse_gate(&gate)?;
            let password = kippu::gates::add(&store, &path, &station, stop, on_board).await?;
            kippu::audit::record(&store, "cli", &path.operator, AuditAction::GateAdded, &path.key()).await?;
            Some((path, password, out, mqtt_url))
        }
        GateCmd::Rotate { gate, out, mqtt_url } => {
            let path = kippu::gates::parse_gate(&gate)?;
            let password = kippu::gates::rotate(&store, &path).await?;
            kippu::audit::record(&store, "cli", &path.operator, AuditAction::GateRotated, &path.key()).await?;
            Some((path, password, out, mqtt_url))
        }
        GateCmd::Revoke { gate } => {
            let path = kippu::gates::parse_gate(&gate)?;
            kippu::gates::revoke(&store, &path).await?;
            kippu::audit::record(&store, "cli", &path.operator, AuditAction::GateRevoked, &path.key()).await?;
            println!("revoked {}", path.key());
            None
        }
        GateCmd::List => {
            let active: std::collections::HashSet<String> =
                store.active_credentials().await?.into_iter().map(|c| c.username).collect();
            for g in store.gates().await? {
                let state = if active.contains(&g.gate_key) { "credential active" } else { "no credential" };
                println!("{}\t{}\t{state}", g.gate_key, g.station);
            }
            None
        }
    };
    if kippu::gates::sync_mosquitto(cfg, &store).await? {
        println!("Mosquitto's password file and ACL rewritten and reloaded");
    }
    if let Some((path, password, out, mqtt_url)) = issued {
        let verdict_key = kippu::serve::master_key(cfg)
            .ok()
            .and_then(|ks| kippu::secrets::Secrets::load(&cfg.secrets_path(), &ks).ok())
            .map(|s| hex::encode(s.verdict_key().verifying_key().to_bytes()));
        let file = kippu::gates::GateFile {
            gate: path.key(),
            mqtt_url: mqtt_url
                .or_else(|| cfg.mqtt.url.clone())
                .unwrap_or_else(|| format!("mqtt://{}", cfg.mqtt.embedded_bind)),
            username: path.key(),
            password: password.clone(),
            verdict_key,
        };
        let out = out.unwrap_or_else(|| kippu::gates::default_out(std::path::Path::new("."), &path));
        kippu::secrets::create_private(&out, toml::to_string(&file)?.as_bytes())
            .with_context(|| format!("writing {} (it must not exist yet)", out.display()))?;
        println!("gate {} credential issued (shown once): {password}", path.key());
        println!("written for the device to {} (mode 0600)", out.display());
    }
    Ok(())
}

#[cfg(feature = "dev")]
async fn dev(cfg: kippu::Config) -> anyhow::Result<()> {
    let stack = kippu::dev::start(cfg).await?;
    let demo = kippu::dev::demo(&stack).expect("the demo has its extras");
    println!();
    println!("Kippu is running (demo).");
    println!("  web app         {}", stack.web_url);
    println!("  operator report {}/operators/report", stack.web_url);
    println!("  gates           {}/gates", stack.web_url);
    println!(
        "  staff portal    {}/portal  (password {} for {}, {}, or staff@SLUG.dev: staff@usf.dev, staff@taxi.dev, …)",
        stack.web_url,
        kippu::dev::DEV_PORTAL_PASSWORD,
        kippu::dev::DEV_ADMIN_EMAIL,
        kippu::dev::DEV_AUDITOR_EMAIL
    );
    println!("  MQTT broker     {}  (per-gate logins and topic ACL)", stack.mqtt_url);
    if let Some((gate, url)) = demo.gate_mqtt_urls.first() {
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
    println!("  cargo run -p kippu --features dev -- feed-delay --trip 1 --minutes 20");
    println!("A real agency recording: board with run 17921312 typed in, then replay it as live:");
    println!("  cargo run -p kippu --features dev -- feed-delay --file services/kippu-gtfs/testdata/agency-rt/ovapi-trip-updates-subset.pb --as-live");
    println!("Ctrl-C stops everything.");
    wait_for_stop().await?;
    println!("stopping…");
    stack.shutdown().await;
    Ok(())
}
