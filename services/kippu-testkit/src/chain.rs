//! [`FakeChain`]: Kippu's contracts (FareToken, Ticket, PlanMarket, DelayInsurance, Clearing)
//! as far as the application sees them, in memory. Each call checks what the contract checks,
//! in the contract's order, and refuses with the same
//! [`ContractRejection`](kippu_domain::ContractRejection); each transaction is mined in a
//! block of its own and its events are booked into the store the way the ledger follower books them ([`Store::apply_events`] under the follower's cursor), so the read
//! models and the ledger behave as after the follower caught up.
//!
//! Prices are not kept here: a quote reads the store's bundles and products and prices them
//! with [`kippu_domain::pricing::quote`], as the catalogue listed them on chain. What only the
//! chain knows about a product (refund share and window, transferability) is set with
//! [`FakeChain::set_product_terms`]; delay-cover terms are read from the store too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use async_trait::async_trait;
use kippu_app::ports::{ChainFailure, ChainResult};
use kippu_domain::events::{ChainEvent, EventMeta};
use kippu_domain::model::{Operator, Product};
use kippu_domain::ContractRejection as R;
use kippu_store::Store;
use tokio::sync::Mutex;

/// The checkpoint name the ledger follower books under (`kippu::indexer::CURSOR`).
pub const LEDGER_CURSOR: &str = "ledger";
/// The chain id of the fake (anvil's).
pub const CHAIN_ID: u64 = 31_337;
/// PlanMarket's `MAX_DISCOUNT_BPS`: the largest bundle discount `setBundle` accepts.
pub const MAX_DISCOUNT_BPS: u16 = 5_000;
/// The largest concession a purchase may carry unless set otherwise (Kippu's default
/// `identity.max_concession_bps`).
pub const DEFAULT_MAX_CONCESSION_BPS: u16 = 5_000;

const BPS: u128 = 10_000;
const DAY: u64 = 86_400;
/// Ticket windows are `uint40` on chain.
const MAX_U40: u64 = (1 << 40) - 1;

/// What only the chain knows of a product (PlanMarket's `ProductConfig` beyond the store's row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTerms {
    /// Whether its tickets may change hands (concession tickets never may).
    pub transferable: bool,
    /// Share of the leg's price refunded for an unused ticket (basis points; 0 = no refunds).
    pub refund_bps: u16,
    /// Refunds are possible until `valid_from + refund_window_secs` (capped at the validity's end).
    pub refund_window_secs: u64,
}

impl Default for ChainTerms {
    fn default() -> Self {
        Self { transferable: true, refund_bps: 0, refund_window_secs: 0 }
    }
}

/// A ticket as the Ticket contract holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTicket {
    /// Token id.
    pub id: u64,
    /// Owner.
    pub holder: Address,
    /// The plan it is a leg of.
    pub plan_id: u64,
    /// Operator of its product.
    pub operator_id: u32,
    /// Its product.
    pub product_id: u32,
    /// Start of validity (unix seconds).
    pub valid_from: u64,
    /// End of validity (unix seconds, exclusive).
    pub valid_until: u64,
    /// Rides left on chain (`u32::MAX` = unlimited).
    pub rides_left: u32,
    /// A ride was recorded on chain (`recordRides`): it can no longer be refunded.
    pub used: bool,
    /// Burnt (refunded).
    pub burned: bool,
    /// An insurance leg: its id is a policy.
    pub insured: bool,
    /// Transferable.
    pub transferable: bool,
}

/// A delay voucher as DelayInsurance holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVoucher {
    /// Voucher id.
    pub id: u64,
    /// The policy that paid it.
    pub policy_id: u64,
    /// Holder.
    pub holder: Address,
    /// Value (FARE minor units).
    pub value: u128,
    /// The operator that issues and always accepts it.
    pub operator_id: u32,
    /// Expiry (unix seconds).
    pub expiry: u64,
    /// The delay (run) it compensates.
    pub delay_id: B256,
    /// Operators of this kind accept it too (empty: only `operator_id`).
    pub kind: String,
    /// The operator that redeemed (burnt) it.
    pub redeemed_by: Option<u32>,
}

