//! The ports: what the application needs from the outside, as traits. Adapters implement them
//! (`kippu_store::Store`, `kippu_chain::Chain`); `Arc<dyn …>` of them sits in the web layer's
//! state and the jobs.
//!
//! Besides the store, the chain, payments and the clock: the [`Notifier`] (what the gates must
//! learn at once), the [`Ledger`] (the follower that books chain events into the store),
//! [`Clearing`] (the settler's chain calls a period close makes) and [`Concessions`] (the
//! traveler's concession credential, presented and verified at purchase).

use alloy_primitives::{Address, B256};
use async_trait::async_trait;
use kippu_domain::model::*;
use kippu_domain::outbox::{PreparedWrite, RecordedWrite, StageChange, WriteKey};
use kippu_domain::ContractRejection;

/// Why a store call failed. The adapter's own error is kept as text: callers only tell
/// "the database could not answer" from "a stored value is corrupt".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The database refused or failed the query (unreachable, a constraint, a timeout).
    #[error("database error: {0}")]
    Unavailable(String),
    /// A stored value does not parse.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// Result of a store call.
pub type PortResult<T> = Result<T, PortError>;

/// Why a chain call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainFailure {
    /// The contract refused the call (a decoded custom error).
    #[error("{0}")]
    Rejected(ContractRejection),
    /// The contract reverted with data no Kippu contract's error names (a panic, a bare
    /// revert): still a refusal, said in the contract's own words.
    /// Holds the revert data as the adapter describes it (a `require` message, a panic code).
    #[error("contract reverted: {0}")]
    Reverted(String),
    /// The node could not be reached, the transaction failed or timed out, or a reply made no sense.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// The write is recorded in the outbox and being sent, not yet in a block: it will take
    /// effect once, later. Not a refusal, and not to be retried as a new fact.
    #[error("recorded and pending on chain: {0}")]
    Pending(String),
}

/// Result of a chain call.
pub type ChainResult<T> = Result<T, ChainFailure>;

