//! Transactions and reads against a deployed Kippu. Each transaction is sent from
//! the key of its role ([`HotKeys`]): minter, relayer, settler or catalog. In the
//! embedded default one key holds every role ([`crate::deploy_single_key`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, PendingTransactionBuilder, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::{eip712_domain, SolEvent, SolStruct};
use kippu_domain::events::{ChainEvent, EventMeta};
use kippu_domain::outbox::{PreparedWrite, WriteKey, WriteKind};
use serde::{Deserialize, Serialize};

use crate::bindings::{Clearing, DelayInsurance, FareToken, Permit, PlanMarket, Ticket};
use crate::{decode_log, ChainError, ContractRejection, Deployment, HotKeys, Result};

/// How to reach the chain with one key in every role (the embedded default, tests).
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Hex private key of the operating account.
    pub admin_key: String,
}

/// Most rides one `Ticket.recordRides` transaction, and so one batch of
/// [`Chain::record_rides`], takes (the contract's `MAX_RIDES`).
pub const MAX_RIDES_PER_TX: usize = 256;

/// Why `Ticket.recordRides` refused a ride (`RideRefused.reason`). The ride is not
/// counted; the rest of its batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RideRefusal {
    /// The ticket does not exist or was burnt (refunded).
    UnknownTicket,
    /// The tap came before the ticket's validity.
    NotYetValid,
    /// The tap came at or after the end of its validity (a rolling ticket's activation deadline).
    Expired,
    /// No ride was left.
    NoRidesLeft,
    /// The tap's time is after the block's.
    InFuture,
}

impl RideRefusal {
    /// The contract's reason code (`Ticket.RIDE_*`).
    pub fn code(self) -> u8 {
        match self {
            Self::UnknownTicket => 1,
            Self::NotYetValid => 2,
            Self::Expired => 3,
            Self::NoRidesLeft => 4,
            Self::InFuture => 5,
        }
    }

    /// The refusal of a reason code, `None` for a code the contract does not define.
    pub fn from_code(code: u8) -> Option<Self> {
        [Self::UnknownTicket, Self::NotYetValid, Self::Expired, Self::NoRidesLeft, Self::InFuture]
            .into_iter()
            .find(|r| r.code() == code)
    }
}

/// The gates' reason style (`NOT_YET_VALID`, …), stable for logs and metric labels.
impl std::fmt::Display for RideRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownTicket => "UNKNOWN_TICKET",
            Self::NotYetValid => "NOT_YET_VALID",
            Self::Expired => "EXPIRED",
            Self::NoRidesLeft => "NO_RIDES_LEFT",
            Self::InFuture => "IN_FUTURE",
        })
    }
}

/// What [`Chain::record_rides`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RidesOutcome {
    /// The `recordRides` transaction; `None` exactly when `already_recorded`.
    pub tx: Option<B256>,
    /// Rides the contract counted.
    pub recorded: u32,
    /// Rides it refused, `(ticket, why)`, in the order it judged them: by tap time, then
    /// ticket id. So `NotYetValid` falls on a ticket's earliest taps in the batch, the
    /// other reasons on its latest.
    pub refused: Vec<(u64, RideRefusal)>,
    /// The batch key had already been recorded (an earlier send whose receipt was lost, or
    /// another process): nothing was sent and nothing changed.
    pub already_recorded: bool,
}

/// An operator to register in Clearing.
#[derive(Debug, Clone)]
pub struct OperatorSpec {
    /// Operator id.
    pub id: u32,
    /// Payout address.
    pub payee: Address,
}

/// How a product's validity window is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// `duration` seconds from the plan's start.
    Fixed = 0,
    /// `duration` days from the first ride, which must come within the activation window.
    Rolling = 1,
    /// A number of rides within `duration` seconds.
    Rides = 2,
}

/// A product to list.
#[derive(Debug, Clone)]
pub struct ProductSpec {
    /// Product id.
    pub id: u32,
    /// Operator.
    pub operator_id: u32,
    /// Zone or route the product is valid in (0 = the operator's whole network).
    pub zone: u32,
    /// List price (minor units).
    pub price: u128,
    /// Validity kind.
    pub validity: Validity,
    /// Seconds (fixed, rides) or days (rolling).
    pub duration: u64,
    /// Rolling only: how long after purchase the first ride may come.
    pub activation_window: u64,
    /// Rides (`u32::MAX` unlimited).
    pub rides: u32,
    /// Delay insurance product?
    pub insurance: bool,
    /// May the ticket change hands?
    pub transferable: bool,
    /// Share refunded for an unused ticket (basis points; 0 = no refunds).
    pub refund_bps: u16,
    /// How long after purchase a refund is possible.
    pub refund_window: u64,
}

/// A bundle to list.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// Bundle id.
    pub id: u32,
    /// Products.
    pub product_ids: Vec<u32>,
    /// Discount (basis points).
    pub discount_bps: u16,
}

/// Delay insurance terms.
#[derive(Debug, Clone)]
pub struct InsuranceTerms {
    /// Minimum delay that pays.
    pub threshold_minutes: u32,
    /// Voucher value (minor units).
    pub voucher_value: u128,
    /// Operator that accepts the voucher (the taxi).
    pub voucher_operator_id: u32,
    /// Voucher lifetime (seconds).
    pub voucher_lifetime: u64,
}

/// One insured product's delay-cover terms (`DelayInsurance.ProductTerms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductCover {
    /// Minimum delay that pays.
    pub threshold_minutes: u32,
    /// Voucher value (minor units).
    pub voucher_value: u128,
    /// Operator that issues and always accepts the voucher.
    pub voucher_operator_id: u32,
    /// Voucher lifetime (seconds).
    pub voucher_lifetime: u64,
    /// Kind of voucher (e.g. `taxi`): any operator of that category accepts it; empty = only the operator.
    pub voucher_kind: String,
    /// Vouchers this product pays for one run, all holders together (0 = no cap).
    pub max_per_trip: u16,
    /// Vouchers one policy receives per UTC day (0 = no cap).
    pub max_per_day: u16,
}