/// A transaction the fake mined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tx {
    /// `FareToken.mint`.
    Mint {
        /// Credited account.
        to: Address,
        /// FARE minted.
        amount: u128,
        /// The card payment.
        payment_ref: B256,
    },
    /// `PlanMarket.buyWithPermit` / `buyWithPermitAndConcession`.
    Purchase {
        /// Buyer.
        traveler: Address,
        /// Bundle bought.
        bundle_id: u32,
        /// Plan created.
        plan_id: u64,
        /// Price paid.
        price: u128,
        /// `(kind, discount bps)` of an attested concession.
        concession: Option<(u8, u16)>,
    },
    /// `PlanMarket.refund`.
    Refund {
        /// Ticket burnt.
        ticket_id: u64,
        /// FARE returned to its holder.
        amount: u128,
    },
    /// `DelayInsurance.redeem`.
    Redeem {
        /// Voucher burnt.
        voucher_id: u64,
        /// Redeeming operator.
        operator_id: u32,
    },
    /// `DelayInsurance.reportDelay` that issued a voucher.
    Voucher {
        /// Voucher issued.
        voucher_id: u64,
        /// Policy paid.
        policy_id: u64,
    },
    /// `Clearing.closePeriod`.
    ClosePeriod {
        /// Period closed.
        period_id: u64,
        /// Paid out to operators.
        total_paid: u128,
    },
}

/// A mined transaction and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mined {
    /// Block number.
    pub block: u64,
    /// Transaction hash.
    pub hash: B256,
    /// What it did.
    pub tx: Tx,
}

/// A block waiting to be booked (see [`FakeChain::hold_events`]).
#[derive(Debug, Clone)]
struct Block {
    number: u64,
    hash: B256,
    time: u64,
    events: Vec<(EventMeta, ChainEvent)>,
}

#[derive(Debug)]
struct State {
    block: u64,
    time: Option<u64>,
    balances: HashMap<Address, u128>,
    escrow: u128,
    unpaid: BTreeMap<u32, u128>,
    payable: BTreeMap<u32, u128>,
    minted: HashSet<B256>,
    /// purchase request id -> (plan, transaction, price), as PlanMarket's `purchaseOf`
    purchases: HashMap<B256, (u64, B256, u128)>,
    terms: HashMap<u32, ChainTerms>,
    next_plan: u64,
    next_ticket: u64,
    next_voucher: u64,
    next_fund: u64,
    period: u64,
    tickets: BTreeMap<u64, FakeTicket>,
    refunds: HashMap<u64, (u128, u64)>,
    vouchers: BTreeMap<u64, FakeVoucher>,
    compensated: HashSet<(u64, B256)>,
    per_run: HashMap<(u32, B256), u16>,
    per_day: HashMap<(u64, u64), u16>,
    attestors: HashSet<Address>,
    max_concession_bps: u16,
    insurer: Option<u32>,
    paused: bool,
    down: Option<String>,
    fail_next: Option<ChainFailure>,
    hold: bool,
    held: Vec<Block>,
    calls: Vec<&'static str>,
    mined: Vec<Mined>,
}

impl State {
    fn new() -> Self {
        Self {
            block: 0,
            time: None,
            balances: HashMap::new(),
            escrow: 0,
            unpaid: BTreeMap::new(),
            payable: BTreeMap::new(),
            minted: HashSet::new(),
            purchases: HashMap::new(),
            terms: HashMap::new(),
            next_plan: 1,
            next_ticket: 1,
            next_voucher: 1,
            next_fund: 1,
            period: 1,
            tickets: BTreeMap::new(),
            refunds: HashMap::new(),
            vouchers: BTreeMap::new(),
            compensated: HashSet::new(),
            per_run: HashMap::new(),
            per_day: HashMap::new(),
            attestors: HashSet::new(),
            max_concession_bps: DEFAULT_MAX_CONCESSION_BPS,
            insurer: None,
            paused: false,
            down: None,
            fail_next: None,
            hold: false,
            held: Vec::new(),
            calls: Vec::new(),
            mined: Vec::new(),
        }
    }

    /// Records the call and applies an injected failure.
    fn enter(&mut self, call: &'static str) -> ChainResult<()> {
        self.calls.push(call);
        if let Some(f) = self.fail_next.take() {
            return Err(f);
        }
        match &self.down {
            Some(why) => Err(ChainFailure::Unavailable(why.clone())),
            None => Ok(()),
        }
    }

    fn now(&self) -> u64 {
        self.time.unwrap_or_else(system_now)
    }

    fn balance(&self, who: &Address) -> u128 {
        self.balances.get(who).copied().unwrap_or(0)
    }
}

fn system_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn rejected(r: R) -> ChainFailure {
    ChainFailure::Rejected(r)
}

fn db(e: kippu_store::StoreError) -> ChainFailure {
    ChainFailure::Unavailable(format!("fake chain could not read the catalogue: {e}"))
}

fn u256(v: u128) -> U256 {
    U256::from(v)
}

/// Event amounts are `i64` in the ledger (the decoder skips what does not fit).
fn amount(v: u128) -> i64 {
    i64::try_from(v).expect("amount fits the ledger")
}

