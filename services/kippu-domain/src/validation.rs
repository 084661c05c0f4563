//! The gate decision. Pure and in-memory: the validator service feeds it
//! tickets from chain events and the database, so the hot path never waits on
//! RPC or SQL. The same checks run offline in a gate from its last snapshot.

use std::collections::{HashMap, HashSet, VecDeque};

use alloy_primitives::Address;

use crate::card::{binding_signer, CardTap, CARD_TAP_PREFIX};
use crate::device_pass::{CertCache, DevicePass, DEVICE_PASS_PREFIX};
use crate::pass::{window_at, Pass, PassError};
use crate::verdict::{DenyReason, ScanRequest, VerdictMessage};

/// A ticket as the validator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketState {
    /// ERC721 token id.
    pub id: u64,
    /// Current holder.
    pub holder: Address,
    /// Operator the ticket is valid with.
    pub operator_id: u32,
    /// Product it was sold as.
    pub product_id: u32,
    /// Validity start, unix seconds.
    pub valid_from: u64,
    /// Validity end (exclusive), unix seconds.
    pub valid_until: u64,
    /// Rides left; `None` for unlimited passes.
    pub rides_left: Option<u32>,
}

/// What the validator knows of a registered gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateInfo {
    /// Numeric operator id the gate belongs to.
    pub operator_id: u32,
}

/// Tunables of the gate decision.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// How many windows before or after now a pass may be from (clock skew).
    pub window_skew: u32,
    /// A ticket that entered an operator's gate may not enter again within this many seconds.
    pub passback_secs: u64,
    /// How many recent scan ids to remember for idempotent re-sends.
    pub remembered_scans: usize,
    /// Chain id in the EIP-712 domain of device certificates.
    pub chain_id: u64,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self { window_skew: 1, passback_secs: 30, remembered_scans: 100_000, chain_id: 31_337 }
    }
}

/// An accepted entry, to be recorded and later anchored on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    /// The gate's scan id; unique, so a re-sent tap is recorded once.
    pub scan_id: String,
    /// Ticket that entered.
    pub ticket_id: u64,
    /// Operator whose gate it was.
    pub operator_id: u32,
    /// `operator/station/gate`.
    pub gate: String,
    /// The run the gate's vehicle was working, for on-board validators.
    pub trip: Option<crate::verdict::TripRef>,
    /// Unix seconds.
    pub at: u64,
}

/// A card's binding to a ticket, as the validator holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundCard {
    /// The ticket the card presents.
    pub ticket_id: u64,
    /// The account that bound it; taps open only while it holds the ticket.
    pub holder: Address,
}

/// What identifies a presented pass, whatever its kind: replay is judged on it.
#[derive(Debug, Clone, Copy)]
struct PassId {
    ticket_id: u64,
    window: u32,
    nonce: [u8; 8],
}

/// Result of one scan: the verdict to publish and, when it opened, a new tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Verdict for the gate.
    pub verdict: VerdictMessage,
    /// The tap to record; `None` for denials and re-sent scans.
    pub tap: Option<Tap>,
    /// What to tell the other validators when it opened.
    pub entry: Option<PeerEntry>,
}

/// An entry one validator accepted, told to the others (who split the scans between them
/// through a shared subscription), so that a pass replayed to another validator, a ticket
/// handed back through a gate another validator answers, a gate re-sending a scan after its
/// validator died, and a ride counted elsewhere are all seen by every validator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerEntry {
    /// The gate's scan id.
    pub scan_id: String,
    /// The ticket that entered.
    pub ticket_id: u64,
    /// The pass's window and nonce (for a card, the gate's challenge): its replay identity.
    pub window: u32,
    /// See `window`.
    pub nonce: [u8; 8],
    /// Operator whose gate it was.
    pub operator_id: u32,
    /// An on-board validator (named a run) rather than a fixed gate: a separate passback area.
    pub on_board: bool,
    /// When it was judged (unix seconds).
    pub at: u64,
    /// The ticket's rides left after this entry (`None`: unlimited). Receivers take the lower of
    /// this and their own count rather than subtracting a ride, so an entry that arrives after
    /// the receiver loaded the ticket with that ride already recorded, or arrives twice, or out
    /// of order, counts the ride once.
    #[serde(default)]
    pub rides_left_after: Option<u32>,
}

