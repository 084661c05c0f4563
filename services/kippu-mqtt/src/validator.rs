//! The validator service: scans in, verdicts out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kippu_domain::card::{CardTap, CARD_TAP_PREFIX};
use kippu_domain::topics::{GatePath, GATE_ROOT, VALIDATOR_ENTRIES};
use kippu_domain::validation::Tap;
use kippu_domain::{PeerEntry, ScanRequest, TicketState, Validator, VerdictMessage};
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS, SubscribeFilter};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

use crate::error::{MqttError, Result};
use crate::mqtt_url::MqttUrl;
use crate::{now_unix, CONNECT_TIMEOUT, RECONNECT_DELAY};

/// Where the validator finds tickets it has not seen yet (database, chain
/// indexer). Asked only on a miss, so tickets bought after startup validate
/// without the hot path touching the database for known ones.
#[async_trait::async_trait]
pub trait TicketLookup: Send + Sync {
    /// The ticket with this id, if it exists.
    async fn ticket(&self, id: u64) -> Option<TicketState>;

    /// The binding of a contactless card, if one is on record. Asked only when a tap
    /// comes from a card the validator does not know.
    async fn card(&self, _card_key: [u8; 32]) -> Option<CardRecord> {
        None
    }

    /// A gate registered after this validator started (`kippu gate add`). Asked only for a
    /// gate the validator does not know, and only a gate holding a valid login can publish on
    /// its scan topic, so this cannot be driven by strangers.
    async fn gate(&self, _gate_key: &str) -> Option<kippu_domain::GateInfo> {
        None
    }
}

/// Where accepted taps are made durable.
///
/// The validator sends a verdict only after the taps of its batch are recorded, so a validator
/// killed at any moment loses no tap it let through: either the tap is on record, or the gate got
/// no verdict, decided offline from its snapshot and journaled the tap, which it forwards later
/// under the same scan id. Recording must therefore be idempotent by [`Tap::scan_id`].
#[async_trait::async_trait]
pub trait TapRecorder: Send + Sync {
    /// Makes `taps` durable (all of them, or an error). Taps already on record are ignored.
    async fn record(&self, taps: &[Tap]) -> std::result::Result<(), String>;
}

/// Hands taps to an in-process receiver. As durable as that receiver's process, no more:
/// for tests and benches of the MQTT path; a deployment records into its database.
#[async_trait::async_trait]
impl TapRecorder for mpsc::Sender<Tap> {
    async fn record(&self, taps: &[Tap]) -> std::result::Result<(), String> {
        for t in taps {
            self.send(t.clone()).await.map_err(|_| "tap receiver dropped".to_owned())?;
        }
        Ok(())
    }
}

/// A card binding as stored: the validator checks its signature itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRecord {
    /// The ticket the card presents.
    pub ticket_id: u64,
    /// The account's EIP-712 [`kippu_domain::card::CardBinding`] signature (`r | s | v`).
    pub sig: Vec<u8>,
}

/// How a validator subscribes.
#[derive(Debug, Clone)]
pub struct ValidatorOptions {
    /// Subscribe through `$share/{group}/...` so several validators split the scans
    /// instead of each answering every one.
    pub shared: bool,
    /// Share group name (only used when `shared`).
    pub group: String,
    /// Only serve gates of this operator slug; `None` serves every operator.
    pub operator: Option<String>,
    /// Signs every verdict (Ed25519), so gates holding the public key ignore verdicts a
    /// rogue publisher sends. `None` sends unsigned verdicts (gates that trust no key).
    pub signer: Option<Arc<ed25519_dalek::SigningKey>>,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        Self { shared: false, group: "validators".into(), operator: None, signer: None }
    }
}