/// Splits `price` over legs by list price exactly as `PlanMarket._quote` does: every leg but
/// the last gets `price * list_i / list_sum` (floored), the last the remainder.
fn split(price: u128, list: &[u128]) -> Vec<u128> {
    let sum: u128 = list.iter().sum();
    if sum == 0 {
        return vec![0; list.len()];
    }
    let mut shares = Vec::with_capacity(list.len());
    let mut allotted = 0;
    for (i, p) in list.iter().enumerate() {
        let share = if i + 1 == list.len() { price - allotted } else { price * p / sum };
        allotted += share;
        shares.push(share);
    }
    shares
}

/// Kippu's contracts in memory, booking their events into a store. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct FakeChain {
    chain_id: u64,
    store: Store,
    state: Mutex<State>,
}

impl FakeChain {
    /// A fresh chain (chain id [`CHAIN_ID`]) booking into `store`, whose catalogue it sells.
    pub fn new(store: Store) -> Self {
        Self::with_chain_id(store, CHAIN_ID)
    }

    /// As [`FakeChain::new`] with another chain id.
    pub fn with_chain_id(store: Store, chain_id: u64) -> Self {
        Self { chain_id, store, state: Mutex::new(State::new()) }
    }

    /// The store it books into.
    pub fn store(&self) -> &Store {
        &self.store
    }

    // ---- time -------------------------------------------------------------------------

    /// Fixes the blocks' time (unix seconds); `None` follows the system clock (the default).
    pub async fn set_time(&self, time: Option<u64>) {
        self.state.lock().await.time = time;
    }

    /// Moves the blocks' time on by `secs` (fixing it from now on).
    pub async fn advance(&self, secs: u64) {
        let mut st = self.state.lock().await;
        st.time = Some(st.now() + secs);
    }

    /// The time the next block gets.
    pub async fn now(&self) -> u64 {
        self.state.lock().await.now()
    }

    // ---- configuration -----------------------------------------------------------------

    /// Sets what only the chain knows of a product (refund share and window, transferability).
    pub async fn set_product_terms(&self, product_id: u32, terms: ChainTerms) {
        self.state.lock().await.terms.insert(product_id, terms);
    }

    /// Grants `attestor` PlanMarket's `CONCESSION_ISSUER_ROLE`.
    pub async fn trust_attestor(&self, attestor: Address) {
        self.state.lock().await.attestors.insert(attestor);
    }

    /// Sets PlanMarket's largest concession (`setMaxConcessionBps`).
    pub async fn set_max_concession_bps(&self, bps: u16) {
        self.state.lock().await.max_concession_bps = bps;
    }

    /// Names the operator whose premium claim pays redeemed vouchers at each close (`Clearing.setInsurer`).
    pub async fn set_insurer(&self, operator_id: u32) {
        self.state.lock().await.insurer = Some(operator_id);
    }

    /// Pauses PlanMarket (purchases and refunds refused with `EnforcedPause`), or unpauses it.
    pub async fn pause(&self, paused: bool) {
        self.state.lock().await.paused = paused;
    }

    // ---- failures -----------------------------------------------------------------------

    /// The next call (any method) fails with [`ChainFailure::Unavailable`], as when the node
    /// cannot be reached.
    pub async fn fail_next(&self, why: &str) {
        self.state.lock().await.fail_next = Some(ChainFailure::Unavailable(why.to_owned()));
    }

    /// The next call (any method) is refused with `rejection`, whatever it asks.
    pub async fn reject_next(&self, rejection: R) {
        self.state.lock().await.fail_next = Some(ChainFailure::Rejected(rejection));
    }

    /// While `Some`, every call fails with [`ChainFailure::Unavailable`] (the node is down).
    pub async fn set_down(&self, why: Option<&str>) {
        self.state.lock().await.down = why.map(str::to_owned);
    }

    // ---- the ledger follower -------------------------------------------------------------

    /// While held, mined blocks wait (the follower is behind) until [`FakeChain::book_held`]
    /// or the hold is lifted; by default every transaction is booked as it is mined.
    pub async fn hold_events(&self, hold: bool) {
        let mut st = self.state.lock().await;
        st.hold = hold;
        if !hold {
            self.book(&mut st).await;
        }
    }

    /// Books the blocks held back; returns how many events they had.
    pub async fn book_held(&self) -> usize {
        let mut st = self.state.lock().await;
        self.book(&mut st).await
    }

    async fn book(&self, st: &mut State) -> usize {
        let blocks = std::mem::take(&mut st.held);
        let Some(last) = blocks.last() else { return 0 };
        let next = last.number + 1;
        let events: Vec<(EventMeta, ChainEvent)> = blocks.iter().flat_map(|b| b.events.iter().cloned()).collect();
        let headers: Vec<(u64, B256, i64)> = blocks.iter().map(|b| (b.number, b.hash, b.time as i64)).collect();
        self.store
            .apply_events(LEDGER_CURSOR, next, &events, &headers)
            .await
            .expect("the fake chain's events book into the store");
        events.len()
    }

