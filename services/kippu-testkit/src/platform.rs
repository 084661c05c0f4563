//! [`FakePlatform`]: the running platform's services as the web layer calls them, recording
//! each call for tests to assert on. Catching up is a no-op (the [`crate::FakeChain`] books
//! every event as it mines it), the gate fleet is whatever the test sets.

use std::sync::Mutex;

use alloy_primitives::Address;
use async_trait::async_trait;
use kippu_web::{GateStatus, Platform};

/// A call the web layer made to the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformCall {
    /// An operator imported a timetable (its trips counted).
    TimetableImported {
        /// The operator.
        operator_id: u32,
        /// Trips in the new timetable.
        trips: usize,
    },
    /// An account key was revoked (by the traveler, or by erasure).
    KeyRevoked(Address),
    /// A card was bound to a ticket.
    CardBound {
        /// The card's key.
        card_key: [u8; 32],
        /// The ticket.
        ticket_id: u64,
        /// The account's binding signature, 65 bytes.
        sig_len: usize,
    },
    /// A card's binding was removed.
    CardUnbound([u8; 32]),
    /// A phone's device key was revoked.
    DeviceRevoked([u8; 32]),
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<PlatformCall>,
    gates: Vec<GateStatus>,
    catch_ups: usize,
    metrics: String,
}

/// Platform services in memory.
#[derive(Debug)]
pub struct FakePlatform {
    state: Mutex<State>,
}

impl Default for FakePlatform {
    fn default() -> Self {
        Self::new(vec![])
    }
}

impl FakePlatform {
    /// A platform whose fleet page shows `gates`.
    pub fn new(gates: Vec<GateStatus>) -> Self {
        Self {
            state: Mutex::new(State {
                gates,
                metrics: "# TYPE kippu_up gauge\nkippu_up 1\n".into(),
                ..Default::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every call made so far, oldest first.
    pub fn calls(&self) -> Vec<PlatformCall> {
        self.state().calls.clone()
    }

    /// How often the web layer waited for the ledger follower.
    pub fn catch_ups(&self) -> usize {
        self.state().catch_ups
    }

    /// Replaces the gate fleet.
    pub fn set_gates(&self, gates: Vec<GateStatus>) {
        self.state().gates = gates;
    }

    /// Replaces the metrics text.
    pub fn set_metrics(&self, text: &str) {
        self.state().metrics = text.to_owned();
    }
}

#[async_trait]
impl Platform for FakePlatform {
    async fn catch_up(&self) {
        self.state().catch_ups += 1;
    }

    async fn gates(&self) -> Vec<GateStatus> {
        self.state().gates.clone()
    }

    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable) {
        let trips = timetable.summary.trips;
        self.state().calls.push(PlatformCall::TimetableImported { operator_id, trips });
    }

    async fn key_revoked(&self, holder: Address) {
        self.state().calls.push(PlatformCall::KeyRevoked(holder));
    }

    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>) {
        self.state().calls.push(PlatformCall::CardBound { card_key, ticket_id, sig_len: sig.len() });
    }

    async fn card_unbound(&self, card_key: [u8; 32]) {
        self.state().calls.push(PlatformCall::CardUnbound(card_key));
    }

    async fn device_revoked(&self, device_key: [u8; 32]) {
        self.state().calls.push(PlatformCall::DeviceRevoked(device_key));
    }

    async fn metrics(&self) -> String {
        self.state().metrics.clone()
    }
}