impl ValidatorOptions {
    /// The MQTT filter these options subscribe to; with the defaults it is
    /// [`kippu_domain::topics::scan_filter`].
    pub fn filter(&self) -> String {
        let base = format!("{GATE_ROOT}/{}/+/+/scan", self.operator.as_deref().unwrap_or("+"));
        if self.shared {
            format!("$share/{}/{base}", self.group)
        } else {
            base
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        // Reuse the topic-segment rule so a bad slug cannot widen or break the filter.
        if let Some(op) = &self.operator {
            GatePath::new(op, "x", "x").ok_or_else(|| format!("bad operator slug {op:?}"))?;
        }
        if self.shared {
            GatePath::new(&self.group, "x", "x").ok_or_else(|| format!("bad share group {:?}", self.group))?;
        }
        Ok(())
    }
}

/// Runs the gate validator over MQTT.
pub struct ValidatorService;

/// Handle on a running [`ValidatorService`]. Dropping it leaves the service
/// running; call [`ValidatorHandle::abort`] to stop it.
#[derive(Debug)]
pub struct ValidatorHandle {
    verdicts: Arc<AtomicU64>,
    subscribed: watch::Receiver<u64>,
    tasks: [JoinHandle<()>; 2],
}

impl ValidatorService {
    /// Connects as `client_id` (a fresh [`crate::client_id`], so two validators never evict
    /// each other's session), subscribes (QoS 1) to every gate's scan topic and answers each
    /// scan on the gate's verdict topic. Returns once the first subscription is acknowledged,
    /// or fails after [`CONNECT_TIMEOUT`].
    ///
    /// Accepted entries are recorded in `taps` before their verdict leaves. When the broker goes
    /// away the service keeps reconnecting (and re-subscribing) on its own.
    pub async fn spawn(
        url: &MqttUrl,
        client_id: &str,
        shared: bool,
        validator: Arc<Mutex<Validator>>,
        lookup: Arc<dyn TicketLookup>,
        taps: Arc<dyn TapRecorder>,
    ) -> Result<ValidatorHandle> {
        let opts = ValidatorOptions { shared, ..Default::default() };
        Self::spawn_with(url, client_id, opts, validator, lookup, taps).await
    }

    /// [`Self::spawn`] with explicit subscription options.
    pub async fn spawn_with(
        url: &MqttUrl,
        client_id: &str,
        opts: ValidatorOptions,
        validator: Arc<Mutex<Validator>>,
        lookup: Arc<dyn TicketLookup>,
        taps: Arc<dyn TapRecorder>,
    ) -> Result<ValidatorHandle> {
        opts.check().map_err(MqttError::InvalidOptions)?;
        let filter = opts.filter();
        // Scans are acknowledged only once their verdict is out (and their tap recorded), so a
        // validator that dies leaves its unanswered scans with the broker, which delivers them
        // to another member of the share group or to this one when it is back.
        let mut options = url.options(client_id);
        options.set_manual_acks(true);
        // Whatever a gate publishes, up to the broker's own limit, must reach the worker and be
        // answered (an oversized scan with MALFORMED_SCAN). A smaller limit here made rumqttc drop
        // the whole connection on such a packet, and with it every scan in flight: one gate could
        // knock the validator offline at will. The margin covers the topic and headers Mosquitto
        // adds to a payload of `message_size_limit`.
        let most = crate::MAX_PACKET_BYTES + 1024;
        options.set_max_packet_size(most, most);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        eventloop.set_network_options(crate::mqtt_url::network_options());
        // Unbounded on purpose: the connection task must never wait on the worker. The worker waits
        // on the connection (each verdict and ack is a request it drains), so a bounded queue that
        // filled under overload stopped both for good: no PINGRESP was read, the connection
        // dropped, and the validator never answered again. With manual acks the broker's
        // in-flight window and queue bound what can pile up here.
        let (work_tx, work_rx) = mpsc::unbounded_channel::<Publish>();
        let (sub_tx, mut subscribed) = watch::channel(0u64);
        let last_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let verdicts = Arc::new(AtomicU64::new(0));

        let poll_client = client.clone();
        let poll_error = last_error.clone();
        let poll_filter = filter.clone();
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // Clean session: the broker forgot our subscription, so every
                        // (re)connect subscribes again. `try_` because awaiting the request
                        // channel from the task that drains it could deadlock.
                        // One SUBSCRIBE for both, so one SUBACK counts one (re)subscription.
                        let filters = [
                            SubscribeFilter::new(poll_filter.clone(), QoS::AtLeastOnce),
                            SubscribeFilter::new(VALIDATOR_ENTRIES.to_owned(), QoS::AtLeastOnce),
                        ];
                        if let Err(e) = poll_client.try_subscribe_many(filters) {
                            tracing::error!(error = %e, "validator could not queue subscribe");
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        tracing::info!(filter = %poll_filter, "validator subscribed");
                        sub_tx.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if work_tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "validator MQTT connection lost, reconnecting");
                        *poll_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                        tokio::time::sleep(RECONNECT_DELAY).await;
                    }
                }
            }
        });
        let worker = Worker {
            client,
            validator,
            lookup,
            taps,
            verdicts: verdicts.clone(),
            signer: opts.signer.clone(),
            origin: format!("{client_id}-{:016x}", rand::random::<u64>()),
        };
        let worker = tokio::spawn(worker.run(work_rx));
        let handle = ValidatorHandle { verdicts, subscribed: subscribed.clone(), tasks: [poller, worker] };

        let ready = matches!(tokio::time::timeout(CONNECT_TIMEOUT, subscribed.wait_for(|n| *n > 0)).await, Ok(Ok(_)));
        if ready {
            return Ok(handle);
        }
        handle.abort();
        let reason = last_error.lock().unwrap_or_else(|p| p.into_inner()).take();
        Err(MqttError::Connect { url: url.to_string(), reason: reason.unwrap_or_else(|| "timed out".into()) })
    }
}

