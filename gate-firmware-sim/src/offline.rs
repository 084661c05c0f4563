//! The gate's own decision, for when no validator answers: the last verified
//! snapshot turned into the domain [`Validator`], plus the entries the gate has
//! seen lately, so anti-passback, replay and ride counts carry over from online
//! scans to offline ones and from one snapshot to the next.

use std::collections::{HashMap, HashSet, VecDeque};

use ed25519_dalek::VerifyingKey;
use kippu_domain::card::{CardTap, CARD_TAP_PREFIX};
use kippu_domain::device_pass::ticket_of;
use kippu_domain::snapshot::{GateSnapshot, SignedSnapshot, SnapshotError};
use kippu_domain::validation::Decision;
use kippu_domain::{PeerEntry, ScanRequest, TicketState, Validator, ValidatorConfig, PASS_WINDOW_SECS};

use crate::journal::JournaledTap;
use crate::station::Dropped;

/// Most neighbour entries (and their `(gate, scan id)`s) kept at once. Entries leave by age
/// long before this at any real station; the cap only bounds what a faulty neighbour can make
/// the gate hold.
const MAX_NEIGHBOUR_ENTRIES: usize = 65_536;

/// Why a `config` message was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRejected {
    /// Not a usable signed snapshot (bad signature, unknown version, expired, malformed).
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Signed, but for other gates.
    #[error("snapshot does not cover gate {0}")]
    OtherGate(String),
    /// Older than the one the gate holds (it would bring back revoked keys).
    #[error("snapshot issued at {got} is older than the one held (issued at {have})")]
    Older {
        /// `issued_at` of the held snapshot.
        have: u64,
        /// `issued_at` of the refused one.
        got: u64,
    },
    /// Same `issued_at` as the held snapshot but a different body.
    #[error("snapshot issued at {0} differs from the held one of the same time")]
    Conflicting(u64),
}

/// What installing a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installed {
    /// A newer snapshot is in use, issued at this time.
    New(u64),
    /// The held snapshot again (a retained message re-delivered on reconnect).
    Unchanged,
}

/// The result of deciding a scan locally.
#[derive(Debug)]
pub(crate) enum Local {
    /// The snapshot's validator decided; the `u64` is the snapshot's `issued_at`.
    Decided(Box<Decision>, u64),
    /// No snapshot has been installed.
    NoSnapshot,
    /// The held snapshot ended at this time.
    Expired(u64),
}

struct Current {
    wire: SignedSnapshot,
    body: GateSnapshot,
    validator: Validator,
}

/// An accepted entry, online or offline.
#[derive(Debug, Clone)]
struct Recent {
    scan: ScanRequest,
    at: u64,
    /// The ticket that entered (for a card, the one it was bound to then).
    ticket: Option<u64>,
    /// When the platform learnt of the entry (gate clock): at once for an online verdict,
    /// when its verdict came back for a forwarded offline one; `None` while journaled.
    known_since: Option<u64>,
}

/// Offline decision state of one gate.
pub(crate) struct Offline {
    gate_key: String,
    rules: ValidatorConfig,
    current: Option<Current>,
    recent: VecDeque<Recent>,
    /// Entries neighbouring gates let through lately (re-applied to a newer snapshot).
    neighbours: VecDeque<PeerEntry>,
    /// `(gate, scan id)` of every neighbour entry taken within the horizon. Kept apart from
    /// the validator, which a new snapshot replaces, so a captured datagram sent again
    /// after a rebuild is still recognised.
    seen: HashSet<(String, String)>,
    /// `seen` in arrival order, with each entry's `at`, for forgetting.
    seen_order: VecDeque<(u64, (String, String))>,
}

