//! The gate's offline mode against a real embedded broker and a real validator service:
//! online verdicts are signed, a stopped validator or a lost broker makes the gate decide
//! from its signed snapshot (with the specific deny reasons and local passback/replay),
//! journaled taps reach the validator exactly once when it is back, and a rogue retained
//! config is ignored.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use alloy::signers::{local::PrivateKeySigner, SignerSync};
use alloy_primitives::B256;
use ed25519_dalek::SigningKey;
use gate_firmware_sim::{Contactless, GateSetup, OfflineOptions, Outcome, SimGate, SNAPSHOT_FILE};
use kippu_domain::card::{binding_digest, Card, CardTap};
use kippu_domain::device_pass::{cert_digest, Device};
use kippu_domain::pass::{window_at, Pass};
use kippu_domain::snapshot::{GateSnapshot, SnapshotCard, SnapshotTicket, SNAPSHOT_VERSION};
use kippu_domain::validation::Tap;
use kippu_domain::{DenyReason, GateInfo, PeerEntry, TicketState, Validator, ValidatorConfig};
use kippu_mqtt::{
    now_unix, CardRecord, EmbeddedBroker, MqttUrl, TicketLookup, ValidatorHandle, ValidatorOptions, ValidatorService,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

const CHAIN: u64 = 31_337;
const WAIT: Duration = Duration::from_secs(15);

const ONLINE: u64 = 1;
const PHONE_TICKET: u64 = 2;
const ACCOUNT_TICKET: u64 = 3;
const EXPIRED: u64 = 4;
const LOST_PHONE_TICKET: u64 = 5;
const CARD_TICKET: u64 = 6;
const OFFLINE_CARD_TICKET: u64 = 7;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn rand_hex() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kippu-gate-{name}-{}", rand_hex()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn broker() -> MqttUrl {
    init_tracing();
    tokio::task::spawn_blocking(|| EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
        .expect("embedded broker starts")
        .mqtt_url()
}

/// The platform's database as the validator sees it on a miss: no tickets it does not
/// already hold, and the card bindings travelers made.
struct CardBook(Vec<([u8; 32], CardRecord)>);

#[async_trait::async_trait]
impl TicketLookup for CardBook {
    async fn ticket(&self, _id: u64) -> Option<TicketState> {
        None
    }

    async fn card(&self, key: [u8; 32]) -> Option<CardRecord> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, r)| r.clone())
    }
}

/// One operator: its validator key and state, a traveler with an account key, a phone
/// and a lost (revoked) phone, and the tickets the platform and the snapshot share.
struct Platform {
    url: MqttUrl,
    op: String,
    key: Arc<SigningKey>,
    validator: Arc<Mutex<Validator>>,
    account: PrivateKeySigner,
    phone: Device,
    lost_phone: Device,
    /// Cards bound to CARD_TICKET and OFFLINE_CARD_TICKET, with the account's binding signatures.
    cards: [(Card, u64, Vec<u8>); 2],
    tickets: Vec<TicketState>,
    now: u64,
}

fn device(account: &PrivateKeySigner, expiry: u64) -> Device {
    let seed: [u8; 32] = rand::random();
    let public = Device::new(seed, 0, [0; 65]).public_key();
    let sig = account.sign_hash_sync(&cert_digest(CHAIN, &public, expiry)).unwrap();
    Device::new(seed, expiry, sig.as_bytes())
}

impl Platform {
    fn new(url: MqttUrl) -> Self {
        let now = now_unix();
        let account = PrivateKeySigner::random();
        let ticket = |id, valid_until, rides_left| TicketState {
            id,
            holder: account.address(),
            operator_id: 1,
            product_id: 10,
            valid_from: now - 3_600,
            valid_until,
            rides_left,
        };
        let tickets = vec![
            ticket(ONLINE, now + 3_600, None),
            ticket(PHONE_TICKET, now + 3_600, Some(5)),
            ticket(ACCOUNT_TICKET, now + 3_600, None),
            ticket(EXPIRED, now - 1, None),
            ticket(LOST_PHONE_TICKET, now + 3_600, None),
            ticket(CARD_TICKET, now + 3_600, Some(3)),
            ticket(OFFLINE_CARD_TICKET, now + 3_600, Some(3)),
        ];
        let bound = |ticket: u64| {
            let card = Card::from_secret(rand::random());
            let sig = account.sign_hash_sync(&binding_digest(CHAIN, &card.public_key(), ticket)).unwrap();
            (card, ticket, sig.as_bytes().to_vec())
        };
        let cards = [bound(CARD_TICKET), bound(OFFLINE_CARD_TICKET)];
        let op = format!("op-{}", rand_hex());
        let mut v = Validator::new(ValidatorConfig { chain_id: CHAIN, ..Default::default() });
        v.add_gate(&format!("{op}/st/g1"), GateInfo { operator_id: 1 });
        v.add_gate(&format!("{op}/st/g2"), GateInfo { operator_id: 1 });
        for t in &tickets {
            v.upsert_ticket(t.clone());
        }
        Self {
            url,
            key: Arc::new(SigningKey::from_bytes(&rand::random())),
            validator: Arc::new(Mutex::new(v)),
            phone: device(&account, now + 3_600),
            lost_phone: device(&account, now + 3_600),
            cards,
            account,
            tickets,
            op,
            now,
        }
    }

