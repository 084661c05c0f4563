//! Backups: the database, the sealed secrets and the deployment record in one file, without
//! the master key; restored into a fresh directory they serve the same travelers, tickets and
//! balances.

use std::time::Duration;

use kippu_e2e::Client;

use crate::support::{run_kippu, temp_dir, Prod};

const PASSWORD: &str = "correct horse battery staple";

/// A traveler signed up through the app, with FARE and a plan.
async fn traveler_with_a_plan(prod: &Prod, stack: &kippu::Stack) -> (Client, serde_json::Value) {
    let c = Client::new(&stack.web_url);
    let (status, _, page) = c
        .form(
            "/signup",
            &[("name", "Rei"), ("email", "rei@example.com"), ("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let me = c.me().await;
    let address: alloy::primitives::Address = me["address"].as_str().unwrap().parse().unwrap();
    // The custodial key, opened as the platform does, to buy (the relayer pays the gas).
    let row = stack.store.traveler(&address).await.unwrap().unwrap();
    let ks = kippu::serve::master_key(&prod.cfg).unwrap();
    let key = ks.open(&kippu_identity::SealedKey::parse(row.sealed_key.as_deref().unwrap()).unwrap()).unwrap();
    crate::chain::buy_plan(stack, &key).await;
    let me = c.me().await;
    assert_eq!(me["tickets"].as_array().unwrap().len(), 2, "{me}");
    (c, me)
}

/// `kippu backup`, then `kippu restore` into a fresh data directory and database: the restored
/// platform serves the same travelers (who sign in with their password), tickets and balances.
/// The backup holds no master key; a restore refuses to write over an existing deployment.
#[tokio::test]
async fn a_backup_restores_into_a_fresh_directory_and_serves_the_same_travelers_tickets_and_balances() {
    let prod = Prod::new("backup").await;
    let stack = prod.serve().await;
    let (_, before) = traveler_with_a_plan(&prod, &stack).await;
    stack.shutdown().await;

    let file = prod.config_file(&prod.cfg, "kippu.toml");
    let out = prod.dir.join("kippu.backup");
    let (code, text, err) = run_kippu(
        &["--config", file.to_str().unwrap(), "backup", "--out", out.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("master key is not in it"), "{text}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let master = std::fs::read_to_string(prod.cfg.master_key_path()).unwrap();
    let backup = std::fs::read_to_string(&out).unwrap();
    assert!(!backup.contains(master.trim()), "the master key is not in the backup");

    // A fresh machine: only the master key is carried over, apart from the backup.
    let fresh = temp_dir("restored");
    let mut cfg = prod.cfg.clone();
    cfg.data_dir = fresh.clone();
    cfg.database.url = Some(format!("sqlite://{}", fresh.join("kippu.db").display()));
    cfg.mqtt.embedded_bind = format!("127.0.0.1:{}", crate::support::free_port());
    kippu::secrets::create_private(&cfg.master_key_path(), master.as_bytes()).unwrap();
    let fresh_file = prod.config_file(&cfg, "restored.toml");
    let restore = |f: &std::path::Path| {
        let (f, out) = (f.to_owned(), out.clone());
        async move {
            run_kippu(
                &["--config", f.to_str().unwrap(), "restore", "--from", out.to_str().unwrap()],
                &[],
                Duration::from_secs(60),
            )
            .await
        }
    };
    let (code, _, err) = restore(&fresh_file).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = restore(&fresh_file).await;
    assert_ne!(code, Some(0), "a second restore over the first is refused");
    assert!(err.contains("fresh"), "{err}");

    let restored = kippu::serve::serve(cfg).await.expect("the restored deployment serves");
    let c = Client::new(&restored.web_url);
    let (status, _, page) = c.form("/signin/password", &[("email", "rei@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(status, 200, "{page}");
    let after = c.me().await;
    assert_eq!(after["address"], before["address"]);
    assert_eq!(after["balance"], before["balance"], "{after}");
    assert_eq!(after["tickets"], before["tickets"]);
    restored.shutdown().await;
}
