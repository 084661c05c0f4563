//! A simulated gate. It does what the device does: take a camera frame (a PNG
//! here), find and decode the QR code in it, ask a validator over MQTT, and
//! open or stay shut on the verdict.
//!
//! # Offline mode
//!
//! A gate set up with trusted validator keys and a journal ([`GateSetup::offline`])
//! also keeps its last signed snapshot ([`kippu_domain::snapshot`]), delivered on its
//! retained `config` topic; a config no trusted key signed is ignored and logged.
//! When the broker is unreachable, or no verdict arrives in time, the gate decides
//! the scan itself with the snapshot's [`kippu_domain::Validator`] (the validator
//! service's own code), keeps anti-passback and replay state locally across online
//! and offline scans, and writes every entry it let through to an fsync'd journal
//! ([`journal`]). Once a validator answers again, the journaled scans are forwarded
//! with their original scan ids (so each is counted once however often it is sent)
//! and removed when their verdicts arrive.
//!
//! Without a usable snapshot (none received, or past its `valid_until`) the gate stays
//! shut with [`DenyReason::Timeout`]: it had no answer and cannot vouch for the ticket.
//! `UNKNOWN_TICKET` would blame a ticket that may well be valid.
//!
//! [`inspect`] is the same offline check for an inspector's handheld: a pass against a
//! snapshot, no MQTT at all.

pub mod journal;
mod link;
mod offline;
pub mod station;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use kippu_domain::card::{Card, CardTap, CARD_TAP_PREFIX};
use kippu_domain::snapshot::{GateSnapshot, SignedSnapshot, SnapshotError, INSPECTOR_GATE};
use kippu_domain::topics::GatePath;
use kippu_domain::verdict::PROTOCOL_VERSION;
use kippu_domain::{DenyReason, ScanRequest, TripRef, ValidatorConfig, VerdictMessage};
use kippu_mqtt::{now_unix, now_unix_millis, GateClient, GateOptions, MqttUrl};
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

pub use journal::{Journal, JournalContents, JournaledTap};
pub use link::publish_config;
pub use offline::ConfigRejected;
pub use station::StationLink;

use link::{ConfigLink, LinkEvents};
use offline::{Installed, Local, Offline};

/// File name of the stored snapshot in the snapshot directory.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// File name of the journal when only a directory is given.
pub const JOURNAL_FILE: &str = "journal.jsonl";
/// Scans forwarded per round before waiting for their verdicts.
const FORWARD_BATCH: usize = 32;

/// Gate errors (not denials: a denial is a normal verdict).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The broker could not be reached.
    #[error("mqtt: {0}")]
    Mqtt(#[from] kippu_mqtt::MqttError),
    /// A gate path that is not `operator/station/gate`.
    #[error("bad gate path {0:?}")]
    BadPath(String),
    /// The journal or the snapshot store could not be used.
    #[error("local store: {0}")]
    Store(#[from] std::io::Error),
    /// Options that cannot work (offline mode without trusted keys).
    #[error("setup: {0}")]
    Setup(String),
    /// An image the gate will not decode at all (too many pixels): refused to whoever
    /// presented it, not judged as a scan.
    #[error("{0}")]
    Image(ReadError),
}

/// Why an image gave no QR text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Not a decodable image.
    #[error("not an image: {0}")]
    NotAnImage(String),
    /// No QR code found.
    #[error("no QR code in the image")]
    NoCode,
    /// A QR code was found but its data could not be decoded.
    #[error("QR code damaged: {0}")]
    Damaged(String),
    /// The image's header declares more pixels than a gate decodes.
    #[error("image too large: {width}×{height} pixels, at most {max}×{max}")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The largest side decoded.
        max: u32,
    },
}

/// The largest side of an image a gate decodes: a phone screen's pass or a camera frame
/// (a 12 MP photo is 4032×3024) fits, while a PNG that declares, say, 100,000×100,000
/// pixels in a few hundred bytes is refused from its header, before any pixel buffer is
/// made for it.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// The most the image decoder may allocate at once, the decoded image included: twice what
/// a 4096×4096 8-bit RGBA image takes (64 MiB), room for the decoder's own buffers.
pub const MAX_IMAGE_ALLOC: u64 = 128 * 1024 * 1024;

/// What answers a gate's challenge over the reader's field: a [`Card`], or anything
/// claiming to be one (the gate trusts the answer only once it has checked it).
pub trait Contactless {
    /// The answer to `challenge` at `gate_key` in `window`.
    fn answer(&self, gate_key: &str, challenge: [u8; 8], window: u32) -> CardTap;
}

