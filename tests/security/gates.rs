//! Gates and the broker: a credential per gate, issued, rotated and revoked at once; TLS to
//! Mosquitto with the logins Kippu writes; a signed verdict for whatever arrives on a scan topic.

use std::time::Duration;

use kippu_domain::VerdictMessage;
use kippu_mqtt::{GateClient, MqttUrl};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestError, TestRunner};

use crate::mqtt_support::{Certs, Mosquitto};
use crate::support::{run_kippu, Prod};

/// Whether `url` lets a client in (CONNACK accepted) within a few seconds.
async fn logs_in(url: &MqttUrl) -> bool {
    let (client, mut events) = rumqttc::AsyncClient::new(url.options(&kippu_mqtt::client_id("probe")), 4);
    let ok = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                    return a.code == rumqttc::ConnectReturnCode::Success
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    let _ = client.disconnect().await;
    ok
}

/// Waits until `client`'s connection is closed by the broker (or `within` passes).
async fn cut_off(events: &mut rumqttc::EventLoop, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            if events.poll().await.is_err() {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false)
}

fn password_of(file: &std::path::Path) -> String {
    let doc: toml::Value = toml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    doc["password"].as_str().unwrap().to_owned()
}

/// `kippu gate add` gives a gate its own random password (shown once, written 0600, only its
/// hash kept); `rotate` replaces it and `revoke` withdraws it — each at once, live sessions too.
#[tokio::test]
async fn each_gate_has_its_own_credential_and_rotation_or_revocation_cuts_it_off_at_once() {
    let prod = Prod::new("gate-cli").await;
    let stack = prod.serve().await;
    let file = prod.config_file(&prod.cfg, "kippu.toml");
    let cli = |args: Vec<String>| {
        let file = file.clone();
        async move {
            let mut all = vec!["--config".to_owned(), file.to_str().unwrap().to_owned(), "gate".to_owned()];
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_kippu(&refs, &[], Duration::from_secs(60)).await
        }
    };
    let out_a = prod.dir.join("a.gate.toml");
    let (code, text, err) = cli(vec![
        "add".into(),
        "metro/central/g1".into(),
        "--station".into(),
        "Central".into(),
        "--out".into(),
        out_a.to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&out_a).unwrap().permissions().mode() & 0o777, 0o600);
    let first = password_of(&out_a);
    assert!(text.contains(&first), "shown once: {text}");
    let row = stack.store.credential("metro/central/g1").await.unwrap().unwrap();
    assert_eq!(row.secret_sha256, kippu_mqtt::credential_hash(&first));
    assert!(!row.secret_sha256.contains(&first) && !row.mosquitto_line.contains(&first), "only hashes are kept");
    let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&out_a).unwrap()).unwrap();
    assert_eq!(doc["verdict_key"].as_str().unwrap(), hex::encode(stack.verdict_key.to_bytes()));

    let broker = MqttUrl::parse(&stack.mqtt_url).unwrap();
    let gate = |password: &str| broker.clone().with_login("metro/central/g1", password);
    assert!(logs_in(&gate(&first)).await, "the gate logs in with its own password");
    assert!(!logs_in(&gate("not-its-password")).await);
    let validator_password = prod.secrets().text(kippu::secrets::SecretName::MqttValidatorPassword);
    assert!(!logs_in(&gate(&validator_password)).await, "another login's password");
    let (code, _, err) = cli(vec![
        "add".into(),
        "metro/central/g2".into(),
        "--station".into(),
        "C".into(),
        "--out".into(),
        prod.dir.join("b.gate.toml").to_str().unwrap().into(),
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(password_of(&prod.dir.join("b.gate.toml")), first, "each gate its own password");

    // A live session, then rotation: the old password stops working, the live session is cut.
    let (live, mut events) = rumqttc::AsyncClient::new(gate(&first).options(&kippu_mqtt::client_id("live")), 4);
    let connected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) = events.poll().await {
                return;
            }
        }
    })
    .await;
    assert!(connected.is_ok());
    let out_r = prod.dir.join("a2.gate.toml");
    let (code, _, err) =
        cli(vec!["rotate".into(), "metro/central/g1".into(), "--out".into(), out_r.to_str().unwrap().into()]).await;
    assert_eq!(code, Some(0), "{err}");
    let second = password_of(&out_r);
    assert!(cut_off(&mut events, Duration::from_secs(5)).await, "the live session on the old password is cut");
    drop(live);
    assert!(!logs_in(&gate(&first)).await, "the old password is refused");
    assert!(logs_in(&gate(&second)).await, "the new one works");

    let (code, _, err) = cli(vec!["revoke".into(), "metro/central/g1".into()]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(!logs_in(&gate(&second)).await, "a revoked gate is refused");
    let (code, _, err) = cli(vec!["revoke".into(), "metro/central/g1".into()]).await;
    assert_ne!(code, Some(0), "revoking twice says so");
    assert!(err.contains("no active credential"), "{err}");
    stack.shutdown().await;
}