    /// Mines one transaction in a block of its own: its events get the block's hash and
    /// consecutive log indices, and are booked unless held.
    async fn mine(&self, st: &mut State, tx: Tx, events: Vec<ChainEvent>) -> B256 {
        st.block += 1;
        let number = st.block;
        let hash = keccak256(format!("kippu-testkit block {}:{number}", self.chain_id));
        let tx_hash = keccak256(format!("kippu-testkit tx {}:{number}", self.chain_id));
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (EventMeta { block_number: number, block_hash: hash, log_index: i as u64, tx_hash }, e))
            .collect();
        st.mined.push(Mined { block: number, hash: tx_hash, tx });
        let time = st.now();
        st.held.push(Block { number, hash, time, events });
        if !st.hold {
            self.book(st).await;
        }
        tx_hash
    }

    // ---- inspection ---------------------------------------------------------------------

    /// The newest block's number (0 before the first transaction).
    pub async fn block_number(&self) -> u64 {
        self.state.lock().await.block
    }

    /// FARE held by `who`.
    pub async fn balance(&self, who: Address) -> u128 {
        self.state.lock().await.balance(&who)
    }

    /// FARE held in Clearing's escrow.
    pub async fn escrow(&self) -> u128 {
        self.state.lock().await.escrow
    }

    /// An operator's unpaid claim in Clearing.
    pub async fn unpaid(&self, operator_id: u32) -> u128 {
        self.state.lock().await.unpaid.get(&operator_id).copied().unwrap_or(0)
    }

    /// Voucher value payable to an operator by the insurer (`DelayInsurance.payableTo`).
    pub async fn payable(&self, operator_id: u32) -> u128 {
        self.state.lock().await.payable.get(&operator_id).copied().unwrap_or(0)
    }

    /// Clearing's open period.
    pub async fn current_period(&self) -> u64 {
        self.state.lock().await.period
    }

    /// A ticket as the contract holds it (also once burnt).
    pub async fn ticket(&self, id: u64) -> Option<FakeTicket> {
        self.state.lock().await.tickets.get(&id).cloned()
    }

    /// A voucher as the contract holds it (also once redeemed).
    pub async fn voucher(&self, id: u64) -> Option<FakeVoucher> {
        self.state.lock().await.vouchers.get(&id).cloned()
    }

    /// Every transaction mined, oldest first.
    pub async fn mined(&self) -> Vec<Mined> {
        self.state.lock().await.mined.clone()
    }

    /// The port methods called so far, in order, refused and failed ones too.
    pub async fn calls(&self) -> Vec<&'static str> {
        self.state.lock().await.calls.clone()
    }

    // ---- transactions outside the application's port -------------------------------------

    /// Mints `amount` FARE to `to` for a payment reference of the fake's own (a welcome
    /// credit); returns the transaction.
    pub async fn fund(&self, to: Address, amount: u128) -> ChainResult<B256> {
        let payment_ref = {
            let mut st = self.state.lock().await;
            st.next_fund += 1;
            keccak256(format!("kippu-testkit fund {}", st.next_fund - 1))
        };
        kippu_app::ports::Chain::mint_fare(self, to, amount, payment_ref).await
    }

    /// Records a ride of a ticket on chain (a tap batch's `recordRides`): from now on the
    /// ticket counts as used and keeps its fare. No event the ledger books.
    pub async fn record_ride(&self, ticket_id: u64) -> ChainResult<()> {
        let mut st = self.state.lock().await;
        st.enter("record_rides")?;
        let now = st.now();
        let Some(t) = st.tickets.get_mut(&ticket_id).filter(|t| !t.burned) else {
            return Err(rejected(R::UnknownTicket { ticket: ticket_id }));
        };
        // A ride outside the window or past the last ride is skipped on chain (`RideRefused`).
        if now >= t.valid_from && now < t.valid_until && t.rides_left > 0 {
            t.used = true;
            if t.rides_left != u32::MAX {
                t.rides_left -= 1;
            }
        }
        Ok(())
    }

    /// One oracle's delay report for a policy (quorum 1): issues a voucher under the insured
    /// product's cover terms (read from the store), with the contract's checks and caps.
    pub async fn report_delay(&self, delay_id: B256, policy_id: u64, delay_minutes: u32) -> ChainResult<u64> {
        let mut st = self.state.lock().await;
        st.enter("report_delay")?;
        let now = st.now();
        let Some(t) = st.tickets.get(&policy_id).filter(|t| !t.burned && t.insured).cloned() else {
            return Err(rejected(R::UnknownPolicy { policy: policy_id }));
        };
        if now < t.valid_from || now >= t.valid_until {
            return Err(rejected(R::NotCovered { policy: policy_id }));
        }
        let terms = self.store.cover_terms().await.map_err(db)?.into_iter().find(|c| c.product_id == t.product_id);
        let Some(terms) = terms else {
            return Err(ChainFailure::Unavailable(format!("no cover terms for product {} on chain", t.product_id)));
        };
        if delay_minutes < terms.threshold_minutes {
            return Err(rejected(R::BelowThreshold { delay_minutes, threshold_minutes: terms.threshold_minutes }));
        }
        if st.compensated.contains(&(policy_id, delay_id)) {
            return Err(rejected(R::AlreadyCompensated { policy: policy_id, delay_id }));
        }
        let run = (t.product_id, delay_id);
        if terms.max_per_trip != 0 && st.per_run.get(&run).copied().unwrap_or(0) >= terms.max_per_trip {
            return Err(rejected(R::TripCapReached { product: t.product_id, delay_id, cap: terms.max_per_trip }));
        }
        let day = (policy_id, now / DAY);
        if terms.max_per_day != 0 && st.per_day.get(&day).copied().unwrap_or(0) >= terms.max_per_day {
            return Err(rejected(R::DailyCapReached { policy: policy_id, day: now / DAY, cap: terms.max_per_day }));
        }
        *st.per_run.entry(run).or_default() += 1;
        *st.per_day.entry(day).or_default() += 1;
        st.compensated.insert((policy_id, delay_id));
        let voucher_id = st.next_voucher;
        st.next_voucher += 1;
        let value = u128::try_from(terms.voucher_value).unwrap_or(0);
        let expiry = now + u64::try_from(terms.voucher_lifetime_secs).unwrap_or(0);
        st.vouchers.insert(
            voucher_id,
            FakeVoucher {
                id: voucher_id,
                policy_id,
                holder: t.holder,
                value,
                operator_id: terms.voucher_operator_id,
                expiry,
                delay_id,
                kind: terms.voucher_kind.clone(),
                redeemed_by: None,
            },
        );
        let event = ChainEvent::VoucherIssued {
            voucher_id,
            policy_id,
            holder: t.holder,
            value: amount(value),
            operator_id: terms.voucher_operator_id,
            expiry,
            delay_id,
        };
        self.mine(&mut st, Tx::Voucher { voucher_id, policy_id }, vec![event]).await;
        Ok(voucher_id)
    }

    /// Closes Clearing's period `period_id` (`closePeriod`): redeemed vouchers are paid out of
    /// the insurer's claim, then every operator is paid its unpaid claim, in operator order.
    pub async fn close_period(&self, period_id: u64) -> ChainResult<B256> {
        let mut st = self.state.lock().await;
        st.enter("close_period")?;
        if period_id != st.period {
            return Err(rejected(R::WrongPeriod { given: period_id, current: st.period }));
        }
        let operators = self.store.operators().await.map_err(db)?;
        let mut events = Vec::new();
        if let Some(insurer) = st.insurer {
            let mut claim = st.unpaid.get(&insurer).copied().unwrap_or(0);
            for o in operators.iter().filter(|o| o.id != insurer) {
                if claim == 0 {
                    break;
                }
                let owed = st.payable.get(&o.id).copied().unwrap_or(0);
                if owed == 0 {
                    continue;
                }
                let paid = owed.min(claim);
                claim -= paid;
                *st.unpaid.entry(o.id).or_default() += paid;
                *st.payable.entry(o.id).or_default() -= paid;
                events.push(ChainEvent::VoucherSettled {
                    period_id,
                    insurer_id: insurer,
                    operator_id: o.id,
                    amount: amount(paid),
                });
            }
            st.unpaid.insert(insurer, claim);
        }
        let mut total = 0;
        for o in &operators {
            let owed = st.unpaid.insert(o.id, 0).unwrap_or(0);
            if owed == 0 {
                continue;
            }
            total += owed;
            st.escrow -= owed;
            *st.balances.entry(o.payee).or_default() += owed;
            events.push(ChainEvent::Payout { period_id, operator_id: o.id, payee: o.payee, amount: amount(owed) });
        }
        events.push(ChainEvent::PeriodClosed { period_id, total_paid: amount(total) });
        st.period += 1;
        Ok(self.mine(&mut st, Tx::ClosePeriod { period_id, total_paid: total }, events).await)
    }

    // ---- the contracts' rules ---------------------------------------------------------------

    /// A bundle's products as listed, from the store.
    async fn bundle_legs(&self, bundle_id: u32) -> ChainResult<(u16, Vec<Product>)> {
        let bundle = self.store.bundles().await.map_err(db)?.into_iter().find(|b| b.id == bundle_id);
        let Some(bundle) = bundle.filter(|b| !b.product_ids.is_empty()) else {
            return Err(rejected(R::UnknownBundle { bundle: bundle_id }));
        };
        if bundle.discount_bps > MAX_DISCOUNT_BPS {
            // `setBundle` would have refused it: it was never on sale.
            return Err(rejected(R::UnknownBundle { bundle: bundle_id }));
        }
        let products = self.store.products().await.map_err(db)?;
        let legs = bundle
            .product_ids
            .iter()
            .map(|id| {
                products.iter().find(|p| p.id == *id).cloned().ok_or(rejected(R::UnknownProduct { product: *id }))
            })
            .collect::<ChainResult<Vec<_>>>()?;
        Ok((bundle.discount_bps, legs))
    }

    /// `PlanMarket.quoteWithConcession`: the price and each leg's share.
    async fn priced(&self, bundle_id: u32, concession_bps: u16) -> ChainResult<(u128, Vec<u128>, Vec<Product>)> {
        let (discount, legs) = self.bundle_legs(bundle_id).await?;
        let list: Vec<u128> = legs.iter().map(|p| u128::try_from(p.price).unwrap_or(0)).collect();
        let q =
            kippu_domain::pricing::quote(&list, discount).ok_or(rejected(R::UnknownBundle { bundle: bundle_id }))?;
        if concession_bps == 0 {
            return Ok((q.price, q.leg_shares, legs));
        }
        if u128::from(concession_bps) > BPS {
            // `BPS - concessionBps` underflows: a panic, not one of the contracts' errors.
            return Err(ChainFailure::Reverted("panic: arithmetic underflow or overflow (0x11)".into()));
        }
        let price = q.price * (BPS - u128::from(concession_bps)) / BPS;
        Ok((price, split(price, &list), legs))
    }

    /// `PlanMarket._purchase` behind both relayed purchases.
    #[allow(clippy::too_many_arguments)]
    async fn purchase(
        &self,
        call: &'static str,
        request_id: B256,
        traveler: Address,
        attestor: Option<Address>,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
        concession: Option<(u8, u16)>,
    ) -> ChainResult<(u64, B256)> {
        let mut st = self.state.lock().await;
        st.enter(call)?;
        if st.paused {
            return Err(rejected(R::Paused));
        }
        if request_id == B256::ZERO {
            return Err(rejected(R::ZeroRequestId));
        }
        if let Some(&(plan, _, _)) = st.purchases.get(&request_id) {
            return Err(rejected(R::PurchaseAlreadyMade { request_id, plan }));
        }
        if let Some((kind, bps)) = concession {
            if kind == 0 || kind > 3 {
                return Err(rejected(R::InvalidConcession));
            }
            if bps > st.max_concession_bps {
                return Err(rejected(R::ConcessionAboveMax { discount_bps: bps, max_bps: st.max_concession_bps }));
            }
            let signer = attestor.unwrap_or(Address::ZERO);
            if !st.attestors.contains(&signer) {
                return Err(rejected(R::UntrustedConcessionIssuer { signer }));
            }
        }
        let (price, shares, legs) = self.priced(bundle_id, concession.map_or(0, |c| c.1)).await?;
        if price > max_price {
            return Err(rejected(R::PriceAboveMax { price: u256(price), max_price: u256(max_price) }));
        }
        let now = st.now();
        let valid_from = if valid_from == 0 { now } else { valid_from };
        // The permit allows `max_price`, at least the price: only the balance can fall short.
        let balance = st.balance(&traveler);
        if balance < price {
            return Err(rejected(R::InsufficientBalance {
                account: traveler,
                balance: u256(balance),
                needed: u256(price),
            }));
        }
        let mut windows = Vec::with_capacity(legs.len());
        for p in &legs {
            let until = valid_from.saturating_add(u64::try_from(p.duration_secs).unwrap_or(u64::MAX));
            if until > MAX_U40 {
                return Err(rejected(R::ValidityOverflow));
            }
            windows.push(until);
        }
        let operators: Vec<Operator> = self.store.operators().await.map_err(db)?;
        if let Some(p) = legs.iter().find(|p| !operators.iter().any(|o| o.id == p.operator_id)) {
            return Err(rejected(R::UnknownOperator { operator: p.operator_id }));
        }

        // Everything checked: the transaction goes through.
        *st.balances.entry(traveler).or_default() -= price;
        st.escrow += price;
        let plan_id = st.next_plan;
        st.next_plan += 1;
        let first = st.next_ticket;
        st.next_ticket += legs.len() as u64;
        let mut issued = Vec::with_capacity(legs.len());
        let mut sold = Vec::with_capacity(legs.len() * 2);
        for (i, (p, share)) in legs.iter().zip(&shares).enumerate() {
            let ticket_id = first + i as u64;
            let terms = st.terms.get(&p.id).copied().unwrap_or_default();
            let valid_until = windows[i];
            st.tickets.insert(
                ticket_id,
                FakeTicket {
                    id: ticket_id,
                    holder: traveler,
                    plan_id,
                    operator_id: p.operator_id,
                    product_id: p.id,
                    valid_from,
                    valid_until,
                    rides_left: p.rides,
                    used: false,
                    burned: false,
                    insured: p.insurance,
                    transferable: terms.transferable && concession.is_none(),
                },
            );
            *st.unpaid.entry(p.operator_id).or_default() += share;
            issued.push(ChainEvent::TicketIssued {
                ticket_id,
                holder: traveler,
                plan_id,
                operator_id: p.operator_id,
                product_id: p.id,
                valid_from,
                valid_until,
                rides: p.rides,
            });
            sold.push(ChainEvent::LegSold {
                plan_id,
                ticket_id,
                operator_id: p.operator_id,
                product_id: p.id,
                share: amount(*share),
            });
            if p.insurance {
                sold.push(ChainEvent::PolicyOpened { policy_id: ticket_id, holder: traveler, valid_from, valid_until });
            }
            let refund = share * u128::from(terms.refund_bps) / BPS;
            if refund != 0 {
                let deadline = valid_from.saturating_add(terms.refund_window_secs).min(valid_until);
                st.refunds.insert(ticket_id, (refund, deadline));
            }
        }
        let mut events =
            vec![ChainEvent::PlanPurchased { plan_id, traveler, bundle_id, price: amount(price), valid_from }];
        events.extend(issued);
        events.extend(sold);
        let tx = Tx::Purchase { traveler, bundle_id, plan_id, price, concession };
        let hash = self.mine(&mut st, tx, events).await;
        st.purchases.insert(request_id, (plan_id, hash, price));
        Ok((plan_id, hash))
    }
}