/// The database: what the application reads and writes (kippu-store implements it).
#[async_trait]
pub trait Store: Send + Sync {
    /// Whether a throttled key (`scope`: what kind of key) may try now.
    async fn throttle_verdict(&self, scope: &str, key: &str, now: i64) -> PortResult<kippu_domain::throttle::Verdict>;
    /// Counts a failed attempt of a key; returns the verdict after it.
    async fn throttle_failure(
        &self,
        scope: &str,
        key: &str,
        now: i64,
        policy: &kippu_domain::throttle::Policy,
    ) -> PortResult<kippu_domain::throttle::Verdict>;
    /// Forgets a key's failures after a success (a lock in force stays).
    async fn throttle_success(&self, scope: &str, key: &str, now: i64) -> PortResult<()>;
    /// Appends an entry to the audit log, chained to the newest one.
    async fn append_audit(&self, record: &kippu_domain::audit::AuditRecord) -> PortResult<()>;
    /// The newest `limit` audit entries matching a filter, newest first.
    async fn audit_search(
        &self,
        filter: &kippu_domain::audit::AuditFilter,
        limit: i64,
    ) -> PortResult<Vec<kippu_domain::audit::AuditEntry>>;
    /// Adds an organisation; `false` if its slug is taken.
    async fn add_organisation(&self, o: &Organisation) -> PortResult<bool>;
    /// One organisation.
    async fn organisation(&self, slug: &str) -> PortResult<Option<Organisation>>;
    /// Every organisation, by slug.
    async fn organisations(&self) -> PortResult<Vec<Organisation>>;
    /// Adds a staff account with its one-time invitation; `false` if the e-mail has an account.
    async fn add_staff(&self, a: &StaffAccount, invitation_hash: &str, invitation_expires: i64) -> PortResult<bool>;
    /// A fresh invitation for an account; earlier unused ones stop working.
    async fn reinvite_staff(&self, account_id: &str, invitation_hash: &str, expires: i64, now: i64) -> PortResult<()>;
    /// The account an unused, unexpired invitation is for.
    async fn invitation(&self, invitation_hash: &str, now: i64) -> PortResult<Option<StaffAccount>>;
    /// Uses an invitation up and sets the password (once, of simultaneous uses).
    async fn accept_invitation(
        &self,
        invitation_hash: &str,
        password_hash: &str,
        now: i64,
    ) -> PortResult<Option<StaffAccount>>;
    /// The account an e-mail signs in with.
    async fn staff_by_email(&self, email: &str) -> PortResult<Option<StaffAccount>>;
    /// One account by id.
    async fn staff_account(&self, id: &str) -> PortResult<Option<StaffAccount>>;
    /// An organisation's staff, by e-mail.
    async fn staff_of(&self, organisation: &str) -> PortResult<Vec<StaffAccount>>;
    /// Changes an account's role; `false` if the organisation has no such account.
    async fn set_staff_role(&self, organisation: &str, id: &str, role: kippu_domain::staff::Role) -> PortResult<bool>;
    /// Disables an account and ends its sessions.
    async fn disable_staff(&self, organisation: &str, id: &str, now: i64) -> PortResult<bool>;
    /// Opens a staff session.
    async fn open_staff_session(&self, token_hash: &str, account_id: &str, expires_at: i64) -> PortResult<()>;
    /// The enabled account behind a live session.
    async fn staff_session(&self, token_hash: &str, now: i64) -> PortResult<Option<StaffAccount>>;
    /// Ends a staff session.
    async fn end_staff_session(&self, token_hash: &str, now: i64) -> PortResult<()>;
    /// Stores a new API token.
    async fn issue_token(&self, t: &ApiToken) -> PortResult<()>;
    /// A token by its public id.
    async fn api_token(&self, id: &str) -> PortResult<Option<ApiToken>>;
    /// An organisation's tokens, newest first.
    async fn tokens_of(&self, organisation: &str) -> PortResult<Vec<ApiToken>>;
    /// Revokes one of an organisation's tokens; `false` if it has no such live token.
    async fn revoke_token(&self, organisation: &str, id: &str, now: i64) -> PortResult<bool>;
    /// Notes that a token opened a request.
    async fn token_used(&self, id: &str, now: i64) -> PortResult<()>;
    /// Stores a staff account's new passkey; `false` if its credential id is taken.
    async fn insert_staff_passkey(&self, p: &StaffPasskeyRow) -> PortResult<bool>;
    /// A staff passkey by credential id.
    async fn staff_passkey(&self, credential_id: &[u8]) -> PortResult<Option<StaffPasskeyRow>>;
    /// A staff account's passkeys, oldest first.
    async fn staff_passkeys_of(&self, account_id: &str) -> PortResult<Vec<StaffPasskeyRow>>;
    /// Records a sign-in with a staff passkey.
    async fn staff_passkey_used(&self, credential_id: &[u8], dynamic_state: &[u8], now: i64) -> PortResult<()>;
    /// Current service alerts as stored JSON bodies, by id.
    async fn alerts(&self) -> PortResult<Vec<String>>;
    /// The cards an account bound, newest first.
    async fn cards_of(&self, holder: &Address) -> PortResult<Vec<CardBindingRow>>;
    /// Claims per reason and outcome: `(reason, status, count)`.
    async fn claim_counts(&self) -> PortResult<Vec<(String, String, i64)>>;
    /// Every insured product's terms, by product id.
    async fn cover_terms(&self) -> PortResult<Vec<CoverTerms>>;
    /// An account's devices, newest first.
    async fn devices_of(&self, holder: &Address) -> PortResult<Vec<DeviceRow>>;
    /// All registered gates.
    async fn gates(&self) -> PortResult<Vec<GateRow>>;
    /// An issuer's register, newest first.
    async fn issued_by(&self, issuer_slug: &str) -> PortResult<Vec<IssuedCredential>>;
    /// Records an issued credential at a free, randomly drawn status index.
    /// Returns the index.
    async fn record_issued(&self, c: &IssuedCredential, list_len: i64) -> PortResult<i64>;
    /// Records (or re-certifies) a device.
    async fn upsert_device(&self, d: &DeviceRow) -> PortResult<()>;
    /// Adds a traveler, or refreshes its name and key if the address exists.
    async fn upsert_traveler(&self, t: &Traveler) -> PortResult<()>;
    /// Puts a credential in a traveler's wallet (replacing a copy with the same id).
    async fn add_to_wallet(&self, holder: &Address, id: &str, body: &str, now: i64) -> PortResult<()>;
    /// Binds a card to a ticket; a card bound before is moved (one ticket per card).
    async fn bind_card(&self, b: &CardBindingRow) -> PortResult<()>;
    /// All bundles by id.
    async fn bundles(&self) -> PortResult<Vec<Bundle>>;
    /// A card's binding.
    async fn card_binding(&self, card_key: &[u8; 32]) -> PortResult<Option<CardBindingRow>>;
    /// Creates an account: the traveler and its password login together, so a sign-up that
    /// loses a race for its e-mail leaves no traveler behind. `false` if the e-mail is taken.
    async fn create_account(&self, t: &Traveler, email: &str, hash: &str, now: i64) -> PortResult<bool>;
    /// Records a new Checkout Session.
    async fn create_payment(&self, session_id: &str, traveler: &Address, amount: i64, now: i64) -> PortResult<()>;
    /// Opens a session.
    async fn create_session(&self, token: &str, address: &Address, expires_at: i64) -> PortResult<()>;
    /// Each operator's current (newest) timetable.
    async fn current_timetables(&self) -> PortResult<Vec<TimetableRow>>;
    /// Late runs per route, most first.
    async fn delays_per_route(&self) -> PortResult<Vec<RouteDelays>>;
    /// Ends a session.
    async fn delete_session(&self, token: &str) -> PortResult<()>;
    /// A device by key.
    async fn device(&self, key: &[u8; 32]) -> PortResult<Option<DeviceRow>>;
    /// The e-mail an account signs in with, if it has a password login.
    async fn email_of(&self, address: &Address) -> PortResult<Option<String>>;
    /// settlement still balances; top-up records are kept for accounting law
    /// but no longer link to a name. The address is left revoked, so nobody
    /// can sign in as it again.
    async fn erase_personal_data(&self, address: &Address, did: &str, now: i64) -> PortResult<()>;
    /// Everything Kippu holds about a traveler (GDPR article 15), as JSON.
    async fn export_personal_data(&self, address: &Address, did: &str) -> PortResult<serde_json::Value>;
    /// Remembers a webhook event id; false if it was seen before (a duplicate delivery).
    async fn first_webhook_delivery(&self, event_id: &str, now: i64) -> PortResult<bool>;
    /// Stores a new passkey; `false` if its credential id is taken.
    async fn insert_passkey(&self, p: &PasskeyRow) -> PortResult<bool>;
    /// All hosted issuers.
    async fn issuers(&self) -> PortResult<Vec<IssuerRow>>;
    /// When and why an account key was revoked, if it was.
    async fn key_revocation(&self, address: &Address) -> PortResult<Option<(i64, String)>>;
    /// The newest reconciliation: `(checked at, block, differences JSON)`.
    async fn latest_reconciliation(&self) -> PortResult<Option<(i64, u64, String)>>;
    /// Records the mint transaction of a payment.
    async fn mark_minted(&self, session_id: &str, tx_hash: &str) -> PortResult<()>;
    /// Moves a payment from `open` to `paid`; returns the payment only on the
    /// first transition, so concurrent deliveries mint at most once.
    async fn mark_paid(&self, session_id: &str) -> PortResult<Option<Payment>>;
    /// As [`Store::mark_paid`], recording the payment's mint in the same transaction: the
    /// payment is never paid without its mint recorded, nor the mint recorded for an unpaid
    /// payment. Recording is once per key (a delivery retried records no second mint).
    async fn mark_paid_recording(&self, session_id: &str, mint: &PreparedWrite, now: i64) -> PortResult<()>;
    /// Each bundle's part in one operator's revenue: its `LegSold` shares and the
    /// refunds of those legs, by the bundle of the plan each leg was sold in.
    async fn operator_bundles(&self, operator_id: u32) -> PortResult<Vec<BundleShare>>;
    /// One operator's figures per UTC day: legs sold and their revenue, refunds,
    /// vouchers redeemed and payouts from the ledger, rides from the taps.
    async fn operator_daily(&self, operator_id: u32) -> PortResult<OperatorDaily>;
    /// The events behind one of an operator's figures, in chain order: `limit` of them
    /// from `offset` (all when `limit` is `None`), with the totals of all that match.
    async fn operator_events(
        &self,
        operator_id: u32,
        filter: &EventFilter,
        offset: i64,
        limit: Option<i64>,
    ) -> PortResult<EventPage>;
    /// Each operator's revenue share, legs sold, rides and vouchers redeemed,
    /// straight from the ledger and read models.
    async fn operator_report(&self) -> PortResult<Vec<OperatorReport>>;
    /// The rides (taps) behind a rides figure, oldest first: `limit` from `offset`
    /// (all when `None`), on one UTC day (days since the epoch) or all days.
    async fn operator_rides(
        &self,
        operator_id: u32,
        day: Option<i64>,
        offset: i64,
        limit: Option<i64>,
    ) -> PortResult<RidePage>;
    /// One operator's statement for a period: what it was owed at the start, what the
    /// period booked by kind, and what it was owed at the end.
    async fn operator_statement(&self, operator_id: u32, period: &Period) -> PortResult<Statement>;
    /// All operators by id.
    async fn operators(&self) -> PortResult<Vec<Operator>>;
    /// A passkey by credential id.
    async fn passkey(&self, credential_id: &[u8]) -> PortResult<Option<PasskeyRow>>;
    /// Records a sign-in with a passkey: its new counter and flags.
    async fn passkey_used(&self, credential_id: &[u8], dynamic_state: &[u8], now: i64) -> PortResult<()>;
    /// An account's passkeys, oldest first.
    async fn passkeys_of(&self, holder: &Address) -> PortResult<Vec<PasskeyRow>>;
    /// The account and password hash for an e-mail.
    async fn password_login(&self, email: &str) -> PortResult<Option<(Address, String)>>;
    /// One payment.
    async fn payment(&self, session_id: &str) -> PortResult<Option<Payment>>;
    /// One period by id, if the ledger knows it.
    async fn period(&self, period_id: u64) -> PortResult<Option<Period>>;
    /// The clearing periods the ledger knows of, oldest first: every closed period
    /// (one `PeriodClosed` each, also when nothing was owed), then the open one.
    async fn periods(&self) -> PortResult<Vec<Period>>;
    /// A plan with the transaction that bought it.
    async fn plan_receipt(&self, plan_id: u64) -> PortResult<Option<PlanReceipt>>;
    /// All products by id.
    async fn products(&self) -> PortResult<Vec<Product>>;
    /// What ticket `ticket_id` of `traveler` was refunded (`TicketRefunded`), if it was.
    async fn refund_of(&self, ticket_id: u64, traveler: &Address) -> PortResult<Option<i64>>;
    /// Revokes one of `holder`'s devices and ends every session of the account but
    /// `keep_session` (the one revoking); `false`, changing nothing, if it has no such device.
    /// A lost phone is usually still signed in: left so, it would just have a new key certified.
    async fn revoke_device(&self, key: &[u8; 32], holder: &Address, now: i64, keep_session: &str) -> PortResult<bool>;
    /// Revokes an issued credential; `false` if it was unknown or already revoked.
    async fn revoke_issued(&self, issuer_slug: &str, id: &str, now: i64) -> PortResult<bool>;
    /// Revokes an account key: it can no longer sign in or sign passes, and its sessions end.
    async fn revoke_key(&self, address: &Address, reason: &str, now: i64) -> PortResult<()>;
    /// Status indices an issuer has revoked: its status list's set bits.
    async fn revoked_indices(&self, issuer_slug: &str) -> PortResult<Vec<u64>>;
    /// The last period Kippu closed, if any.
    async fn last_period_close(&self) -> PortResult<Option<PeriodCloseRow>>;
    /// The books of a period close: plans whose validity began in `[from, to)`, re-apportioned
    /// under their bundles' rules, with each operator's position.
    async fn close_period_books(&self, from: i64, to: i64) -> PortResult<PeriodClose>;
    /// Positions carried from earlier closes (what could not move on chain then), by operator.
    async fn settlement_carry(&self) -> PortResult<std::collections::BTreeMap<u32, i64>>;
    /// Records a period Kippu closed and replaces the carried positions, in one transaction.
    async fn record_period_close(
        &self,
        c: &PeriodCloseRow,
        carry: &std::collections::BTreeMap<u32, i64>,
    ) -> PortResult<()>;
    /// Stores a newly accepted timetable as the operator's next version; returns the version.
    async fn save_timetable(&self, slug: &str, summary: &str, feed_b64: &str, now: i64) -> PortResult<i64>;
    /// The address behind a live session token.
    async fn session(&self, token: &str, now: i64) -> PortResult<Option<Address>>;
    /// Taps of one ticket, newest first.
    async fn taps_of_ticket(&self, ticket_id: u64) -> PortResult<Vec<TapRow>>;
    /// One ticket.
    async fn ticket(&self, id: u64) -> PortResult<Option<TicketRow>>;
    /// Tickets held by a traveler, newest first.
    async fn tickets_of(&self, holder: &Address) -> PortResult<Vec<TicketRow>>;
    /// One traveler by address.
    async fn traveler(&self, address: &Address) -> PortResult<Option<Traveler>>;
    /// All travelers.
    async fn travelers(&self) -> PortResult<Vec<Traveler>>;
    /// The whole trust list as (issuer DID, concession) pairs.
    async fn trust_list(&self) -> PortResult<Vec<(String, String)>>;
    /// Removes a card's binding if `holder` made it; returns whether one was removed.
    async fn unbind_card(&self, card_key: &[u8; 32], holder: &Address) -> PortResult<bool>;
    /// Inserts or updates an operator.
    async fn upsert_operator(&self, o: &Operator) -> PortResult<()>;
    /// One voucher by id.
    async fn voucher(&self, id: u64) -> PortResult<Option<VoucherRow>>;
    /// Vouchers issued and redeemed, per operator they are redeemable at.
    async fn voucher_stats(&self) -> PortResult<Vec<VoucherStats>>;
    /// Vouchers of a traveler, newest first.
    async fn vouchers_of(&self, holder: &Address) -> PortResult<Vec<VoucherRow>>;
    /// A traveler's wallet.
    async fn wallet(&self, holder: &Address) -> PortResult<Vec<WalletCredential>>;
}

