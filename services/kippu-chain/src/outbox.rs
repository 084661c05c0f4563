//! The chain-write outbox's sender (issue 20). A business write is first recorded in the
//! database, keyed by the fact that causes it ([`WriteKey`]), with the call to make; the sender
//! signs it with a nonce it hands out per key, records the signed transaction *before* it
//! broadcasts it, then follows it until it is `confirmations` deep. What the node says of it
//! goes through [`kippu_domain::outbox::step`], which decides; this module only asks and acts:
//!
//! - dropped (a node restart, `dropAllTransactions`, a reorganisation that discarded its
//!   block) while its nonce is still free: the very same signed transaction is broadcast
//!   again. One nonce can be included once, so a re-broadcast can never take effect twice;
//! - its nonce consumed by something else, or mined and reverted: a fresh attempt, simulated
//!   first; the contract's refusal of a second effect for the business key
//!   ([`kippu_domain::outbox::already_done`]) means an earlier attempt did it;
//! - pending too long (underpriced as the base fee rose): replaced at the same nonce with a
//!   higher price;
//! - confirmed, then gone from the chain: an alert (counted, logged, on the admin page) and
//!   sent again until it is confirmed once more.
//!
//! Requests wait for their write's first inclusion ([`crate::Chain`]'s `write`) by reading
//! its stage, so a request served by one process waits for a write another process sends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::consensus::{Transaction as _, TxEnvelope};
use alloy::eips::eip2718::{Decodable2718, Encodable2718};
use alloy::eips::BlockNumberOrTag;
use alloy::network::{NetworkWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes, B256};
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use kippu_app::ports::{ChainWrites, Leases};
use kippu_domain::outbox::{
    self, Policy, PreparedWrite, RecordedWrite, Revert, Seen, Stage, StageChange, Step, WriteKey,
};
use serde::{Deserialize, Serialize};

use crate::{ChainError, Result};

/// The call a write makes, as recorded: the contract and the calldata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) to: Address,
    pub(crate) data: Bytes,
}

fn prepared(key: WriteKey, sender: &crate::client::Sender, req: &TransactionRequest) -> Result<PreparedWrite> {
    let to = req.to.and_then(|k| k.to().copied()).ok_or_else(|| ChainError::Config("a write needs a target".into()))?;
    let call = Call { to, data: req.input.input().cloned().unwrap_or_default() };
    let call = serde_json::to_string(&call).map_err(|e| ChainError::Outbox(e.to_string()))?;
    Ok(PreparedWrite { key, call, sender: format!("{:#x}", sender.from) })
}

/// What the sender did, counted since the process started (Prometheus and the fault tests).
#[derive(Debug, Default)]
pub struct OutboxStats {
    /// Transactions signed and broadcast for the first time.
    pub sent: AtomicU64,
    /// Attempts after the first: re-broadcasts, replacements and fresh attempts.
    pub resent: AtomicU64,
    /// Writes that reached their confirmation depth.
    pub confirmed: AtomicU64,
    /// Confirmed writes found gone from the chain (each is an alert).
    pub gone: AtomicU64,
    /// Writes the contract refused for good.
    pub failed: AtomicU64,
}

/// How long a request waits for its write's first inclusion before it answers "pending".
pub const INCLUSION_WAIT: Duration = Duration::from_secs(60);

/// How far back confirmed writes are checked to still be on the chain (deeper reorganisations
/// than this are not expected of a consortium chain with finality).
const RECHECK_BLOCKS: u64 = 64;

/// The lease the sender runs under: one sender at a time over one database, so two
/// processes never hand out nonces for the same key. Renewed every round; a sender that died
/// is taken over once it expires.
pub const SENDER_LEASE: &str = "outbox-sender";

/// How long a sender's lease lasts without renewal (seconds): the longest a dead sender's
/// writes wait for another process to take over.
pub const SENDER_LEASE_SECS: i64 = 10;

