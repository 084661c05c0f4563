//! Operator settlement reports: figures per day and per clearing period, and the events
//! and rides behind them. Amounts are FARE minor units.

/// Seconds in a (UTC) day.
pub const DAY_SECS: i64 = 86_400;

/// The event kinds that post to an operator's account.
pub const OPERATOR_EVENT_KINDS: [&str; 6] =
    ["LegSold", "TicketRefunded", "VoucherRedeemed", "VoucherSettled", "ClaimMoved", "Payout"];

/// The ledger account of operator `id`.
pub fn operator_account(id: u32) -> String {
    format!("operator:{id}")
}

/// One operator's line of the settlement report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorReport {
    /// Operator id.
    pub operator_id: u32,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Revenue share booked from bundle sales.
    pub revenue: i64,
    /// Legs (tickets) sold.
    pub legs: i64,
    /// Rides (taps) recorded.
    pub rides: i64,
    /// Voucher value redeemed at this operator (payable by the insurer).
    pub vouchers_redeemed: i64,
    /// Paid out through Clearing.
    pub paid_out: i64,
}

/// One operator's figures for one UTC day (or for all time, in [`OperatorDaily::totals`]).
/// Amounts are FARE minor units, positive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorDay {
    /// Days since the Unix epoch (UTC); `None` for events without a recorded block time.
    pub day: Option<i64>,
    /// Legs sold (`LegSold` events).
    pub legs: i64,
    /// Revenue share of the legs sold (gross).
    pub revenue: i64,
    /// Refunds (`TicketRefunded` events).
    pub refunds_count: i64,
    /// Refunded amount.
    pub refunds: i64,
    /// Vouchers redeemed at this operator.
    pub vouchers_count: i64,
    /// Their value.
    pub vouchers: i64,
    /// Vouchers redeemed elsewhere and paid out of this (the insurer's) claim at a close.
    pub cover_count: i64,
    /// Their value.
    pub cover: i64,
    /// Apportionment adjustments at a close (`ClaimMoved`), signed: positive raises what is owed.
    pub adjustments_count: i64,
    /// Their net amount.
    pub adjustments: i64,
    /// Payouts (`Payout` events).
    pub payouts_count: i64,
    /// Paid out.
    pub payouts: i64,
    /// Rides (taps at this operator's gates).
    pub rides: i64,
}

impl OperatorDay {
    /// Revenue net of refunds.
    pub fn net_revenue(&self) -> i64 {
        self.revenue - self.refunds
    }

    fn add(&mut self, o: &Self) {
        self.legs += o.legs;
        self.revenue += o.revenue;
        self.refunds_count += o.refunds_count;
        self.refunds += o.refunds;
        self.vouchers_count += o.vouchers_count;
        self.vouchers += o.vouchers;
        self.cover_count += o.cover_count;
        self.cover += o.cover;
        self.adjustments_count += o.adjustments_count;
        self.adjustments += o.adjustments;
        self.payouts_count += o.payouts_count;
        self.payouts += o.payouts;
        self.rides += o.rides;
    }
}

/// One operator's figures per day, oldest first (days without a block time last).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorDaily {
    /// Days with any activity.
    pub days: Vec<OperatorDay>,
    /// What the operator is owed now (balance of its account, negated).
    pub balance: i64,
}

impl OperatorDaily {
    /// Sums over every day (`day` is `None`).
    pub fn totals(&self) -> OperatorDay {
        let mut t = OperatorDay::default();
        for d in &self.days {
            t.add(d);
        }
        t
    }
}

/// A bundle's part in one operator's revenue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleShare {
    /// Bundle id; `None` when the plan is unknown (an event without a stored payload).
    pub bundle_id: Option<u32>,
    /// Bundle name.
    pub name: String,
    /// Legs of this operator sold in the bundle.
    pub legs: i64,
    /// Their revenue share (gross).
    pub revenue: i64,
    /// Refunded of it.
    pub refunds: i64,
}

impl BundleShare {
    /// Revenue net of refunds.
    pub fn net_revenue(&self) -> i64 {
        self.revenue - self.refunds
    }
}

/// Where an event sits in chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChainPos {
    /// Block height.
    pub block_number: i64,
    /// Log index within the block.
    pub log_index: i64,
}