impl Contactless for Card {
    fn answer(&self, gate_key: &str, challenge: [u8; 8], window: u32) -> CardTap {
        Card::answer(self, gate_key, challenge, window)
    }
}

/// Finds and decodes the first QR code in a PNG (or any format `image` reads).
///
/// The header's dimensions are checked against [`MAX_IMAGE_SIDE`] before decoding, and the
/// decoder runs under [`MAX_IMAGE_ALLOC`]: the bytes come from whoever presents them.
pub fn read_qr(image_bytes: &[u8]) -> Result<String, ReadError> {
    use image::ImageDecoder as _;
    let not_an_image = |e: image::ImageError| ReadError::NotAnImage(e.to_string());
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    let mut reader = image::ImageReader::new(std::io::Cursor::new(image_bytes))
        .with_guessed_format()
        .map_err(|e| ReadError::NotAnImage(e.to_string()))?;
    reader.limits(limits.clone());
    // Reads the header only; nothing sized by the image is allocated yet.
    let mut decoder = reader.into_decoder().map_err(not_an_image)?;
    let (width, height) = decoder.dimensions();
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(ReadError::TooLarge { width, height, max: MAX_IMAGE_SIDE });
    }
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.reserve(decoder.total_bytes()).map_err(not_an_image)?;
    decoder.set_limits(limits).map_err(not_an_image)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(not_an_image)?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    let grid = grids.first().ok_or(ReadError::NoCode)?;
    let (_, text) = grid.decode().map_err(|e| ReadError::Damaged(e.to_string()))?;
    Ok(text)
}

/// Parses a gate key `operator/station/gate`.
pub fn gate_path(gate_key: &str) -> Result<GatePath, GateError> {
    let mut parts = gate_key.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(s), Some(g), None) => GatePath::new(o, s, g),
        _ => None,
    }
    .ok_or_else(|| GateError::BadPath(gate_key.into()))
}

/// What became of a presented pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Open or deny, and why.
    pub verdict: VerdictMessage,
    /// Decided on the gate (from its snapshot, or refused for the lack of a usable one)
    /// rather than by a validator.
    pub offline: bool,
    /// `issued_at` of the snapshot that decided an offline scan.
    pub snapshot: Option<u64>,
}

impl Outcome {
    fn online(verdict: VerdictMessage) -> Self {
        Self { verdict, offline: false, snapshot: None }
    }
}

/// How a gate behaves when it has to decide alone.
#[derive(Debug, Clone)]
pub struct OfflineOptions {
    /// The journal file (append-only JSON lines).
    pub journal: PathBuf,
    /// Where the last verified snapshot is kept across restarts; `None` keeps it in memory only.
    pub snapshot_dir: Option<PathBuf>,
    /// Local rules (passback interval, pass window skew); the chain id comes from the snapshot.
    pub rules: ValidatorConfig,
    /// How long a scan waits for a verdict once a validator has failed to answer, before
    /// the gate decides itself (the full timeout applies while validators answer).
    pub probe_timeout: Duration,
    /// How often the gate tries to forward journaled taps while any are pending.
    pub forward_interval: Duration,
    /// How long to wait for the broker at start before starting offline.
    pub connect_timeout: Duration,
    /// The station LAN: entries shared with neighbouring gates for anti-passback offline.
    pub station: Option<StationLink>,
}

impl OfflineOptions {
    /// Journal and snapshot both in `dir`, default timings.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Self {
            journal: dir.join(JOURNAL_FILE),
            snapshot_dir: Some(dir),
            rules: ValidatorConfig { remembered_scans: 10_000, ..Default::default() },
            probe_timeout: Duration::from_millis(500),
            forward_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            station: None,
        }
    }
}

/// Everything a gate is started with.
#[derive(Debug, Clone)]
pub struct GateSetup {
    /// Broker URL.
    pub mqtt_url: String,
    /// `operator/station/gate`.
    pub gate_key: String,
    /// Validator keys whose verdicts and snapshots the gate believes. Empty: every
    /// verdict is believed and no snapshot is (offline mode needs keys).
    pub trusted_validators: Vec<VerifyingKey>,
    /// How long a scan waits for its verdict.
    pub timeout: Duration,
    /// Offline mode; `None` keeps the gate shut (`TIMEOUT`) whenever no verdict comes.
    pub offline: Option<OfflineOptions>,
}