/// In-memory validator state.
#[derive(Debug, Default)]
pub struct Validator {
    cfg: ValidatorConfig,
    tickets: HashMap<u64, TicketState>,
    gates: HashMap<String, GateInfo>,
    used_passes: HashMap<(u64, u32, [u8; 8]), ()>,
    last_entry: HashMap<(u64, u32, bool), u64>,
    answered: HashMap<String, VerdictMessage>,
    answered_order: VecDeque<String>,
    revoked_keys: HashSet<Address>,
    revoked_devices: HashSet<[u8; 32]>,
    cards: HashMap<[u8; 32], BoundCard>,
    certs: CertCache,
    pruned_window: u32,
}

impl Validator {
    /// A validator with the given tunables and no tickets.
    pub fn new(cfg: ValidatorConfig) -> Self {
        Self { cfg, ..Default::default() }
    }

    /// Adds or replaces a ticket (from a chain event or the database).
    pub fn upsert_ticket(&mut self, t: TicketState) {
        self.tickets.insert(t.id, t);
    }

    /// Forgets every ticket `keep` says no (tickets a chain reorganisation took away).
    /// Returns how many were dropped.
    pub fn retain_tickets(&mut self, keep: impl Fn(u64) -> bool) -> usize {
        let before = self.tickets.len();
        self.tickets.retain(|id, _| keep(*id));
        before - self.tickets.len()
    }

    /// Denies every pass signed by `holder` from now on (a revoked account key).
    pub fn revoke_key(&mut self, holder: Address) {
        self.revoked_keys.insert(holder);
    }

    /// Denies every pass signed by this device key from now on (a lost or replaced phone).
    pub fn revoke_device(&mut self, device_key: [u8; 32]) {
        self.revoked_devices.insert(device_key);
    }

    /// Binds a card to a ticket on the strength of the account's EIP-712 binding signature;
    /// returns the account that signed. Taps of the card then present that ticket, and open
    /// only while that account holds it.
    pub fn bind_card(&mut self, card_key: [u8; 32], ticket_id: u64, sig: &[u8]) -> Result<Address, PassError> {
        let holder = binding_signer(self.cfg.chain_id, &card_key, ticket_id, sig)?;
        self.cards.insert(card_key, BoundCard { ticket_id, holder });
        Ok(holder)
    }

    /// Binds a card whose binding was verified elsewhere (a signed gate snapshot).
    pub fn bind_card_verified(&mut self, card_key: [u8; 32], card: BoundCard) {
        self.cards.insert(card_key, card);
    }

    /// Forgets a card's binding (lost card, or bound to another ticket): its taps are refused.
    pub fn unbind_card(&mut self, card_key: &[u8; 32]) {
        self.cards.remove(card_key);
    }

    /// Forgets every card binding `keep` says no (unbound since it was loaded).
    pub fn retain_cards(&mut self, keep: impl Fn(&[u8; 32]) -> bool) {
        self.cards.retain(|k, _| keep(k));
    }

    /// A bound card.
    pub fn card(&self, card_key: &[u8; 32]) -> Option<BoundCard> {
        self.cards.get(card_key).copied()
    }

    /// The cards bound to tickets of `operator_id` still valid at `now`, for a gate snapshot.
    pub fn offline_cards(&self, operator_id: u32, now: u64) -> Vec<([u8; 32], BoundCard)> {
        let mut cards: Vec<_> = self
            .cards
            .iter()
            .filter(|(_, c)| {
                self.tickets.get(&c.ticket_id).is_some_and(|t| t.operator_id == operator_id && t.valid_until > now)
            })
            .map(|(k, c)| (*k, *c))
            .collect();
        cards.sort_by_key(|(k, _)| *k);
        cards
    }

    /// Applies an entry another validator accepted: its scan is answered (a gate re-sending
    /// it here gets the same open verdict and no second ride), its pass is used, its ticket
    /// entered then, and its rides are down to what the entry says. Returns false for an entry
    /// already known.
    pub fn apply_peer_entry(&mut self, e: &PeerEntry) -> bool {
        if self.answered.contains_key(&e.scan_id) {
            return false;
        }
        let rides_left = self.tickets.get_mut(&e.ticket_id).and_then(|t| {
            if let (Some(r), Some(after)) = (t.rides_left.as_mut(), e.rides_left_after) {
                *r = (*r).min(after);
            }
            t.rides_left
        });
        self.remember(&e.scan_id, &VerdictMessage::open(&e.scan_id, e.ticket_id, rides_left));
        self.used_passes.insert((e.ticket_id, e.window, e.nonce), ());
        let last = self.last_entry.entry((e.ticket_id, e.operator_id, e.on_board)).or_insert(e.at);
        *last = (*last).max(e.at);
        true
    }