    fn gate_key(&self, name: &str) -> String {
        format!("{}/st/{name}", self.op)
    }

    fn snapshot(&self, issued_at: u64) -> GateSnapshot {
        GateSnapshot {
            version: SNAPSHOT_VERSION,
            issued_at,
            valid_until: self.now + 600,
            operator_id: 1,
            gates: vec![self.gate_key("g1"), self.gate_key("g2")],
            chain_id: CHAIN,
            validators: vec![B256::from(self.key.verifying_key().to_bytes())],
            revoked_holders: vec![],
            revoked_devices: vec![B256::from(self.lost_phone.public_key())],
            tickets: self.tickets.iter().map(SnapshotTicket::from).collect(),
            cards: self
                .cards
                .iter()
                .map(|(card, ticket, _)| SnapshotCard {
                    card_key: B256::from(card.public_key()),
                    ticket_id: *ticket,
                    holder: self.account.address(),
                })
                .collect(),
        }
    }

    async fn publish_config(&self, gate: &str, payload: &[u8]) {
        let path = gate_firmware_sim::gate_path(&self.gate_key(gate)).unwrap();
        gate_firmware_sim::publish_config(&self.url, &path, payload).await.expect("config published");
    }

    async fn start_validator(&self) -> (ValidatorHandle, mpsc::Receiver<Tap>) {
        let (tx, rx) = mpsc::channel(64);
        let opts =
            ValidatorOptions { operator: Some(self.op.clone()), signer: Some(self.key.clone()), ..Default::default() };
        let h = ValidatorService::spawn_with(
            &self.url,
            &format!("validator-{}", rand_hex()),
            opts,
            self.validator.clone(),
            Arc::new(CardBook(
                self.cards
                    .iter()
                    .map(|(card, ticket_id, sig)| {
                        (card.public_key(), CardRecord { ticket_id: *ticket_id, sig: sig.clone() })
                    })
                    .collect(),
            )),
            Arc::new(tx),
        )
        .await
        .expect("validator connects");
        (h, rx)
    }

    fn setup(&self, url: &MqttUrl, gate: &str, dir: &Path) -> GateSetup {
        let mut offline = OfflineOptions::in_dir(dir);
        offline.probe_timeout = Duration::from_millis(300);
        offline.forward_interval = Duration::from_millis(300);
        GateSetup {
            mqtt_url: format!("mqtt://{}:{}", url.host, url.port),
            gate_key: self.gate_key(gate),
            trusted_validators: vec![self.key.verifying_key()],
            timeout: Duration::from_millis(1500),
            offline: Some(offline),
        }
    }

    async fn gate(&self, gate: &str, dir: &Path) -> SimGate {
        SimGate::connect_with(self.setup(&self.url, gate, dir)).await.expect("gate connects")
    }

    fn phone_pass(&self, phone: &Device, ticket: u64) -> String {
        phone.pass(ticket, window_at(now_unix()), rand::random()).encode()
    }

    fn account_pass(&self, ticket: u64) -> String {
        let nonce = rand::random::<[u8; 8]>();
        let window = window_at(now_unix());
        let sig = self.account.sign_hash_sync(&Pass::digest(ticket, window, &nonce)).unwrap();
        Pass { ticket_id: ticket, window, nonce, signature: sig.as_bytes() }.encode()
    }
}

