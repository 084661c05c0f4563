//! Delay insurance: what ingesting a GTFS-Realtime feed did. The insurer (a job of the
//! `kippu` binary) produces it; the demo's hand-fed feed shows it.

/// What delay-feed ingestion did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DelayOutcome {
    /// Trip updates in the feed.
    pub trips: usize,
    /// Trips at or over the threshold.
    pub delayed: usize,
    /// Vouchers issued on chain.
    pub vouchers: Vec<u64>,
    /// Trip updates dropped as older than one already used for the same trip.
    pub superseded: usize,
    /// Why the whole message was refused (duplicate, out of order, stale, malformed), if it was.
    pub rejected: Option<String>,
    /// Runs reported cancelled.
    pub cancelled: usize,
    /// Insured plans found affected (a claim each): `(policy id, "tapped" | "not_carried")`.
    pub affected: Vec<(u64, String)>,
    /// Claims the product's caps (per run, per day) or the pool cap stopped.
    pub capped: usize,
    /// Service alerts in the message.
    pub alerts: usize,
}