/// The chain-write outbox (kippu-store implements it): every transaction Kippu sends is first
/// a row here, keyed by its business fact; the sender (kippu-chain) follows it to depth.
#[async_trait]
pub trait ChainWrites: Send + Sync {
    /// Records a write for `key` once: `false` when the key has one already.
    async fn record_write(&self, key: &WriteKey, call: &str, sender: &str, now: i64) -> PortResult<bool>;
    /// One write by key.
    async fn recorded_write(&self, key: &WriteKey) -> PortResult<Option<RecordedWrite>>;
    /// Writes not yet confirmed nor failed, least recently changed first.
    async fn open_writes(&self, limit: i64) -> PortResult<Vec<RecordedWrite>>;
    /// Confirmed writes in block `from_block` or later, to check they are still on chain.
    async fn confirmed_writes_since(&self, from_block: u64) -> PortResult<Vec<RecordedWrite>>;
    /// Everything not confirmed, then the latest confirmed, most recently changed first.
    async fn recent_writes(&self, limit: i64) -> PortResult<Vec<RecordedWrite>>;
    /// Records a write's new stage.
    async fn set_write_stage(&self, key: &WriteKey, change: &StageChange, now: i64) -> PortResult<()>;
    /// How many writes stand where: the open ones by stage, of them the stuck (`stuck_after`
    /// attempts or more) and the gone (confirmed once, open again), the failed, and those
    /// confirmed at `confirmed_since` or later.
    async fn write_counts(&self, stuck_after: u32, confirmed_since: i64) -> PortResult<WriteCounts>;
    /// The writes in `state` (stuck: `stuck_after` attempts or more), most recently changed
    /// first; [`WriteState::All`] lists as [`ChainWrites::recent_writes`] does.
    async fn writes_in_state(&self, state: WriteState, stuck_after: u32, limit: i64) -> PortResult<Vec<RecordedWrite>>;
}