impl GateSetup {
    /// An online-only gate with the default 3 s timeout and no trusted keys.
    pub fn new(mqtt_url: &str, gate_key: &str) -> Self {
        Self {
            mqtt_url: mqtt_url.into(),
            gate_key: gate_key.into(),
            trusted_validators: Vec::new(),
            timeout: Duration::from_secs(3),
            offline: None,
        }
    }
}

/// What one round of forwarding journaled taps did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardReport {
    /// Scans published.
    pub sent: usize,
    /// Verdicts received for them (each removed from the journal).
    pub acknowledged: usize,
    /// Of those, verdicts that denied an entry the gate had allowed (logged; the
    /// platform knew something the snapshot did not).
    pub disputed: usize,
    /// Taps still pending.
    pub remaining: usize,
}

type ClientSlot = RwLock<Option<Arc<GateClient>>>;

/// A gate connected to its broker.
pub struct SimGate {
    path: GatePath,
    client: Arc<ClientSlot>,
    timeout: Duration,
    /// For an on-board validator: the run its vehicle is working, as the vehicle's AVL unit says.
    run: Mutex<Option<TripRef>>,
    offline: Option<Arc<OfflineMode>>,
    link: Option<ConfigLink>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimGate {
    /// Connects the gate `operator/station/gate` to the broker at `mqtt_url` (online only).
    pub async fn connect(mqtt_url: &str, gate_key: &str) -> Result<Self, GateError> {
        Self::connect_with(GateSetup::new(mqtt_url, gate_key)).await
    }

    /// Connects a gate as `setup` says. With offline mode the gate also starts when the
    /// broker is unreachable (after [`OfflineOptions::connect_timeout`]) and connects
    /// in the background.
    pub async fn connect_with(setup: GateSetup) -> Result<Self, GateError> {
        let path = gate_path(&setup.gate_key)?;
        let url = MqttUrl::parse(&setup.mqtt_url)?;
        let gate_opts = GateOptions { trusted_validators: setup.trusted_validators.clone() };
        let slot: Arc<ClientSlot> = Arc::default();
        let Some(opts) = setup.offline else {
            let client = GateClient::connect_with(&url, path.clone(), gate_opts).await?;
            *slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(client));
            return Ok(Self {
                path,
                client: slot,
                timeout: setup.timeout,
                run: Mutex::new(None),
                offline: None,
                link: None,
                tasks: Vec::new(),
            });
        };
        if setup.trusted_validators.is_empty() {
            return Err(GateError::Setup("offline mode needs trusted validator keys to check snapshots".into()));
        }
        let journal = Journal::open(&opts.journal)?;
        if !journal.pending().is_empty() {
            tracing::info!(gate = %path.key(), pending = journal.pending().len(), "journaled taps to forward");
        }
        let off = Arc::new(OfflineMode {
            gate_key: path.key(),
            trusted: setup.trusted_validators.clone(),
            state: Mutex::new(Offline::new(&path.key(), opts.rules.clone())),
            journal: Mutex::new(journal),
            client: slot.clone(),
            link_up: Arc::new(AtomicBool::new(false)),
            validator_up: AtomicBool::new(true),
            rejected: AtomicU64::new(0),
            disputed: AtomicU64::new(0),
            neighbour_dropped: AtomicU64::new(0),
            installed: watch::channel(None).0,
            wake: Notify::new(),
            forwarding: tokio::sync::Mutex::new(()),
            forward_timeout: setup.timeout,
            station_out: match &opts.station {
                Some(_) => {
                    Some(std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.set_nonblocking(true).map(|()| s))?)
                }
                None => None,
            },
            opts,
        });
        off.load_stored_snapshot();
        let link = ConfigLink::start(&url, &path, off.link_up.clone(), off.clone());
        let mut tasks = vec![tokio::spawn(off.clone().forwarder())];
        if let Some(station) = off.opts.station.clone() {
            let socket = tokio::net::UdpSocket::bind(station.bind).await?;
            tasks.push(tokio::spawn(off.clone().listen_to_neighbours(socket, station)));
        }
        match tokio::time::timeout(
            off.opts.connect_timeout,
            GateClient::connect_with(&url, path.clone(), gate_opts.clone()),
        )
        .await
        {
            Ok(Ok(client)) => *slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(client)),
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::warn!(gate = %path.key(), error = %why, "broker unreachable at start; starting offline");
                let (off, url, path) = (off.clone(), url.clone(), path.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        match GateClient::connect_with(&url, path.clone(), gate_opts.clone()).await {
                            Ok(client) => {
                                *off.client.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(client));
                                tracing::info!(gate = %path.key(), "connected");
                                off.wake.notify_one();
                                return;
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "gate still cannot connect");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    }
                }));
            }
        }
        Ok(Self {
            path,
            client: slot,
            timeout: setup.timeout,
            run: Mutex::new(None),
            offline: Some(off),
            link: Some(link),
            tasks,
        })
    }

    /// The gate's path.
    pub fn path(&self) -> &GatePath {
        &self.path
    }

    fn client(&self) -> Option<Arc<GateClient>> {
        self.client.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Presents a camera frame: an unreadable image is denied on the gate
    /// itself, without bothering the validator.
    pub async fn present_image(&self, image_bytes: &[u8]) -> Result<VerdictMessage, GateError> {
        Ok(self.present_image_outcome(image_bytes).await?.verdict)
    }

    /// Presents already-decoded QR text.
    pub async fn present_text(&self, text: &str) -> Result<VerdictMessage, GateError> {
        Ok(self.present_text_outcome(text).await?.verdict)
    }

    /// [`Self::present_image`], saying whether the gate decided offline.
    pub async fn present_image_outcome(&self, image_bytes: &[u8]) -> Result<Outcome, GateError> {
        match read_qr(image_bytes) {
            Ok(text) => self.present_text_outcome(&text).await,
            Err(e @ ReadError::TooLarge { .. }) => Err(GateError::Image(e)),
            Err(e) => {
                tracing::info!(gate = %self.path.key(), error = %e, "unreadable frame");
                Ok(Outcome::online(VerdictMessage::deny("", DenyReason::UnreadableQr, None)))
            }
        }
    }

    /// [`Self::present_text`], saying whether the gate decided offline.
    ///
    /// A card's answer (`KC1.`) shown to the camera is refused here, unsent: a card signs
    /// whatever challenge and window it is asked, so anyone holding a reader to a victim's
    /// card for a moment can collect answers for future windows and show them later as a
    /// QR code. Only an answer the gate's own reader got to its own fresh challenge counts
    /// ([`Self::tap_card`]).
    pub async fn present_text_outcome(&self, text: &str) -> Result<Outcome, GateError> {
        if text.starts_with(CARD_TAP_PREFIX) {
            tracing::warn!(gate = %self.path.key(), "card answer shown to the camera; refused");
            return Ok(Outcome::online(VerdictMessage::deny(&new_scan_id(), DenyReason::NotAPass, None)));
        }
        self.present(text).await
    }

    async fn present(&self, text: &str) -> Result<Outcome, GateError> {
        let run = self.run.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(off) = &self.offline else {
            let client = self.client().ok_or(kippu_mqtt::MqttError::Closed)?;
            return Ok(Outcome::online(client.scan_on_run(text, run.as_ref(), self.timeout).await?));
        };
        let mut scan_id = None;
        match self.client() {
            Some(client) if off.link_up.load(Ordering::SeqCst) => {
                let wait = if off.validator_up.load(Ordering::SeqCst) { self.timeout } else { off.opts.probe_timeout };
                match client.scan_on_run(text, run.as_ref(), wait).await {
                    Ok(v) if v.reason != Some(DenyReason::Timeout) => {
                        off.answered_online(&v, text, run);
                        return Ok(Outcome::online(v));
                    }
                    Ok(v) => {
                        if off.validator_up.swap(false, Ordering::SeqCst) {
                            tracing::warn!(gate = %self.path.key(), ?wait, "no verdict in time; deciding offline");
                        }
                        // The same id: should the scan reach a validator after all, the
                        // forwarded tap is recognised as that scan and counted once.
                        scan_id = Some(v.id);
                    }
                    Err(e) => tracing::warn!(gate = %self.path.key(), error = %e, "scan not sent; deciding offline"),
                }
            }
            _ => tracing::info!(gate = %self.path.key(), "broker unreachable; deciding offline"),
        }
        Ok(off.decide(scan_id.unwrap_or_else(new_scan_id), text, run))
    }

    /// A contactless card held to the reader: the gate sends the card a fresh random
    /// challenge, and the card's signed answer goes to the validator (or, offline, to the
    /// snapshot check) as the scan's pass text.
    ///
    /// An answer that is not this gate's challenge and window, signed for this gate, is
    /// refused with `BAD_SIGNATURE` before it is sent or decided: a recorded or
    /// precomputed answer played back by a card emulator would otherwise be judged only on
    /// its signature, which any answer the real card once gave has.
    pub async fn tap_card<C: Contactless + ?Sized>(&self, card: &C) -> Result<Outcome, GateError> {
        let gate = self.path.key();
        let window = kippu_domain::pass::window_at(kippu_mqtt::now_unix());
        // Unpredictable (a CSPRNG) so no answer can be collected before the tap it is for.
        let challenge: [u8; 8] = rand::random();
        let answer = card.answer(&gate, challenge, window);
        if answer.challenge != challenge || answer.window != window || answer.verify(&gate).is_err() {
            tracing::warn!(gate = %gate, "card answer does not answer this tap's challenge; refused");
            return Ok(Outcome::online(VerdictMessage::deny(&new_scan_id(), DenyReason::BadSignature, None)));
        }
        self.present(&answer.encode()).await
    }

    /// Sets the run the gate's vehicle works (`None` for a stop gate, or between runs);
    /// every scan from then on names it, so delay insurance knows who rode it.
    pub fn set_run(&self, run: Option<TripRef>) {
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = run;
    }

    /// Whether the gate can decide offline (it was set up with keys and a journal).
    pub fn has_offline_mode(&self) -> bool {
        self.offline.is_some()
    }

    /// Whether the gate's config link reaches the broker (always `false` without offline mode).
    pub fn broker_reachable(&self) -> bool {
        self.offline.as_ref().is_some_and(|o| o.link_up.load(Ordering::SeqCst))
    }

    /// The snapshot the gate decides with offline.
    pub fn snapshot(&self) -> Option<GateSnapshot> {
        let off = self.offline.as_ref()?;
        let state = off.state.lock().unwrap_or_else(|e| e.into_inner());
        state.snapshot().map(|(_, body)| body.clone())
    }

    /// Waits until a snapshot issued at `min_issued_at` or later is installed; returns
    /// its `issued_at`, or `None` on timeout (or without offline mode).
    pub async fn wait_snapshot(&self, min_issued_at: u64, timeout: Duration) -> Option<u64> {
        let off = self.offline.as_ref()?;
        let mut rx = off.installed.subscribe();
        let got = tokio::time::timeout(timeout, rx.wait_for(|v| v.is_some_and(|at| at >= min_issued_at))).await;
        match got {
            Ok(Ok(v)) => *v,
            _ => None,
        }
    }

    /// Config messages ignored (not signed by a trusted key, expired, for another gate, older…).
    pub fn rejected_configs(&self) -> u64 {
        self.offline.as_ref().map_or(0, |o| o.rejected.load(Ordering::Relaxed))
    }

    /// Forwarded taps a validator denied.
    pub fn disputed_taps(&self) -> u64 {
        self.offline.as_ref().map_or(0, |o| o.disputed.load(Ordering::Relaxed))
    }

    /// Station LAN datagrams dropped (from a device that is no neighbour, badly signed,
    /// stale, for another operator, or a copy of one already taken).
    pub fn dropped_neighbour_datagrams(&self) -> u64 {
        self.offline.as_ref().map_or(0, |o| o.neighbour_dropped.load(Ordering::Relaxed))
    }

    /// Verdicts ignored because no trusted validator signed them.
    pub fn rogue_verdicts(&self) -> u64 {
        self.client().map_or(0, |c| c.rogue_verdicts())
    }

    /// Taps decided offline and not yet acknowledged by a validator.
    pub fn pending_taps(&self) -> Vec<JournaledTap> {
        self.offline
            .as_ref()
            .map_or_else(Vec::new, |o| o.journal.lock().unwrap_or_else(|e| e.into_inner()).pending().to_vec())
    }

    /// Forwards the journaled taps now (the gate also does it on its own on reconnect,
    /// when a validator answers again, and every [`OfflineOptions::forward_interval`]).
    pub async fn forward_journal(&self) -> ForwardReport {
        match &self.offline {
            Some(off) => off.forward().await,
            None => ForwardReport::default(),
        }
    }

    /// Disconnects (the broker then publishes the gate's `offline` will only on an unclean drop).
    pub async fn disconnect(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.abort();
            let _ = t.await;
        }
        if let Some(link) = self.link.take() {
            link.stop().await;
        }
        let client = self.client.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(client) = client {
            match Arc::try_unwrap(client) {
                Ok(client) => client.disconnect().await,
                Err(_) => tracing::warn!("gate client still in use; dropped without a clean disconnect"),
            }
        }
    }
}