fn assert_offline(o: &Outcome, reason: Option<DenyReason>, what: &str) {
    assert!(o.offline, "{what}: decided online: {o:?}");
    assert_eq!(o.verdict.reason, reason, "{what}: {o:?}");
    assert_eq!(o.verdict.open, reason.is_none(), "{what}: {o:?}");
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Taps arriving within `quiet` of each other.
async fn drain(rx: &mut mpsc::Receiver<Tap>, quiet: Duration) -> Vec<Tap> {
    let mut out = Vec::new();
    while let Ok(Some(t)) = tokio::time::timeout(quiet, rx.recv()).await {
        out.push(t);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_then_offline_then_forwarded_exactly_once() {
    let p = Platform::new(broker().await);
    let dir = temp_dir("flow");
    let issued = p.now - 5;
    p.publish_config("g1", &p.snapshot(issued).sign(&p.key).to_bytes()).await;
    let (validator, mut taps) = p.start_validator().await;
    let gate = p.gate("g1", &dir).await;
    assert_eq!(gate.wait_snapshot(issued, WAIT).await, Some(issued), "the retained snapshot is installed");
    assert!(dir.join(SNAPSHOT_FILE).exists(), "and stored for a restart");

    // (a) Online: a signed verdict from the validator, one tap.
    let o = gate.present_text_outcome(&p.phone_pass(&p.phone, ONLINE)).await.unwrap();
    assert!(o.verdict.open && !o.offline, "{o:?}");
    assert!(o.verdict.verify(&[p.key.verifying_key()], &p.gate_key("g1")), "verdict signed by the validator: {o:?}");
    let tap = tokio::time::timeout(WAIT, taps.recv()).await.unwrap().unwrap();
    assert_eq!((tap.ticket_id, tap.scan_id.as_str()), (ONLINE, o.verdict.id.as_str()));
    assert!(gate.pending_taps().is_empty(), "online entries are not journaled");

    // (b) The validator stops: the gate decides from its snapshot.
    validator.abort();
    eventually("the validator to stop", || validator.is_finished()).await;
    let started = Instant::now();
    let expired = gate.present_text_outcome(&p.phone_pass(&p.phone, EXPIRED)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1400), "the first scan waited for the validator");
    assert_offline(&expired, Some(DenyReason::Expired), "expired ticket");
    assert_eq!(expired.snapshot, Some(issued));
    let lost = gate.present_text_outcome(&p.phone_pass(&p.lost_phone, LOST_PHONE_TICKET)).await.unwrap();
    assert_offline(&lost, Some(DenyReason::DeviceRevoked), "revoked device");
    let mut forged = p.phone.pass(LOST_PHONE_TICKET, window_at(now_unix()), rand::random());
    forged.device_sig[7] ^= 0x40;
    let forged = gate.present_text_outcome(&forged.encode()).await.unwrap();
    assert_offline(&forged, Some(DenyReason::BadSignature), "forged pass");
    let stranger = device(&PrivateKeySigner::random(), p.now + 3_600);
    let not_holder = gate.present_text_outcome(&p.phone_pass(&stranger, PHONE_TICKET)).await.unwrap();
    assert_offline(&not_holder, Some(DenyReason::NotHolder), "someone else's phone");
    // The online entry a moment ago still counts for passback here.
    let back = gate.present_text_outcome(&p.phone_pass(&p.phone, ONLINE)).await.unwrap();
    assert_offline(&back, Some(DenyReason::Passback), "passback after an online entry");

    let phone_text = p.phone_pass(&p.phone, PHONE_TICKET);
    let phone = gate.present_text_outcome(&phone_text).await.unwrap();
    assert_offline(&phone, None, "valid phone pass");
    assert_eq!(phone.verdict.rides_left, Some(4), "the snapshot's rides, counted locally");
    let account = gate.present_text_outcome(&p.account_pass(ACCOUNT_TICKET)).await.unwrap();
    assert_offline(&account, None, "valid account pass");
    let replay = gate.present_text_outcome(&phone_text).await.unwrap();
    assert_offline(&replay, Some(DenyReason::Replay), "the same pass again");
    let passback = gate.present_text_outcome(&p.phone_pass(&p.phone, PHONE_TICKET)).await.unwrap();
    assert_offline(&passback, Some(DenyReason::Passback), "a fresh pass of the same ticket");

    let pending: HashSet<String> = gate.pending_taps().iter().map(|t| t.scan.id.clone()).collect();
    assert_eq!(
        pending,
        HashSet::from([phone.verdict.id.clone(), account.verdict.id.clone()]),
        "only entries are journaled"
    );
    assert!(taps.try_recv().is_err(), "no validator, no taps");
    // What a crash right after forwarding, before the acknowledgements hit the disk, leaves behind.
    let journal = dir.join(gate_firmware_sim::JOURNAL_FILE);
    let before_forwarding = std::fs::read(&journal).unwrap();

    // (c) A validator is back: the journal is forwarded on its own, each tap counted once.
    let (validator, mut taps) = p.start_validator().await;
    eventually("the journal to be forwarded", || gate.pending_taps().is_empty()).await;
    let forwarded = drain(&mut taps, Duration::from_millis(800)).await;
    let ids: Vec<&str> = forwarded.iter().map(|t| t.scan_id.as_str()).collect();
    assert_eq!(forwarded.len(), 2, "each journaled tap once: {ids:?}");
    assert_eq!(ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>(), pending);
    let tickets: HashSet<u64> = forwarded.iter().map(|t| t.ticket_id).collect();
    assert_eq!(tickets, HashSet::from([PHONE_TICKET, ACCOUNT_TICKET]));
    assert_eq!(gate.disputed_taps(), 0);
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0, "the journal is emptied");
    // The platform counted the offline ride too.
    assert_eq!(p.validator.lock().await.ticket(PHONE_TICKET).unwrap().rides_left, Some(4));
    // Online again.
    let o = gate.present_text_outcome(&p.account_pass(ONLINE)).await.unwrap();
    assert!(!o.offline, "{o:?}");
    drain(&mut taps, Duration::from_millis(300)).await;
    gate.disconnect().await;

    // The gate restarts with the journal as the crash left it: the same scans go out
    // again, the validator answers them as before, and no tap is recorded twice.
    std::fs::write(&journal, &before_forwarding).unwrap();
    let gate = p.gate("g1", &dir).await;
    assert_eq!(gate.snapshot().map(|s| s.issued_at), Some(issued), "the stored snapshot is back at once");
    assert_eq!(gate.pending_taps().len(), 2);
    eventually("the journal to be re-forwarded", || gate.pending_taps().is_empty()).await;
    let again = drain(&mut taps, Duration::from_millis(1000)).await;
    assert!(again.is_empty(), "re-forwarded scans made new taps: {again:?}");
    assert_eq!(gate.disputed_taps(), 0, "the re-sent scans were answered with their open verdicts");
    assert_eq!(p.validator.lock().await.ticket(PHONE_TICKET).unwrap().rides_left, Some(4));
    gate.disconnect().await;
    validator.abort();
    let _ = std::fs::remove_dir_all(dir);
}

/// A card emulator that plays back one answer whatever the reader asks.
struct Playback(CardTap);

impl Contactless for Playback {
    fn answer(&self, _: &str, _: [u8; 8], _: u32) -> CardTap {
        self.0.clone()
    }
}

/// A clone: the victim's card number on a card with a key of its own.
struct Cloned {
    number: [u8; 32],
    inner: Card,
}

impl Contactless for Cloned {
    fn answer(&self, gate: &str, challenge: [u8; 8], window: u32) -> CardTap {
        CardTap { card_key: self.number, ..self.inner.answer(gate, challenge, window) }
    }
}

/// The victim's card made to answer this gate's challenge as if at another gate (a relay).
struct Relayed<'a> {
    card: &'a Card,
    gate: String,
}