/// Which of the outbox's writes a person asks for (the admin page's filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteState {
    /// Not yet confirmed nor failed: recorded, sent or included.
    Pending,
    /// Pending and re-sent so often that a person should look (`kippu_domain::outbox::stuck`).
    Stuck,
    /// Refused by the contract for good.
    Failed,
    /// Confirmed once, then found gone from the chain, and pending again.
    Gone,
    /// Confirmed.
    Confirmed,
    /// Everything not confirmed, then the latest confirmed.
    All,
}

impl WriteState {
    /// Every state, in the order the admin page offers them.
    pub const ALL: [WriteState; 6] = [
        WriteState::All,
        WriteState::Pending,
        WriteState::Stuck,
        WriteState::Failed,
        WriteState::Gone,
        WriteState::Confirmed,
    ];

    /// Its name in a query string.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteState::Pending => "pending",
            WriteState::Stuck => "stuck",
            WriteState::Failed => "failed",
            WriteState::Gone => "gone",
            WriteState::Confirmed => "confirmed",
            WriteState::All => "all",
        }
    }
}

impl std::str::FromStr for WriteState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|w| w.as_str() == s).ok_or_else(|| {
            let names = Self::ALL.map(WriteState::as_str).join(", ");
            format!("no chain-write state {s:?} (one of: {names})")
        })
    }
}

