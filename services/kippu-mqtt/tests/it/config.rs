//! The platform's config publisher: every gate's retained config over one connection,
//! through broker restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kippu_domain::topics::GatePath;
use kippu_mqtt::{
    mosquitto_password_line, ConfigPublisher, EmbeddedBroker, Identity, MemoryCredentials, MqttError, MqttUrl,
};
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::proxy::Proxy;
use crate::support::{Certs, Mosquitto};
use crate::{rand_hex, SCAN_TIMEOUT};

const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything published under `filter` from the moment this returns (subscribed), retained first.
async fn watch(url: &MqttUrl, filter: &str) -> (mpsc::UnboundedReceiver<Publish>, JoinHandle<()>) {
    let mut options = url.options(&kippu_mqtt::client_id("config-watch"));
    options.set_max_packet_size(kippu_mqtt::MAX_PACKET_BYTES, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (subscribed_tx, subscribed) = oneshot::channel();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let _client = client; // dropping it would end the event loop
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await.expect("watcher stays connected") {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send(p);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(SCAN_TIMEOUT, subscribed).await.expect("subscribed in time").unwrap();
    (rx, task)
}

/// The retained config of `gate`, as the gate gets it when it subscribes.
async fn retained_config(url: &MqttUrl, gate: &GatePath) -> Vec<u8> {
    let (mut rx, task) = watch(url, &gate.topic("config")).await;
    let p = tokio::time::timeout(SCAN_TIMEOUT, rx.recv()).await.expect("a retained config").unwrap();
    task.abort();
    assert!(p.retain, "arrived live, not retained");
    p.payload.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_gates_configs_go_over_one_connection() {
    crate::init_tracing();
    let broker =
        tokio::task::spawn_blocking(|| EmbeddedBroker::start("127.0.0.1:0".parse().unwrap())).await.unwrap().unwrap();
    let proxy = Proxy::start(&broker.mqtt_url()).await;
    let publisher = Arc::new(ConfigPublisher::spawn(&proxy.url(), ACK_TIMEOUT));
    let op = format!("op-{}", rand_hex());
    const GATES: usize = 200;
    let gates: Vec<GatePath> = (0..GATES).map(|i| GatePath::new(&op, "st", &format!("g{i}")).unwrap()).collect();
    // Watching live: rumqttd hands a new subscriber at most its in-flight window (100) of
    // retained messages, so a wildcard subscription afterwards would not see them all.
    let (mut live, watcher) = watch(&broker.mqtt_url(), &format!("kippu/v1/gates/{op}/+/+/config")).await;
    // A shared snapshot for all gates, as the platform signs one per operator.
    let snapshot = kippu_mqtt::Bytes::from(vec![7u8; 16 * 1024]);
    let mut publishes = tokio::task::JoinSet::new();
    for g in &gates {
        let (publisher, g, snapshot) = (publisher.clone(), g.clone(), snapshot.clone());
        publishes.spawn(async move { publisher.publish(&g, snapshot).await });
    }
    while let Some(r) = publishes.join_next().await {
        r.unwrap().expect("acknowledged");
    }
    // A gate-specific one after the shared ones: the newest retained config wins.
    publisher.publish(&gates[0], b"newest".to_vec()).await.unwrap();

    let mut got = HashMap::new();
    while got.len() < GATES || got.get(&gates[0].topic("config")) != Some(&b"newest".to_vec()) {
        let p = tokio::time::timeout(SCAN_TIMEOUT, live.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {GATES} configs arrived", got.len()))
            .unwrap();
        got.insert(p.topic.clone(), p.payload.to_vec());
    }
    watcher.abort();
    assert!(gates[1..].iter().all(|g| got[&g.topic("config")] == snapshot));
    // And each is retained for its gate.
    for g in [&gates[1], &gates[GATES - 1]] {
        assert_eq!(retained_config(&broker.mqtt_url(), g).await, snapshot);
    }
    assert_eq!(retained_config(&broker.mqtt_url(), &gates[0]).await, b"newest");
    assert_eq!((proxy.accepted(), publisher.connections()), (1, 1), "one connection for all gates");
    assert!(publisher.client_id().starts_with("kippu-config-"), "{}", publisher.client_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_survives_a_broker_restart() {
    crate::init_tracing();
    let certs = Certs::new();
    let issuer = MemoryCredentials::new();
    let validator = issuer.issue(&Identity::Validator).unwrap();
    let gate = GatePath::new(&format!("op-{}", rand_hex()), "st", "g1").unwrap();
    let gate_login = issuer.issue(&Identity::Gate(gate.clone())).unwrap();
    let lines = [&validator, &gate_login].iter().map(|l| mosquitto_password_line(&l.username, &l.password)).collect();
    let Some(mut broker) = Mosquitto::start(&certs, lines) else { return };
    let url = broker.url(&certs);

    let publisher = ConfigPublisher::spawn(&validator.apply_to(&url), ACK_TIMEOUT);
    publisher.publish(&gate, b"before".to_vec()).await.unwrap();
    assert_eq!(retained_config(&gate_login.apply_to(&url), &gate).await, b"before");

    // The broker dies (its retained messages with it: the tests run it without persistence),
    // and a publish comes while it is away.
    broker.kill();
    let publisher = Arc::new(publisher);
    let pending = tokio::spawn({
        let (publisher, gate) = (publisher.clone(), gate.clone());
        async move { publisher.publish(&gate, b"after".to_vec()).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!pending.is_finished(), "acknowledged by a dead broker?");
    let broker = tokio::task::spawn_blocking(move || {
        broker.restart();
        broker
    })
    .await
    .unwrap();
    pending.await.unwrap().expect("the publish waiting through the outage is acknowledged");
    assert_eq!(publisher.connections(), 2, "reconnected once");
    assert_eq!(retained_config(&gate_login.apply_to(&url), &gate).await, b"after");
    drop(broker);
}

#[tokio::test]
async fn an_unacknowledged_publish_times_out() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let publisher = ConfigPublisher::spawn(
        &MqttUrl::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap(),
        Duration::from_millis(300),
    );
    let gate = GatePath::new("op", "st", "g1").unwrap();
    let e = publisher.publish(&gate, b"x".to_vec()).await.unwrap_err();
    assert!(matches!(e, MqttError::Unacknowledged(_)), "{e}");
    assert_eq!(publisher.connections(), 0);
}
