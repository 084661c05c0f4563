//! `gate-firmware-sim`: a ticket gate on the command line.
//!
//! ```text
//! gate-firmware-sim --mqtt mqtt://127.0.0.1:18830 --gate metro/central/g1 scan pass.png
//! ```

use clap::{Parser, Subcommand};
use gate_firmware_sim::{display, SimGate};

#[derive(Parser)]
#[command(about = "A simulated Kippu ticket gate")]
struct Cli {
    /// Broker URL.
    #[arg(long, env = "KIPPU_MQTT_URL", default_value = "mqtt://127.0.0.1:18830")]
    mqtt: String,
    /// Gate path `operator/station/gate`.
    #[arg(long, default_value = "metro/central/g1")]
    gate: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Read a QR image (PNG) and present it.
    Scan {
        /// Image file.
        image: std::path::PathBuf,
    },
    /// Present QR text directly (as a handheld reader would send it).
    Text {
        /// The QR text.
        text: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let cli = Cli::parse();
    let gate = SimGate::connect(&cli.mqtt, &cli.gate).await?;
    let verdict = match cli.cmd {
        Cmd::Scan { image } => gate.present_image(&std::fs::read(&image)?).await?,
        Cmd::Text { text } => gate.present_text(&text).await?,
    };
    println!("{}  [{}]", display(&verdict), cli.gate);
    gate.disconnect().await;
    std::process::exit(if verdict.open { 0 } else { 1 });
}