/// How many of the outbox's writes stand where ([`ChainWrites::write_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Recorded, not sent yet.
    pub recorded: u64,
    /// Sent, not yet in a block.
    pub sent: u64,
    /// In a block, not yet deep enough.
    pub included: u64,
    /// Of the open ones: re-sent so often that a person should look.
    pub stuck: u64,
    /// Of the open ones: confirmed once, then gone from the chain (being sent again).
    pub gone: u64,
    /// Refused by the contract for good.
    pub failed: u64,
    /// Confirmed in the window asked for.
    pub confirmed: u64,
}

impl WriteCounts {
    /// Not yet confirmed nor failed.
    pub fn pending(&self) -> u64 {
        self.recorded + self.sent + self.included
    }
}

/// Leases (kippu-store implements them): a job that must run in one process at a time runs
/// where its lease is held.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes or renews lease `name` for `holder` until `now + ttl_secs`; whether it holds it.
    async fn lead(&self, name: &str, holder: &str, now: i64, ttl_secs: i64) -> PortResult<bool>;
}

/// The chain: reads and the transactions the application sends (kippu-chain implements it).
#[async_trait]
pub trait Chain: Send + Sync {
    /// The chain id passes, DIDs and EIP-712 domains name.
    fn chain_id(&self) -> u64;
    /// FARE held by `who` (minor units).
    async fn fare_balance(&self, who: Address) -> ChainResult<u128>;
    /// FARE held in settlement escrow.
    async fn escrow_balance(&self) -> ChainResult<u128>;
    /// Mints FARE for a card payment, once per `payment_ref`.
    async fn mint_fare(&self, to: Address, amount: u128, payment_ref: B256) -> ChainResult<B256>;
    /// The mint for a payment encoded for the store to record in the same transaction as the
    /// payment marked paid ([`Store::mark_paid_recording`]); `None` when this chain sends
    /// writes directly (no outbox): then [`Chain::mint_fare`].
    fn prepare_mint(&self, to: Address, amount: u128, payment_ref: B256) -> ChainResult<Option<PreparedWrite>>;
    /// Waits for a mint recorded from [`Chain::prepare_mint`] to be in a block; its transaction
    /// (`ChainFailure::Pending` while it is still being sent).
    async fn await_mint(&self, key: &WriteKey) -> ChainResult<B256>;
    /// Whether a payment's FARE was minted.
    async fn payment_minted(&self, payment_ref: B256) -> ChainResult<bool>;
    /// A bundle's price and each leg's share.
    async fn quote(&self, bundle_id: u32) -> ChainResult<(u128, Vec<u128>)>;
    /// A bundle's price after a concession discount.
    async fn quote_with_concession(&self, bundle_id: u32, concession_bps: u16) -> ChainResult<u128>;
    /// Buys a bundle for `traveler`, who signs the FARE permit; the relayer pays the gas.
    /// Returns the plan id and the transaction. `request_id` is the purchase's business key
    /// (one per traveler intent: a form submitted twice carries the same one): the same
    /// request buys one plan however often it is sent, and answers with that plan.
    async fn buy_with_permit(
        &self,
        request_id: B256,
        traveler: &alloy_signer_local::PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
    ) -> ChainResult<(u64, B256)>;
    /// The plan purchase request `request_id` bought, its transaction and the price paid;
    /// `None` while it has bought nothing.
    async fn purchase_of(&self, request_id: B256) -> ChainResult<Option<(u64, B256, u128)>>;
    /// As [`Chain::buy_with_permit`], at a concession price the attestor vouches for.
    #[allow(clippy::too_many_arguments)]
    async fn buy_with_permit_and_concession(
        &self,
        request_id: B256,
        traveler: &alloy_signer_local::PrivateKeySigner,
        attestor: &alloy_signer_local::PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
        kind: u8,
        discount_bps: u16,
    ) -> ChainResult<(u64, B256)>;
    /// The refund still available for a ticket, and until when.
    async fn refundable(&self, ticket_id: u64) -> ChainResult<(u128, u64)>;
    /// Refunds an unused ticket (relayed); returns the amount.
    async fn refund(&self, ticket_id: u64) -> ChainResult<u128>;
    /// Redeems a voucher at an operator.
    async fn redeem_voucher(&self, voucher_id: u64, operator_id: u32) -> ChainResult<B256>;
}

