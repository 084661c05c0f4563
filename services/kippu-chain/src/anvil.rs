//! anvil as a child process for the embedded default. `kill_on_drop` ties its
//! life to ours, so Ctrl-C on `kippu dev` stops the chain too.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{ChainError, Result};

/// A running anvil.
#[derive(Debug)]
pub struct AnvilProcess {
    child: Child,
    port: u16,
}

impl AnvilProcess {
    /// Starts `bin` on 127.0.0.1:`port` (0 = any free port) and waits until it listens.
    /// `block_time` of `None` mines on every transaction.
    pub async fn spawn(bin: &Path, port: u16, chain_id: u64, block_time: Option<u64>) -> Result<Self> {
        Self::spawn_with(bin, port, chain_id, block_time, None).await
    }

    /// As [`AnvilProcess::spawn`], starting from a state [`crate::Chain::dump_state`] saved
    /// (blocks, hashes and receipts included): the same chain, restarted.
    pub async fn spawn_with(
        bin: &Path,
        port: u16,
        chain_id: u64,
        block_time: Option<u64>,
        load_state: Option<&Path>,
    ) -> Result<Self> {
        Self::start(bin, port, chain_id, block_time, load_state, &[]).await
    }

    /// As [`AnvilProcess::spawn_with`], with gas that costs nothing, as a consortium chain is
    /// configured (Besu's `min-gas-price=0`): a base fee of 0, a gas price of 0 (`eth_gasPrice`
    /// answers 0: no minimum priority fee), and a block gas limit far above what Kippu's blocks
    /// use, so the base fee stays 0.
    pub async fn spawn_free_gas(
        bin: &Path,
        port: u16,
        chain_id: u64,
        block_time: Option<u64>,
        load_state: Option<&Path>,
    ) -> Result<Self> {
        let free = ["--base-fee", "0", "--gas-price", "0", "--disable-min-priority-fee", "--gas-limit", "1000000000"];
        Self::start(bin, port, chain_id, block_time, load_state, &free).await
    }

    async fn start(
        bin: &Path,
        port: u16,
        chain_id: u64,
        block_time: Option<u64>,
        load_state: Option<&Path>,
        extra: &[&str],
    ) -> Result<Self> {
        let port = if port == 0 { free_port()? } else { port };
        let bin = native_binary(bin);
        let mut cmd = Command::new(&bin);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--chain-id")
            .arg(chain_id.to_string())
            .arg("--silent")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(bt) = block_time {
            cmd.arg("--block-time").arg(bt.to_string());
        }
        if let Some(state) = load_state {
            cmd.arg("--load-state").arg(state);
        }
        cmd.args(extra);
        let mut child = cmd.spawn().map_err(|e| {
            ChainError::Anvil(format!("cannot start {} ({e}); run `npm ci` in contracts/ first", bin.display()))
        })?;
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::warn!(target: "anvil", "{l}");
                }
            });
        }
        let url = format!("http://127.0.0.1:{port}");
        let probe = alloy::providers::ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url.parse().map_err(|e| ChainError::Anvil(format!("{e}")))?);
        for _ in 0..200 {
            if let Some(status) = child.try_wait().map_err(|e| ChainError::Anvil(e.to_string()))? {
                return Err(ChainError::Anvil(format!("exited at start with {status}")));
            }
            if alloy::providers::Provider::get_chain_id(&probe).await.is_ok() {
                return Ok(Self { child, port });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ChainError::Anvil("did not answer within 10 s".into()))
    }

    /// JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops anvil now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// npm's `.bin/anvil` is a Node wrapper that spawns the platform binary as its
/// own child; killing the wrapper would orphan the real anvil. Run the platform
/// binary (`@foundry-rs/anvil-<os>-<arch>/bin/anvil`) directly when it is there.
pub fn native_binary(bin: &Path) -> std::path::PathBuf {
    let Ok(real) = std::fs::canonicalize(bin) else { return bin.to_path_buf() };
    if real.extension().is_none_or(|e| e != "mjs" && e != "js") {
        return real;
    }
    let Some(scope) = real.parent().and_then(Path::parent) else { return bin.to_path_buf() };
    let Ok(entries) = std::fs::read_dir(scope) else { return bin.to_path_buf() };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("anvil-"))
        .map(|e| e.path().join("bin/anvil"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| bin.to_path_buf())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| ChainError::Anvil(e.to_string()))?;
    Ok(l.local_addr().map_err(|e| ChainError::Anvil(e.to_string()))?.port())
}

/// anvil's first well-known dev account key; used only for the embedded default.
pub const DEV_ADMIN_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