impl Drop for SimGate {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn new_scan_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The offline side of a gate, shared with its background tasks.
struct OfflineMode {
    gate_key: String,
    trusted: Vec<VerifyingKey>,
    opts: OfflineOptions,
    state: Mutex<Offline>,
    journal: Mutex<Journal>,
    client: Arc<ClientSlot>,
    /// The config link reaches the broker.
    link_up: Arc<AtomicBool>,
    /// The last scan (or forward) got a verdict.
    validator_up: AtomicBool,
    rejected: AtomicU64,
    disputed: AtomicU64,
    /// Station datagrams dropped (not from a neighbour, stale, replayed…).
    neighbour_dropped: AtomicU64,
    installed: watch::Sender<Option<u64>>,
    wake: Notify,
    forwarding: tokio::sync::Mutex<()>,
    forward_timeout: Duration,
    /// Sends entries to the neighbours (datagrams are small and never block for long).
    station_out: Option<std::net::UdpSocket>,
}

impl OfflineMode {
    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn decide(&self, id: String, text: &str, run: Option<TripRef>) -> Outcome {
        let now_ms = now_unix_millis();
        let now = now_ms / 1000;
        let scan = ScanRequest { v: PROTOCOL_VERSION, id, pass: text.to_owned(), ts: now_ms, trip: run };
        let unavailable = |why: &str| {
            tracing::warn!(gate = %self.gate_key, id = %scan.id, why, "cannot decide offline; staying shut");
            Outcome {
                verdict: VerdictMessage::deny(&scan.id, DenyReason::Timeout, None),
                offline: true,
                snapshot: None,
            }
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (decision, issued_at) = match state.decide(&scan, now) {
            Local::Decided(d, at) => (d, at),
            Local::NoSnapshot => return unavailable("no snapshot received"),
            Local::Expired(until) => return unavailable(&format!("snapshot expired at {until}")),
        };
        let entry = decision.entry.clone();
        let v = decision.verdict;
        tracing::info!(gate = %self.gate_key, id = %v.id, open = v.open, reason = ?v.reason, snapshot = issued_at, "offline verdict");
        if v.open {
            let tap = JournaledTap {
                scan: scan.clone(),
                gate: self.gate_key.clone(),
                at: now,
                ticket: v.ticket,
                snapshot: issued_at,
            };
            if let Err(e) = self.journal().append(tap) {
                // An entry that cannot be recorded is not let through.
                tracing::error!(gate = %self.gate_key, error = %e, "journal write failed; staying shut");
                return Outcome {
                    verdict: VerdictMessage::deny(&v.id, DenyReason::Timeout, v.ticket),
                    offline: true,
                    snapshot: Some(issued_at),
                };
            }
        }
        drop(state);
        if let Some(e) = entry {
            self.tell_neighbours(&e);
        }
        Outcome { verdict: v, offline: true, snapshot: Some(issued_at) }
    }

    fn answered_online(&self, v: &VerdictMessage, text: &str, run: Option<TripRef>) {
        self.validator_up.store(true, Ordering::SeqCst);
        if v.open {
            let now_ms = now_unix_millis();
            let scan =
                ScanRequest { v: PROTOCOL_VERSION, id: v.id.clone(), pass: text.to_owned(), ts: now_ms, trip: run };
            let entry = self.state.lock().unwrap_or_else(|e| e.into_inner()).mirror(&scan, v.ticket, now_ms / 1000);
            if let Some(e) = entry {
                self.tell_neighbours(&e);
            }
        }
        if !self.journal().pending().is_empty() {
            self.wake.notify_one();
        }
    }

    fn tell_neighbours(&self, entry: &kippu_domain::PeerEntry) {
        let (Some(station), Some(out)) = (&self.opts.station, &self.station_out) else { return };
        let Some(bytes) = station::encode(&self.gate_key, &station.key, entry) else { return };
        for (gate, _, addr) in &station.neighbours {
            if let Err(e) = out.send_to(&bytes, addr) {
                tracing::debug!(neighbour = %gate, error = %e, "neighbour out of reach");
            }
        }
    }

    async fn listen_to_neighbours(self: Arc<Self>, socket: tokio::net::UdpSocket, station: StationLink) {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
            let taken = station::decode(&buf[..n], &station.neighbours).and_then(|(gate, entry)| {
                self.state.lock().unwrap_or_else(|e| e.into_inner()).apply_neighbour(&gate, entry, now_unix())
            });
            match taken {
                Ok(applied) => tracing::debug!(gate = %self.gate_key, %from, applied, "neighbour entry"),
                Err(why) => {
                    self.neighbour_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(gate = %self.gate_key, %from, ?why, "neighbour datagram dropped");
                }
            }
        }
    }

