//! The gate's own decision, for when no validator answers: the last verified
//! snapshot turned into the domain [`Validator`], plus the entries the gate has
//! seen lately, so anti-passback, replay and ride counts carry over from online
//! scans to offline ones and from one snapshot to the next.

use std::collections::{HashMap, HashSet, VecDeque};

use ed25519_dalek::VerifyingKey;
use kippu_domain::pass::ticket_of;
use kippu_domain::snapshot::{GateSnapshot, SignedSnapshot, SnapshotError};
use kippu_domain::validation::Decision;
use kippu_domain::{PeerEntry, ScanRequest, TicketState, Validator, ValidatorConfig, PASS_WINDOW_SECS};

use crate::journal::JournaledTap;

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
}

/// Offline decision state of one gate.
pub(crate) struct Offline {
    gate_key: String,
    rules: ValidatorConfig,
    current: Option<Current>,
    recent: VecDeque<Recent>,
    /// Entries neighbouring gates let through lately (re-applied to a newer snapshot).
    neighbours: VecDeque<PeerEntry>,
}

impl Offline {
    pub(crate) fn new(gate_key: &str, rules: ValidatorConfig) -> Self {
        Self {
            gate_key: gate_key.to_owned(),
            rules,
            current: None,
            recent: VecDeque::new(),
            neighbours: VecDeque::new(),
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
        let mut replay: Vec<(&ScanRequest, u64, bool)> = pending.iter().map(|t| (&t.scan, t.at, true)).collect();
        replay.extend(
            self.recent.iter().filter(|r| !pending_ids.contains(r.scan.id.as_str())).map(|r| (&r.scan, r.at, false)),
        );
        replay.sort_by_key(|(_, at, _)| *at);
        // Rides the snapshot cannot have counted: taps still in the journal (never
        // forwarded) and taps after the snapshot was taken.
        let mut uncounted: HashMap<u64, u32> = HashMap::new();
        for (scan, at, pending) in &replay {
            // Each at its own time, so its pass window and passback interval are judged as then.
            v.check(&self.gate_key, scan, *at);
            if let Some(ticket) = ticket_of(&scan.pass).filter(|_| *pending || *at >= body.issued_at) {
                *uncounted.entry(ticket).or_default() += 1;
            }
        }
        for t in &body.tickets {
            if let (Some(rides), Some(used)) = (t.rides_left, uncounted.get(&t.id)) {
                v.upsert_ticket(TicketState { rides_left: Some(rides.saturating_sub(*used)), ..t.into() });
            }
        }
        for e in &self.neighbours {
            v.apply_peer_entry(e);
        }
        v
    }

    /// An entry a neighbouring gate let through: this gate refuses the ticket's passback and
    /// the pass's replay as if it had seen the entry itself.
    pub(crate) fn apply_neighbour(&mut self, entry: PeerEntry, now: u64) -> bool {
        self.prune(now);
        let applied = self.current.as_mut().is_some_and(|c| c.validator.apply_peer_entry(&entry));
        self.neighbours.push_back(entry);
        applied
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
            self.remember(scan, now);
        }
        Local::Decided(Box::new(d), issued_at)
    }

    /// Mirrors an entry a validator let through online, so the gate keeps passback,
    /// replay and rides if it has to decide the next scans itself.
    pub(crate) fn mirror(&mut self, scan: &ScanRequest, now: u64) -> Option<PeerEntry> {
        let mut entry = None;
        if let Some(cur) = self.current.as_mut() {
            let d = cur.validator.check(&self.gate_key, scan, now);
            if !d.verdict.open {
                tracing::debug!(id = %scan.id, reason = ?d.verdict.reason, "snapshot would have denied an online entry");
            }
            entry = d.entry;
        }
        self.remember(scan, now);
        entry
    }

    fn remember(&mut self, scan: &ScanRequest, now: u64) {
        self.prune(now);
        self.recent.push_back(Recent { scan: scan.clone(), at: now });
    }

    /// Forgets entries too old to matter for passback or replay.
    fn prune(&mut self, now: u64) {
        let horizon = self.rules.passback_secs + (u64::from(self.rules.window_skew) + 2) * PASS_WINDOW_SECS;
        while self.recent.front().is_some_and(|r| r.at + horizon < now) {
            self.recent.pop_front();
        }
        while self.neighbours.front().is_some_and(|e| e.at + horizon < now) {
            self.neighbours.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};
    use alloy_primitives::B256;
    use ed25519_dalek::SigningKey;
    use kippu_domain::pass::{window_at, Pass};
    use kippu_domain::snapshot::{SnapshotTicket, SNAPSHOT_VERSION};
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
        off.mirror(&scan("online", &holder, NOW), NOW);
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
}
