//! The chain-write outbox's rules (issue 20): every transaction Kippu sends is first a recorded
//! write keyed by the business fact that causes it (a payment, a purchase request, a claim, a
//! tap batch, a period). The sender asks [`step`] what to do with a write given what the node
//! says of its latest transaction: send it, wait, record that it was included or is deep
//! enough, send it again (dropped, reorganised away, stuck), or give up with the contract's
//! reason. Pure, so every path is tested here; the sender and the store do the IO.
//!
//! A write is never "done twice": the contracts refuse a second effect for the same business
//! key, so a re-send either takes effect (the first never did) or reverts with the key's own
//! error ([`Revert::AlreadyDone`]), which means an earlier send took effect — and the write is
//! then complete, not failed.

use std::fmt;
use std::str::FromStr;

/// What a write does on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKind {
    /// FARE minted for a paid card top-up (key: the payment's id).
    Mint,
    /// A plan bought (key: the purchase request id chosen off chain).
    Purchase,
    /// A ticket refunded (key: the ticket).
    Refund,
    /// A delay voucher issued (key: the claim).
    Voucher,
    /// A voucher redeemed at an operator (key: the voucher).
    Redemption,
    /// A batch of taps anchored and its rides recorded (key: the batch id).
    Anchor,
    /// A clearing period closed and settled (key: the period).
    PeriodClose,
    /// A catalogue change: operators, products, bundles, cover terms (key: the item).
    Catalogue,
    /// A role granted or revoked (key: role and holder).
    Role,
}

impl WriteKind {
    /// Every kind, in a stable order.
    pub const ALL: [WriteKind; 9] = [
        WriteKind::Mint,
        WriteKind::Purchase,
        WriteKind::Refund,
        WriteKind::Voucher,
        WriteKind::Redemption,
        WriteKind::Anchor,
        WriteKind::PeriodClose,
        WriteKind::Catalogue,
        WriteKind::Role,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Mint => "mint",
            WriteKind::Purchase => "purchase",
            WriteKind::Refund => "refund",
            WriteKind::Voucher => "voucher",
            WriteKind::Redemption => "redemption",
            WriteKind::Anchor => "anchor",
            WriteKind::PeriodClose => "period_close",
            WriteKind::Catalogue => "catalogue",
            WriteKind::Role => "role",
        }
    }
}

impl FromStr for WriteKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| format!("unknown chain write kind {s:?}"))
    }
}

/// A write's identity: its kind and the business fact's id. One write per key, ever.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteKey {
    /// What it does.
    pub kind: WriteKind,
    /// The business fact's id (a payment id, a purchase request id, a period number).
    pub id: String,
}

/// A write encoded and ready to be recorded together with the business fact that causes it,
/// in the same database transaction (a payment marked paid and its mint), so neither can
/// exist without the other whatever crashes in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedWrite {
    /// Its business key.
    pub key: WriteKey,
    /// The call, as the outbox stores it (JSON of the target and calldata).
    pub call: String,
    /// The sending address, 0x-hex.
    pub sender: String,
}

impl fmt::Display for WriteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

/// Where a write stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Recorded with its business fact; not sent yet.
    Recorded,
    /// Submitted (the latest attempt's transaction is `tx`), not yet seen in a block.
    Sent {
        /// The latest attempt's transaction hash.
        tx: [u8; 32],
        /// When it was submitted (unix seconds).
        at: i64,
    },
    /// In block `block` (hash `block_hash`), not yet deep enough.
    Included {
        /// The transaction.
        tx: [u8; 32],
        /// Block number.
        block: u64,
        /// That block's hash, to notice it being reorganised away.
        block_hash: [u8; 32],
    },
    /// `confirmations` deep: done. (Reconciliation still checks it stays so.)
    Confirmed {
        /// The transaction that took effect.
        tx: [u8; 32],
        /// Its block.
        block: u64,
    },
    /// The contract refused it for a reason a re-send cannot change: never takes effect.
    Failed {
        /// The contract's reason.
        reason: String,
    },
}

/// A recorded write and its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Its identity.
    pub key: WriteKey,
    /// Where it stands.
    pub stage: Stage,
    /// Transactions submitted for it so far.
    pub attempts: u32,
    /// Whether it was ever confirmed (a confirmed write that vanishes is an alert).
    pub confirmed_once: bool,
}