impl Contactless for Relayed<'_> {
    fn answer(&self, _: &str, challenge: [u8; 8], window: u32) -> CardTap {
        self.card.answer(&self.gate, challenge, window)
    }
}

/// A genuine card whose answers an attacker's antenna records.
struct Overheard<'a> {
    card: &'a Card,
    heard: StdMutex<Option<CardTap>>,
}

impl Contactless for Overheard<'_> {
    fn answer(&self, gate: &str, challenge: [u8; 8], window: u32) -> CardTap {
        let a = self.card.answer(gate, challenge, window);
        *self.heard.lock().unwrap() = Some(a.clone());
        a
    }
}

fn png_of(text: &str) -> Vec<u8> {
    let img =
        qrcode::QrCode::new(text.as_bytes()).unwrap().render::<image::Luma<u8>>().min_dimensions(300, 300).build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Contactless cards bound to tickets: online (the validator learns a binding from the
/// platform's records on the card's first tap), refused when pre-played, shown to the
/// camera, cloned, relayed from another gate, replayed or unbound, and offline from the
/// snapshot, the offline entry forwarded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_taps_online_offline_and_fraud() {
    let p = Platform::new(broker().await);
    let dir = temp_dir("card");
    let issued = p.now - 5;
    p.publish_config("g1", &p.snapshot(issued).sign(&p.key).to_bytes()).await;
    let (validator, mut taps) = p.start_validator().await;
    let gate = p.gate("g1", &dir).await;
    assert_eq!(gate.wait_snapshot(issued, WAIT).await, Some(issued));
    let (card, _, _) = &p.cards[0];
    assert!(p.validator.lock().await.card(&card.public_key()).is_none(), "the validator starts without the card");
    let g1 = p.gate_key("g1");
    let window = window_at(now_unix());

    // Pre-play: answers collected from the victim's card for this window and the next ones.
    // Shown as a QR code they are no pass at all; played back by an emulator at the reader
    // they answer a challenge the gate never issued. None of them reaches the validator.
    for w in window..window + 3 {
        let collected = card.answer(&g1, rand::random(), w);
        let text = gate.present_text_outcome(&collected.encode()).await.unwrap();
        assert_eq!((text.verdict.open, text.verdict.reason), (false, Some(DenyReason::NotAPass)), "{text:?}");
        let image = gate.present_image_outcome(&png_of(&collected.encode())).await.unwrap();
        assert_eq!(image.verdict.reason, Some(DenyReason::NotAPass), "{image:?}");
        let played = gate.tap_card(&Playback(collected)).await.unwrap();
        assert_eq!(played.verdict.reason, Some(DenyReason::BadSignature), "{played:?}");
    }
    assert!(p.validator.lock().await.card(&card.public_key()).is_none(), "no collected answer reached the validator");
    assert!(gate.pending_taps().is_empty());

    let heard = Overheard { card, heard: StdMutex::new(None) };
    let o = gate.tap_card(&heard).await.unwrap();
    assert!(o.verdict.open && !o.offline, "{o:?}");
    assert_eq!((o.verdict.ticket, o.verdict.rides_left), (Some(CARD_TICKET), Some(2)));
    let tap = tokio::time::timeout(WAIT, taps.recv()).await.unwrap().unwrap();
    assert_eq!((tap.ticket_id, tap.scan_id.as_str()), (CARD_TICKET, o.verdict.id.as_str()));

    let recorded = heard.heard.lock().unwrap().clone().unwrap();
    let replay = gate.tap_card(&Playback(recorded.clone())).await.unwrap();
    assert_eq!(replay.verdict.reason, Some(DenyReason::BadSignature), "a recorded answer played again: {replay:?}");
    let shown = gate.present_text_outcome(&recorded.encode()).await.unwrap();
    assert_eq!(shown.verdict.reason, Some(DenyReason::NotAPass), "a recorded answer shown as a QR code: {shown:?}");
    let again = gate.tap_card(card).await.unwrap();
    assert_eq!(again.verdict.reason, Some(DenyReason::Passback), "the real card, straight back: {again:?}");
    let unbound = gate.tap_card(&Card::from_secret(rand::random())).await.unwrap();
    assert_eq!(unbound.verdict.reason, Some(DenyReason::UnknownCard), "{unbound:?}");
    let clone = Cloned { number: card.public_key(), inner: Card::from_secret(rand::random()) };
    let cloned = gate.tap_card(&clone).await.unwrap();
    assert_eq!(cloned.verdict.reason, Some(DenyReason::BadSignature), "{cloned:?}");
    let relayed = gate.tap_card(&Relayed { card, gate: p.gate_key("g2") }).await.unwrap();
    assert_eq!(relayed.verdict.reason, Some(DenyReason::BadSignature), "{relayed:?}");
    assert!(drain(&mut taps, Duration::from_millis(300)).await.is_empty(), "no denied tap recorded");

    // Offline: the snapshot's binding opens, a stranger's card, a clone and a collected answer stay shut.
    validator.abort();
    eventually("the validator to stop", || validator.is_finished()).await;
    let (offline_card, _, _) = &p.cards[1];
    let collected = offline_card.answer(&g1, rand::random(), window_at(now_unix())).encode();
    let shown = gate.present_text_outcome(&collected).await.unwrap();
    assert_eq!(shown.verdict.reason, Some(DenyReason::NotAPass), "not decided offline either: {shown:?}");
    assert!(gate.pending_taps().is_empty());
    let off = gate.tap_card(offline_card).await.unwrap();
    assert_offline(&off, None, "bound card offline");
    assert_eq!(off.verdict.rides_left, Some(2), "the snapshot's rides, counted locally");
    assert_offline(&gate.tap_card(card).await.unwrap(), Some(DenyReason::Passback), "online entry remembered");
    let off_unbound = gate.tap_card(&Card::from_secret(rand::random())).await.unwrap();
    assert_offline(&off_unbound, Some(DenyReason::UnknownCard), "unbound card offline");
    let off_clone = gate.tap_card(&clone).await.unwrap();
    assert_eq!(off_clone.verdict.reason, Some(DenyReason::BadSignature), "cloned card offline: {off_clone:?}");
    assert_eq!(gate.pending_taps().len(), 1, "only the bound card's entry is journaled");

    // Back online: the offline entry is forwarded and counted once.
    let (validator, mut taps) = p.start_validator().await;
    eventually("the journal to be forwarded", || gate.pending_taps().is_empty()).await;
    let forwarded = drain(&mut taps, Duration::from_millis(800)).await;
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert_eq!((forwarded[0].ticket_id, forwarded[0].scan_id.as_str()), (OFFLINE_CARD_TICKET, off.verdict.id.as_str()));
    assert_eq!(gate.disputed_taps(), 0);
    assert_eq!(p.validator.lock().await.ticket(OFFLINE_CARD_TICKET).unwrap().rides_left, Some(2));
    gate.disconnect().await;
    validator.abort();
    let _ = std::fs::remove_dir_all(dir);
}

/// Two gates of one station with no validator: an entry at one is known at the other over
/// the station LAN (signed UDP), so the same ticket is refused as passback and the same pass
/// as a replay there; a datagram from a device that is not a neighbour changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbouring_gates_keep_passback_offline() {
    let p = Platform::new(broker().await);
    let issued = p.now - 5;
    for g in ["g1", "g2"] {
        p.publish_config(g, &p.snapshot(issued).sign(&p.key).to_bytes()).await;
    }
    let free = || std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (a1, a2) = (free(), free());
    let (k1, k2) = (SigningKey::from_bytes(&rand::random()), SigningKey::from_bytes(&rand::random()));
    let station =
        |bind, key: &SigningKey, other: &str, other_key: &SigningKey, other_addr| gate_firmware_sim::StationLink {
            bind,
            key: key.clone(),
            neighbours: vec![(p.gate_key(other), other_key.verifying_key(), other_addr)],
        };
    let (d1, d2) = (temp_dir("station-g1"), temp_dir("station-g2"));
    let mut s1 = p.setup(&p.url, "g1", &d1);
    s1.offline.as_mut().unwrap().station = Some(station(a1, &k1, "g2", &k2, a2));
    let mut s2 = p.setup(&p.url, "g2", &d2);
    s2.offline.as_mut().unwrap().station = Some(station(a2, &k2, "g1", &k1, a1));
    let g1 = SimGate::connect_with(s1).await.expect("g1 connects");
    let g2 = SimGate::connect_with(s2).await.expect("g2 connects");
    assert_eq!(g1.wait_snapshot(issued, WAIT).await, Some(issued));
    assert_eq!(g2.wait_snapshot(issued, WAIT).await, Some(issued));

    // No validator runs: both decide from the snapshot.
    let text = p.phone_pass(&p.phone, PHONE_TICKET);
    assert_offline(&g1.present_text_outcome(&text).await.unwrap(), None, "entry at g1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_offline(&g2.present_text_outcome(&text).await.unwrap(), Some(DenyReason::Replay), "the same pass at g2");
    let fresh = p.phone_pass(&p.phone, PHONE_TICKET);
    assert_offline(&g2.present_text_outcome(&fresh).await.unwrap(), Some(DenyReason::Passback), "handed back at g2");

    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |from: &str, key: &SigningKey, entry: &PeerEntry| {
        sock.send_to(&gate_firmware_sim::station::encode(from, key, entry).unwrap(), a2).unwrap();
    };
    let entry = |id: &str, ticket_id: u64, operator_id: u32, at: u64| PeerEntry {
        scan_id: id.into(),
        ticket_id,
        window: window_at(now_unix()),
        nonce: rand::random(),
        operator_id,
        on_board: false,
        at,
        rides_left_after: None,
    };
    // A device on the LAN that is no neighbour cannot shut a traveler out, though it signs
    // properly with a key of its own: neither in a neighbour's name nor in its own.
    let rogue = SigningKey::from_bytes(&rand::random());
    send(&p.gate_key("g1"), &rogue, &entry("forged", ACCOUNT_TICKET, 1, now_unix()));
    send(&p.gate_key("g9"), &rogue, &entry("forged2", ACCOUNT_TICKET, 1, now_unix()));
    // Nor can a neighbour with a clock far ahead (or an entry of such a time) turn passback
    // off, or one of another operator's gates speak for this one.
    send(&p.gate_key("g1"), &k1, &entry("future", ONLINE, 1, u64::MAX));
    send(&p.gate_key("g1"), &k1, &entry("far-ahead", ONLINE, 1, now_unix() + 3_600));
    send(&p.gate_key("g1"), &k1, &entry("foreign", ONLINE, 2, now_unix()));
    eventually("the five datagrams to be dropped", || g2.dropped_neighbour_datagrams() == 5).await;
    assert_offline(
        &g2.present_text_outcome(&p.account_pass(ACCOUNT_TICKET)).await.unwrap(),
        None,
        "forged entries ignored",
    );
    assert_offline(
        &g2.present_text_outcome(&p.account_pass(ONLINE)).await.unwrap(),
        None,
        "future and foreign ignored",
    );
    let back = g2.present_text_outcome(&p.account_pass(ONLINE)).await.unwrap();
    assert_offline(&back, Some(DenyReason::Passback), "passback not turned off by an entry from the future");
    // A datagram g1 really sent, captured and sent again, is taken once.
    let genuine = entry("genuine", EXPIRED, 1, now_unix());
    send(&p.gate_key("g1"), &k1, &genuine);
    send(&p.gate_key("g1"), &k1, &genuine);
    eventually("the copy to be dropped", || g2.dropped_neighbour_datagrams() == 6).await;
    g1.disconnect().await;
    g2.disconnect().await;
    let _ = std::fs::remove_dir_all(d1);
    let _ = std::fs::remove_dir_all(d2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_stale_and_foreign_configs_are_ignored() {
    let p = Platform::new(broker().await);
    let dir = temp_dir("rogue");
    let issued = p.now - 5;
    p.publish_config("g1", &p.snapshot(issued).sign(&p.key).to_bytes()).await;
    let gate = p.gate("g1", &dir).await;
    assert_eq!(gate.wait_snapshot(issued, WAIT).await, Some(issued));
    assert_eq!(gate.rejected_configs(), 0);

    // A rogue publisher retains a snapshot of its own: newer, with a ticket for itself.
    let thief = PrivateKeySigner::random();
    let mut rogue = p.snapshot(issued + 100);
    rogue.revoked_devices.clear();
    rogue.tickets.push(SnapshotTicket {
        id: 66,
        holder: thief.address(),
        operator_id: 1,
        product_id: 1,
        valid_from: 0,
        valid_until: u64::MAX,
        rides_left: None,
    });
    let rogue_key = SigningKey::from_bytes(&rand::random());
    // It even names its own key as the validator: the gate trusts only its configured keys.
    rogue.validators = vec![B256::from(rogue_key.verifying_key().to_bytes())];
    p.publish_config("g1", &rogue.sign(&rogue_key).to_bytes()).await;
    eventually("the rogue config to be rejected", || gate.rejected_configs() == 1).await;
    // A genuine but older snapshot (it would undo revocations), one for other gates, junk.
    p.publish_config("g1", &p.snapshot(issued - 100).sign(&p.key).to_bytes()).await;
    eventually("the old config to be rejected", || gate.rejected_configs() == 2).await;
    let mut elsewhere = p.snapshot(issued + 200);
    elsewhere.gates = vec![p.gate_key("g9")];
    p.publish_config("g1", &elsewhere.sign(&p.key).to_bytes()).await;
    eventually("the foreign config to be rejected", || gate.rejected_configs() == 3).await;
    p.publish_config("g1", b"{\"body\":1}").await;
    eventually("the junk config to be rejected", || gate.rejected_configs() == 4).await;
    assert_eq!(gate.snapshot().map(|s| s.issued_at), Some(issued), "still the genuine snapshot");

    // No validator runs: the gate decides with the genuine snapshot, not the rogue one.
    let nonce = rand::random::<[u8; 8]>();
    let window = window_at(now_unix());
    let sig = thief.sign_hash_sync(&Pass::digest(66, window, &nonce)).unwrap();
    let thief_pass = Pass { ticket_id: 66, window, nonce, signature: sig.as_bytes() }.encode();
    let o = gate.present_text_outcome(&thief_pass).await.unwrap();
    assert_offline(&o, Some(DenyReason::UnknownTicket), "the rogue snapshot's ticket");
    let o = gate.present_text_outcome(&p.phone_pass(&p.lost_phone, LOST_PHONE_TICKET)).await.unwrap();
    assert_offline(&o, Some(DenyReason::DeviceRevoked), "the revocation the rogue snapshot dropped");

    // A gate that only ever saw the rogue config has no snapshot: it stays shut, offline.
    p.publish_config("g2", &rogue.sign(&rogue_key).to_bytes()).await;
    let dir2 = temp_dir("rogue2");
    let fresh = p.gate("g2", &dir2).await;
    eventually("the fresh gate to reject the rogue config", || fresh.rejected_configs() == 1).await;
    assert!(fresh.snapshot().is_none());
    let o = fresh.present_text_outcome(&p.phone_pass(&p.phone, PHONE_TICKET)).await.unwrap();
    assert_eq!((o.offline, o.verdict.reason, o.snapshot), (true, Some(DenyReason::Timeout), None), "{o:?}");
    assert!(fresh.pending_taps().is_empty());
    assert!(!dir2.join(SNAPSHOT_FILE).exists(), "a rejected snapshot is not stored");

    // A genuine newer snapshot is taken live: it revokes the phone.
    let mut newer = p.snapshot(issued + 300);
    newer.revoked_devices.push(B256::from(p.phone.public_key()));
    p.publish_config("g1", &newer.sign(&p.key).to_bytes()).await;
    assert_eq!(gate.wait_snapshot(issued + 300, WAIT).await, Some(issued + 300));
    let o = gate.present_text_outcome(&p.phone_pass(&p.phone, PHONE_TICKET)).await.unwrap();
    assert_offline(&o, Some(DenyReason::DeviceRevoked), "a phone revoked by the newer snapshot");
    gate.disconnect().await;
    fresh.disconnect().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}

/// A TCP forwarder that can drop its connections and refuse new ones, to take the
/// broker away from the gate alone (rumqttd cannot be stopped).
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    conns: Arc<StdMutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &MqttUrl) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = format!("{}:{}", upstream.host, upstream.port);
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<StdMutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (is_open, tracked) = (open.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                tracked.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                }));
            }
        });
        Self { port, open, conns, accept }
    }

    fn url(&self) -> MqttUrl {
        MqttUrl::parse(&format!("mqtt://127.0.0.1:{}", self.port)).unwrap()
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_broker_means_offline_at_once_and_forwarding_on_reconnect() {
    let p = Platform::new(broker().await);
    let dir = temp_dir("lost");
    let issued = p.now - 5;
    p.publish_config("g1", &p.snapshot(issued).sign(&p.key).to_bytes()).await;
    let (validator, mut taps) = p.start_validator().await;
    let proxy = Proxy::start(&p.url).await;
    let mut setup = p.setup(&proxy.url(), "g1", &dir);
    setup.timeout = Duration::from_secs(5);
    let gate = SimGate::connect_with(setup).await.unwrap();
    assert_eq!(gate.wait_snapshot(issued, WAIT).await, Some(issued));
    eventually("the config link", || gate.broker_reachable()).await;

    proxy.cut();
    eventually("the gate to notice the broker is gone", || !gate.broker_reachable()).await;
    let started = Instant::now();
    let o = gate.present_text_outcome(&p.phone_pass(&p.phone, PHONE_TICKET)).await.unwrap();
    assert_offline(&o, None, "valid pass, broker unreachable");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no waiting for a verdict that cannot come: {:?}",
        started.elapsed()
    );
    assert_eq!(gate.pending_taps().len(), 1);
    assert!(taps.try_recv().is_err());

    proxy.restore();
    eventually("the journal to be forwarded after reconnecting", || gate.pending_taps().is_empty()).await;
    let forwarded = drain(&mut taps, Duration::from_millis(800)).await;
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert_eq!((forwarded[0].scan_id.as_str(), forwarded[0].ticket_id), (o.verdict.id.as_str(), PHONE_TICKET));
    gate.disconnect().await;
    validator.abort();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_and_journal_commands_need_no_broker() {
    init_tracing();
    // Nothing listens on this URL: the handheld never tries.
    let p = Platform::new(MqttUrl::parse("mqtt://127.0.0.1:9").unwrap());
    let dir = temp_dir("inspect");
    let file = dir.join("snapshot.json");
    std::fs::write(&file, p.snapshot(p.now - 5).sign(&p.key).to_bytes()).unwrap();
    let trust = hex::encode(p.key.verifying_key().to_bytes());
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gate-firmware-sim")).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let snapshot = file.to_str().unwrap();
    let (code, out, err) =
        run(&["--trust", &trust, "inspect", "--snapshot", snapshot, "--text", &p.phone_pass(&p.phone, PHONE_TICKET)]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("OPEN  ticket #2, 5 rides left"), "{out}");
    let (code, out, _) =
        run(&["--trust", &trust, "inspect", "--snapshot", snapshot, "--text", &p.phone_pass(&p.lost_phone, 5)]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("DENY  DEVICE_REVOKED"), "{out}");
    let (code, out, _) =
        run(&["--trust", &trust, "inspect", "--snapshot", snapshot, "--text", &p.account_pass(EXPIRED)]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("DENY  EXPIRED"), "{out}");
    // A snapshot signed by a key the handheld does not trust is refused outright.
    let other = hex::encode(SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes());
    let (code, _, err) = run(&["--trust", &other, "inspect", "--snapshot", snapshot, "--text", "x"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not signed by a trusted validator key"), "{err}");
    // The same check from the library.
    let snap = gate_firmware_sim::load_snapshot(&file, &[p.key.verifying_key()], now_unix()).unwrap();
    assert!(gate_firmware_sim::inspect(&snap, &p.account_pass(ACCOUNT_TICKET), now_unix()).open);

    // A journal written by a gate, shown without connecting.
    let mut journal = gate_firmware_sim::Journal::open(&dir.join("journal.jsonl")).unwrap();
    journal
        .append(gate_firmware_sim::JournaledTap {
            scan: kippu_domain::ScanRequest {
                v: 1,
                id: "00000000000000ab".into(),
                pass: "KP1.x".into(),
                ts: 1,
                trip: None,
            },
            gate: p.gate_key("g1"),
            at: 1_800_000_000,
            ticket: Some(2),
            snapshot: 1_799_999_000,
        })
        .unwrap();
    drop(journal);
    let (code, out, err) = run(&["--snapshot-dir", dir.to_str().unwrap(), "journal"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("scan 00000000000000ab  ticket #2"), "{out}");
    assert!(out.contains("1 pending, 0 acknowledged, 0 unreadable"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