/// The on-chain category of a voucher kind: keccak256 of its name, zero for none.
pub fn voucher_category(kind: &str) -> B256 {
    if kind.is_empty() {
        B256::ZERO
    } else {
        alloy::primitives::keccak256(kind.as_bytes())
    }
}

/// Settlement balances held by the contracts at one block (see [`Chain::settlement_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementState {
    /// The block they were read at.
    pub block: u64,
    /// FARE held by Clearing.
    pub escrow: u128,
    /// Clearing's `totalUnpaid`.
    pub total_unpaid: u128,
    /// `Clearing.unpaid(operator)` per operator.
    pub unpaid: Vec<(u32, u128)>,
    /// `DelayInsurance.payableTo(operator)` per operator.
    pub payable: Vec<(u32, u128)>,
    /// `DelayInsurance.totalPayable`.
    pub total_payable: u128,
}

/// One sending account: its address and the lock that keeps its sends (and so its
/// nonces) in sequence. Roles sharing a key share the lock.
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    pub(crate) from: Address,
    pub(crate) lock: Arc<tokio::sync::Mutex<()>>,
}

impl Sender {
    pub(crate) fn new(from: Address) -> Self {
        Self { from, lock: Arc::default() }
    }
}

/// A connected, deployed Kippu, sending each transaction from its role's key.
#[derive(Clone, Debug)]
pub struct Chain {
    provider: DynProvider,
    d: Deployment,
    minter: Sender,
    relayer: Sender,
    settler: Sender,
    catalog: Sender,
    /// One of the hot keys when it is also the deployment's admin (single-key mode only).
    admin: Option<Sender>,
    /// The hot keys, for the outbox's sender to sign with.
    pub(crate) wallet: EthereumWallet,
    /// Where business writes are recorded before they are sent ([`Chain::with_outbox`]).
    pub(crate) outbox: Option<Arc<crate::Outbox>>,
}

pub(crate) fn rpc<E: std::fmt::Display>(e: E) -> ChainError {
    ChainError::Rpc(e.to_string())
}

/// The plan id a mined purchase created, and its transaction hash.
fn purchased(r: &TransactionReceipt) -> Result<(u64, B256)> {
    let plan = r
        .inner
        .logs()
        .iter()
        .find_map(|l| PlanMarket::PlanPurchased::decode_log_data(l.data()).ok())
        .ok_or_else(|| ChainError::Rpc("purchase mined without PlanPurchased".into()))?;
    Ok((plan.planId, r.transaction_hash))
}

/// Classifies a failed call or send: a revert becomes [`ChainError::Rejected`] when one of the
/// Kippu contracts' errors decodes it (so callers match a [`ContractRejection`], never text),
/// [`ChainError::Reverted`] with its data otherwise. Anything else (the node unreachable, a
/// transaction the node itself refused, such as a key without gas) is [`ChainError::Rpc`]: the
/// contract never judged it, and callers retry those rather than treat them as a refusal.
/// Whether the node refused a transaction because it already has one from this key with this
/// nonce (the same one, sent by another process holding the key). Nodes say so only in words:
/// anvil and geth "already imported" / "already known", others "nonce too low" once it is mined.
pub(crate) fn same_transaction_pending(e: &alloy::contract::Error) -> bool {
    if revert_data(e).is_some() {
        return false;
    }
    let text = e.to_string().to_ascii_lowercase();
    ["already imported", "already known", "nonce too low", "replacement transaction underpriced"]
        .iter()
        .any(|m| text.contains(m))
}

pub(crate) fn revert(e: alloy::contract::Error) -> ChainError {
    match revert_data(&e) {
        Some(data) => match crate::rejection::decode(&data) {
            Some(r) => ChainError::Rejected(r),
            None => ChainError::Reverted { data },
        },
        None => rpc(e),
    }
}

/// The revert data of a failed call, `None` when it did not revert. A bare `revert()` comes
/// back as empty data, or from some nodes (geth) as a plain "execution reverted" error with no
/// data field at all: the node's message is then the only sign of a revert, and is read by the
/// same rule alloy's `as_revert_data` applies. This classifies the failure; it never tells
/// one contract error from another.
fn revert_data(e: &alloy::contract::Error) -> Option<Bytes> {
    if let Some(data) = e.as_revert_data() {
        return Some(data);
    }
    match e {
        alloy::contract::Error::TransportError(t) => {
            t.as_error_resp().filter(|r| r.message.contains("revert")).map(|_| Bytes::new())
        }
        _ => None,
    }
}

/// Longest wait for a transaction to be mined.
const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits (bounded) for a sent transaction's receipt; a mined failure is an error.
pub(crate) async fn mined(pending: PendingTransactionBuilder<alloy::network::Ethereum>) -> Result<TransactionReceipt> {
    let receipt = pending.with_timeout(Some(RECEIPT_TIMEOUT)).get_receipt().await.map_err(rpc)?;
    if !receipt.status() {
        return Err(ChainError::TxFailed(format!("{:#x}", receipt.transaction_hash)));
    }
    Ok(receipt)
}