/// A recorded write as the store keeps it: the write, what to send and who sends it, and the
/// latest attempt (its nonce and signed bytes, so a dropped transaction is broadcast again as
/// the very same transaction: one nonce can be included once, so it cannot take effect twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedWrite {
    /// The write and where it stands.
    pub write: Write,
    /// The call to make (contract and calldata), as recorded: every attempt makes it again.
    pub call: String,
    /// The address that sends it (its nonces are the sender's to manage).
    pub sender: String,
    /// The nonce of the latest attempt.
    pub nonce: Option<u64>,
    /// The latest attempt's signed transaction (0x-hex), broadcast again while its nonce is free.
    pub raw_tx: Option<String>,
    /// A failed write's revert data (0x-hex), so its waiting caller gets the typed refusal.
    pub revert_data: Option<String>,
    /// When it was recorded (unix seconds).
    pub created_at: i64,
    /// When its stage last changed.
    pub updated_at: i64,
}

/// A new stage for a write, with the attempt it comes from when it is a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageChange {
    /// The stage.
    pub stage: Stage,
    /// Attempts so far.
    pub attempts: u32,
    /// A new attempt's nonce (`None` keeps the last one's).
    pub nonce: Option<u64>,
    /// A new attempt's signed transaction (`None` keeps the last one's).
    pub raw_tx: Option<String>,
    /// For [`Stage::Failed`]: the contract's revert data.
    pub revert_data: Option<String>,
}

impl StageChange {
    /// A stage reached without a new attempt.
    pub fn to(stage: Stage, attempts: u32) -> Self {
        Self { stage, attempts, nonce: None, raw_tx: None, revert_data: None }
    }
}

/// Whether `r` is the contract's refusal of a second effect for this kind's business key: an
/// earlier attempt (or an earlier process) already did what the write asks.
pub fn already_done(kind: WriteKind, r: &crate::ContractRejection) -> bool {
    use crate::ContractRejection as R;
    if let (WriteKind::PeriodClose, R::WrongPeriod { given, current }) = (kind, r) {
        // a period before the current one is closed already; a later one is a real mistake
        return given < current;
    }
    matches!(
        (kind, r),
        (WriteKind::Mint, R::PaymentAlreadyMinted { .. })
            | (WriteKind::Voucher, R::AlreadyCompensated { .. } | R::AlreadyVoted { .. })
            | (WriteKind::Purchase, R::PurchaseAlreadyMade { .. })
            | (WriteKind::Anchor, R::RidesAlreadyRecorded { .. } | R::BatchAlreadyAnchored { .. })
            | (WriteKind::Redemption, R::UnknownVoucher { .. })
            | (WriteKind::Refund, R::UnknownTicket { .. } | R::NonexistentToken { .. })
    )
}

/// Why a mined transaction reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// The contract's error for this business key having taken effect already
    /// (`PaymentAlreadyMinted`, `AlreadyCompensated`, a used purchase id…): an earlier send did it.
    AlreadyDone,
    /// Any other refusal, in the contract's words.
    Other(String),
}

/// What the node says of a write's latest transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// In the node's pool, not mined.
    Pending,
    /// The node knows no such transaction: dropped, lost in a restart, or reorganised away.
    Unknown,
    /// Mined in block `block` with hash `block_hash`.
    Mined {
        /// Block number.
        block: u64,
        /// Block hash.
        block_hash: [u8; 32],
        /// `None`: it succeeded.
        revert: Option<Revert>,
    },
}

/// When writes are re-sent and confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Blocks a write's block must have on top (itself included) to be confirmed; 1 = mined.
    pub confirmations: u64,
    /// A sent write the node no longer knows, or still has not mined after this long, is sent again.
    pub resend_after_secs: i64,
    /// Attempts after which a write is reported stuck (it is still re-sent).
    pub stuck_after_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self { confirmations: 1, resend_after_secs: 30, stuck_after_attempts: 5 }
    }
}

/// Why a write sent and still in the node's pool is sent again: it waited too long there
/// (underpriced, say), so the sender replaces it at the same nonce rather than re-broadcasting it.
pub const STUCK_IN_POOL: &str = "stuck in the pool";

/// What the sender does next with a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Submit a (new) transaction for it.
    Send {
        /// Why (for the log and the admin page).
        why: &'static str,
    },
    /// Nothing yet.
    Wait,
    /// Record a new stage.
    Advance(Stage),
    /// A write that was confirmed is gone from the chain: alert, and send it again.
    ConfirmedWriteGone,
}

/// Whether a write has been re-sent so often that a person should look (the admin page).
pub fn stuck(w: &Write, p: &Policy) -> bool {
    w.attempts >= p.stuck_after_attempts && !matches!(w.stage, Stage::Confirmed { .. } | Stage::Failed { .. })
}