    fn handle_config(&self, payload: &[u8], source: &str) -> Result<Installed, ConfigRejected> {
        let now = now_unix();
        let wire = SignedSnapshot::parse(payload)?;
        let pending = self.journal().pending().to_vec();
        let installed =
            self.state.lock().unwrap_or_else(|e| e.into_inner()).install(wire.clone(), &self.trusted, now, &pending)?;
        if let Installed::New(at) = installed {
            tracing::info!(gate = %self.gate_key, issued_at = at, valid_until = wire.body.valid_until, tickets = wire.body.tickets.len(), source, "snapshot installed");
            if let Some(dir) = &self.opts.snapshot_dir {
                if let Err(e) = journal::write_durably(&dir.join(SNAPSHOT_FILE), &wire.to_bytes()) {
                    tracing::error!(error = %e, "could not store the snapshot");
                }
            }
            self.installed.send_replace(Some(at));
        }
        Ok(installed)
    }

    fn load_stored_snapshot(&self) {
        let Some(dir) = &self.opts.snapshot_dir else { return };
        let path = dir.join(SNAPSHOT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                if let Err(e) = self.handle_config(&bytes, "stored") {
                    tracing::warn!(path = %path.display(), error = %e, "stored snapshot not usable");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "stored snapshot unreadable"),
        }
    }