    /// Registers a gate by its `operator/station/gate` key.
    pub fn add_gate(&mut self, key: &str, info: GateInfo) {
        self.gates.insert(key.to_owned(), info);
    }

    /// A known ticket.
    pub fn ticket(&self, id: u64) -> Option<&TicketState> {
        self.tickets.get(&id)
    }

    /// What a gate of `operator_id` needs to decide offline, as of `now`: that operator's
    /// tickets still valid, and the revoked account and device keys.
    pub fn offline_view(&self, operator_id: u32, now: u64) -> (Vec<TicketState>, Vec<Address>, Vec<[u8; 32]>) {
        let mut tickets: Vec<TicketState> =
            self.tickets.values().filter(|t| t.operator_id == operator_id && t.valid_until > now).cloned().collect();
        tickets.sort_by_key(|t| t.id);
        let mut keys: Vec<Address> = self.revoked_keys.iter().copied().collect();
        keys.sort();
        let mut devices: Vec<[u8; 32]> = self.revoked_devices.iter().copied().collect();
        devices.sort();
        (tickets, keys, devices)
    }

    /// Whether a gate is registered.
    pub fn knows_gate(&self, key: &str) -> bool {
        self.gates.contains_key(key)
    }

    /// Decides one scan at `now` (unix seconds).
    pub fn check(&mut self, gate_key: &str, req: &ScanRequest, now: u64) -> Decision {
        if let Some(prev) = self.answered.get(&req.id) {
            // A gate re-sent a scan whose verdict it missed: answer the same, count nothing.
            return Decision { verdict: prev.clone(), tap: None, entry: None };
        }
        let decision = self.decide(gate_key, req, now);
        self.remember(&req.id, &decision.verdict);
        decision
    }

    fn remember(&mut self, id: &str, verdict: &VerdictMessage) {
        self.answered.insert(id.to_owned(), verdict.clone());
        self.answered_order.push_back(id.to_owned());
        while self.answered_order.len() > self.cfg.remembered_scans {
            if let Some(old) = self.answered_order.pop_front() {
                self.answered.remove(&old);
            }
        }
    }

    fn decide(&mut self, gate_key: &str, req: &ScanRequest, now: u64) -> Decision {
        let deny = |reason, ticket| Decision {
            verdict: VerdictMessage::deny(&req.id, reason, ticket),
            tap: None,
            entry: None,
        };
        let Some(gate) = self.gates.get(gate_key).cloned() else {
            return deny(DenyReason::UnknownGate, None);
        };
        let (pass, signer) = match self.presented(gate_key, &req.pass, now) {
            Ok(p) => p,
            Err((reason, ticket)) => return deny(reason, ticket),
        };
        let ticket_ref = Some(pass.ticket_id);
        let now_window = window_at(now);
        let Some(ticket) = self.tickets.get(&pass.ticket_id) else {
            return deny(DenyReason::UnknownTicket, ticket_ref);
        };
        if ticket.holder != signer {
            return deny(DenyReason::NotHolder, ticket_ref);
        }
        if self.revoked_keys.contains(&signer) {
            return deny(DenyReason::KeyRevoked, ticket_ref);
        }
        if ticket.operator_id != gate.operator_id {
            return deny(DenyReason::WrongOperator, ticket_ref);
        }
        if now < ticket.valid_from {
            return deny(DenyReason::NotYetValid, ticket_ref);
        }
        if now >= ticket.valid_until {
            return deny(DenyReason::Expired, ticket_ref);
        }
        if ticket.rides_left == Some(0) {
            return deny(DenyReason::NoRidesLeft, ticket_ref);
        }
        let pass_key = (pass.ticket_id, pass.window, pass.nonce);
        if self.used_passes.contains_key(&pass_key) {
            return deny(DenyReason::Replay, ticket_ref);
        }
        // Boarding a vehicle after entering a stop's gate is one journey, not a pass handed back:
        // on-board validators (they name a run) and fixed gates are separate passback areas.
        let area = (pass.ticket_id, gate.operator_id, req.trip.is_some());
        // A tap judged at an earlier time (a gate forwarding what it accepted offline) that
        // precedes the last entry is not a pass handed back after it.
        if let Some(last) = self.last_entry.get(&area) {
            if now >= *last && now - *last < self.cfg.passback_secs {
                return deny(DenyReason::Passback, ticket_ref);
            }
        }
        // Accept: effects only after every check passed.
        self.used_passes.insert(pass_key, ());
        self.prune_passes(now_window);
        let last = self.last_entry.entry(area).or_insert(now);
        *last = (*last).max(now);
        let ticket = self.tickets.get_mut(&pass.ticket_id).expect("checked above");
        if let Some(r) = ticket.rides_left.as_mut() {
            *r -= 1;
        }
        Decision {
            verdict: VerdictMessage::open(&req.id, pass.ticket_id, ticket.rides_left),
            tap: Some(Tap {
                scan_id: req.id.clone(),
                ticket_id: pass.ticket_id,
                operator_id: gate.operator_id,
                gate: gate_key.to_owned(),
                trip: req.trip.clone(),
                at: now,
            }),
            entry: Some(PeerEntry {
                scan_id: req.id.clone(),
                ticket_id: pass.ticket_id,
                window: pass.window,
                nonce: pass.nonce,
                operator_id: gate.operator_id,
                on_board: req.trip.is_some(),
                at: now,
                rides_left_after: ticket.rides_left,
            }),
        }
    }