/// Settlement balances held by the contracts at one block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// The chain calls of a period close (kippu-chain implements it with the settler's key). A
/// port of its own: only the settling job needs it, and chain doubles for the traveler's use
/// cases need not implement it.
#[async_trait]
pub trait Clearing: Send + Sync {
    /// Clearing's current (open) period: the one a close must name.
    async fn current_period(&self) -> ChainResult<u64>;
    /// The newest block's number.
    async fn block_number(&self) -> ChainResult<u64>;
    /// A block's `(hash, parent hash, timestamp)`, if the chain has it.
    async fn block_header(&self, n: u64) -> ChainResult<Option<(B256, B256, u64)>>;
    /// What the contracts hold for settlement at block `block`, for `operators`.
    async fn settlement_state(&self, block: u64, operators: &[u32]) -> ChainResult<SettlementState>;
    /// The insurer operator whose claim pays redeemed vouchers, if one is set.
    async fn insurer(&self) -> ChainResult<Option<u32>>;
    /// Closes period `period_id` with netted adjustments `(from, to, amount)` moved between
    /// operators' claims first; returns the transaction and the period it closed. A period
    /// that is not the current one is refused (`WrongPeriod`), so a close never settles twice.
    async fn settle_period(&self, period_id: u64, adjustments: &[(u32, u32, i64)]) -> ChainResult<(B256, u64)>;
}