    async fn forwarder(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.opts.forward_interval) => {}
            }
            if self.link_up.load(Ordering::SeqCst) && !self.journal().pending().is_empty() {
                let r = self.forward().await;
                if r.sent > 0 {
                    tracing::info!(gate = %self.gate_key, ?r, "journal forwarded");
                }
            }
        }
    }

    async fn forward(&self) -> ForwardReport {
        let _one_at_a_time = self.forwarding.lock().await;
        let mut report = ForwardReport::default();
        let client = self.client.read().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(client) = client else {
            report.remaining = self.journal().pending().len();
            return report;
        };
        let mut verdicts = client.subscribe_verdicts();
        let mut done = std::collections::HashSet::new();
        loop {
            let batch: Vec<JournaledTap> = self
                .journal()
                .pending()
                .iter()
                .filter(|t| !done.contains(&t.scan.id))
                .take(FORWARD_BATCH)
                .cloned()
                .collect();
            if batch.is_empty() {
                break;
            }
            let mut waiting = std::collections::HashSet::new();
            for tap in &batch {
                let payload = serde_json::to_vec(&tap.scan).expect("a scan serializes");
                if let Err(e) = client.publish_raw_scan(payload).await {
                    tracing::warn!(error = %e, "could not forward a journaled tap");
                    break;
                }
                report.sent += 1;
                waiting.insert(tap.scan.id.clone());
                done.insert(tap.scan.id.clone());
            }
            let answered = self.collect(&mut verdicts, &mut waiting, &mut report).await;
            if !waiting.is_empty() || !answered {
                self.validator_up.store(false, Ordering::SeqCst);
                break;
            }
            self.validator_up.store(true, Ordering::SeqCst);
        }
        report.remaining = self.journal().pending().len();
        report
    }

    /// Waits for the verdicts of `waiting` scans, acknowledging each in the journal.
    /// Returns whether any arrived.
    async fn collect(
        &self,
        verdicts: &mut broadcast::Receiver<VerdictMessage>,
        waiting: &mut std::collections::HashSet<String>,
        report: &mut ForwardReport,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + self.forward_timeout;
        let mut any = false;
        while !waiting.is_empty() {
            let v = match tokio::time::timeout_at(deadline, verdicts.recv()).await {
                Ok(Ok(v)) => v,
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                    tracing::warn!(missed = n, "verdicts missed while forwarding; the rest is sent again later");
                    continue;
                }
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            };
            if !waiting.remove(&v.id) {
                continue;
            }
            any = true;
            let now = now_unix();
            self.state.lock().unwrap_or_else(|e| e.into_inner()).acknowledged(&v.id, now);
            match self.journal().ack(&v, now) {
                Ok(_) => report.acknowledged += 1,
                Err(e) => tracing::error!(error = %e, "could not record a forwarded tap's verdict"),
            }
            if !v.open {
                report.disputed += 1;
                self.disputed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(gate = %self.gate_key, id = %v.id, reason = ?v.reason, "validator denied an entry the gate allowed offline");
            }
        }
        any
    }
}