/// A clearing period as the ledger knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Clearing's period id.
    pub period_id: u64,
    /// Events strictly after this position belong to it (`None`: from the start).
    pub after: Option<ChainPos>,
    /// Its last event (the last `Payout` of its close); `None` while it is open.
    pub until: Option<ChainPos>,
    /// Block time of the previous close (when the period opened), if known.
    pub opened_at: Option<i64>,
    /// Block time of its close, if closed and known.
    pub closed_at: Option<i64>,
}

impl Period {
    /// Whether the period has been closed (paid out).
    pub fn closed(&self) -> bool {
        self.until.is_some()
    }
}

/// One operator's statement for one clearing period. Amounts positive, FARE minor
/// units (adjustments signed);
/// `opening + revenue - refunds + vouchers - cover + adjustments - payouts == closing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The period.
    pub period: Period,
    /// Owed to the operator when the period opened.
    pub opening: i64,
    /// Revenue share of legs sold in the period.
    pub revenue: i64,
    /// Legs sold.
    pub legs: i64,
    /// Refunds in the period.
    pub refunds: i64,
    /// Refund events.
    pub refunds_count: i64,
    /// Vouchers redeemed at the operator in the period.
    pub vouchers: i64,
    /// Voucher events.
    pub vouchers_count: i64,
    /// Vouchers redeemed at other operators, paid out of this (the insurer's) claim at the close.
    pub cover: i64,
    /// Voucher settlement events.
    pub cover_count: i64,
    /// Apportionment adjustments at the close (signed: positive raises what is owed).
    pub adjustments: i64,
    /// Adjustment events.
    pub adjustments_count: i64,
    /// Paid out at the period's close.
    pub payouts: i64,
    /// Payout events.
    pub payouts_count: i64,
    /// Owed to the operator when the period closed (or now, while open).
    pub closing: i64,
}

impl Statement {
    /// `opening + revenue - refunds + vouchers - cover + adjustments - payouts`; equals
    /// [`Statement::closing`] unless the ledger holds postings of another kind on the account.
    pub fn computed_closing(&self) -> i64 {
        self.opening + self.revenue - self.refunds + self.vouchers - self.cover + self.adjustments - self.payouts
    }
}

/// Which of an operator's events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these kinds (of [`OPERATOR_EVENT_KINDS`]); all when empty.
    pub kinds: Vec<String>,
    /// Only this UTC day (days since the epoch); `Some(None)`: events without a block time.
    pub day: Option<Option<i64>>,
    /// Only events in this period.
    pub period: Option<Period>,
    /// Only legs sold in this bundle and their refunds.
    pub bundle: Option<u32>,
}

/// An event behind a figure, with what it posted to the operator's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorEvent {
    /// `0x<block hash>:<log index>`.
    pub event_key: String,
    /// Event kind.
    pub kind: String,
    /// Block height.
    pub block_number: i64,
    /// Log index.
    pub log_index: i64,
    /// Block time, POSIX seconds, if recorded.
    pub block_time: Option<i64>,
    /// Transaction.
    pub tx_hash: String,
    /// The posting to `operator:<id>` as booked (debits positive, credits negative).
    pub posting: i64,
}

impl OperatorEvent {
    /// Change in what the operator is owed (the posting negated).
    pub fn owed_change(&self) -> i64 {
        -self.posting
    }
}

/// A page of events and the totals of everything the filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPage {
    /// Events on this page, in chain order.
    pub events: Vec<OperatorEvent>,
    /// Events matching the filter (all pages).
    pub total_count: i64,
    /// Sum of their postings (all pages).
    pub total_posting: i64,
}

/// A ride (tap) behind a rides figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RideRow {
    /// The gate's scan id.
    pub scan_id: String,
    /// Ticket tapped.
    pub ticket_id: u64,
    /// Gate.
    pub gate_key: String,
    /// Scan time, POSIX seconds.
    pub at: i64,
    /// Run named by an on-board validator.
    pub trip_id: Option<String>,
    /// On-chain tap batch it is anchored in, once anchored.
    pub batch_id: Option<i64>,
}

/// A page of rides and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RidePage {
    /// Rides on this page, oldest first.
    pub rides: Vec<RideRow>,
    /// Rides matching (all pages).
    pub total_count: i64,
}