/// Why the ledger could not catch up (the chain or the store failed under it), in the
/// follower's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LedgerFailure(pub String);

/// The ledger follower: books chain events into the store (the indexer implements it).
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Books everything mined up to the confirmed head; returns the events booked.
    async fn catch_up(&self) -> Result<usize, LedgerFailure>;
    /// The first block the ledger has not booked, if it has booked any.
    async fn next_block(&self) -> PortResult<Option<u64>>;
}

/// What the gates (and the insurer's matcher) must learn at once rather than at their next
/// sync. Each call is a notice: it cannot fail (an adapter logs what it could not deliver;
/// the gates catch up from the store anyway).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// An account key was revoked: its passes must stop opening gates now.
    async fn key_revoked(&self, holder: Address);
    /// A traveler revoked a phone's device key: its passes must stop opening gates now.
    async fn device_revoked(&self, device_key: [u8; 32]);
    /// A traveler bound a contactless card to a ticket (`sig`: their EIP-712 binding).
    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>);
    /// A card's binding was removed (lost card): its taps must stop opening gates now.
    async fn card_unbound(&self, card_key: [u8; 32]);
    /// An operator imported a new timetable: delays on its trips are matched from now on.
    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable);
}

/// A concession the traveler presented at purchase and that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedConcession {
    /// The contract's concession kind (`Concession::kind`).
    pub kind: u8,
    /// The discount it earns, in basis points.
    pub discount_bps: u16,
}