/// The next step for `w`, given what the node says of its latest transaction (`seen`; `None`
/// when it was never sent), the chain's head, the canonical hash at the block the write was
/// recorded in (`canonical_at_block`: for an included or confirmed write; `None` when unknown
/// or above the head), and the time.
pub fn step(
    w: &Write,
    seen: Option<&Seen>,
    head: u64,
    canonical_at_block: Option<[u8; 32]>,
    now: i64,
    p: &Policy,
) -> Step {
    let deep = |block: u64| head >= block && head - block + 1 >= p.confirmations.max(1);
    match (&w.stage, seen) {
        (Stage::Recorded, _) => Step::Send { why: "recorded" },
        (Stage::Failed { .. }, _) => Step::Wait,
        // Its block was replaced, and no receipt names another block: reorganised away (a stale
        // receipt for the old block does not count).
        (Stage::Included { block, block_hash, .. }, _)
            if canonical_at_block.is_some_and(|h| h != *block_hash)
                && !matches!(seen, Some(Seen::Mined { block: b, .. }) if b != block) =>
        {
            Step::Send { why: "its block was reorganised away" }
        }
        // Mined: a success, or the business key's own error (an earlier attempt did it), counts.
        (
            Stage::Sent { tx, .. } | Stage::Included { tx, .. },
            Some(Seen::Mined { block, block_hash, revert: None | Some(Revert::AlreadyDone) }),
        ) => {
            if deep(*block) {
                Step::Advance(Stage::Confirmed { tx: *tx, block: *block })
            } else if matches!(&w.stage, Stage::Included { block: b, block_hash: h, .. } if b == block && h == block_hash)
            {
                Step::Wait
            } else {
                Step::Advance(Stage::Included { tx: *tx, block: *block, block_hash: *block_hash })
            }
        }
        (Stage::Sent { .. } | Stage::Included { .. }, Some(Seen::Mined { revert: Some(Revert::Other(r)), .. })) => {
            Step::Advance(Stage::Failed { reason: r.clone() })
        }
        // In a block, then the block is replaced: reorganised away; the receipt will say where
        // it is next, or the node will not know it and it is sent again.
        (Stage::Included { .. }, Some(Seen::Unknown)) => Step::Send { why: "reorganised away" },
        (Stage::Included { .. }, _) => Step::Wait,
        (Stage::Sent { at, .. }, Some(Seen::Unknown)) if now - at >= p.resend_after_secs => {
            Step::Send { why: "the node lost it" }
        }
        (Stage::Sent { at, .. }, Some(Seen::Pending)) if now - at >= p.resend_after_secs => {
            Step::Send { why: STUCK_IN_POOL }
        }
        (Stage::Sent { .. }, _) => Step::Wait,
        // Confirmed: reconciliation's check that it stays so.
        (Stage::Confirmed { .. }, Some(Seen::Unknown)) => Step::ConfirmedWriteGone,
        (Stage::Confirmed { .. }, Some(Seen::Mined { block, block_hash, .. }))
            if canonical_at_block.is_some_and(|h| h != *block_hash) || *block > head =>
        {
            Step::ConfirmedWriteGone
        }
        (Stage::Confirmed { .. }, _) => Step::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: [u8; 32] = [1; 32];
    const H: [u8; 32] = [7; 32];
    const OTHER: [u8; 32] = [8; 32];

    fn write(stage: Stage) -> Write {
        Write { key: WriteKey { kind: WriteKind::Mint, id: "cs_1".into() }, stage, attempts: 1, confirmed_once: false }
    }

    fn mined(block: u64, hash: [u8; 32], revert: Option<Revert>) -> Seen {
        Seen::Mined { block, block_hash: hash, revert }
    }

    const P: Policy = Policy { confirmations: 3, resend_after_secs: 30, stuck_after_attempts: 5 };

    #[test]
    fn names_round_trip() {
        for k in WriteKind::ALL {
            assert_eq!(k.as_str().parse::<WriteKind>().unwrap(), k);
        }
        assert_eq!(WriteKey { kind: WriteKind::PeriodClose, id: "7".into() }.to_string(), "period_close:7");
    }

    #[test]
    fn a_write_is_sent_included_then_confirmed_at_depth() {
        assert_eq!(step(&write(Stage::Recorded), None, 10, None, 0, &P), Step::Send { why: "recorded" });
        let sent = write(Stage::Sent { tx: TX, at: 100 });
        assert_eq!(step(&sent, Some(&Seen::Pending), 10, None, 101, &P), Step::Wait);
        let seen = mined(11, H, None);
        let included = Stage::Included { tx: TX, block: 11, block_hash: H };
        assert_eq!(step(&sent, Some(&seen), 11, Some(H), 102, &P), Step::Advance(included.clone()));
        assert_eq!(step(&write(included.clone()), Some(&seen), 12, Some(H), 103, &P), Step::Wait);
        let confirmed = Stage::Confirmed { tx: TX, block: 11 };
        assert_eq!(step(&write(included), Some(&seen), 13, Some(H), 104, &P), Step::Advance(confirmed));
    }

    #[test]
    fn dropped_stuck_and_reorganised_writes_are_sent_again() {
        let sent = write(Stage::Sent { tx: TX, at: 100 });
        assert_eq!(step(&sent, Some(&Seen::Unknown), 10, None, 110, &P), Step::Wait, "not before the pause");
        assert_eq!(step(&sent, Some(&Seen::Unknown), 10, None, 130, &P), Step::Send { why: "the node lost it" });
        assert_eq!(step(&sent, Some(&Seen::Pending), 10, None, 130, &P), Step::Send { why: "stuck in the pool" });
        let included = write(Stage::Included { tx: TX, block: 11, block_hash: H });
        assert_eq!(
            step(&included, Some(&mined(11, H, None)), 12, Some(OTHER), 131, &P),
            Step::Send { why: "its block was reorganised away" }
        );
        assert_eq!(step(&included, Some(&Seen::Unknown), 12, None, 131, &P), Step::Send { why: "reorganised away" });
        // Re-included in another block after a reorganisation: followed there.
        assert_eq!(
            step(&included, Some(&mined(12, OTHER, None)), 12, Some(H), 131, &P),
            Step::Advance(Stage::Included { tx: TX, block: 12, block_hash: OTHER })
        );
    }

    #[test]
    fn the_business_key_s_own_revert_completes_a_write_and_any_other_fails_it() {
        let sent = write(Stage::Sent { tx: TX, at: 100 });
        let done = mined(20, H, Some(Revert::AlreadyDone));
        assert_eq!(
            step(&sent, Some(&done), 22, Some(H), 101, &P),
            Step::Advance(Stage::Confirmed { tx: TX, block: 20 })
        );
        let refused = mined(20, H, Some(Revert::Other("UnknownBundle(9)".into())));
        assert_eq!(
            step(&sent, Some(&refused), 22, Some(H), 101, &P),
            Step::Advance(Stage::Failed { reason: "UnknownBundle(9)".into() })
        );
        assert_eq!(step(&write(Stage::Failed { reason: "x".into() }), None, 30, None, 200, &P), Step::Wait);
    }

    #[test]
    fn a_confirmed_write_that_vanishes_is_an_alert() {
        let w = Write { confirmed_once: true, ..write(Stage::Confirmed { tx: TX, block: 11 }) };
        assert_eq!(step(&w, Some(&mined(11, H, None)), 20, Some(H), 300, &P), Step::Wait);
        assert_eq!(step(&w, Some(&Seen::Unknown), 20, None, 300, &P), Step::ConfirmedWriteGone);
        assert_eq!(step(&w, Some(&mined(11, H, None)), 20, Some(OTHER), 300, &P), Step::ConfirmedWriteGone);
        assert_eq!(
            step(&w, Some(&mined(11, H, None)), 9, None, 300, &P),
            Step::ConfirmedWriteGone,
            "the head fell below it"
        );
    }

    #[test]
    fn a_write_re_sent_often_is_reported_stuck_until_it_settles() {
        let mut w = write(Stage::Sent { tx: TX, at: 0 });
        w.attempts = 5;
        assert!(stuck(&w, &P));
        w.stage = Stage::Confirmed { tx: TX, block: 1 };
        assert!(!stuck(&w, &P));
    }

    #[test]
    fn only_the_business_key_s_own_refusal_counts_as_already_done() {
        use crate::ContractRejection as R;
        let minted = R::PaymentAlreadyMinted { payment_ref: Default::default() };
        assert!(already_done(WriteKind::Mint, &minted));
        assert!(!already_done(WriteKind::Voucher, &minted), "another kind's refusal is a failure");
        assert!(!already_done(WriteKind::Mint, &R::ZeroAmount));
        assert!(already_done(WriteKind::PeriodClose, &R::WrongPeriod { given: 6, current: 7 }), "closed before");
        assert!(!already_done(WriteKind::PeriodClose, &R::WrongPeriod { given: 8, current: 7 }), "not yet open");
        assert!(already_done(WriteKind::Redemption, &R::UnknownVoucher { voucher: 3 }));
        let bought = R::PurchaseAlreadyMade { request_id: Default::default(), plan: 4 };
        assert!(already_done(WriteKind::Purchase, &bought), "the request bought its plan before");
        assert!(!already_done(WriteKind::Purchase, &R::ConcessionReplayed { nonce: Default::default() }));
        let anchored = R::BatchAlreadyAnchored { root: Default::default(), batch: 2 };
        assert!(already_done(WriteKind::Anchor, &anchored));
        assert!(!already_done(WriteKind::Purchase, &anchored));
    }
}