    /// Reads a pass of either kind and finds who signed it: the account key itself (`KP1`)
    /// or, for a device-signed pass (`KP2`), the account that certified the device key
    /// (recovered once per certificate, then a single Ed25519 check per scan).
    /// A card tap (`KC1`) presents the ticket its card is bound to, signed by the card over
    /// this gate's challenge; its holder is the account that signed the binding.
    fn presented(
        &mut self,
        gate_key: &str,
        text: &str,
        now: u64,
    ) -> Result<(PassId, Address), (DenyReason, Option<u64>)> {
        let stale = |window: u32, ticket| {
            (window.abs_diff(window_at(now)) > self.cfg.window_skew).then_some((DenyReason::StalePass, Some(ticket)))
        };
        if text.starts_with(CARD_TAP_PREFIX) {
            let tap = CardTap::decode(text).map_err(|e| (pass_error_reason(&e), None))?;
            let bound = self.cards.get(&tap.card_key).copied().ok_or((DenyReason::UnknownCard, None))?;
            let t = Some(bound.ticket_id);
            if let Some(e) = stale(tap.window, bound.ticket_id) {
                return Err(e);
            }
            if self.revoked_devices.contains(&tap.card_key) {
                return Err((DenyReason::DeviceRevoked, t));
            }
            tap.verify(gate_key).map_err(|e| (pass_error_reason(&e), t))?;
            return Ok((PassId { ticket_id: bound.ticket_id, window: tap.window, nonce: tap.challenge }, bound.holder));
        }
        if text.starts_with(DEVICE_PASS_PREFIX) {
            let p = DevicePass::decode(text).map_err(|e| (pass_error_reason(&e), None))?;
            let t = Some(p.ticket_id);
            if let Some(e) = stale(p.window, p.ticket_id) {
                return Err(e);
            }
            if now >= p.cert_expiry {
                return Err((DenyReason::CertificateExpired, t));
            }
            if self.revoked_devices.contains(&p.device_key) {
                return Err((DenyReason::DeviceRevoked, t));
            }
            p.verify_device_sig().map_err(|e| (pass_error_reason(&e), t))?;
            let holder = self.certs.holder(&p, self.cfg.chain_id).map_err(|e| (pass_error_reason(&e), t))?;
            return Ok((PassId { ticket_id: p.ticket_id, window: p.window, nonce: p.nonce }, holder));
        }
        let p = Pass::decode(text).map_err(|e| (pass_error_reason(&e), None))?;
        if let Some(e) = stale(p.window, p.ticket_id) {
            return Err(e);
        }
        let signer = p.signer().map_err(|e| (pass_error_reason(&e), Some(p.ticket_id)))?;
        Ok((PassId { ticket_id: p.ticket_id, window: p.window, nonce: p.nonce }, signer))
    }

