//! Hardhat's node (EDR, from npm: `tests/hardhat`) as a child process: the second EVM
//! implementation Kippu's end-to-end trip and the chain-write outbox's fault tests run on,
//! beside anvil. Kippu itself knows nothing of it: the platform is pointed at its URL as at
//! any external node (`chain.rpc_url`).
//!
//! `tests/hardhat/hardhat.config.js` configures it as a consortium chain is configured (Besu
//! with `min-gas-price=0`): interval mining and never automine, a base fee of 0 and no minimum
//! gas price, anvil's and Hardhat's well-known dev accounts. [`LocalNode`] lets a test take
//! either node.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::anvil::AnvilProcess;
use crate::{ChainError, Result};

/// How long Hardhat gets to answer after it is started (Node loads Hardhat and EDR first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Hardhat node.
#[derive(Debug)]
pub struct HardhatProcess {
    child: Child,
    port: u16,
}

impl HardhatProcess {
    /// Starts the Hardhat node of the npm package `dir` (its `hardhat.config.js` and
    /// `node_modules`, as [`package_dir`]) on 127.0.0.1:`port` (0 = any free port) with chain id
    /// `chain_id`, and waits until it answers. It mines a block every `block_time_ms`
    /// milliseconds (0: only on `evm_mine`), never on each transaction, and gas costs nothing.
    pub async fn spawn(dir: &Path, port: u16, chain_id: u64, block_time_ms: u64) -> Result<Self> {
        let port = if port == 0 { free_port()? } else { port };
        let cli = dir.join("node_modules/hardhat/internal/cli/bootstrap.js");
        if !cli.is_file() {
            return Err(start_error(format!("{} is missing; run `npm ci` in {} first", cli.display(), dir.display())));
        }
        let mut cmd = Command::new("node");
        cmd.arg(&cli)
            .arg("--config")
            .arg(dir.join("hardhat.config.js"))
            .arg("node")
            .arg("--hostname")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .current_dir(dir)
            .env("KIPPU_HARDHAT_BLOCK_TIME_MS", block_time_ms.to_string())
            .env("KIPPU_HARDHAT_CHAIN_ID", chain_id.to_string())
            .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child =
            cmd.spawn().map_err(|e| start_error(format!("cannot start node ({e}); Node.js is required")))?;
        // `hardhat node` logs every JSON-RPC method it serves on stdout: read it all, or the
        // full pipe would stall the node.
        if let Some(out) = child.stdout.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::trace!(target: "hardhat", "{l}");
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    tracing::warn!(target: "hardhat", "{l}");
                }
            });
        }
        let url = format!("http://127.0.0.1:{port}");
        let probe = alloy::providers::ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url.parse().map_err(|e| start_error(format!("{e}")))?);
        let started = tokio::time::Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Some(status) = child.try_wait().map_err(|e| start_error(e.to_string()))? {
                return Err(start_error(format!("exited at start with {status}")));
            }
            if alloy::providers::Provider::get_chain_id(&probe).await.is_ok() {
                return Ok(Self { child, port });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(start_error(format!("did not answer within {} s", START_TIMEOUT.as_secs())))
    }

    /// JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the node now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The repository's Hardhat package (`tests/hardhat`), whose `npm ci` installs Hardhat.
pub fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hardhat")
}

fn start_error(why: String) -> ChainError {
    ChainError::Anvil(format!("hardhat node: {why}"))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| start_error(e.to_string()))?;
    Ok(l.local_addr().map_err(|e| start_error(e.to_string()))?.port())
}

/// Which EVM implementation a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Foundry's anvil.
    Anvil,
    /// Hardhat's node (EDR).
    Hardhat,
}

impl NodeKind {
    /// Its name in test output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Anvil => "anvil",
            Self::Hardhat => "hardhat",
        }
    }
}

/// A local node of either implementation, started by a test.
#[derive(Debug)]
pub enum LocalNode {
    /// anvil.
    Anvil(AnvilProcess),
    /// Hardhat's node.
    Hardhat(HardhatProcess),
}

impl LocalNode {
    /// Starts a `kind` node configured as a consortium chain is: a block every
    /// `block_time_secs` seconds (never on each transaction) and gas that costs nothing. anvil is
    /// `anvil_bin` ([`AnvilProcess::spawn_free_gas`]); Hardhat's is the repository's
    /// ([`package_dir`]).
    pub async fn spawn(
        kind: NodeKind,
        anvil_bin: &Path,
        port: u16,
        chain_id: u64,
        block_time_secs: u64,
    ) -> Result<Self> {
        Ok(match kind {
            NodeKind::Anvil => {
                AnvilProcess::spawn_free_gas(anvil_bin, port, chain_id, Some(block_time_secs), None).await?.into()
            }
            NodeKind::Hardhat => {
                HardhatProcess::spawn(&package_dir(), port, chain_id, block_time_secs * 1000).await?.into()
            }
        })
    }

    /// Which implementation it is.
    pub fn kind(&self) -> NodeKind {
        match self {
            Self::Anvil(_) => NodeKind::Anvil,
            Self::Hardhat(_) => NodeKind::Hardhat,
        }
    }

    /// JSON-RPC URL.
    pub fn url(&self) -> String {
        match self {
            Self::Anvil(a) => a.url(),
            Self::Hardhat(h) => h.url(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        match self {
            Self::Anvil(a) => a.port(),
            Self::Hardhat(h) => h.port(),
        }
    }

    /// Stops the node now.
    pub async fn stop(self) {
        match self {
            Self::Anvil(a) => a.stop().await,
            Self::Hardhat(h) => h.stop().await,
        }
    }
}

impl From<AnvilProcess> for LocalNode {
    fn from(a: AnvilProcess) -> Self {
        Self::Anvil(a)
    }
}

impl From<HardhatProcess> for LocalNode {
    fn from(h: HardhatProcess) -> Self {
        Self::Hardhat(h)
    }
}