/// Gates and the platform's validator reach Mosquitto over TLS (a certificate the test made),
/// with the password file and ACL Kippu writes; `kippu gate add` reloads Mosquitto at once;
/// plain TCP is not served.
#[tokio::test]
async fn gates_and_validators_reach_mosquitto_over_tls_with_the_logins_kippu_writes() {
    let certs = Certs::new();
    let mut prod = Prod::new("mosquitto").await;
    let Some(mosquitto) = Mosquitto::start(&certs, vec![]) else { return };
    let ca = prod.dir.join("ca.pem");
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    let dir = mosquitto.pid_file().parent().unwrap().to_owned();
    prod.cfg.mqtt.url = Some(format!("mqtts://127.0.0.1:{}", mosquitto.port));
    prod.cfg.mqtt.ca_file = Some(ca);
    prod.cfg.mqtt.mosquitto_password_file = Some(dir.join("passwd"));
    prod.cfg.mqtt.mosquitto_acl_file = Some(dir.join("kippu.acl"));
    prod.cfg.mqtt.mosquitto_pid_file = Some(mosquitto.pid_file());
    // The validators' login `kippu init` issued, written for this broker.
    let store = kippu_store::Store::connect(&prod.cfg.database_url()).await.unwrap();
    assert!(kippu::gates::sync_mosquitto(&prod.cfg, &store).await.unwrap());
    let stack = prod.serve().await;

    let file = prod.config_file(&prod.cfg, "kippu.toml");
    let out = prod.dir.join("g.gate.toml");
    let (code, text, err) = run_kippu(
        &[
            "--config",
            file.to_str().unwrap(),
            "gate",
            "add",
            "metro/central/g1",
            "--station",
            "Central",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("reloaded"), "{text}");
    let password = password_of(&out);
    let url = mosquitto.url(&certs).with_login("metro/central/g1", &password);
    assert!(logs_in(&url).await, "the new gate logs in over TLS at once");
    assert!(!logs_in(&mosquitto.url(&certs).with_login("metro/central/g1", "wrong")).await);
    let plain = MqttUrl::parse(&format!("mqtt://127.0.0.1:{}", mosquitto.port))
        .unwrap()
        .with_login("metro/central/g1", &password);
    assert!(!logs_in(&plain).await, "no plain MQTT");
    // The platform's validator (over TLS, with its sealed login) answers the gate, signed.
    let path = kippu::gates::parse_gate("metro/central/g1").unwrap();
    let gate = GateClient::connect(&url, path).await.unwrap();
    let mut verdict = gate.scan("not a pass", Duration::from_secs(10)).await.unwrap();
    for _ in 0..40 {
        if verdict.reason.map(|r| r.code()) != Some("UNKNOWN_GATE".into()) {
            break;
        }
        // The validator learns gates added after start on its next refresh.
        tokio::time::sleep(Duration::from_secs(1)).await;
        verdict = gate.scan("not a pass", Duration::from_secs(10)).await.unwrap();
    }
    assert!(verdict.verify(&[stack.verdict_key], "metro/central/g1"), "signed by the platform: {verdict:?}");
    stack.shutdown().await;
}

/// The embedded broker serves TLS with the certificate `kippu init` made for it: a gate that
/// trusts the deployment's CA logs in over TLS; plain MQTT and a client trusting only the public
/// roots are refused.
#[tokio::test]
async fn the_embedded_broker_serves_tls_with_the_certificate_init_made() {
    let mut prod = Prod::new("embedded-tls").await;
    let (ca, cert, key) = prod.init.broker_tls.clone().expect("init made the broker's certificate");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    prod.cfg.mqtt.tls_cert_file = Some(cert);
    prod.cfg.mqtt.tls_key_file = Some(key);
    prod.cfg.mqtt.ca_file = Some(ca.clone());
    let stack = prod.serve().await;
    assert!(stack.mqtt_url.starts_with("mqtts://"), "{}", stack.mqtt_url);
    let path = kippu::gates::parse_gate("metro/central/g1").unwrap();
    let password = kippu::gates::add(&stack.store, &path, "Central", None, false).await.unwrap();
    let tls = MqttUrl::parse(&stack.mqtt_url)
        .unwrap()
        .with_tls(kippu_mqtt::ClientTls::from_ca_file(&ca).unwrap())
        .with_login("metro/central/g1", &password);
    assert!(logs_in(&tls).await, "over TLS, trusting the deployment's CA");
    let public_roots = MqttUrl::parse(&stack.mqtt_url).unwrap().with_login("metro/central/g1", &password);
    assert!(!logs_in(&public_roots).await, "a client trusting only the public roots");
    let plain = MqttUrl::parse(&stack.mqtt_url.replace("mqtts://", "mqtt://"))
        .unwrap()
        .with_login("metro/central/g1", &password);
    assert!(!logs_in(&plain).await, "plain MQTT");
    stack.shutdown().await;
}

/// Whatever a gate publishes on its scan topic — noise, truncated or oversized JSON, scans with
/// garbage fields — `kippu serve`'s validator answers with exactly one verdict, closed, with a
/// reason, signed with the deployment's verdict key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_on_a_scan_topic_gets_a_signed_verdict_with_a_reason() {
    let prod = Prod::new("scans").await;
    let stack = prod.serve().await;
    let path = kippu::gates::parse_gate("metro/central/g1").unwrap();
    let password = kippu::gates::add(&stack.store, &path, "Central", None, false).await.unwrap();
    let url = MqttUrl::parse(&stack.mqtt_url).unwrap().with_login("metro/central/g1", &password);
    let gate = GateClient::connect(&url, path).await.unwrap();
    let trusted = [stack.verdict_key];
    let mut verdicts = gate.subscribe_verdicts();
    let rt = tokio::runtime::Handle::current();
    let payloads = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        ("[a-z0-9-]{0,40}", any::<u64>(), ".{0,200}").prop_map(|(id, ts, pass)| {
            serde_json::json!({"v": 1, "id": id, "ts": ts, "pass": pass}).to_string().into_bytes()
        }),
        (".{0,40}", proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(id, junk)| {
            let mut s = serde_json::json!({"v": 1, "id": id}).to_string().into_bytes();
            s.truncate(s.len() / 2);
            s.extend(junk);
            s
        }),
        Just(serde_json::json!({"v": 1, "id": "big", "pass": "A".repeat(200_000), "ts": 1}).to_string().into_bytes()),
    ];
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() });
    let verdicts_cell = tokio::sync::Mutex::new(&mut verdicts);
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&payloads, |payload| {
            rt.block_on(async {
                gate.publish_raw_scan(payload.clone()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
                let mut rx = verdicts_cell.lock().await;
                let v: VerdictMessage = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                    .await
                    .map_err(|_| TestCaseError::fail(format!("no verdict for {} bytes", payload.len())))?
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(v.verify(&trusted, "metro/central/g1"), "unsigned: {v:?}");
                prop_assert!(!v.open, "opened: {v:?}");
                prop_assert!(v.reason.is_some(), "no reason: {v:?}");
                Ok(())
            })
        })
    });
    if let Err(TestError::Fail(why, payload)) = outcome {
        panic!("{why}; payload of {} bytes", payload.len());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(verdicts.try_recv().is_err(), "one verdict per message, no more");
    stack.shutdown().await;
}