#[async_trait]
impl kippu_app::ports::Chain for FakeChain {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    async fn fare_balance(&self, who: Address) -> ChainResult<u128> {
        let mut st = self.state.lock().await;
        st.enter("fare_balance")?;
        Ok(st.balance(&who))
    }

    async fn escrow_balance(&self) -> ChainResult<u128> {
        let mut st = self.state.lock().await;
        st.enter("escrow_balance")?;
        Ok(st.escrow)
    }

    async fn mint_fare(&self, to: Address, amount_minor: u128, payment_ref: B256) -> ChainResult<B256> {
        let mut st = self.state.lock().await;
        st.enter("mint_fare")?;
        if amount_minor == 0 {
            return Err(rejected(R::ZeroAmount));
        }
        if st.minted.contains(&payment_ref) {
            return Err(rejected(R::PaymentAlreadyMinted { payment_ref }));
        }
        if to == Address::ZERO {
            return Err(rejected(R::Other {
                name: "ERC20InvalidReceiver",
                detail: "ERC20InvalidReceiver(0x0000000000000000000000000000000000000000)".into(),
            }));
        }
        st.minted.insert(payment_ref);
        *st.balances.entry(to).or_default() += amount_minor;
        let event = ChainEvent::FareMinted { to, amount: amount(amount_minor), payment_ref };
        Ok(self.mine(&mut st, Tx::Mint { to, amount: amount_minor, payment_ref }, vec![event]).await)
    }