/// Sends `req` from `sender` and waits (bounded) for its receipt: a write made without an
/// outbox (the deployment, funding, tests of the adapter itself). Sends of one key are
/// serialized so each takes the next pending nonce the node reports: a call that reverts at
/// estimation never consumes a nonce (a cached nonce would, leaving a gap that stalls every
/// later transaction of that key).
///
/// Another process holding the same key may have sent the very same transaction (same nonce,
/// same call) a moment before: the node then answers that it already has it. The send is
/// retried after a pause, estimated afresh, so it either goes through with the next nonce or
/// is refused for what the first one changed (a period already closed, say). Business writes
/// go through the outbox instead ([`crate::Outbox`]), one sender per key.
pub(crate) async fn send_direct(
    provider: &DynProvider,
    sender: &Sender,
    req: TransactionRequest,
) -> Result<TransactionReceipt> {
    let req = req.from(sender.from);
    let guard = sender.lock.lock().await;
    let mut attempt = 0u32;
    let pending = loop {
        match provider.send_transaction(req.clone()).await {
            Ok(p) => break p,
            Err(e) => {
                let e = alloy::contract::Error::TransportError(e);
                if attempt < 40 && same_transaction_pending(&e) {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                } else {
                    return Err(revert(e));
                }
            }
        }
    };
    drop(guard);
    mined(pending).await
}

/// Sends `wei` of the chain's coin from `sender` to `to`.
pub(crate) async fn send_value(provider: &DynProvider, sender: &Sender, to: Address, wei: u128) -> Result<()> {
    send_direct(provider, sender, TransactionRequest::default().to(to).value(U256::from(wei))).await.map(drop)
}

/// The key of a catalogue change. Such changes set a value (setting it twice changes
/// nothing), and the same item may be set to the same value again later, so each change is
/// its own write: the item and the moment.
fn catalogue(item: &str) -> WriteKey {
    change(WriteKind::Catalogue, item)
}

/// The key of a catalogue or governance change of `kind`: the item and the moment.
fn change(kind: WriteKind, item: &str) -> WriteKey {
    let at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    WriteKey { kind, id: format!("{item}@{at}") }
}

pub(crate) fn role(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn url(rpc_url: &str) -> Result<alloy::transports::http::reqwest::Url> {
    rpc_url.parse().map_err(|e| ChainError::Config(format!("rpc url: {e}")))
}

/// A provider signing with `wallet`'s keys, each transaction with the key of its `from`.
pub(crate) fn provider(rpc_url: &str, wallet: EthereumWallet) -> Result<DynProvider> {
    // alloy's recommended fillers cache nonces, and a call that reverts at gas
    // estimation still consumes one, stalling every later transaction behind
    // the gap. Ask the node for the pending count instead (sends of a key are serialized).
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(wallet)
        .connect_http(url(rpc_url)?)
        .erased())
}

/// A provider that only reads.
pub(crate) fn read_only(rpc_url: &str) -> Result<DynProvider> {
    Ok(ProviderBuilder::new().disable_recommended_fillers().connect_http(url(rpc_url)?).erased())
}

/// Connects to deployment `d` with the hot keys: each transaction is sent from its role's
/// key, one send at a time per key. Check the deployment with [`crate::verify_deployment`]
/// first. Admin-only governance needs the admin's key, which only single-key setups hold
/// here ([`ChainError::MissingKey`] otherwise).
pub async fn connect(rpc_url: &str, keys: HotKeys, d: Deployment) -> Result<Chain> {
    let [minter, relayer, settler, catalog] = keys.signers();
    let mut wallet = EthereumWallet::new(minter.clone());
    for k in [relayer, settler, catalog] {
        wallet.register_signer(k.clone());
    }
    // one lock per key, shared by the roles it holds
    let mut locks: HashMap<Address, Sender> = HashMap::new();
    let mut sender = |a: Address| locks.entry(a).or_insert_with(|| Sender::new(a)).clone();
    let senders = keys.signers().map(|k| sender(k.address()));
    let admin = keys.signers().iter().any(|k| k.address() == d.roles.admin).then(|| sender(d.roles.admin));
    let [minter, relayer, settler, catalog] = senders;
    Ok(Chain {
        provider: provider(rpc_url, wallet.clone())?,
        d,
        minter,
        relayer,
        settler,
        catalog,
        admin,
        wallet,
        outbox: None,
    })
}

impl Chain {
    /// Connects to an existing deployment with one key in every role (see [`connect`]).
    pub async fn attach(cfg: &ChainConfig, d: Deployment) -> Result<Self> {
        let key: PrivateKeySigner = cfg.admin_key.parse().map_err(|e| ChainError::Config(format!("admin key: {e}")))?;
        connect(&cfg.rpc_url, HotKeys::single(key), d).await
    }

    /// The deployment's addresses, role holders and code hashes.
    pub fn deployment(&self) -> &Deployment {
        &self.d
    }

    /// The account delay reports and settlements are sent from (the settler key, which
    /// holds `ORACLE_ROLE`): what callers identify a reporter by. Not necessarily the
    /// deployment's admin, which is `deployment().roles.admin`.
    pub fn admin(&self) -> Address {
        self.settler.from
    }

    /// The node connection, for reads through the bindings (tests, reconciliation tools).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The admin's key, held only when one of the hot keys is the admin (single-key mode).
    fn governance(&self) -> Result<&Sender> {
        self.admin.as_ref().ok_or(ChainError::MissingKey { role: "admin", address: self.d.roles.admin })
    }