impl ValidatorHandle {
    /// Stops the service (both the connection and the worker task).
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }

    /// Verdicts published so far.
    pub fn verdicts(&self) -> u64 {
        self.verdicts.load(Ordering::Relaxed)
    }

    /// How many times the scan subscription has been acknowledged; more than 1
    /// means the service reconnected.
    pub fn subscriptions(&self) -> u64 {
        *self.subscribed.borrow()
    }

    /// Waits until the subscription has been acknowledged at least `n` times.
    pub async fn wait_subscriptions(&self, n: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.subscribed.clone();
        let reached = matches!(tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await, Ok(Ok(_)));
        reached
    }

    /// Whether the service tasks have ended (aborted or panicked).
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }
}

/// A scan more than this much older than the validator's clock is one a gate accepted while
/// offline and is forwarding now; its pass is judged at the time of the tap.
const LIVE_SLACK_SECS: u64 = 5;
/// Offline taps older than this are judged now (and so refused as stale): a gate holds a day.
const MAX_OFFLINE_AGE_SECS: u64 = 24 * 3600;

/// When to judge a scan: now, or for a tap forwarded from a gate's offline journal, when it
/// happened (the gate's clock, `ts`). The gate is authenticated by its broker login and already
/// opened for that pass; judging it now would refuse every forwarded pass as stale and lose the ride.
fn judged_at(req: &ScanRequest, now: u64) -> u64 {
    let tapped = req.ts / 1000;
    if tapped + LIVE_SLACK_SECS < now && now - tapped <= MAX_OFFLINE_AGE_SECS {
        tapped
    } else {
        now
    }
}

struct Worker {
    client: AsyncClient,
    validator: Arc<Mutex<Validator>>,
    lookup: Arc<dyn TicketLookup>,
    taps: Arc<dyn TapRecorder>,
    verdicts: Arc<AtomicU64>,
    signer: Option<Arc<ed25519_dalek::SigningKey>>,
    /// This process's name on the entries topic, to skip its own entries coming back.
    origin: String,
}

/// What a validator publishes on [`VALIDATOR_ENTRIES`] for each entry it accepted.
#[derive(serde::Serialize, serde::Deserialize)]
struct PeerMessage {
    origin: String,
    entry: PeerEntry,
}

/// A scan decided, its verdict not sent yet.
struct Decided {
    gate: GatePath,
    verdict: VerdictMessage,
    tap: Option<Tap>,
    entry: Option<PeerEntry>,
}