/// Why a concession could not be presented.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConcessionFailure {
    /// Too many presentation challenges are open: try again after `retry_after_secs`.
    #[error("too many presentation challenges open; retry after {retry_after_secs} s")]
    Busy {
        /// When to try again.
        retry_after_secs: u64,
    },
    /// The presentation's challenge could not be issued or taken.
    #[error("{0}")]
    Challenge(String),
    /// The presentation did not verify (revoked, expired, untrusted issuer …): the reason.
    #[error("{0}")]
    NotVerified(String),
    /// The presentation verified but proved no concession.
    #[error("no concession presented")]
    NonePresented,
    /// Anything internal (the store, signing the presentation).
    #[error("{0}")]
    Unavailable(String),
}

/// The traveler's concession credentials (kippu-web implements it over its credential
/// services: the wallet, the trust list, status lists). A port because verifying a
/// credential fetches other issuers' status lists.
#[async_trait]
pub trait Concessions: Send + Sync {
    /// The traveler's best currently valid concession, presented with their key exactly as a
    /// wallet would and verified afresh (it may have been revoked since a page showed it);
    /// `None` when they hold none.
    async fn present_best(
        &self,
        traveler: &alloy_signer_local::PrivateKeySigner,
    ) -> Result<Option<PresentedConcession>, ConcessionFailure>;
}

/// The time, so rules and tests agree on "now".
pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }
}

/// A card payment page to open for a traveler (Stripe Checkout in production).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// Whom to credit when the payment completes.
    pub traveler: Address,
    /// Amount to charge in minor units (cents).
    pub amount_minor: i64,
    /// Where the provider sends the browser after payment (may hold `{CHECKOUT_SESSION_ID}`).
    pub success_url: String,
    /// Where the provider sends the browser if the traveler backs out.
    pub cancel_url: String,
}

/// An opened payment page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutPage {
    /// The provider's session id (`cs_…`), the payment's reference.
    pub id: String,
    /// Where to send the traveler.
    pub url: String,
}

/// Why a payment page could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment provider: {0}")]
pub struct PaymentFailure(pub String);

/// The card payment provider (kippu-payments implements it over Stripe Checkout).
#[async_trait]
pub trait Payments: Send + Sync {
    /// Opens a hosted payment page.
    async fn open_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutPage, PaymentFailure>;
}