impl LinkEvents for OfflineMode {
    fn connected(&self) {
        tracing::info!(gate = %self.gate_key, "config link up");
        self.wake.notify_one();
    }

    fn config(&self, payload: &[u8]) {
        if let Err(e) = self.handle_config(payload, "mqtt") {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(gate = %self.gate_key, error = %e, "config ignored");
        }
    }
}

/// Reads and verifies a snapshot file (the inspector's handheld, or a gate's store).
pub fn load_snapshot(path: &Path, trusted: &[VerifyingKey], now: u64) -> Result<GateSnapshot, InspectError> {
    let bytes = std::fs::read(path).map_err(|e| InspectError::Io(path.display().to_string(), e))?;
    Ok(SignedSnapshot::open(&bytes, trusted, now)?)
}

/// Why a handheld could not check a pass.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The snapshot file could not be read.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The snapshot is not usable.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// An inspector's check of a pass against a snapshot at `now`: the gate's offline
/// rules (the same [`kippu_domain::Validator`]), with no state carried between checks.
/// An inspection is not a ride: an accepted pass shows the rides the snapshot holds.
pub fn inspect(snapshot: &GateSnapshot, text: &str, now: u64) -> VerdictMessage {
    let mut v = snapshot.clone().into_inspector(ValidatorConfig::default());
    let scan =
        ScanRequest { v: PROTOCOL_VERSION, id: new_scan_id(), pass: text.to_owned(), ts: now * 1000, trip: None };
    let mut verdict = v.check(INSPECTOR_GATE, &scan, now).verdict;
    if verdict.open {
        verdict.rides_left =
            verdict.ticket.and_then(|id| snapshot.tickets.iter().rev().find(|t| t.id == id)).and_then(|t| t.rides_left);
    }
    verdict
}