    /// The fake mines every write at once, as the adapter without an outbox: nothing to
    /// prepare, [`FakeChain::mint_fare`] sends it.
    fn prepare_mint(
        &self,
        _to: Address,
        _amount: u128,
        _payment_ref: B256,
    ) -> ChainResult<Option<kippu_domain::outbox::PreparedWrite>> {
        Ok(None)
    }

    async fn await_mint(&self, key: &kippu_domain::outbox::WriteKey) -> ChainResult<B256> {
        Err(ChainFailure::Unavailable(format!("the fake chain has no outbox to await {key} in")))
    }

    async fn payment_minted(&self, payment_ref: B256) -> ChainResult<bool> {
        let mut st = self.state.lock().await;
        st.enter("payment_minted")?;
        Ok(st.minted.contains(&payment_ref))
    }

    async fn quote(&self, bundle_id: u32) -> ChainResult<(u128, Vec<u128>)> {
        self.state.lock().await.enter("quote")?;
        let (price, shares, _) = self.priced(bundle_id, 0).await?;
        Ok((price, shares))
    }

    async fn quote_with_concession(&self, bundle_id: u32, concession_bps: u16) -> ChainResult<u128> {
        self.state.lock().await.enter("quote_with_concession")?;
        Ok(self.priced(bundle_id, concession_bps).await?.0)
    }

