//! Gates and validators over TLS with their own logins: through the secured embedded
//! broker's TLS front, and through a Mosquitto child running the shipped configuration
//! (TLS listener, password file and ACL written by Kippu). Certificates are made here.

use std::sync::Arc;

use kippu_mqtt::{
    mosquitto_password_line, Credentials, EmbeddedBroker, GateClient, GateOptions, Identity, MemoryCredentials, MqttUrl,
};
use rumqttc::{AsyncClient, ConnectionError, Event, Packet};

use crate::support::{Certs, Mosquitto};
use crate::{Fixture, PRELOADED, SCAN_TIMEOUT};

/// A validator logged in at `validator_url` signs the verdict for a pass shown at gate g1,
/// logged in at `gate_url`, and the gate (trusting only that key) opens.
async fn gate_gets_a_signed_verdict(fx: &Fixture, gate_url: &MqttUrl) {
    let signer = Arc::new(ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>()));
    let mut opts = fx.options(false, "validators");
    opts.signer = Some(signer.clone());
    let (h, mut taps) = fx.validator_on(&fx.url, opts).await;
    let trusted = GateOptions { trusted_validators: vec![signer.verifying_key()] };
    let gate = GateClient::connect_with(gate_url, fx.gate("g1"), trusted).await.expect("the gate logs in over TLS");
    let v = gate.scan(&fx.pass(PRELOADED), SCAN_TIMEOUT).await.unwrap();
    assert!(v.open, "{v:?}");
    assert!(v.verify(&[signer.verifying_key()], &fx.gate("g1").key()));
    let tap = tokio::time::timeout(SCAN_TIMEOUT, taps.recv()).await.unwrap().unwrap();
    assert_eq!(tap.ticket_id, PRELOADED);
    gate.disconnect().await;
    h.abort();
}

/// The first answer of a connection attempt to `url`: CONNACK, or why not.
async fn first_answer(url: &MqttUrl) -> Result<(), ConnectionError> {
    let (_client, mut eventloop) = AsyncClient::new(url.options(&kippu_mqtt::client_id("tls-probe")), 1);
    match tokio::time::timeout(SCAN_TIMEOUT, eventloop.poll()).await.expect("an answer in time")? {
        Event::Incoming(Packet::ConnAck(_)) => Ok(()),
        other => panic!("not a CONNACK: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secured_embedded_broker_serves_tls() {
    crate::init_tracing();
    let certs = Certs::new();
    let store = Arc::new(MemoryCredentials::new());
    let tls = certs.server_tls();
    let front_store = store.clone();
    let broker = tokio::task::spawn_blocking(move || {
        EmbeddedBroker::start_secured("127.0.0.1:0".parse().unwrap(), front_store, Some(tls))
    })
    .await
    .unwrap()
    .expect("TLS broker starts");
    assert!(broker.url().starts_with("mqtts://127.0.0.1:"), "{}", broker.url());
    let trusting = broker.mqtt_url().with_tls(certs.client_tls());

    let validator = store.issue(&Identity::Validator).unwrap();
    let fx = Fixture::new(validator.apply_to(&trusting));
    let gate = store.issue(&Identity::Gate(fx.gate("g1"))).unwrap();
    gate_gets_a_signed_verdict(&fx, &gate.apply_to(&trusting)).await;

    // The right login, but a client that trusts only the public roots: refused during the handshake.
    let untrusting = gate.apply_to(&broker.mqtt_url());
    assert!(matches!(first_answer(&untrusting).await, Err(ConnectionError::Tls(_))), "a client not trusting the CA");
    // Another CA altogether.
    let impostor = gate.apply_to(&broker.mqtt_url().with_tls(Certs::new().client_tls()));
    assert!(matches!(first_answer(&impostor).await, Err(ConnectionError::Tls(_))), "a client trusting another CA");
    // Plain MQTT on the TLS port gets no CONNACK.
    let plain = MqttUrl { tls: None, ..gate.apply_to(&trusting) };
    assert!(first_answer(&plain).await.is_err(), "plain TCP on the TLS port");
    // TLS, trusted, but a wrong password: refused by the front, as without TLS.
    let wrong = Credentials { password: kippu_mqtt::random_password(), ..gate.clone() };
    assert!(matches!(first_answer(&wrong.apply_to(&trusting)).await, Err(ConnectionError::ConnectionRefused(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_serves_tls_with_logins_written_by_kippu() {
    crate::init_tracing();
    let certs = Certs::new();
    // The fixture's operator is random; its logins are issued before Mosquitto starts.
    let issuer = MemoryCredentials::new();
    let validator = issuer.issue(&Identity::Validator).unwrap();
    let probe = Fixture::new(MqttUrl::parse("mqtt://127.0.0.1").unwrap());
    let gate = issuer.issue(&Identity::Gate(probe.gate("g1"))).unwrap();
    let lines = [&validator, &gate].iter().map(|l| mosquitto_password_line(&l.username, &l.password)).collect();
    let Some(broker) = Mosquitto::start(&certs, lines) else { return };
    let url = broker.url(&certs);
    let fx = Fixture { url: validator.apply_to(&url), ..probe };
    gate_gets_a_signed_verdict(&fx, &gate.apply_to(&url)).await;

    let untrusting = MqttUrl::parse(&format!("mqtts://127.0.0.1:{}", broker.port)).unwrap();
    assert!(matches!(first_answer(&gate.apply_to(&untrusting)).await, Err(ConnectionError::Tls(_))));
}