impl Offline {
    pub(crate) fn new(gate_key: &str, rules: ValidatorConfig) -> Self {
        Self {
            gate_key: gate_key.to_owned(),
            rules,
            current: None,
            recent: VecDeque::new(),
            neighbours: VecDeque::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// The held snapshot, as received (signed) and as verified.
    pub(crate) fn snapshot(&self) -> Option<(&SignedSnapshot, &GateSnapshot)> {
        self.current.as_ref().map(|c| (&c.wire, &c.body))
    }

    /// Verifies `wire` and, if it is for this gate and newer than the held one, decides
    /// with it from now on. The entries seen lately and the journal's `pending` taps are
    /// replayed into the new validator so passback, replay and rides are not reset.
    pub(crate) fn install(
        &mut self,
        wire: SignedSnapshot,
        trusted: &[VerifyingKey],
        now: u64,
        pending: &[JournaledTap],
    ) -> Result<Installed, ConfigRejected> {
        let body = wire.verify(trusted, now)?;
        if !body.covers(&self.gate_key) {
            return Err(ConfigRejected::OtherGate(self.gate_key.clone()));
        }
        if let Some(cur) = &self.current {
            let have = cur.body.issued_at;
            if body.issued_at < have {
                return Err(ConfigRejected::Older { have, got: body.issued_at });
            }
            if body.issued_at == have {
                return if body == cur.body {
                    Ok(Installed::Unchanged)
                } else {
                    Err(ConfigRejected::Conflicting(have))
                };
            }
        }
        self.prune(now);
        let validator = self.rebuild(&body, pending);
        let issued_at = body.issued_at;
        self.current = Some(Current { wire, body, validator });
        Ok(Installed::New(issued_at))
    }

    fn rebuild(&self, body: &GateSnapshot, pending: &[JournaledTap]) -> Validator {
        let mut v = body.clone().into_validator(&self.gate_key, self.rules.clone());
        let pending_ids: HashSet<&str> = pending.iter().map(|t| t.scan.id.as_str()).collect();
        let mut replay: Vec<(&ScanRequest, u64, Option<u64>, Option<u64>)> =
            pending.iter().map(|t| (&t.scan, t.at, t.ticket, None)).collect();
        replay.extend(
            self.recent
                .iter()
                .filter(|r| !pending_ids.contains(r.scan.id.as_str()))
                .map(|r| (&r.scan, r.at, r.ticket, r.known_since)),
        );
        replay.sort_by_key(|(_, at, _, _)| *at);
        // Counts are set below; meanwhile a count the snapshot already took an entry off must
        // not refuse that entry's replay, or its passback and pass would be forgotten.
        for (scan, _, ticket, _) in &replay {
            for id in [*ticket, ticket_in(body, &scan.pass)].into_iter().flatten() {
                if let Some(t) = v.ticket(id).filter(|t| t.rides_left.is_some()).cloned() {
                    v.upsert_ticket(TicketState { rides_left: None, ..t });
                }
            }
        }
        // Rides the snapshot cannot have counted: taps the platform had not learnt of when it
        // was issued (still journaled, forwarded since, or online after it). `>=`: a tap in
        // the snapshot's own second may or may not be in it, and a ride too few is put right
        // by the next snapshot while a ride too many is a free ride.
        let mut uncounted: HashMap<u64, u32> = HashMap::new();
        for (scan, at, ticket, known_since) in &replay {
            // Each at its own time, so its pass window and passback interval are judged as then.
            let d = v.check(&self.gate_key, scan, *at);
            if known_since.is_some_and(|k| k < body.issued_at) {
                continue;
            }
            if let Some(ticket) = ticket.or(d.verdict.ticket).or_else(|| ticket_in(body, &scan.pass)) {
                *uncounted.entry(ticket).or_default() += 1;
            }
        }
        // The replayed checks took rides off: set every count to the snapshot's less what it
        // cannot know, so an entry it already counted is not subtracted again.
        for t in &body.tickets {
            let Some(rides) = t.rides_left else { continue };
            let want = Some(rides.saturating_sub(uncounted.get(&t.id).copied().unwrap_or(0)));
            if v.ticket(t.id).is_some_and(|held| held.rides_left != want) {
                v.upsert_ticket(TicketState { rides_left: want, ..t.into() });
            }
        }
        // Neighbours' entries carry their rides left: the lower count wins, so one the
        // platform already counted is not taken off twice.
        for e in self.neighbours.iter().filter(|e| e.operator_id == body.operator_id) {
            v.apply_peer_entry(e);
        }
        v
    }

    /// An entry a neighbouring gate let through: this gate refuses the ticket's passback and
    /// the pass's replay as if it had seen the entry itself. Returns whether the current
    /// validator took it (`false` without a snapshot, or already known there).
    pub(crate) fn apply_neighbour(&mut self, gate: &str, mut entry: PeerEntry, now: u64) -> Result<bool, Dropped> {
        self.prune(now);
        // A datagram carries no freshness of its own: an entry out of the horizon is either
        // captured and sent again, or from a clock that is wrong. One ahead of this gate's
        // clock would also put `last_entry` in the future, where passback does not look.
        if entry.at.abs_diff(now) > self.horizon() {
            return Err(Dropped::Stale);
        }
        if self.current.as_ref().is_some_and(|c| c.body.operator_id != entry.operator_id) {
            return Err(Dropped::OtherOperator);
        }
        let key = (gate.to_owned(), entry.scan_id.clone());
        if self.seen.contains(&key) {
            return Err(Dropped::Replayed);
        }
        self.seen.insert(key.clone());
        // By the entry's own time: once that is out of the horizon a copy is refused as stale.
        self.seen_order.push_back((entry.at, key));
        // A neighbour a little ahead still entered the ticket no later than now, as far as
        // this gate's passback can tell.
        entry.at = entry.at.min(now);
        while self.seen_order.len() > MAX_NEIGHBOUR_ENTRIES {
            self.forget_oldest_seen();
        }
        let applied = self.current.as_mut().is_some_and(|c| c.validator.apply_peer_entry(&entry));
        self.neighbours.push_back(entry);
        while self.neighbours.len() > MAX_NEIGHBOUR_ENTRIES {
            self.neighbours.pop_front();
        }
        Ok(applied)
    }

    fn forget_oldest_seen(&mut self) {
        if let Some((_, key)) = self.seen_order.pop_front() {
            self.seen.remove(&key);
        }
    }

    /// Decides a scan from the snapshot. An accepted one is remembered.
    pub(crate) fn decide(&mut self, scan: &ScanRequest, now: u64) -> Local {
        let Some(cur) = self.current.as_mut() else { return Local::NoSnapshot };
        if !cur.body.usable_at(now) {
            return Local::Expired(cur.body.valid_until);
        }
        let d = cur.validator.check(&self.gate_key, scan, now);
        let issued_at = cur.body.issued_at;
        if d.verdict.open {
            self.remember(scan, now, d.verdict.ticket, None);
        }
        Local::Decided(Box::new(d), issued_at)
    }

    /// Mirrors an entry a validator let through online (for `ticket`), so the gate keeps
    /// passback, replay and rides if it has to decide the next scans itself.
    pub(crate) fn mirror(&mut self, scan: &ScanRequest, ticket: Option<u64>, now: u64) -> Option<PeerEntry> {
        let mut entry = None;
        let mut ticket = ticket;
        if let Some(cur) = self.current.as_mut() {
            let d = cur.validator.check(&self.gate_key, scan, now);
            if !d.verdict.open {
                tracing::debug!(id = %scan.id, reason = ?d.verdict.reason, "snapshot would have denied an online entry");
            }
            ticket = ticket.or(d.verdict.ticket);
            entry = d.entry;
        }
        self.remember(scan, now, ticket, Some(now));
        entry
    }

    /// A journaled tap's verdict came back at `now`: from then on the platform counts it.
    pub(crate) fn acknowledged(&mut self, scan_id: &str, now: u64) {
        if let Some(r) = self.recent.iter_mut().rev().find(|r| r.scan.id == scan_id) {
            r.known_since.get_or_insert(now);
        }
    }

    fn remember(&mut self, scan: &ScanRequest, now: u64, ticket: Option<u64>, known_since: Option<u64>) {
        self.prune(now);
        self.recent.push_back(Recent { scan: scan.clone(), at: now, ticket, known_since });
    }

    /// How long an entry matters for passback or replay.
    fn horizon(&self) -> u64 {
        let windows = (u64::from(self.rules.window_skew) + 2).saturating_mul(PASS_WINDOW_SECS);
        self.rules.passback_secs.saturating_add(windows)
    }

    /// Forgets entries too old to matter for passback or replay.
    fn prune(&mut self, now: u64) {
        let horizon = self.horizon();
        let old = |at: u64| at.saturating_add(horizon) < now;
        while self.recent.front().is_some_and(|r| old(r.at)) {
            self.recent.pop_front();
        }
        while self.neighbours.front().is_some_and(|e| old(e.at)) {
            self.neighbours.pop_front();
        }
        // A replay of a forgotten one is out of the horizon, so refused as stale.
        while self.seen_order.front().is_some_and(|(at, _)| old(*at)) {
            self.forget_oldest_seen();
        }
    }
}

/// The ticket a pass presents under `body`: for a card's answer, the ticket its card is bound to.
fn ticket_in(body: &GateSnapshot, pass: &str) -> Option<u64> {
    if pass.starts_with(CARD_TAP_PREFIX) {
        let tap = CardTap::decode(pass).ok()?;
        return body.cards.iter().rev().find(|c| c.card_key.0 == tap.card_key).map(|c| c.ticket_id);
    }
    ticket_of(pass)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};
    use alloy_primitives::B256;
    use ed25519_dalek::SigningKey;
    use kippu_domain::card::Card;
    use kippu_domain::pass::{window_at, Pass};
    use kippu_domain::snapshot::{SnapshotCard, SnapshotTicket, SNAPSHOT_VERSION};
    use kippu_domain::DenyReason;

    const NOW: u64 = 1_800_000_000;
    const GATE: &str = "metro/central/g1";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[1; 32])
    }

    fn body(holder: &PrivateKeySigner, issued_at: u64, rides: Option<u32>) -> GateSnapshot {
        GateSnapshot {
            version: SNAPSHOT_VERSION,
            issued_at,
            valid_until: NOW + 3_600,
            operator_id: 1,
            gates: vec![GATE.into()],
            chain_id: 31_337,
            validators: vec![B256::from(key().verifying_key().to_bytes())],
            revoked_holders: vec![],
            revoked_devices: vec![],
            tickets: vec![SnapshotTicket {
                id: 7,
                holder: holder.address(),
                operator_id: 1,
                product_id: 1,
                valid_from: NOW - 1_000,
                valid_until: NOW + 1_000,
                rides_left: rides,
            }],
            cards: vec![],
        }
    }

    fn scan(id: &str, holder: &PrivateKeySigner, at: u64) -> ScanRequest {
        let nonce = rand::random::<[u8; 8]>();
        let window = window_at(at);
        let sig = holder.sign_hash_sync(&Pass::digest(7, window, &nonce)).unwrap();
        let pass = Pass { ticket_id: 7, window, nonce, signature: sig.as_bytes() }.encode();
        ScanRequest { v: 1, id: id.into(), pass, ts: at * 1000, trip: None }
    }

    fn reason(l: Local) -> Option<DenyReason> {
        match l {
            Local::Decided(d, _) => d.verdict.reason,
            other => panic!("not decided: {other:?}"),
        }
    }

    #[test]
    fn state_carries_over_a_newer_snapshot_and_older_ones_are_refused() {
        let holder = PrivateKeySigner::random();
        let trusted = [key().verifying_key()];
        let mut off = Offline::new(GATE, ValidatorConfig::default());
        assert!(matches!(off.decide(&scan("x", &holder, NOW), NOW), Local::NoSnapshot));
        let first = body(&holder, NOW - 100, Some(5)).sign(&key());
        assert_eq!(off.install(first.clone(), &trusted, NOW, &[]), Ok(Installed::New(NOW - 100)));
        // An online entry, then (still within passback) the snapshot is refreshed.
        off.mirror(&scan("online", &holder, NOW), Some(7), NOW);
        let offline_tap = scan("off", &holder, NOW + 40);
        assert!(matches!(off.decide(&offline_tap, NOW + 40), Local::Decided(ref d, _) if d.verdict.open));
        let pending =
            [JournaledTap { scan: offline_tap, gate: GATE.into(), at: NOW + 40, ticket: Some(7), snapshot: NOW - 100 }];
        // The platform counted the online ride (5 -> 4) but never saw the offline one.
        let second = body(&holder, NOW + 20, Some(4)).sign(&key());
        assert_eq!(off.install(second.clone(), &trusted, NOW + 45, &pending), Ok(Installed::New(NOW + 20)));
        assert_eq!(reason(off.decide(&scan("again", &holder, NOW + 50), NOW + 50)), Some(DenyReason::Passback));
        match off.decide(&scan("later", &holder, NOW + 80), NOW + 80) {
            Local::Decided(d, at) => {
                assert_eq!(at, NOW + 20);
                assert_eq!(d.verdict.rides_left, Some(2), "4 in the snapshot, 1 offline not yet counted, 1 now");
            }
            other => panic!("{other:?}"),
        }
        // Re-delivery is a no-op; an older or different one of the same time is refused.
        assert_eq!(off.install(second, &trusted, NOW + 90, &[]), Ok(Installed::Unchanged));
        assert_eq!(
            off.install(first, &trusted, NOW + 90, &[]),
            Err(ConfigRejected::Older { have: NOW + 20, got: NOW - 100 })
        );
        let conflicting = body(&holder, NOW + 20, Some(40)).sign(&key());
        assert_eq!(off.install(conflicting, &trusted, NOW + 90, &[]), Err(ConfigRejected::Conflicting(NOW + 20)));
        let mut elsewhere = body(&holder, NOW + 30, None);
        elsewhere.gates = vec!["metro/north/g1".into()];
        assert_eq!(
            off.install(elsewhere.sign(&key()), &trusted, NOW + 90, &[]),
            Err(ConfigRejected::OtherGate(GATE.into()))
        );
        let rogue = body(&holder, NOW + 30, None).sign(&SigningKey::from_bytes(&[2; 32]));
        assert_eq!(
            off.install(rogue, &trusted, NOW + 90, &[]),
            Err(ConfigRejected::Snapshot(SnapshotError::BadSignature))
        );
        // Past its end the snapshot decides nothing.
        assert!(matches!(off.decide(&scan("late", &holder, NOW + 3_600), NOW + 3_600), Local::Expired(_)));
    }

    fn card() -> Card {
        Card::from_secret([5; 32])
    }

    /// `body` with [`card`] bound to ticket 7.
    fn with_card(mut b: GateSnapshot, holder: &PrivateKeySigner) -> GateSnapshot {
        b.cards =
            vec![SnapshotCard { card_key: B256::from(card().public_key()), ticket_id: 7, holder: holder.address() }];
        b
    }

    fn card_scan(id: &str, at: u64) -> ScanRequest {
        let pass = card().answer(GATE, rand::random(), window_at(at)).encode();
        ScanRequest { v: 1, id: id.into(), pass, ts: at * 1000, trip: None }
    }

    fn journaled(scan: &ScanRequest, at: u64) -> JournaledTap {
        JournaledTap { scan: scan.clone(), gate: GATE.into(), at, ticket: Some(7), snapshot: NOW - 100 }
    }

    fn rides(off: &Offline) -> Option<u32> {
        off.current.as_ref().unwrap().validator.ticket(7).unwrap().rides_left
    }

    fn opened_with(l: Local) -> Option<u32> {
        match l {
            Local::Decided(d, _) if d.verdict.open => d.verdict.rides_left,
            other => panic!("not opened: {other:?}"),
        }
    }

    fn peer(id: &str, at: u64, operator_id: u32, rides_left_after: Option<u32>) -> PeerEntry {
        PeerEntry {
            scan_id: id.into(),
            ticket_id: 7,
            window: window_at(at.min(NOW + 10_000)),
            nonce: rand::random(),
            operator_id,
            on_board: false,
            at,
            rides_left_after,
        }
    }

    #[test]
    fn card_taps_in_the_journal_count_across_a_rebuild() {
        let holder = PrivateKeySigner::random();
        let trusted = [key().verifying_key()];
        let mut off = Offline::new(GATE, ValidatorConfig::default());
        off.install(with_card(body(&holder, NOW - 100, Some(5)), &holder).sign(&key()), &trusted, NOW, &[]).unwrap();
        let by_card = card_scan("card", NOW);
        assert_eq!(opened_with(off.decide(&by_card, NOW)), Some(4));
        let by_pass = scan("pass", &holder, NOW + 40);
        assert_eq!(opened_with(off.decide(&by_pass, NOW + 40)), Some(3));
        let pending = [journaled(&by_card, NOW), journaled(&by_pass, NOW + 40)];
        // The platform has seen neither tap: its 5 less the two journaled is 3.
        let newer = with_card(body(&holder, NOW + 20, Some(5)), &holder);
        off.install(newer.sign(&key()), &trusted, NOW + 45, &pending).unwrap();
        assert_eq!(rides(&off), Some(3), "the card tap counts for the ticket its card is bound to");
        // Still so when the card has been unbound since: the ride was taken all the same.
        off.install(body(&holder, NOW + 30, Some(5)).sign(&key()), &trusted, NOW + 50, &pending).unwrap();
        assert_eq!(rides(&off), Some(3));
        assert_eq!(opened_with(off.decide(&scan("later", &holder, NOW + 80), NOW + 80)), Some(2));
    }

    #[test]
    fn entries_a_snapshot_counted_are_not_subtracted_again() {
        let holder = PrivateKeySigner::random();
        let trusted = [key().verifying_key()];
        let mut off = Offline::new(GATE, ValidatorConfig::default());
        off.install(body(&holder, NOW - 100, Some(5)).sign(&key()), &trusted, NOW, &[]).unwrap();
        off.mirror(&scan("online", &holder, NOW), Some(7), NOW);
        assert_eq!(rides(&off), Some(4));
        // Issued after the online entry: the platform counted it.
        off.install(body(&holder, NOW + 20, Some(4)).sign(&key()), &trusted, NOW + 25, &[]).unwrap();
        assert_eq!(rides(&off), Some(4), "an online entry before the snapshot");
        off.mirror(&scan("online2", &holder, NOW + 40), Some(7), NOW + 40);
        off.install(body(&holder, NOW + 30, Some(4)).sign(&key()), &trusted, NOW + 45, &[]).unwrap();
        assert_eq!(rides(&off), Some(3), "an online entry after the snapshot is still taken off");
        // A neighbour's entry says what it left; the platform counted it as well by the next snapshot.
        assert_eq!(off.apply_neighbour("metro/central/g2", peer("n1", NOW + 42, 1, Some(2)), NOW + 46), Ok(true));
        assert_eq!(rides(&off), Some(2));
        off.install(body(&holder, NOW + 50, Some(2)).sign(&key()), &trusted, NOW + 55, &[]).unwrap();
        assert_eq!(rides(&off), Some(2), "nothing counted twice");
    }

    #[test]
    fn an_entry_the_snapshot_counted_down_to_the_last_ride_still_holds_passback() {
        let holder = PrivateKeySigner::random();
        let trusted = [key().verifying_key()];
        let mut off = Offline::new(GATE, ValidatorConfig::default());
        off.install(body(&holder, NOW - 100, Some(3)).sign(&key()), &trusted, NOW, &[]).unwrap();
        off.mirror(&scan("first", &holder, NOW), Some(7), NOW);
        off.mirror(&scan("second", &holder, NOW + 35), Some(7), NOW + 35);
        off.install(body(&holder, NOW + 40, Some(1)).sign(&key()), &trusted, NOW + 45, &[]).unwrap();
        assert_eq!(rides(&off), Some(1));
        assert_eq!(reason(off.decide(&scan("back", &holder, NOW + 50), NOW + 50)), Some(DenyReason::Passback));
    }

    #[test]
    fn neighbour_entries_replayed_out_of_time_or_foreign_are_dropped() {
        let holder = PrivateKeySigner::random();
        let trusted = [key().verifying_key()];
        let g2 = "metro/central/g2";
        let mut off = Offline::new(GATE, ValidatorConfig::default());
        off.install(body(&holder, NOW - 100, Some(5)).sign(&key()), &trusted, NOW, &[]).unwrap();
        let entry = peer("n1", NOW, 1, Some(4));
        assert_eq!(off.apply_neighbour(g2, entry.clone(), NOW), Ok(true));
        assert_eq!(off.apply_neighbour(g2, entry.clone(), NOW + 1), Err(Dropped::Replayed));
        // A new snapshot replaces the validator that knew the entry; the gate still does.
        off.install(body(&holder, NOW + 20, Some(4)).sign(&key()), &trusted, NOW + 25, &[]).unwrap();
        assert_eq!(off.apply_neighbour(g2, entry.clone(), NOW + 30), Err(Dropped::Replayed));
        // Long after (rides were added since), a captured copy would cap the count at its 4.
        off.install(body(&holder, NOW + 500, Some(9)).sign(&key()), &trusted, NOW + 505, &[]).unwrap();
        assert_eq!(off.apply_neighbour(g2, entry, NOW + 510), Err(Dropped::Stale));
        assert_eq!(rides(&off), Some(9));

        // A neighbour whose clock is ahead: far ahead is dropped (no overflow), a little ahead
        // counts as now, so passback still holds here.
        assert_eq!(off.apply_neighbour(g2, peer("n2", u64::MAX, 1, Some(0)), NOW + 510), Err(Dropped::Stale));
        assert_eq!(off.apply_neighbour(g2, peer("n3", NOW + 2_000, 1, Some(0)), NOW + 510), Err(Dropped::Stale));
        assert_eq!(off.apply_neighbour(g2, peer("n4", NOW + 530, 1, Some(8)), NOW + 510), Ok(true));
        assert_eq!(reason(off.decide(&scan("back", &holder, NOW + 511), NOW + 511)), Some(DenyReason::Passback));
        assert_eq!(opened_with(off.decide(&scan("later", &holder, NOW + 545), NOW + 545)), Some(7));

        // Another operator's entry changes nothing here.
        assert_eq!(off.apply_neighbour(g2, peer("n5", NOW + 546, 2, Some(0)), NOW + 546), Err(Dropped::OtherOperator));
        assert_eq!(rides(&off), Some(7));
        assert_eq!(opened_with(off.decide(&scan("next", &holder, NOW + 600), NOW + 600)), Some(6));
    }
}