    async fn buy_with_permit(
        &self,
        request_id: B256,
        traveler: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
    ) -> ChainResult<(u64, B256)> {
        self.purchase("buy_with_permit", request_id, traveler.address(), None, bundle_id, max_price, valid_from, None)
            .await
    }

    async fn purchase_of(&self, request_id: B256) -> ChainResult<Option<(u64, B256, u128)>> {
        let mut st = self.state.lock().await;
        st.enter("purchase_of")?;
        Ok(st.purchases.get(&request_id).copied())
    }

    async fn buy_with_permit_and_concession(
        &self,
        request_id: B256,
        traveler: &PrivateKeySigner,
        attestor: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
        kind: u8,
        discount_bps: u16,
    ) -> ChainResult<(u64, B256)> {
        self.purchase(
            "buy_with_permit_and_concession",
            request_id,
            traveler.address(),
            Some(attestor.address()),
            bundle_id,
            max_price,
            valid_from,
            Some((kind, discount_bps)),
        )
        .await
    }

    async fn refundable(&self, ticket_id: u64) -> ChainResult<(u128, u64)> {
        let mut st = self.state.lock().await;
        st.enter("refundable")?;
        Ok(st.refunds.get(&ticket_id).copied().unwrap_or((0, 0)))
    }

    async fn refund(&self, ticket_id: u64) -> ChainResult<u128> {
        let mut st = self.state.lock().await;
        st.enter("refund")?;
        if st.paused {
            return Err(rejected(R::Paused));
        }
        // `ownerOf` of a ticket never minted, or burnt.
        let Some(t) = st.tickets.get(&ticket_id).filter(|t| !t.burned).cloned() else {
            return Err(rejected(R::NonexistentToken { token: ticket_id }));
        };
        // Relayed: the relayer may refund any holder's ticket (the FARE goes to the holder).
        let (refund, deadline) = st.refunds.get(&ticket_id).copied().unwrap_or((0, 0));
        if refund == 0 {
            return Err(rejected(R::NotRefundable { ticket: ticket_id }));
        }
        if st.now() >= deadline {
            return Err(rejected(R::RefundWindowClosed { ticket: ticket_id }));
        }
        if t.used {
            return Err(rejected(R::TicketAlreadyUsed { ticket: ticket_id }));
        }
        let unpaid = st.unpaid.get(&t.operator_id).copied().unwrap_or(0);
        if unpaid < refund {
            return Err(rejected(R::InsufficientUnpaid {
                operator: t.operator_id,
                unpaid: u256(unpaid),
                required: u256(refund),
            }));
        }
        st.refunds.remove(&ticket_id);
        if let Some(t) = st.tickets.get_mut(&ticket_id) {
            t.burned = true;
        }
        st.unpaid.insert(t.operator_id, unpaid - refund);
        st.escrow -= refund;
        *st.balances.entry(t.holder).or_default() += refund;
        let event = ChainEvent::TicketRefunded {
            ticket_id,
            traveler: t.holder,
            operator_id: t.operator_id,
            amount: amount(refund),
        };
        self.mine(&mut st, Tx::Refund { ticket_id, amount: refund }, vec![event]).await;
        Ok(refund)
    }