    fn prune_passes(&mut self, now_window: u32) {
        // Passes older than the skew can never be accepted again, so forgetting them is safe.
        // Once per window at most: pruning on every scan walked the whole set each time
        // (27 % of a busy validator's CPU at 5,000 scans/s).
        if now_window > self.pruned_window && self.used_passes.len() > 10_000 {
            let skew = self.cfg.window_skew;
            self.used_passes.retain(|(_, w, _), _| w.saturating_add(skew) >= now_window);
            self.pruned_window = now_window;
        }
    }
}

/// Maps a pass format error to the gate's deny reason.
pub fn pass_error_reason(e: &PassError) -> DenyReason {
    match e {
        PassError::NotAPass => DenyReason::NotAPass,
        PassError::Oversized(_) => DenyReason::OversizedPass,
        PassError::Malformed => DenyReason::MalformedPass,
        PassError::UnsupportedVersion(_) => DenyReason::UnsupportedPass,
        PassError::BadSignature => DenyReason::BadSignature,
        PassError::BadCertificate => DenyReason::BadCertificate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};

    const NOW: u64 = 1_800_000_000;

    fn pass(key: &PrivateKeySigner, ticket_id: u64, at: u64) -> String {
        let nonce = rand::random::<[u8; 8]>();
        let window = window_at(at);
        let sig = key.sign_hash_sync(&Pass::digest(ticket_id, window, &nonce)).unwrap();
        Pass { ticket_id, window, nonce, signature: sig.as_bytes() }.encode()
    }

    fn scan(id: &str, pass: String) -> ScanRequest {
        ScanRequest { v: 1, id: id.into(), pass, ts: NOW * 1000, trip: None }
    }

    fn setup(rides: Option<u32>) -> (Validator, PrivateKeySigner) {
        let key = PrivateKeySigner::random();
        let mut v = Validator::new(ValidatorConfig::default());
        v.add_gate("metro/central/g1", GateInfo { operator_id: 1 });
        v.add_gate("bus/depot/g1", GateInfo { operator_id: 2 });
        v.upsert_ticket(TicketState {
            id: 7,
            holder: key.address(),
            operator_id: 1,
            product_id: 10,
            valid_from: NOW - 100,
            valid_until: NOW + 100,
            rides_left: rides,
        });
        (v, key)
    }

    fn reason(d: &Decision) -> Option<DenyReason> {
        d.verdict.reason
    }

    #[test]
    fn opens_for_the_holder_and_counts_the_ride() {
        let (mut v, key) = setup(Some(2));
        let d = v.check("metro/central/g1", &scan("s1", pass(&key, 7, NOW)), NOW);
        assert!(d.verdict.open, "{d:?}");
        assert_eq!(d.verdict.rides_left, Some(1));
        assert_eq!(d.tap.as_ref().unwrap().ticket_id, 7);
    }

    fn device_of(key: &PrivateKeySigner, expiry: u64) -> crate::device_pass::Device {
        let seed: [u8; 32] = rand::random();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let cert = key.sign_hash_sync(&crate::device_pass::cert_digest(31_337, &public, expiry)).unwrap();
        crate::device_pass::Device::new(seed, expiry, cert.as_bytes())
    }

    #[test]
    fn device_passes_open_for_the_certifying_holder_and_deny_with_reasons() {
        let (mut v, key) = setup(None);
        let phone = device_of(&key, NOW + 3_600);
        let text = |d: &crate::device_pass::Device, w: u32| d.pass(7, w, rand::random()).encode();
        let w = window_at(NOW);
        let d = v.check("metro/central/g1", &scan("d1", text(&phone, w)), NOW);
        assert!(d.verdict.open, "{d:?}");
        assert_eq!(v.certs.len(), 1, "the certificate was recovered once and kept");
        // The same pass again is a replay; a stale window is stale.
        let again = phone.pass(7, window_at(NOW + 40), [9; 8]).encode();
        assert!(v.check("metro/central/g1", &scan("d2", again.clone()), NOW + 40).verdict.open);
        assert_eq!(reason(&v.check("metro/central/g1", &scan("d3", again), NOW + 40)), Some(DenyReason::Replay));
        assert_eq!(
            reason(&v.check("metro/central/g1", &scan("d4", text(&phone, w - 5)), NOW)),
            Some(DenyReason::StalePass)
        );
        // A device another account certified is not the holder's.
        let stranger = device_of(&PrivateKeySigner::random(), NOW + 3_600);
        assert_eq!(
            reason(&v.check("metro/central/g1", &scan("d5", text(&stranger, w)), NOW)),
            Some(DenyReason::NotHolder)
        );
        // An expired certificate, a forged device signature, a revoked device.
        let old = device_of(&key, NOW - 1);
        assert_eq!(
            reason(&v.check("metro/central/g1", &scan("d6", text(&old, w)), NOW)),
            Some(DenyReason::CertificateExpired)
        );
        let mut forged = phone.pass(7, w, [3; 8]);
        forged.device_sig[0] ^= 1;
        assert_eq!(
            reason(&v.check("metro/central/g1", &scan("d7", forged.encode()), NOW)),
            Some(DenyReason::BadSignature)
        );
        let mut bad_cert = phone.pass(7, w, [4; 8]);
        bad_cert.cert_sig = [0; 65];
        assert_eq!(
            reason(&v.check("metro/central/g1", &scan("d8", bad_cert.encode()), NOW)),
            Some(DenyReason::BadCertificate)
        );
        v.revoke_device(phone.public_key());
        assert_eq!(
            reason(&v.check("metro/central/g1", &scan("d9", text(&phone, w)), NOW)),
            Some(DenyReason::DeviceRevoked)
        );
        // Revoking the account key stops its devices too.
        let (mut v2, key2) = setup(None);
        v2.revoke_key(key2.address());
        let p2 = device_of(&key2, NOW + 3_600);
        assert_eq!(reason(&v2.check("metro/central/g1", &scan("e1", text(&p2, w)), NOW)), Some(DenyReason::KeyRevoked));
    }

    #[test]
    fn an_offline_tap_forwarded_after_a_later_entry_is_not_passback() {
        let (mut v, key) = setup(None);
        // The gate was offline at NOW - 60 and opened; the traveler then entered online at NOW.
        assert!(v.check("metro/central/g1", &scan("live", pass(&key, 7, NOW)), NOW).verdict.open);
        let forwarded = v.check("metro/central/g1", &scan("offline", pass(&key, 7, NOW - 60)), NOW - 60);
        assert!(forwarded.verdict.open, "{forwarded:?}");
        assert!(forwarded.tap.is_some(), "the offline ride is recorded");
        // And the later entry still guards passback after it.
        let again = v.check("metro/central/g1", &scan("again", pass(&key, 7, NOW + 5)), NOW + 5);
        assert_eq!(reason(&again), Some(DenyReason::Passback));
    }

    #[test]
    fn resent_scan_is_answered_again_but_not_counted() {
        let (mut v, key) = setup(Some(5));
        let req = scan("s1", pass(&key, 7, NOW));
        let first = v.check("metro/central/g1", &req, NOW);
        let again = v.check("metro/central/g1", &req, NOW + 1);
        assert_eq!(first.verdict, again.verdict);
        assert!(again.tap.is_none());
        assert_eq!(v.ticket(7).unwrap().rides_left, Some(4));
    }

    #[test]
    fn each_fraud_has_its_reason() {
        let (mut v, key) = setup(Some(1));
        let other = PrivateKeySigner::random();
        let g = "metro/central/g1";
        assert_eq!(reason(&v.check("nope/x/y", &scan("a", pass(&key, 7, NOW)), NOW)), Some(DenyReason::UnknownGate));
        assert_eq!(reason(&v.check(g, &scan("b", "garbage".into()), NOW)), Some(DenyReason::NotAPass));
        assert_eq!(reason(&v.check(g, &scan("c", "KP1.AQAA".into()), NOW)), Some(DenyReason::MalformedPass));
        assert_eq!(reason(&v.check(g, &scan("d", pass(&other, 7, NOW)), NOW)), Some(DenyReason::NotHolder));
        assert_eq!(reason(&v.check(g, &scan("e", pass(&key, 99, NOW)), NOW)), Some(DenyReason::UnknownTicket));
        assert_eq!(reason(&v.check(g, &scan("f", pass(&key, 7, NOW - 60)), NOW)), Some(DenyReason::StalePass));
        assert_eq!(
            reason(&v.check("bus/depot/g1", &scan("g", pass(&key, 7, NOW)), NOW)),
            Some(DenyReason::WrongOperator)
        );
        assert_eq!(reason(&v.check(g, &scan("h", pass(&key, 7, NOW + 200)), NOW + 200)), Some(DenyReason::Expired));
        assert_eq!(reason(&v.check(g, &scan("i", pass(&key, 7, NOW - 200)), NOW - 200)), Some(DenyReason::NotYetValid));
        let ok = pass(&key, 7, NOW);
        assert!(v.check(g, &scan("j", ok.clone()), NOW).verdict.open);
        assert_eq!(reason(&v.check(g, &scan("k", ok), NOW)), Some(DenyReason::NoRidesLeft));
    }

    #[test]
    fn replay_and_passback() {
        let (mut v, key) = setup(None);
        let g = "metro/central/g1";
        let p = pass(&key, 7, NOW);
        assert!(v.check(g, &scan("a", p.clone()), NOW).verdict.open);
        assert_eq!(reason(&v.check(g, &scan("b", p), NOW + 40)), Some(DenyReason::StalePass));
        let p2 = pass(&key, 7, NOW + 5);
        assert_eq!(reason(&v.check(g, &scan("c", p2.clone()), NOW + 5)), Some(DenyReason::Passback));
        assert_eq!(reason(&v.check(g, &scan("d", p2), NOW + 5)), Some(DenyReason::Passback));
        let p3 = pass(&key, 7, NOW + 31);
        assert!(v.check(g, &scan("e", p3.clone()), NOW + 31).verdict.open);
        assert_eq!(reason(&v.check(g, &scan("f", p3), NOW + 95)), Some(DenyReason::StalePass));
        // Boarding a vehicle right after the stop's gate is one journey: its validator names a run.
        let on_board = |id: &str, p: String| ScanRequest {
            trip: Some(crate::TripRef { id: "8".into(), date: None }),
            ..scan(id, p)
        };
        let p4 = pass(&key, 7, NOW + 33);
        let tap = v.check(g, &on_board("g", p4), NOW + 33);
        assert!(tap.verdict.open);
        assert_eq!(tap.tap.unwrap().trip.unwrap().id, "8", "the tap carries the run");
        let p5 = pass(&key, 7, NOW + 34);
        assert_eq!(reason(&v.check(g, &on_board("h", p5), NOW + 34)), Some(DenyReason::Passback));
    }

    #[test]
    fn same_pass_twice_is_a_replay() {
        let cfg = ValidatorConfig { passback_secs: 0, ..Default::default() };
        let (mut v, key) = setup(None);
        v.cfg = cfg;
        let p = pass(&key, 7, NOW);
        assert!(v.check("metro/central/g1", &scan("a", p.clone()), NOW).verdict.open);
        assert_eq!(reason(&v.check("metro/central/g1", &scan("b", p), NOW)), Some(DenyReason::Replay));
    }

    #[test]
    fn a_revoked_key_signs_no_pass() {
        let (mut v, key) = setup(None);
        v.revoke_key(key.address());
        let g = "metro/central/g1";
        assert_eq!(reason(&v.check(g, &scan("r", pass(&key, 7, NOW)), NOW)), Some(DenyReason::KeyRevoked));
    }

    #[test]
    fn card_taps_present_the_bound_ticket_at_the_right_gate_once() {
        use crate::card::{binding_digest, Card};
        let (mut v, key) = setup(Some(5));
        let g = "metro/central/g1";
        let card = Card::from_secret(rand::random());
        let tap = |card: &Card, gate: &str, challenge: [u8; 8]| card.answer(gate, challenge, window_at(NOW)).encode();

        assert_eq!(reason(&v.check(g, &scan("c0", tap(&card, g, [1; 8])), NOW)), Some(DenyReason::UnknownCard));
        // A binding signed by someone else binds the card to them, and they do not hold ticket 7.
        let stranger = PrivateKeySigner::random();
        let forged = stranger.sign_hash_sync(&binding_digest(31_337, &card.public_key(), 7)).unwrap().as_bytes();
        assert_eq!(v.bind_card(card.public_key(), 7, &forged).unwrap(), stranger.address());
        assert_eq!(reason(&v.check(g, &scan("c1", tap(&card, g, [2; 8])), NOW)), Some(DenyReason::NotHolder));

        let sig = key.sign_hash_sync(&binding_digest(31_337, &card.public_key(), 7)).unwrap().as_bytes();
        assert_eq!(v.bind_card(card.public_key(), 7, &sig).unwrap(), key.address());
        let answer = tap(&card, g, [3; 8]);
        let d = v.check(g, &scan("c2", answer.clone()), NOW);
        assert!(d.verdict.open, "{:?}", d.verdict);
        assert_eq!(d.tap.as_ref().map(|t| t.ticket_id), Some(7));
        assert_eq!(d.verdict.rides_left, Some(4));
        // A recorded answer replayed, with another scan id.
        assert_eq!(reason(&v.check(g, &scan("c3", answer), NOW + 1)), Some(DenyReason::Replay));
        // An answer to another gate's challenge.
        v.add_gate("metro/central/g2", GateInfo { operator_id: 1 });
        let elsewhere = tap(&card, "metro/central/g2", [4; 8]);
        assert_eq!(reason(&v.check(g, &scan("c4", elsewhere), NOW + 1)), Some(DenyReason::BadSignature));
        // A copy of the card number with a different key behind it.
        let clone = Card::from_secret(rand::random());
        let mut copied = clone.answer(g, [5; 8], window_at(NOW));
        copied.card_key = card.public_key();
        assert_eq!(reason(&v.check(g, &scan("c5", copied.encode()), NOW + 1)), Some(DenyReason::BadSignature));
        // An old answer is stale; a fresh one opens again after the passback window.
        let old = card.answer(g, [6; 8], window_at(NOW - 600)).encode();
        assert_eq!(reason(&v.check(g, &scan("c6", old), NOW + 60)), Some(DenyReason::StalePass));
        let fresh = card.answer(g, [7; 8], window_at(NOW + 60)).encode();
        assert!(v.check(g, &scan("c7", fresh), NOW + 60).verdict.open);
        // A lost card is unbound.
        v.unbind_card(&card.public_key());
        let after = card.answer(g, [8; 8], window_at(NOW + 120)).encode();
        assert_eq!(reason(&v.check(g, &scan("c8", after), NOW + 120)), Some(DenyReason::UnknownCard));
        assert_eq!(reason(&v.check(g, &scan("c9", "KC1.***".into()), NOW)), Some(DenyReason::MalformedPass));
    }

    #[test]
    fn a_peer_entry_counts_here_as_if_answered_here() {
        let (mut a, key) = setup(Some(3));
        let (mut b, _) = setup(None);
        b.upsert_ticket(a.ticket(7).unwrap().clone());
        let g = "metro/central/g1";
        let text = pass(&key, 7, NOW);
        let d = a.check(g, &scan("s1", text.clone()), NOW);
        assert!(d.verdict.open);
        let entry = d.entry.expect("an open verdict makes an entry");
        assert!(b.apply_peer_entry(&entry));
        assert!(!b.apply_peer_entry(&entry), "told twice, counted once");
        assert_eq!(b.ticket(7).unwrap().rides_left, Some(2));
        // The gate re-sends s1 to b (a died before its verdict left): the same verdict, no ride.
        let again = b.check(g, &scan("s1", text.clone()), NOW);
        assert_eq!((again.verdict.open, again.tap, again.verdict.rides_left), (true, None, Some(2)));
        // The same pass under a new scan id: a replay at b too.
        assert_eq!(reason(&b.check(g, &scan("s2", text), NOW + 1)), Some(DenyReason::Replay));
        // A fresh pass within the passback window: refused at b as at a.
        assert_eq!(reason(&b.check(g, &scan("s3", pass(&key, 7, NOW)), NOW + 5)), Some(DenyReason::Passback));
        assert!(a.check(g, &scan("s4", "junk".into()), NOW).entry.is_none(), "no entry for a denial");
    }

    #[test]
    fn a_peer_entry_for_a_ticket_loaded_after_its_ride_was_recorded_counts_the_ride_once() {
        let (mut a, key) = setup(Some(3));
        let (mut b, _) = setup(None);
        let g = "metro/central/g1";
        let entry = a.check(g, &scan("s1", pass(&key, 7, NOW)), NOW).entry.unwrap();
        assert_eq!(entry.rides_left_after, Some(2));
        // b looks the ticket up in the database after a recorded the tap there (2 left), and
        // only then receives a's entry for it.
        b.upsert_ticket(a.ticket(7).unwrap().clone());
        assert!(b.apply_peer_entry(&entry));
        assert_eq!(b.ticket(7).unwrap().rides_left, Some(2), "the ride is not subtracted a second time");
        // Entries arriving out of order never raise the count.
        let second = a.check(g, &scan("s2", pass(&key, 7, NOW + 60)), NOW + 60).entry.unwrap();
        assert!(b.apply_peer_entry(&second));
        assert!(!b.apply_peer_entry(&entry));
        assert_eq!(b.ticket(7).unwrap().rides_left, Some(1));
    }
}