/// One line a person reads on the gate display.
pub fn display(v: &VerdictMessage) -> String {
    if v.open {
        match (v.ticket, v.rides_left) {
            (Some(t), Some(r)) => format!("OPEN  ticket #{t}, {r} rides left"),
            (Some(t), None) => format!("OPEN  ticket #{t}"),
            _ => "OPEN".into(),
        }
    } else {
        let r = v.reason.unwrap_or(DenyReason::MalformedScan);
        format!("DENY  {} ({})", r.code(), r.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(text: &str) -> Vec<u8> {
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        let img = code.render::<image::Luma<u8>>().min_dimensions(200, 200).build();
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn reads_what_qrcode_wrote() {
        let text = "KP1.AQAAAAAAAAAHAAAAAQ";
        assert_eq!(read_qr(&png_of(text)).unwrap(), text);
    }

    #[test]
    fn bad_frames() {
        assert!(matches!(read_qr(b"not a png"), Err(ReadError::NotAnImage(_))));
        let blank = image::GrayImage::from_pixel(100, 100, image::Luma([255u8]));
        let mut out = std::io::Cursor::new(Vec::new());
        blank.write_to(&mut out, image::ImageFormat::Png).unwrap();
        assert_eq!(read_qr(&out.into_inner()), Err(ReadError::NoCode));
    }

    /// A PNG chunk: length, type, data, CRC-32 over type and data.
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut crc = !0u32;
        for &b in kind.iter().chain(data) {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&(!crc).to_be_bytes());
        c
    }

    /// A well-formed PNG header declaring `width`×`height` 8-bit RGBA pixels, with a token
    /// IDAT (an empty stored zlib block): a few dozen bytes.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(b"IDAT", &[0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01]));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    #[test]
    fn an_image_declaring_huge_dimensions_is_refused_from_its_header() {
        let bomb = png_claiming(100_000, 100_000);
        assert!(bomb.len() < 100, "{} bytes", bomb.len());
        let started = std::time::Instant::now();
        assert_eq!(read_qr(&bomb), Err(ReadError::TooLarge { width: 100_000, height: 100_000, max: MAX_IMAGE_SIDE }));
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "{:?}", started.elapsed());
        // One side too large is enough; at the limit the header passes and the (empty) data fails.
        assert!(matches!(read_qr(&png_claiming(MAX_IMAGE_SIDE + 1, 10)), Err(ReadError::TooLarge { .. })));
        assert!(matches!(read_qr(&png_claiming(10, MAX_IMAGE_SIDE + 1)), Err(ReadError::TooLarge { .. })));
        assert!(matches!(read_qr(&png_claiming(MAX_IMAGE_SIDE, 16)), Err(ReadError::NotAnImage(_))));
        // Real passes still read.
        assert_eq!(read_qr(&png_of("KP1.AQ")).unwrap(), "KP1.AQ");
    }

    #[test]
    fn display_lines() {
        assert_eq!(display(&VerdictMessage::open("a", 5, Some(2))), "OPEN  ticket #5, 2 rides left");
        assert_eq!(display(&VerdictMessage::deny("a", DenyReason::Expired, None)), "DENY  EXPIRED (ticket expired)");
    }
}
