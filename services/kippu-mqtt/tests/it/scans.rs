//! Property: whatever a registered gate publishes on its `scan` topic (random bytes,
//! truncated or oversized JSON, well-formed scans with garbage inside), it gets exactly
//! one verdict, signed by the validator for that gate, closed, with a reason, and
//! carrying the scan's id when the scan had a readable one (empty otherwise, as
//! [`kippu_domain::VerdictMessage::id`] documents). One secured broker, validator and
//! gate serve every case.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kippu_domain::verdict::{ScanRequest, MAX_SCAN_BYTES};
use kippu_domain::VerdictMessage;
use kippu_mqtt::{EmbeddedBroker, GateClient, Identity, MemoryCredentials};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde_json::{json, Value};

use crate::{Fixture, SCAN_TIMEOUT};

/// Cases per run: enough variety, still a few seconds.
const CASES: u32 = 96;
/// After the last case: how long an extra, unasked-for verdict gets to show up.
const QUIET: Duration = Duration::from_millis(500);

/// Pass texts of every kind the validator tells apart, mostly broken.
fn pass_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(KP1|KP2|KC1)\\.[A-Za-z0-9_\\-\\.]{0,200}",
        "KP1\\.[A-Za-z0-9_\\-]{100,400}",
        "KC1\\.[A-Za-z0-9_\\-\\.]{0,120}",
        "[ -~]{0,3000}",
    ]
}

/// A well-formed scan (which may still carry a bad trip, an old clock, ...).
fn scan_json() -> impl Strategy<Value = Value> {
    let trip = prop_oneof![
        Just(Value::Null),
        ("[ -~]{0,140}", proptest::option::of("[0-9]{6,10}")).prop_map(|(id, date)| json!({"id": id, "date": date})),
    ];
    ("[ -~]{0,70}", pass_text(), any::<u64>(), trip, 0u8..3).prop_map(|(id, pass, ts, trip, v)| {
        let mut scan = json!({"v": v, "id": id, "pass": pass, "ts": ts});
        if !trip.is_null() {
            scan["trip"] = trip;
        }
        scan
    })
}

/// Any JSON value of a few shapes, for fields that should hold something else.
fn garbage_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinities", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::from),
        Just(json!({"id": "nested", "pass": {}})),
    ]
}

/// Payloads a gate might publish, from noise to almost-right scans.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![Just("v"), Just("id"), Just("pass"), Just("ts"), Just("trip"), Just("extra")];
    prop_oneof![
        // Noise.
        proptest::collection::vec(any::<u8>(), 0..3000),
        // Well-formed scans with plausible contents.
        scan_json().prop_map(|s| s.to_string().into_bytes()),
        // A field replaced by garbage.
        (scan_json(), field, garbage_value()).prop_map(|(mut s, f, g)| {
            s[f] = g;
            s.to_string().into_bytes()
        }),
        // Truncated anywhere.
        (scan_json(), any::<prop::sample::Index>()).prop_map(|(s, cut)| {
            let bytes = s.to_string().into_bytes();
            bytes[..cut.index(bytes.len() + 1)].to_vec()
        }),
        // Oversized, up to what the broker carries (a gate's snapshot size).
        (prop::sample::select(vec![MAX_SCAN_BYTES + 1, 70_000, 1 << 20, kippu_domain::snapshot::MAX_SNAPSHOT_BYTES]))
            .prop_map(|n| {
                let pad = "A".repeat(n);
                json!({"v": 1, "id": "oversized", "pass": pad, "ts": 1}).to_string().into_bytes()
            }),
    ]
}

/// The id the verdict must carry: the scan's, when the validator could read the scan.
fn expected_id(payload: &[u8]) -> String {
    ScanRequest::parse(payload).map(|r| r.id).unwrap_or_default()
}

#[test]
fn every_scan_gets_one_signed_closed_verdict() {
    crate::init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let store = Arc::new(MemoryCredentials::new());
    let front_store = store.clone();
    let broker = EmbeddedBroker::start_secured("127.0.0.1:0".parse().unwrap(), front_store, None).unwrap();
    let validator_login = store.issue(&Identity::Validator).unwrap();
    let fx = Fixture::new(validator_login.apply_to(&broker.mqtt_url()));
    let gate_path = fx.gate("g1");
    let gate_login = store.issue(&Identity::Gate(gate_path.clone())).unwrap();

    let signer = Arc::new(ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>()));
    let (handle, gate) = rt.block_on(async {
        let mut opts = fx.options(false, "validators");
        opts.signer = Some(signer.clone());
        let (handle, _taps) = fx.validator_on(&fx.url, opts).await;
        let gate = GateClient::connect(&gate_login.apply_to(&broker.mqtt_url()), gate_path.clone()).await.unwrap();
        (handle, gate)
    });
    // `run` takes an `Fn`; the cases run one after another on this thread.
    let verdicts = tokio::sync::Mutex::new(gate.subscribe_verdicts());
    let published = AtomicU64::new(0);
    let gate_key = gate_path.key();
    let trusted = [signer.verifying_key()];

    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let outcome = runner.run(&payload(), |payload| {
        rt.block_on(async {
            gate.publish_raw_scan(payload.clone()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            published.fetch_add(1, Ordering::SeqCst);
            let mut verdicts = verdicts.lock().await;
            let v: VerdictMessage = tokio::time::timeout(SCAN_TIMEOUT, verdicts.recv())
                .await
                .map_err(|_| TestCaseError::fail(format!("no verdict for a {}-byte payload", payload.len())))?
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(v.verify(&trusted, &gate_key), "not signed for this gate by the validator: {v:?}");
            prop_assert!(!v.open, "opened: {v:?}");
            prop_assert!(v.reason.is_some(), "no reason: {v:?}");
            prop_assert_eq!(&v.id, &expected_id(&payload), "verdict id");
            Ok(())
        })
    });
    match outcome {
        Ok(()) => {}
        // Shown shortened: a failing payload may be megabytes.
        Err(TestError::Fail(why, payload)) => {
            let head = String::from_utf8_lossy(&payload[..payload.len().min(300)]).into_owned();
            panic!("{why}; minimal payload: {} bytes, starting {head:?}", payload.len());
        }
        Err(TestError::Abort(why)) => panic!("proptest aborted: {why}"),
    }

    // Exactly one each: nothing more arrives, and the validator sent no more than asked.
    rt.block_on(async {
        tokio::time::sleep(QUIET).await;
        assert!(verdicts.lock().await.try_recv().is_err(), "an extra verdict arrived");
        assert_eq!(handle.verdicts(), published.load(Ordering::SeqCst));
        handle.abort();
    });
}