    async fn redeem_voucher(&self, voucher_id: u64, operator_id: u32) -> ChainResult<B256> {
        let mut st = self.state.lock().await;
        st.enter("redeem_voucher")?;
        let Some(v) = st.vouchers.get(&voucher_id).filter(|v| v.redeemed_by.is_none()).cloned() else {
            return Err(rejected(R::UnknownVoucher { voucher: voucher_id }));
        };
        if v.operator_id != operator_id {
            // Operators of the voucher's kind accept it (`setOperatorCategory`, never set for the insurer).
            let operators = self.store.operators().await.map_err(db)?;
            let same_kind = operators
                .iter()
                .find(|o| o.id == operator_id)
                .is_some_and(|o| o.kind != "insurer" && !v.kind.is_empty() && o.kind == v.kind);
            if !same_kind {
                return Err(rejected(R::WrongOperator { voucher: voucher_id, operator: operator_id }));
            }
        }
        if st.now() >= v.expiry {
            return Err(rejected(R::VoucherExpired { voucher: voucher_id }));
        }
        *st.payable.entry(operator_id).or_default() += v.value;
        if let Some(v) = st.vouchers.get_mut(&voucher_id) {
            v.redeemed_by = Some(operator_id);
        }
        let event = ChainEvent::VoucherRedeemed { voucher_id, operator_id, value: amount(v.value) };
        Ok(self.mine(&mut st, Tx::Redeem { voucher_id, operator_id }, vec![event]).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_the_domain_quote() {
        let list = [1_800, 600, 1_500, 300];
        let q = kippu_domain::pricing::quote(&list, 1_500).unwrap();
        assert_eq!(split(q.price, &list), q.leg_shares);
        assert_eq!(split(0, &[0, 0]), vec![0, 0]);
        assert_eq!(split(10, &[1, 1, 1]), vec![3, 3, 4]);
    }
}