/// The outbox a [`crate::Chain`] records its writes in, and the sender's state.
pub struct Outbox {
    pub(crate) writes: Arc<dyn ChainWrites>,
    leases: Arc<dyn Leases>,
    /// This sender's name in the lease (random per process).
    holder: String,
    pub(crate) policy: Policy,
    /// Woken when a write is recorded, so the sender does not wait for its next round.
    pub(crate) wake: tokio::sync::Notify,
    /// Woken when a round changed a stage, so waiting requests look again.
    pub(crate) progress: tokio::sync::Notify,
    /// The next nonce this sender hands out per sending address.
    nonces: tokio::sync::Mutex<HashMap<Address, u64>>,
    /// The head the last round saw (number, hash): confirmed writes are checked again only
    /// when that block is no longer on the chain, i.e. after a reorganisation.
    last_head: tokio::sync::Mutex<Option<(u64, B256)>>,
    /// What the sender did.
    pub stats: OutboxStats,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox on `writes`, its sender running under a lease of `leases`, following writes
    /// by `policy`.
    pub fn new(writes: Arc<dyn ChainWrites>, leases: Arc<dyn Leases>, policy: Policy) -> Self {
        Self {
            writes,
            leases,
            holder: format!("{:016x}", rand::random::<u64>()),
            policy,
            wake: tokio::sync::Notify::new(),
            progress: tokio::sync::Notify::new(),
            nonces: tokio::sync::Mutex::default(),
            last_head: tokio::sync::Mutex::default(),
            stats: OutboxStats::default(),
        }
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn store(e: kippu_app::ports::PortError) -> ChainError {
    ChainError::Outbox(e.to_string())
}

fn hex(b: &[u8]) -> String {
    format!("0x{}", alloy::hex::encode(b))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    alloy::hex::decode(s.trim_start_matches("0x")).ok()
}

/// Whether the node refused a broadcast because it has, or has mined, that nonce already.
fn known_or_consumed(e: &str) -> bool {
    let e = e.to_ascii_lowercase();
    ["already known", "already imported", "known transaction", "nonce too low", "underpriced"]
        .iter()
        .any(|m| e.contains(m))
}

impl crate::Chain {
    /// This chain connection with its business writes going through `outbox`: recorded first,
    /// then sent and followed by whichever process runs [`crate::Chain::run_outbox`].
    pub fn with_outbox(mut self, outbox: Arc<Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The outbox, when this connection has one.
    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    /// Makes the write `key` from `sender` (`req`: the contract call) and waits for its first
    /// inclusion. With an outbox: recorded once per key (a retried business fact waits for the
    /// write recorded first), sent by the outbox's sender, and [`ChainError::Pending`] when it
    /// is not in a block within [`INCLUSION_WAIT`] (it is still being sent). Without one (the
    /// deployment, tests of the adapter): sent directly.
    pub(crate) async fn write(
        &self,
        key: WriteKey,
        sender: &crate::client::Sender,
        req: TransactionRequest,
    ) -> Result<TransactionReceipt> {
        let Some(o) = &self.outbox else { return crate::client::send_direct(self.provider(), sender, req).await };
        let w = prepared(key, sender, &req)?;
        o.writes.record_write(&w.key, &w.call, &w.sender, now()).await.map_err(store)?;
        o.wake.notify_one();
        self.await_write(&w.key, INCLUSION_WAIT).await
    }

    /// The write `key` encoded for the caller to record with its business fact in one
    /// database transaction; `None` without an outbox (the caller sends directly then).
    pub(crate) fn prepare(
        &self,
        key: WriteKey,
        sender: &crate::client::Sender,
        req: &TransactionRequest,
    ) -> Result<Option<PreparedWrite>> {
        self.outbox.as_ref().map(|_| prepared(key, sender, req)).transpose()
    }

    /// Waits for a write the caller recorded itself (see [`crate::Chain::prepare_mint`]): the
    /// sender is woken first, as it learns of such a write only from the database.
    pub async fn await_recorded(&self, key: &WriteKey) -> Result<TransactionReceipt> {
        if let Some(o) = &self.outbox {
            o.wake.notify_one();
        }
        self.await_write(key, INCLUSION_WAIT).await
    }

    /// Waits up to `wait` for write `key` to be in a block; its receipt then, the contract's
    /// refusal when it failed, [`ChainError::Pending`] when it is still being sent.
    pub async fn await_write(&self, key: &WriteKey, wait: Duration) -> Result<TransactionReceipt> {
        let o = self.outbox.as_ref().ok_or_else(|| ChainError::Config("no outbox".into()))?;
        let deadline = Instant::now() + wait;
        loop {
            let progressed = o.progress.notified();
            let w = o.writes.recorded_write(key).await.map_err(store)?;
            let w = w.ok_or_else(|| ChainError::Outbox(format!("no write {key}")))?;
            match &w.write.stage {
                Stage::Included { tx, .. } | Stage::Confirmed { tx, .. } => {
                    // the node away for a moment (a restart) is not the write failing: look again
                    if let Ok(Some(r)) = self.provider().get_transaction_receipt(B256::from(*tx)).await {
                        if r.status() {
                            return Ok(r);
                        }
                    }
                    // Done by an attempt the sender lost sight of (its refusal of a fresh
                    // attempt said so): the caller gets that refusal, which names the result
                    // (the plan bought, the batch anchored), as no receipt of ours holds it.
                    if let Some(done) = w
                        .revert_data
                        .as_deref()
                        .and_then(unhex)
                        .and_then(|d| crate::rejection::decode(&d))
                        .filter(|r| outbox::already_done(key.kind, r))
                    {
                        return Err(ChainError::Rejected(done));
                    }
                }
                Stage::Failed { reason } => {
                    return Err(match w.revert_data.as_deref().and_then(unhex) {
                        Some(data) => crate::rejection::classify(Bytes::from(data)),
                        None => ChainError::TxFailed(reason.clone()),
                    })
                }
                Stage::Recorded | Stage::Sent { .. } => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ChainError::Pending(key.to_string()));
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(250)), progressed).await;
        }
    }

    /// Runs the sender until the task is dropped: a round every `every`, or at once when a
    /// write is recorded in this process. A round's failure (the node or the database away) is
    /// logged and the next round tries again; nothing is lost, as every write is recorded.
    pub async fn run_outbox(&self, every: Duration) {
        let Some(o) = self.outbox.clone() else { return };
        loop {
            if let Err(e) = self.outbox_round().await {
                tracing::warn!(error = %e, "outbox round failed; retrying");
            }
            let _ = tokio::time::timeout(every, o.wake.notified()).await;
        }
    }

    /// One pass, when this process holds the sender's lease, over the open writes (in nonce order per sender, so re-broadcasts fill gaps
    /// from the lowest), then a check that recently confirmed writes are still on the chain.
    /// Returns how many writes changed stage.
    pub async fn outbox_round(&self) -> Result<usize> {
        let o = self.outbox.clone().ok_or_else(|| ChainError::Config("no outbox".into()))?;
        if !o.leases.lead(SENDER_LEASE, &o.holder, now(), SENDER_LEASE_SECS).await.map_err(store)? {
            // another process sends; this one's requests wait for its progress in the database
            return Ok(0);
        }
        let head = self.provider().get_block_number().await.map_err(crate::client::rpc)?;
        let mut open = o.writes.open_writes(1_000).await.map_err(store)?;
        open.sort_by(|a, b| {
            (&a.sender, a.nonce.unwrap_or(u64::MAX), a.created_at).cmp(&(
                &b.sender,
                b.nonce.unwrap_or(u64::MAX),
                b.created_at,
            ))
        });
        // After a restart this process's nonce counters are empty: never hand out a nonce an
        // open write of ours holds.
        {
            let mut nonces = o.nonces.lock().await;
            for w in &open {
                if let (Ok(from), Some(n)) = (w.sender.parse::<Address>(), w.nonce) {
                    let next = nonces.entry(from).or_insert(0);
                    *next = (*next).max(n + 1);
                }
            }
        }
        let mut changed = 0;
        for w in &open {
            match self.follow(&o, w, head).await {
                Ok(true) => changed += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(write = %w.write.key, error = %e, "following a chain write failed"),
            }
        }
        if self.reorganised(&o, head).await? {
            for w in o.writes.confirmed_writes_since(head.saturating_sub(RECHECK_BLOCKS)).await.map_err(store)? {
                match self.follow(&o, &w, head).await {
                    Ok(true) => changed += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(write = %w.write.key, error = %e, "checking a confirmed write failed"),
                }
            }
        }
        if changed > 0 {
            o.progress.notify_waiters();
        }
        Ok(changed)
    }

    /// Whether the head the last round saw is gone from the chain (or this is the first round):
    /// only then can a confirmed write have vanished, so only then are they checked again.
    /// One read per round instead of two per recently confirmed write.
    async fn reorganised(&self, o: &Outbox, head: u64) -> Result<bool> {
        let block = |n: u64| async move {
            self.provider().get_block_by_number(BlockNumberOrTag::Number(n)).await.map_err(crate::client::rpc)
        };
        let mut last = o.last_head.lock().await;
        let moved = match *last {
            None => true,
            Some((n, hash)) => block(n).await?.is_none_or(|b| b.header.hash != hash),
        };
        if let Some(b) = block(head).await? {
            *last = Some((head, b.header.hash));
        }
        Ok(moved)
    }

    /// Asks the node about `w`'s latest transaction and does what [`outbox::step`] says.
    async fn follow(&self, o: &Outbox, w: &RecordedWrite, head: u64) -> Result<bool> {
        let tx = match &w.write.stage {
            Stage::Sent { tx, .. } | Stage::Included { tx, .. } | Stage::Confirmed { tx, .. } => Some(*tx),
            Stage::Recorded | Stage::Failed { .. } => None,
        };
        let mut revert_data = None;
        let seen = match tx {
            None => None,
            Some(tx) => Some(self.seen(w, B256::from(tx), &mut revert_data).await?),
        };
        let canonical = match &w.write.stage {
            Stage::Included { block, .. } | Stage::Confirmed { block, .. } if *block <= head => self
                .provider()
                .get_block_by_number(BlockNumberOrTag::Number(*block))
                .await
                .map_err(crate::client::rpc)?
                .map(|b| b.header.hash.0),
            _ => None,
        };
        let key = &w.write.key;
        match outbox::step(&w.write, seen.as_ref(), head, canonical, now(), &o.policy) {
            Step::Wait => Ok(false),
            Step::Advance(stage) => {
                match &stage {
                    Stage::Confirmed { .. } => {
                        o.stats.confirmed.fetch_add(1, Ordering::Relaxed);
                    }
                    Stage::Failed { reason } => {
                        o.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(write = %key, %reason, "chain write refused by the contract");
                    }
                    _ => {}
                }
                let change = StageChange { revert_data, ..StageChange::to(stage, w.write.attempts) };
                o.writes.set_write_stage(key, &change, now()).await.map_err(store)?;
                Ok(true)
            }
            Step::Send { why } => self.send(o, w, why, head).await.map(|()| true),
            Step::ConfirmedWriteGone => {
                tracing::error!(write = %key, "a confirmed chain write is gone from the chain; sending it again");
                self.send(o, w, "confirmed, then gone from the chain", head).await?;
                // counted once its new stage is recorded, so the count never runs ahead of it
                o.stats.gone.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
        }
    }

    /// What the node says of transaction `tx` of write `w`. A mined failure is simulated again
    /// to learn why (its revert data goes to `revert_data`).
    async fn seen(&self, w: &RecordedWrite, tx: B256, revert_data: &mut Option<String>) -> Result<Seen> {
        if let Some(r) = self.provider().get_transaction_receipt(tx).await.map_err(crate::client::rpc)? {
            let (Some(block), Some(block_hash)) = (r.block_number, r.block_hash) else { return Ok(Seen::Pending) };
            let revert = if r.status() {
                None
            } else {
                Some(match self.simulate(w).await? {
                    Err(data) => {
                        let why = crate::rejection::classify(data.clone());
                        *revert_data = Some(hex(&data));
                        match why.rejection() {
                            Some(r) if outbox::already_done(w.write.key.kind, r) => Revert::AlreadyDone,
                            _ => Revert::Other(why.to_string()),
                        }
                    }
                    Ok(()) => Revert::Other("reverted when mined".into()),
                })
            };
            return Ok(Seen::Mined { block, block_hash: block_hash.0, revert });
        }
        let pending = self.provider().get_transaction_by_hash(tx).await.map_err(crate::client::rpc)?;
        Ok(if pending.is_some() { Seen::Pending } else { Seen::Unknown })
    }

    /// The write's call simulated at the head from its sender: `Err(revert data)` when the
    /// contract refuses it.
    async fn simulate(&self, w: &RecordedWrite) -> Result<std::result::Result<(), Bytes>> {
        let (from, call) = parse(w)?;
        let req = TransactionRequest::default().from(from).to(call.to).input(call.data.into());
        match self.provider().call(req).await {
            Ok(_) => Ok(Ok(())),
            Err(e) => match e.as_error_resp().and_then(|r| r.as_revert_data()) {
                Some(data) => Ok(Err(data)),
                None if e.to_string().contains("revert") => Ok(Err(Bytes::new())),
                None => Err(crate::client::rpc(e)),
            },
        }
    }

    /// Submits an attempt for `w`: the same signed transaction again while its nonce is free,
    /// a replacement at the same nonce when it sat in the pool too long, else a fresh one.
    async fn send(&self, o: &Outbox, w: &RecordedWrite, why: &'static str, head: u64) -> Result<()> {
        let (from, call) = parse(w)?;
        let key = &w.write.key;
        let attempts = w.write.attempts + 1;
        let mined_nonce = self.provider().get_transaction_count(from).latest().await.map_err(crate::client::rpc)?;
        let last =
            w.raw_tx.as_deref().and_then(unhex).and_then(|raw| TxEnvelope::decode_2718(&mut raw.as_slice()).ok());
        if let (Some(last), Some(nonce)) = (&last, w.nonce) {
            if nonce >= mined_nonce && why != outbox::STUCK_IN_POOL {
                let raw = last.encoded_2718();
                if let Err(e) = self.provider().send_raw_transaction(&raw).await {
                    if !known_or_consumed(&e.to_string()) {
                        return Err(crate::client::rpc(e));
                    }
                }
                o.stats.resent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(write = %key, nonce, why, "chain write broadcast again");
                let stage = Stage::Sent { tx: last.tx_hash().0, at: now() };
                return o.writes.set_write_stage(key, &StageChange::to(stage, attempts), now()).await.map_err(store);
            }
        }
        // A fresh or replacing attempt: the contract judges the call first, so a refusal costs
        // no nonce and is the write's answer.
        if let Err(data) = self.simulate(w).await? {
            let why_refused = crate::rejection::classify(data.clone());
            let done = why_refused.rejection().is_some_and(|r| outbox::already_done(key.kind, r));
            let stage = match (done, &w.write.stage) {
                // an earlier attempt of this write took effect, where we lost sight of it
                (true, Stage::Sent { tx, .. } | Stage::Included { tx, .. } | Stage::Confirmed { tx, .. }) => {
                    Stage::Confirmed { tx: *tx, block: head }
                }
                _ => Stage::Failed { reason: why_refused.to_string() },
            };
            if matches!(stage, Stage::Failed { .. }) {
                o.stats.failed.fetch_add(1, Ordering::Relaxed);
            }
            let change = StageChange { revert_data: Some(hex(&data)), ..StageChange::to(stage, w.write.attempts) };
            return o.writes.set_write_stage(key, &change, now()).await.map_err(store);
        }
        let replace = why == outbox::STUCK_IN_POOL && w.nonce.is_some_and(|n| n >= mined_nonce);
        let nonce = match (replace, w.nonce) {
            (true, Some(n)) => n,
            _ => self.next_nonce(o, from).await?,
        };
        let node_price = self.provider().get_gas_price().await.map_err(crate::client::rpc)?;
        // twice the node's price rides out a rising base fee; a replacement must beat the last
        let mut gas_price = node_price.saturating_mul(2);
        if replace {
            let old = last.as_ref().and_then(|t| t.gas_price()).unwrap_or(0);
            gas_price = gas_price.max(old + old / 4 + 1);
        }
        let req = TransactionRequest::default().from(from).to(call.to).input(call.data.clone().into());
        let gas = self.provider().estimate_gas(req.clone()).await.map_err(crate::client::rpc)?;
        let req = req
            .with_nonce(nonce)
            .with_gas_limit(gas + gas / 4 + 20_000)
            .with_gas_price(gas_price)
            .with_chain_id(self.deployment().chain_id);
        let signed = NetworkWallet::<alloy::network::Ethereum>::sign_request(&self.wallet, req)
            .await
            .map_err(|e| ChainError::Config(format!("signing: {e}")))?;
        let raw = signed.encoded_2718();
        let tx = signed.tx_hash().0;
        // Recorded before it is broadcast: a crash in between leaves a transaction that the
        // next round broadcasts, never one the node has and the outbox does not know.
        let change = StageChange {
            nonce: Some(nonce),
            raw_tx: Some(hex(&raw)),
            ..StageChange::to(Stage::Sent { tx, at: now() }, attempts)
        };
        o.writes.set_write_stage(key, &change, now()).await.map_err(store)?;
        if attempts > 1 {
            o.stats.resent.fetch_add(1, Ordering::Relaxed);
        } else {
            o.stats.sent.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(write = %key, nonce, why, "chain write sent");
        if let Err(e) = self.provider().send_raw_transaction(&raw).await {
            if !known_or_consumed(&e.to_string()) {
                return Err(crate::client::rpc(e));
            }
        }
        Ok(())
    }

    /// The next nonce for `from`: past both what the node has (mined and pending) and what
    /// this sender handed out.
    async fn next_nonce(&self, o: &Outbox, from: Address) -> Result<u64> {
        let pending = self.provider().get_transaction_count(from).pending().await.map_err(crate::client::rpc)?;
        let mut nonces = o.nonces.lock().await;
        let next = nonces.entry(from).or_insert(0);
        let n = (*next).max(pending);
        *next = n + 1;
        Ok(n)
    }
}

fn parse(w: &RecordedWrite) -> Result<(Address, Call)> {
    let from =
        w.sender.parse::<Address>().map_err(|_| ChainError::Outbox(format!("write {}: bad sender", w.write.key)))?;
    let call: Call =
        serde_json::from_str(&w.call).map_err(|e| ChainError::Outbox(format!("write {}: {e}", w.write.key)))?;
    Ok((from, call))
}