/// Scans decided together and recorded in one write (group commit): under load the batch grows,
/// so the database sees one write per batch rather than per scan; alone a scan is a batch of one.
const BATCH: usize = 32;
/// Back-off between attempts to record a batch while the database is unreachable.
const RECORD_RETRY: [std::time::Duration; 2] =
    [std::time::Duration::from_millis(50), std::time::Duration::from_secs(2)];

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Publish>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let mut decided = Vec::with_capacity(batch.len());
            for p in batch.drain(..) {
                let d = self.decide(&p).await;
                decided.push((p, d));
            }
            let taps: Vec<Tap> = decided.iter().filter_map(|(_, d)| d.as_ref()?.tap.clone()).collect();
            self.record(&taps).await;
            for (p, d) in decided {
                if let Some(d) = d {
                    self.publish(&d.gate, &d.verdict).await;
                    if let Some(entry) = d.entry {
                        self.tell_peers(entry).await;
                    }
                }
                // Acknowledged once answered, each at once: a scan the broker still holds for us
                // is one not yet answered, and rumqttd stops delivering (and spins) while a
                // connection's whole in-flight window waits for acks.
                if let Err(e) = self.client.ack(&p).await {
                    tracing::error!(error = %e, "scan not acknowledged; the broker will deliver it again");
                }
            }
        }
    }

    /// Records `taps`, retrying until the database takes them. Meanwhile no verdict leaves, so
    /// gates time out and decide offline from their snapshots (journaling what they let through)
    /// instead of opening for taps nobody recorded.
    async fn record(&self, taps: &[Tap]) {
        if taps.is_empty() {
            return;
        }
        let mut wait = RECORD_RETRY[0];
        while let Err(e) = self.taps.record(taps).await {
            tracing::error!(error = %e, taps = taps.len(), "taps not recorded; verdicts held back, retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECORD_RETRY[1]);
        }
    }

    /// Decides one delivery; `None` for what needs no verdict (peer entries, other topics).
    async fn decide(&self, p: &Publish) -> Option<Decided> {
        if p.topic == VALIDATOR_ENTRIES {
            self.peer_entry(&p.payload).await;
            return None;
        }
        let Some((gate, "scan")) = GatePath::parse_topic(&p.topic) else {
            tracing::debug!(topic = %p.topic, "ignoring non-scan publish");
            return None;
        };
        let (verdict, tap, entry) = match ScanRequest::parse(&p.payload) {
            Ok(req) => {
                let key = gate.key();
                self.ensure_ticket(&key, &req).await;
                let d = self.validator.lock().await.check(&key, &req, judged_at(&req, now_unix()));
                (d.verdict, d.tap, d.entry)
            }
            Err(reason) => (VerdictMessage::deny("", reason, None), None, None),
        };
        tracing::info!(gate = %gate.key(), id = %verdict.id, open = verdict.open, reason = ?verdict.reason, "verdict");
        Some(Decided { gate, verdict, tap, entry })
    }

    /// Loads the pass's ticket from the lookup when the validator does not know
    /// it. Only for registered gates, so an unregistered publisher cannot make
    /// us hammer the database.
    async fn ensure_ticket(&self, gate_key: &str, req: &ScanRequest) {
        if !self.validator.lock().await.knows_gate(gate_key) {
            if let Some(info) = self.lookup.gate(gate_key).await {
                self.validator.lock().await.add_gate(gate_key, info);
            }
        }
        let ticket_id = if req.pass.starts_with(CARD_TAP_PREFIX) {
            self.ensure_card(gate_key, &req.pass).await
        } else {
            kippu_domain::device_pass::ticket_of(&req.pass)
        };
        let Some(ticket_id) = ticket_id else {
            return;
        };
        {
            let v = self.validator.lock().await;
            if !v.knows_gate(gate_key) || v.ticket(ticket_id).is_some() {
                return;
            }
        }
        // The lock is not held across the lookup: other scans keep flowing while
        // the database answers.
        if let Some(t) = self.lookup.ticket(ticket_id).await {
            let mut v = self.validator.lock().await;
            // A chain event may have delivered a fresher state meanwhile; keep it.
            if v.ticket(t.id).is_none() {
                v.upsert_ticket(t);
            }
        }
    }

    async fn tell_peers(&self, entry: PeerEntry) {
        let msg = PeerMessage { origin: self.origin.clone(), entry };
        match serde_json::to_vec(&msg) {
            Ok(payload) => {
                if let Err(e) = self.client.publish(VALIDATOR_ENTRIES, QoS::AtLeastOnce, false, payload).await {
                    tracing::error!(error = %e, "entry not shared with the other validators");
                }
            }
            Err(e) => tracing::error!(error = %e, "entry did not serialize"),
        }
    }

    async fn peer_entry(&self, payload: &[u8]) {
        let msg: PeerMessage = match serde_json::from_slice(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable peer entry ignored");
                return;
            }
        };
        if msg.origin == self.origin {
            return;
        }
        let e = &msg.entry;
        // The ticket's rides must be known to count the ride gone here.
        if self.validator.lock().await.ticket(e.ticket_id).is_none() {
            if let Some(t) = self.lookup.ticket(e.ticket_id).await {
                let mut v = self.validator.lock().await;
                if v.ticket(t.id).is_none() {
                    v.upsert_ticket(t);
                }
            }
        }
        if self.validator.lock().await.apply_peer_entry(e) {
            tracing::debug!(scan = %e.scan_id, ticket = e.ticket_id, from = %msg.origin, "peer entry applied");
        }
    }

    /// The ticket a card tap presents, loading the card's binding on a miss.
    async fn ensure_card(&self, gate_key: &str, text: &str) -> Option<u64> {
        let tap = CardTap::decode(text).ok()?;
        {
            let v = self.validator.lock().await;
            if !v.knows_gate(gate_key) {
                return None;
            }
            if let Some(c) = v.card(&tap.card_key) {
                return Some(c.ticket_id);
            }
        }
        let record = self.lookup.card(tap.card_key).await?;
        match self.validator.lock().await.bind_card(tap.card_key, record.ticket_id, &record.sig) {
            Ok(_) => Some(record.ticket_id),
            Err(e) => {
                tracing::warn!(error = %e, "stored card binding does not verify; card refused");
                None
            }
        }
    }

    async fn publish(&self, gate: &GatePath, verdict: &VerdictMessage) {
        let signed;
        let verdict = match &self.signer {
            Some(key) => {
                signed = verdict.clone().signed(key, &gate.key());
                &signed
            }
            None => verdict,
        };
        let payload = match serde_json::to_vec(verdict) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "verdict did not serialize");
                return;
            }
        };
        match self.client.publish(gate.topic("verdict"), QoS::AtLeastOnce, false, payload).await {
            Ok(()) => {
                self.verdicts.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "could not queue verdict"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kippu_domain::topics::scan_filter;

    #[test]
    fn forwarded_offline_taps_are_judged_when_they_happened() {
        let scan =
            |ts_secs: u64| ScanRequest { v: 1, id: "s".into(), pass: String::new(), ts: ts_secs * 1000, trip: None };
        let now = 1_800_000_000;
        assert_eq!(judged_at(&scan(now), now), now, "live");
        assert_eq!(judged_at(&scan(now - 3), now), now, "live, within the slack");
        assert_eq!(judged_at(&scan(now + 60), now), now, "a gate clock ahead is not believed");
        assert_eq!(judged_at(&scan(now - 600), now), now - 600, "forwarded from the journal");
        assert_eq!(judged_at(&scan(now - 2 * 86_400), now), now, "too old: judged now, refused as stale");
    }

    #[test]
    fn default_filters_are_the_domain_ones() {
        for shared in [false, true] {
            let o = ValidatorOptions { shared, ..Default::default() };
            assert_eq!(o.filter(), scan_filter(shared));
        }
        let o = ValidatorOptions { shared: true, group: "g1".into(), operator: Some("metro".into()), signer: None };
        assert_eq!(o.filter(), "$share/g1/kippu/v1/gates/metro/+/+/scan");
        assert!(o.check().is_ok());
        assert!(ValidatorOptions { operator: Some("#".into()), ..Default::default() }.check().is_err());
    }
}
