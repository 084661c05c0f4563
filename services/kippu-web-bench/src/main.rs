//! `kippu-web-bench`: the traveler web app under load.
//!
//! Starts the whole platform on the embedded default in this process (anvil child, SQLite,
//! embedded broker, loopback Stripe), signs a traveler up, tops up and buys a plan through
//! the app, then offers each endpoint a fixed request rate, open-loop (requests leave on a
//! schedule whether or not earlier ones have answered, and latency counts from the scheduled
//! moment, so a stall is not hidden by the load generator waiting), and prints achieved
//! requests/s and p50/p99/p99.9 per endpoint.
//!
//! ```text
//! cargo run --release -p kippu-web-bench                          # 2,000 req/s, 10 s per endpoint
//! cargo run --release -p kippu-web-bench -- --rate 3000 --secs 20
//! ```
//!
//! The load generator shares the machine (and, here, the process) with the server, as a
//! phone's requests would not: the figures are a floor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::sync::Mutex;

#[derive(Parser)]
#[command(about = "Load bench of the traveler web app")]
struct Args {
    /// Requests per second offered to each endpoint.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds of measurement per endpoint (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Connections the client keeps open (HTTP/1.1 keep-alive).
    #[arg(long, default_value_t = 64)]
    connections: usize,
}

struct Run {
    achieved: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    errors: u64,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// Offers `rate` GET requests per second to `url` for `secs` seconds; latencies in µs.
async fn offer(http: &reqwest::Client, url: &str, rate: u32, secs: u64) -> Run {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((u64::from(rate) * secs) as usize)));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    let total = u64::from(rate) * secs;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (http, url, latencies, errors) = (http.clone(), url.to_owned(), latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let ok = match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            };
            if ok {
                latencies.lock().await.push(due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock().await);
    l.sort_unstable();
    Run {
        achieved: l.len() as f64 / elapsed,
        p50: pct(&l, 0.50),
        p99: pct(&l, 0.99),
        p999: pct(&l, 0.999),
        max: pct(&l, 1.0),
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("error").init();
    let args = Args::parse();
    let data_dir = std::env::temp_dir().join(format!("kippu-web-bench-{}", std::process::id()));
    let mut cfg = kippu::Config { data_dir: data_dir.clone(), ..Default::default() };
    cfg.web.bind = "127.0.0.1:0".into();
    cfg.web.dev_routes = Some(true);
    cfg.chain.anvil_port = 0;
    cfg.mqtt.embedded_bind = "127.0.0.1:0".into();
    cfg.stripe.fake_bind = "127.0.0.1:0".into();
    let stack = kippu::start(cfg).await.context("starting the platform")?;
    let base = stack.web_url.clone();

    // A traveler, through the app: sign up, top up by card, buy the Explorer bundle.
    let http = reqwest::Client::builder().cookie_store(true).pool_max_idle_per_host(args.connections).build()?;
    let form = |path: &str, fields: &[(&str, &str)]| {
        let req = http.post(format!("{base}{path}")).form(fields);
        async move { req.send().await }
    };
    let pw = "bench passphrase, long enough";
    let r = form("/signup", &[("name", "Bench"), ("email", "bench@example.com"), ("password", pw), ("confirm", pw)])
        .await?;
    if !r.status().is_success() {
        bail!("sign-up failed: {}", r.status());
    }
    let r = form("/topup", &[("amount", "100")]).await?;
    let pay = r.url().to_string();
    http.post(&pay).send().await?.error_for_status()?;
    let r = form("/plans/1/buy", &[]).await?;
    if !r.url().as_str().contains("bought=") {
        bail!("buying failed: {}", r.url());
    }
    let me: serde_json::Value = http.get(format!("{base}/api/me")).send().await?.json().await?;
    let ticket = me["tickets"][0]["id"].as_u64().context("a ticket")?;

    let endpoints = [
        ("ticket page (GET /tickets)", format!("{base}/tickets")),
        ("pass page (GET /tickets/{id}/pass)", format!("{base}/tickets/{ticket}/pass")),
        ("server-signed pass (GET /tickets/{id}/pass.png)", format!("{base}/tickets/{ticket}/pass.png")),
    ];
    println!(
        "kippu-web-bench: {} req/s offered open-loop, {} s per endpoint after 2 s warm-up, nproc {}",
        args.rate,
        args.secs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<48} {:>10} {:>8} {:>8} {:>9} {:>8} {:>7}",
        "endpoint", "achieved/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
    for (name, url) in &endpoints {
        offer(&http, url, args.rate, 2).await;
        let run = offer(&http, url, args.rate, args.secs).await;
        println!(
            "{:<48} {:>10.0} {:>8.2} {:>8.2} {:>9.2} {:>8.1} {:>7}",
            name, run.achieved, run.p50, run.p99, run.p999, run.max, run.errors
        );
    }
    stack.shutdown().await;
    let _ = std::fs::remove_dir_all(data_dir);
    Ok(())
}