    /// Registers an operator's payout address (catalog key). Changing the payee of a
    /// registered operator is the admin's (governance), so it reverts here with hot keys.
    pub async fn set_operator(&self, op: &OperatorSpec) -> Result<()> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        self.write(
            catalogue(&format!("operator:{}", op.id)),
            &self.catalog,
            c.setOperator(op.id, op.payee).into_transaction_request(),
        )
        .await?;
        Ok(())
    }

    /// Lists a product (catalog key).
    pub async fn list_product(&self, p: &ProductSpec) -> Result<()> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let c = PlanMarket::ProductConfig {
            operatorId: p.operator_id,
            zone: p.zone,
            price: p.price,
            validity: p.validity as u8,
            duration: p.duration,
            activationWindow: p.activation_window,
            rides: p.rides,
            insurance: p.insurance,
            transferable: p.transferable,
            refundBps: p.refund_bps,
            refundWindow: p.refund_window,
        };
        self.write(
            catalogue(&format!("product:{}", p.id)),
            &self.catalog,
            m.setProduct(p.id, c).into_transaction_request(),
        )
        .await?;
        Ok(())
    }

    /// Lists a bundle (catalog key).
    pub async fn list_bundle(&self, b: &BundleSpec) -> Result<()> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        self.write(
            catalogue(&format!("bundle:{}", b.id)),
            &self.catalog,
            m.setBundle(b.id, b.product_ids.clone(), b.discount_bps).into_transaction_request(),
        )
        .await?;
        Ok(())
    }

    /// FARE balance in minor units.
    pub async fn fare_balance(&self, who: Address) -> Result<u128> {
        let f = FareToken::new(self.d.fare, &self.provider);
        let b: U256 = f.balanceOf(who).call().await.map_err(revert)?;
        u128::try_from(b).map_err(|_| ChainError::Rpc("balance overflow".into()))
    }

    /// FARE held in escrow by Clearing.
    pub async fn escrow_balance(&self) -> Result<u128> {
        self.fare_balance(self.d.clearing).await
    }

    /// Mints FARE for a card payment (minter key); the contract refuses a second mint of the
    /// same payment ([`ContractRejection::PaymentAlreadyMinted`]).
    pub async fn mint_fare(&self, to: Address, amount: u128, payment_ref: B256) -> Result<B256> {
        let f = FareToken::new(self.d.fare, &self.provider);
        let key = WriteKey { kind: WriteKind::Mint, id: format!("{payment_ref:#x}") };
        let r = self
            .write(key, &self.minter, f.mint(to, U256::from(amount), payment_ref).into_transaction_request())
            .await?;
        Ok(r.transaction_hash)
    }

    /// The mint for a payment, encoded for the caller to record in the same database
    /// transaction as the payment marked paid; `None` without an outbox (then
    /// [`Chain::mint_fare`] sends it). [`Chain::await_mint`] waits for it.
    pub fn prepare_mint(&self, to: Address, amount: u128, payment_ref: B256) -> Result<Option<PreparedWrite>> {
        let f = FareToken::new(self.d.fare, &self.provider);
        let key = WriteKey { kind: WriteKind::Mint, id: format!("{payment_ref:#x}") };
        self.prepare(key, &self.minter, &f.mint(to, U256::from(amount), payment_ref).into_transaction_request())
    }

    /// Waits for a mint recorded from [`Chain::prepare_mint`]; its transaction.
    pub async fn await_mint(&self, key: &WriteKey) -> Result<B256> {
        Ok(self.await_recorded(key).await?.transaction_hash)
    }

    /// Whether a payment was already minted on chain.
    pub async fn payment_minted(&self, payment_ref: B256) -> Result<bool> {
        let f = FareToken::new(self.d.fare, &self.provider);
        f.paymentMinted(payment_ref).call().await.map_err(revert)
    }

    /// Price of a bundle and each leg's share.
    pub async fn quote(&self, bundle_id: u32) -> Result<(u128, Vec<u128>)> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let q = m.quote(bundle_id).call().await.map_err(revert)?;
        let price = u128::try_from(q.price).map_err(|_| ChainError::Rpc("price overflow".into()))?;
        let shares = q.legShares.into_iter().map(|s| u128::try_from(s).unwrap_or(u128::MAX)).collect();
        Ok((price, shares))
    }

    /// Buys a bundle for `traveler` in one relayed transaction: the traveler's
    /// key signs an EIP-2612 permit here (it never leaves this process), the
    /// relayer pays the gas. `valid_from` 0 starts validity at the block's time
    /// (travelers may also buy ahead for a later start). Returns the plan id and
    /// transaction hash.
    ///
    /// `request_id` (nonzero) is the purchase's business key, on chain too: however often the
    /// same request is sent (a form submitted twice, a transaction dropped and re-signed), it
    /// buys one plan, and every call answers with that plan.
    pub async fn buy_with_permit(
        &self,
        request_id: B256,
        traveler: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
    ) -> Result<(u64, B256)> {
        let owner = traveler.address();
        let (value, deadline, v, r, s) = self.permit(traveler, max_price).await?;
        let m = PlanMarket::new(self.d.market, &self.provider);
        let call = m.buyWithPermit(request_id, owner, bundle_id, valid_from, value, deadline, v, r, s);
        self.purchase(request_id, call.into_transaction_request()).await
    }

    /// Sends a purchase keyed by its request id; a request that bought its plan before
    /// ([`ContractRejection::PurchaseAlreadyMade`]) answers with that plan and its transaction.
    async fn purchase(&self, request_id: B256, req: TransactionRequest) -> Result<(u64, B256)> {
        let key = WriteKey { kind: WriteKind::Purchase, id: format!("{request_id:#x}") };
        match self.write(key, &self.relayer, req).await {
            Ok(r) => purchased(&r),
            Err(ChainError::Rejected(ContractRejection::PurchaseAlreadyMade { plan, .. })) => {
                Ok((plan, self.plan_purchase(plan).await?.0))
            }
            Err(e) => Err(e),
        }
    }

    /// The transaction that bought `plan` and the price paid (its `PlanPurchased` event, found
    /// by the indexed plan id).
    pub async fn plan_purchase(&self, plan: u64) -> Result<(B256, u128)> {
        let filter = Filter::new()
            .address(self.d.market)
            .event_signature(PlanMarket::PlanPurchased::SIGNATURE_HASH)
            .topic1(B256::from(U256::from(plan)))
            .from_block(0);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        let log = logs.first().ok_or_else(|| ChainError::Rpc(format!("plan {plan} has no PlanPurchased event")))?;
        let e = PlanMarket::PlanPurchased::decode_log_data(log.data()).map_err(rpc)?;
        let tx = log.transaction_hash.ok_or_else(|| ChainError::Rpc("a mined log without its transaction".into()))?;
        Ok((tx, u128::try_from(e.price).map_err(|_| ChainError::Rpc("price overflow".into()))?))
    }

    /// The plan purchase request `request_id` bought, its transaction and price, if it did.
    pub async fn purchase_of(&self, request_id: B256) -> Result<Option<(u64, B256, u128)>> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let plan = m.purchaseOf(request_id).call().await.map_err(revert)?;
        if plan == 0 {
            return Ok(None);
        }
        let (tx, price) = self.plan_purchase(plan).await?;
        Ok(Some((plan, tx, price)))
    }

    /// The bundle's price after a concession discount of `concession_bps`.
    pub async fn quote_with_concession(&self, bundle_id: u32, concession_bps: u16) -> Result<u128> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let q = m.quoteWithConcession(bundle_id, concession_bps).call().await.map_err(revert)?;
        u128::try_from(q.price).map_err(|_| ChainError::Rpc("price overflow".into()))
    }

    /// Grants `account` the right to sign concession attestations. Admin-only governance:
    /// works only when this connection holds the admin's key (single-key mode), else
    /// [`ChainError::MissingKey`].
    pub async fn grant_concession_issuer(&self, account: Address) -> Result<()> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let key = change(WriteKind::Role, &format!("concession_issuer:{account:#x}"));
        self.write(
            key,
            self.governance()?,
            m.grantRole(keccak256("CONCESSION_ISSUER_ROLE"), account).into_transaction_request(),
        )
        .await?;
        Ok(())
    }

    /// Buys a bundle at a concession price. `attestor` (a CONCESSION_ISSUER_ROLE
    /// account, Kippu's credential verifier) signs an EIP-712 attestation that
    /// names only the traveler's address, the concession kind and the discount:
    /// the credential itself, and whatever personal data it holds, stays off chain.
    #[allow(clippy::too_many_arguments)]
    pub async fn buy_with_permit_and_concession(
        &self,
        request_id: B256,
        traveler: &PrivateKeySigner,
        attestor: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
        kind: u8,
        discount_bps: u16,
    ) -> Result<(u64, B256)> {
        let owner = traveler.address();
        let m = PlanMarket::new(self.d.market, &self.provider);
        let concession = PlanMarket::Concession {
            holder: owner,
            kind,
            discountBps: discount_bps,
            expiry: now() + 600,
            nonce: B256::from(rand::random::<[u8; 32]>()),
        };
        // The contract's own digest, so the attestation can never drift from its EIP-712 encoding.
        let digest = m.concessionDigest(concession.clone()).call().await.map_err(revert)?;
        let concession_sig =
            attestor.sign_hash_sync(&digest).map_err(|e| ChainError::Config(e.to_string()))?.as_bytes();
        let (value, deadline, v, r, s) = self.permit(traveler, max_price).await?;
        let permit = PlanMarket::PermitSig { deadline, v, r, s };
        let call = m.buyWithPermitAndConcession(
            request_id,
            owner,
            bundle_id,
            valid_from,
            value,
            permit.clone(),
            concession.clone(),
            concession_sig.to_vec().into(),
        );
        self.purchase(request_id, call.into_transaction_request()).await
    }

    /// Signs an EIP-2612 permit of `max_price` FARE to the market with the traveler's key.
    async fn permit(&self, traveler: &PrivateKeySigner, max_price: u128) -> Result<(U256, U256, u8, B256, B256)> {
        let owner = traveler.address();
        let f = FareToken::new(self.d.fare, &self.provider);
        let nonce: U256 = f.nonces(owner).call().await.map_err(revert)?;
        let deadline = U256::from(now() + 600);
        let value = U256::from(max_price);
        let permit = Permit { owner, spender: self.d.market, value, nonce, deadline };
        let domain = eip712_domain! {
            name: "Kippu Fare",
            version: "1",
            chain_id: self.d.chain_id,
            verifying_contract: self.d.fare,
        };
        let sig = traveler
            .sign_hash_sync(&permit.eip712_signing_hash(&domain))
            .map_err(|e| ChainError::Config(e.to_string()))?;
        Ok((value, deadline, 27u8 + u8::from(sig.v()), B256::from(sig.r()), B256::from(sig.s())))
    }

    /// What refunding `ticket_id` would return now, and until when (`(0, 0)`: not refundable).
    pub async fn refundable(&self, ticket_id: u64) -> Result<(u128, u64)> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let r = m.refundable(U256::from(ticket_id)).call().await.map_err(revert)?;
        Ok((u128::try_from(r.amount).map_err(|_| ChainError::Rpc("refund overflow".into()))?, r.deadline))
    }

    /// Refunds an unused ticket (relayer key: FARE goes to the holder); returns the amount.
    /// Check the taps recorded for the ticket first: rides reach the chain in batches, and
    /// from the ticket's validFrom only the relayer may refund.
    pub async fn refund(&self, ticket_id: u64) -> Result<u128> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let key = WriteKey { kind: WriteKind::Refund, id: ticket_id.to_string() };
        let r = self.write(key, &self.relayer, m.refund(U256::from(ticket_id)).into_transaction_request()).await?;
        let e = r
            .inner
            .logs()
            .iter()
            .find_map(|l| PlanMarket::TicketRefunded::decode_log_data(l.data()).ok())
            .ok_or_else(|| ChainError::Rpc("refund mined without TicketRefunded".into()))?;
        u128::try_from(e.amount).map_err(|_| ChainError::Rpc("refund overflow".into()))
    }

    /// Reports a delay for one policy (settler key, an oracle). Returns the
    /// voucher id when this vote completed the quorum, `None` when it only
    /// recorded a vote (k-of-n reporting, fewer than k so far).
    pub async fn report_delay(&self, delay_id: B256, policy_id: u64, delay_minutes: u32) -> Result<Option<u64>> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        // one vote per reporter: the key names the reporting key too
        let key =
            WriteKey { kind: WriteKind::Voucher, id: format!("{delay_id:#x}:{policy_id}:{:#x}", self.settler.from) };
        let call = c.reportDelay(delay_id, U256::from(policy_id), delay_minutes);
        let r = self.write(key, &self.settler, call.into_transaction_request()).await?;
        r.inner
            .logs()
            .iter()
            .find_map(|l| DelayInsurance::VoucherIssued::decode_log_data(l.data()).ok())
            .map(|v| u64::try_from(v.voucherId).map_err(|_| ChainError::Rpc("voucher id overflow".into())))
            .transpose()
    }

    /// Sets an insured product's own terms (threshold, voucher, caps; catalog key).
    pub async fn set_product_terms(&self, product_id: u32, t: &ProductCover) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let terms = DelayInsurance::ProductTerms {
            thresholdMinutes: t.threshold_minutes,
            voucherValue: t.voucher_value,
            voucherOperatorId: t.voucher_operator_id,
            voucherLifetime: t.voucher_lifetime,
            voucherCategory: voucher_category(&t.voucher_kind),
            maxPerTrip: t.max_per_trip,
            maxPerDay: t.max_per_day,
        };
        self.write(
            catalogue(&format!("terms:{product_id}")),
            &self.catalog,
            c.setProductTerms(product_id, terms).into_transaction_request(),
        )
        .await?;
        Ok(())
    }

    /// The terms a delay report against `policy_id` uses, as the contract sees them:
    /// `(threshold minutes, voucher value, voucher operator, category, max per trip, max per day)`.
    pub async fn terms_for(&self, policy_id: u64) -> Result<(u32, u128, u32, B256, u16, u16)> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let t = c.termsFor(U256::from(policy_id)).call().await.map_err(revert)?;
        Ok((t.thresholdMinutes, t.voucherValue, t.voucherOperatorId, t.voucherCategory, t.maxPerTrip, t.maxPerDay))
    }

    /// Puts an operator in a voucher category: it then accepts vouchers of that kind (catalog key).
    pub async fn set_operator_category(&self, operator_id: u32, kind: &str) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let call = c.setOperatorCategory(operator_id, voucher_category(kind));
        self.write(catalogue(&format!("category:{operator_id}")), &self.catalog, call.into_transaction_request())
            .await?;
        Ok(())
    }

    /// Sets how many distinct oracles must report a delay before it pays. Admin-only
    /// governance ([`ChainError::MissingKey`] without the admin's key).
    pub async fn set_quorum(&self, quorum: u8) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        self.write(catalogue("quorum"), self.governance()?, c.setQuorum(quorum).into_transaction_request()).await?;
        Ok(())
    }

    /// Makes `account` a delay oracle (a reporter with its own key). Admin-only governance
    /// ([`ChainError::MissingKey`] without the admin's key).
    pub async fn grant_oracle(&self, account: Address) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let key = change(WriteKind::Role, &format!("oracle:{account:#x}"));
        self.write(key, self.governance()?, c.grantRole(role("ORACLE_ROLE"), account).into_transaction_request())
            .await?;
        Ok(())
    }

    /// Sends `wei` of the chain's native coin from the relayer key (gas for another key).
    pub async fn fund(&self, to: Address, wei: u128) -> Result<()> {
        send_value(&self.provider, &self.relayer, to, wei).await
    }

    /// The same deployment with `key` in every role (an independent delay reporter).
    pub async fn as_account(&self, rpc_url: &str, key: &str) -> Result<Self> {
        Self::attach(&ChainConfig { rpc_url: rpc_url.into(), admin_key: key.into() }, self.d.clone()).await
    }

    /// Redeems a voucher at an operator (relayer key).
    pub async fn redeem_voucher(&self, voucher_id: u64, operator_id: u32) -> Result<B256> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let key = WriteKey { kind: WriteKind::Redemption, id: voucher_id.to_string() };
        let call = c.redeem(U256::from(voucher_id), operator_id);
        Ok(self.write(key, &self.relayer, call.into_transaction_request()).await?.transaction_hash)
    }

    /// Clearing's current (open) period: the one a close must name.
    pub async fn current_period(&self) -> Result<u64> {
        Clearing::new(self.d.clearing, &self.provider).currentPeriod().call().await.map_err(revert)
    }

    /// Closes clearing period `period_id`, paying every operator (vouchers redeemed are
    /// paid out of the insurer's claim first). A period that is not the current one is
    /// refused with [`ContractRejection::WrongPeriod`] (`given < current`: it is closed
    /// already, by an earlier send or another closer), so a close never settles twice.
    pub async fn close_period(&self, period_id: u64) -> Result<B256> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let key = WriteKey { kind: WriteKind::PeriodClose, id: period_id.to_string() };
        let r = self.write(key, &self.settler, c.closePeriod(period_id).into_transaction_request()).await;
        Ok(self.closed(period_id, r).await?.transaction_hash)
    }

    /// Closes clearing period `period_id` (as [`Chain::close_period`]) with netted
    /// adjustments `(from, to, amount)` moved between operators' claims before the payout;
    /// returns the transaction and the period it closed.
    pub async fn settle_period(&self, period_id: u64, adjustments: &[(u32, u32, i64)]) -> Result<(B256, u64)> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let transfers: Vec<Clearing::Transfer> = adjustments
            .iter()
            .map(|&(from, to, amount)| Clearing::Transfer { from, to, amount: U256::from(amount.max(0) as u64) })
            .collect();
        let key = WriteKey { kind: WriteKind::PeriodClose, id: period_id.to_string() };
        let r = self.write(key, &self.settler, c.settlePeriod(period_id, transfers).into_transaction_request()).await;
        let r = self.closed(period_id, r).await?;
        let period = r
            .inner
            .logs()
            .iter()
            .find_map(|l| Clearing::PeriodClosed::decode_log_data(l.data()).ok())
            .map(|e| e.periodId)
            .ok_or_else(|| ChainError::Rpc("settlePeriod emitted no PeriodClosed".into()))?;
        Ok((r.transaction_hash, period))
    }

    /// A close that passed estimation but failed when mined lost a race with another closer
    /// of the same period: report it as the refusal a later send gets, the wrong period it
    /// now is.
    async fn closed(&self, period_id: u64, sent: Result<TransactionReceipt>) -> Result<TransactionReceipt> {
        match sent {
            Err(ChainError::TxFailed(tx)) => match self.current_period().await? {
                current if current != period_id => {
                    Err(ChainError::Rejected(ContractRejection::WrongPeriod { given: period_id, current }))
                }
                _ => Err(ChainError::TxFailed(tx)),
            },
            other => other,
        }
    }

    /// The insurer operator whose claim pays redeemed vouchers, if one is set.
    pub async fn insurer(&self) -> Result<Option<u32>> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let r = c.insurance().call().await.map_err(revert)?;
        Ok((r.insurance_ != Address::ZERO).then_some(r.insurerId))
    }

    /// Names the insurer whose claim pays redeemed vouchers at each close (catalog key).
    pub async fn set_insurer(&self, operator_id: u32) -> Result<()> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let call = c.setInsurance(self.d.insurance, operator_id);
        self.write(catalogue("insurer"), &self.catalog, call.into_transaction_request()).await?;
        Ok(())
    }

    /// Anchors a tap batch's Merkle root (settler key); returns the batch id.
    pub async fn anchor_taps(&self, root: B256, count: u32) -> Result<u64> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let key = WriteKey { kind: WriteKind::Anchor, id: format!("{root:#x}") };
        let r = match self.write(key, &self.settler, c.anchorTapBatch(root, count).into_transaction_request()).await {
            Ok(r) => r,
            // anchored before (an earlier attempt, or another process): the same batch
            Err(ChainError::Rejected(ContractRejection::BatchAlreadyAnchored { batch, .. })) => return Ok(batch),
            Err(e) => return Err(e),
        };
        r.inner
            .logs()
            .iter()
            .find_map(|l| Clearing::TapBatchAnchored::decode_log_data(l.data()).ok())
            .map(|e| e.batchId)
            .ok_or_else(|| ChainError::Rpc("anchor mined without TapBatchAnchored".into()))
    }

    /// Records a batch of rides on chain in one transaction (`Ticket.recordRides`, settler
    /// key), each `(ticket, unix time of the tap)`, so a ridden ticket can no longer be
    /// refunded and its rides left are counted down. Idempotent on `batch_key` (Kippu uses the
    /// tap batch's Merkle root): a batch recorded before is reported as `already_recorded`, not
    /// as an error, and changes nothing. Rides are sent sorted by tap time, as the contract
    /// judges them in order (a rolling ticket activates at its first tap). A batch must hold 1
    /// to [`MAX_RIDES_PER_TX`] rides ([`ChainError::InvalidRideBatch`] otherwise, before
    /// anything is sent): keep tap batches within that.
    pub async fn record_rides(&self, batch_key: B256, rides: &[(u64, u64)]) -> Result<RidesOutcome> {
        if rides.is_empty() || rides.len() > MAX_RIDES_PER_TX {
            return Err(ChainError::InvalidRideBatch { rides: rides.len(), max: MAX_RIDES_PER_TX });
        }
        let mut sorted: Vec<Ticket::Ride> =
            rides.iter().map(|&(ticket, at)| Ticket::Ride { tokenId: U256::from(ticket), time: at }).collect();
        sorted.sort_unstable_by_key(|r| (r.time, r.tokenId));
        let already = RidesOutcome { already_recorded: true, ..Default::default() };
        let t = Ticket::new(self.d.ticket, &self.provider);
        let key = WriteKey { kind: WriteKind::Anchor, id: format!("rides:{batch_key:#x}") };
        let r = match self.write(key, &self.settler, t.recordRides(batch_key, sorted).into_transaction_request()).await
        {
            Ok(r) => r,
            Err(ChainError::Rejected(ContractRejection::RidesAlreadyRecorded { .. })) => return Ok(already),
            // estimated before another sender's copy of the batch was mined
            Err(ChainError::TxFailed(_)) if self.rides_recorded(batch_key).await? => return Ok(already),
            Err(e) => return Err(e),
        };
        let mut recorded = None;
        let mut refused = Vec::new();
        for log in r.inner.logs().iter().filter(|l| l.address() == self.d.ticket) {
            if let Ok(e) = Ticket::RideRefused::decode_log_data(log.data()) {
                let ticket = u64::try_from(e.tokenId).map_err(|_| ChainError::Rpc("ticket id overflow".into()))?;
                let why = RideRefusal::from_code(e.reason)
                    .ok_or_else(|| ChainError::Rpc(format!("unknown RideRefused reason {}", e.reason)))?;
                refused.push((ticket, why));
            } else if let Ok(e) = Ticket::RidesRecorded::decode_log_data(log.data()) {
                recorded = Some(e.recorded);
            }
        }
        let recorded = recorded.ok_or_else(|| ChainError::Rpc("recordRides mined without RidesRecorded".into()))?;
        Ok(RidesOutcome { tx: Some(r.transaction_hash), recorded, refused, already_recorded: false })
    }

    /// Whether the ride batch `batch_key` is recorded on chain.
    pub async fn rides_recorded(&self, batch_key: B256) -> Result<bool> {
        Ticket::new(self.d.ticket, &self.provider).ridesRecorded(batch_key).call().await.map_err(revert)
    }

    /// Clearing's own leaf of a tap (to check the off-chain encoding against).
    pub async fn tap_leaf(&self, scan_id_hash: B256, ticket_id: u64, operator_id: u32, at: u64) -> Result<B256> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        c.tapLeaf(scan_id_hash, U256::from(ticket_id), operator_id, at).call().await.map_err(revert)
    }

    /// Asks Clearing whether `leaf` is in anchored batch `batch_id`.
    pub async fn verify_tap(&self, batch_id: u64, leaf: B256, proof: Vec<B256>) -> Result<bool> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        c.verifyTap(batch_id, leaf, proof).call().await.map_err(revert)
    }

    /// Latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.provider.get_block_number().await.map_err(rpc)
    }

    /// What the contracts hold for settlement at block `block`, for reconciliation with
    /// the ledger: Clearing's FARE balance and `totalUnpaid`, each operator's unpaid share,
    /// and the voucher value DelayInsurance owes each operator and in total.
    pub async fn settlement_state(&self, block: u64, operators: &[u32]) -> Result<SettlementState> {
        let at = alloy::eips::BlockId::number(block);
        let f = FareToken::new(self.d.fare, &self.provider);
        let c = Clearing::new(self.d.clearing, &self.provider);
        let ins = DelayInsurance::new(self.d.insurance, &self.provider);
        let small = |v: U256| u128::try_from(v).map_err(|_| ChainError::Rpc("amount overflow".into()));
        let escrow = small(f.balanceOf(self.d.clearing).block(at).call().await.map_err(revert)?)?;
        let total_unpaid = small(c.totalUnpaid().block(at).call().await.map_err(revert)?)?;
        let total_payable = small(ins.totalPayable().block(at).call().await.map_err(revert)?)?;
        let mut unpaid = Vec::new();
        let mut payable = Vec::new();
        for &op in operators {
            unpaid.push((op, small(c.unpaid(op).block(at).call().await.map_err(revert)?)?));
            payable.push((op, small(ins.payableTo(op).block(at).call().await.map_err(revert)?)?));
        }
        Ok(SettlementState { block, escrow, total_unpaid, unpaid, payable, total_payable })
    }

    /// Hash, parent hash and timestamp (POSIX seconds) of block `n`; `None` past the head.
    pub async fn block_header(&self, n: u64) -> Result<Option<(B256, B256, u64)>> {
        let block = self.provider.get_block_by_number(n.into()).await.map_err(rpc)?;
        Ok(block.map(|b| (b.header.hash, b.header.parent_hash, b.header.timestamp)))
    }

    /// Dev chains (anvil): snapshots the chain state; [`Chain::revert_to`] returns to it.
    pub async fn evm_snapshot(&self) -> Result<U256> {
        // `[]`, not `()` (sent as `null`): Hardhat's node refuses null params, anvil takes both
        self.provider.raw_request("evm_snapshot".into(), [(); 0]).await.map_err(rpc)
    }

    /// Dev chains (anvil): reverts to a snapshot, dropping every later block.
    pub async fn revert_to(&self, snapshot: U256) -> Result<bool> {
        self.provider.raw_request("evm_revert".into(), (snapshot,)).await.map_err(rpc)
    }

    /// Dev chains (anvil): the whole chain (blocks, receipts, state) as anvil's JSON
    /// state, for [`crate::anvil::AnvilProcess::spawn_with`] to start from.
    pub async fn dump_state(&self) -> Result<Vec<u8>> {
        use std::io::Read as _;
        let hex: String = self.provider.raw_request("anvil_dumpState".into(), ()).await.map_err(rpc)?;
        let raw = alloy::primitives::hex::decode(&hex).map_err(|e| ChainError::Rpc(format!("anvil_dumpState: {e}")))?;
        // anvil gzips the dump; older versions sent it plain.
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(_) => Ok(raw),
        }
    }

    /// Dev chains (anvil): mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) -> Result<()> {
        let _: serde_json::Value =
            self.provider.raw_request("anvil_mine".into(), (U256::from(blocks),)).await.map_err(rpc)?;
        Ok(())
    }

    /// Dev chains (anvil): replaces the last `depth` blocks with as many new, empty ones
    /// (`anvil_reorg`): the transactions in them are gone from the chain.
    pub async fn reorg(&self, depth: u64) -> Result<()> {
        let _: serde_json::Value = self
            .provider
            .raw_request("anvil_reorg".into(), (depth, Vec::<serde_json::Value>::new()))
            .await
            .map_err(rpc)?;
        Ok(())
    }

    /// Kippu's events in `[from, to]`, in chain order.
    pub async fn events(&self, from: u64, to: u64) -> Result<Vec<(EventMeta, ChainEvent)>> {
        let filter = Filter::new()
            .address(vec![self.d.fare, self.d.ticket, self.d.market, self.d.insurance, self.d.clearing])
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        let mut out: Vec<_> = logs.iter().filter_map(|l| decode_log(&self.d, l)).collect();
        out.sort_by_key(|(m, _)| (m.block_number, m.log_index));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::RideRefusal;

    #[test]
    fn ride_refusal_codes_match_the_contract() {
        let all = [
            (1, RideRefusal::UnknownTicket, "UNKNOWN_TICKET"),
            (2, RideRefusal::NotYetValid, "NOT_YET_VALID"),
            (3, RideRefusal::Expired, "EXPIRED"),
            (4, RideRefusal::NoRidesLeft, "NO_RIDES_LEFT"),
            (5, RideRefusal::InFuture, "IN_FUTURE"),
        ];
        for (code, r, text) in all {
            assert_eq!((r.code(), RideRefusal::from_code(code), r.to_string()), (code, Some(r), text.to_owned()));
        }
        assert_eq!(RideRefusal::from_code(0), None);
        assert_eq!(RideRefusal::from_code(6), None);
    }
}
