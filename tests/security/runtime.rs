//! The production runtime: what `kippu serve` refuses, what `kippu init` writes, what a default
//! build holds.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{free_port, listening, run_kippu, stripe_secret, temp_dir, Prod};

const START: Duration = Duration::from_secs(60);

/// `kippu serve` on an empty data directory: every missing secret and record is named, the
/// exit code is not 0, and nothing ever listened.
#[tokio::test]
async fn serve_refuses_to_start_without_its_secrets_or_deployment_naming_each_setting() {
    let dir = temp_dir("empty");
    let port = free_port();
    let mqtt_port = free_port();
    let (code, _, err) = run_kippu(
        &["serve"],
        &[
            ("KIPPU_DATA_DIR", dir.to_str().unwrap()),
            ("KIPPU_WEB_BIND", &format!("127.0.0.1:{port}")),
            ("KIPPU_MQTT_EMBEDDED_BIND", &format!("127.0.0.1:{mqtt_port}")),
        ],
        START,
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    for setting in
        ["identity.master_key_file", "deployment_file", "chain.rpc_url", "stripe.secret_key", "stripe.webhook_secret"]
    {
        assert!(err.contains(setting), "{setting} not named in:\n{err}");
    }
    assert!(err.contains("fix:"), "each refusal says how to fix it:\n{err}");
    assert!(!listening(port) && !listening(mqtt_port));
    assert!(!dir.join("kippu.db").exists(), "refused before touching the database");
}

/// Every secret setting refuses the demo's public values, even on a deployment that is
/// otherwise fine: the master key, the Stripe keys, the staff password.
#[tokio::test]
async fn serve_refuses_the_demos_public_secrets_in_every_setting() {
    let prod = Prod::new("dev-secrets").await;
    let file = prod.config_file(&prod.cfg, "kippu.toml");
    let (code, _, err) = run_kippu(
        &["--config", file.to_str().unwrap(), "serve"],
        &[
            ("KIPPU_MASTER_KEY", kippu::dev::DEV_MASTER_KEY),
            ("KIPPU_STRIPE_SECRET_KEY", kippu::dev::DEV_STRIPE_SECRET_KEY),
            ("KIPPU_STRIPE_WEBHOOK_SECRET", kippu::dev::DEV_STRIPE_WEBHOOK_SECRET),
            ("KIPPU_PORTAL_PASSWORD", kippu::dev::DEV_PORTAL_PASSWORD),
            ("KIPPU_DEV_ROUTES", "1"),
            ("KIPPU_ADMIN_KEY", crate::support::DEPLOYER_KEY),
        ],
        START,
    )
    .await;
    assert_eq!(code, Some(2), "{err}");
    for setting in [
        "identity.master_key",
        "stripe.secret_key",
        "stripe.webhook_secret",
        "web.portal_password",
        "web.dev_routes",
        "chain.admin_key",
    ] {
        assert!(err.contains(setting), "{setting} not refused:\n{err}");
    }
    assert!(err.contains("public value"), "{err}");
    assert!(!listening(prod.web_port));
}

/// anvil's (and Hardhat's, from the same mnemonic) well-known keys, as the node itself prints
/// them, are refused wherever a key is configured.
#[tokio::test]
async fn serve_refuses_anvils_well_known_keys() {
    let anvil = kippu_e2e::repo().join("contracts/node_modules/.bin/anvil");
    let port = free_port().to_string();
    let mut child = tokio::process::Command::new(anvil)
        .args(["--accounts", "20", "--port", &port])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 4096];
        while !out.contains("Wallet") {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "anvil stopped: {out}");
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("anvil prints its accounts");
    // Keep reading what it prints, so it never writes into a closed pipe.
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        let mut sink = [0u8; 4096];
        while matches!(stdout.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let section = &out[out.find("Private Keys").unwrap()..];
    let keys: Vec<&str> = section.split_whitespace().filter(|w| w.starts_with("0x") && w.len() == 66).collect();
    assert_eq!(keys.len(), 20, "{section}");
    for key in &keys {
        assert!(kippu::secrets::denylist::is_denied(key), "{key} is not denied");
        let mut cfg = kippu::Config::default();
        cfg.insurance.reporter_keys = vec![(*key).to_owned()];
        let refused = kippu::serve::check_settings(&cfg);
        assert!(refused.iter().any(|r| r.setting.starts_with("insurance.reporter_keys")), "{key}: {refused:?}");
    }
}

/// Runs of hex digits exactly 64 long, and Stripe-shaped keys, in `text`.
fn key_shaped(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let word = |c: u8| c.is_ascii_alphanumeric();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_hexdigit()
            && (i == 0 || !word(b[i - 1]) || (i >= 2 && &b[i - 2..i] == b"0x" && (i == 2 || !word(b[i - 3]))))
        {
            let start = i;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i - start == 64 && (i == b.len() || !word(b[i])) {
                out.push(text[start..i].to_ascii_lowercase());
            }
            continue;
        }
        i += 1;
    }
    for prefix in ["sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_"] {
        for (at, _) in text.match_indices(prefix) {
            if at > 0 && word(b[at - 1]) {
                continue;
            }
            let end =
                text[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(text.len(), |e| at + e);
            if end - at > prefix.len() {
                out.push(text[at..end].to_owned());
            }
        }
    }
    out
}

/// Every key-shaped string committed to this repository is on the denylist, so none of them
/// can ever guard production. A new test key, vector or fixture must be listed (the failure
/// prints the lines to add to services/kippu/src/secrets/denylist.txt).
#[test]
fn serve_refuses_every_key_shaped_string_committed_to_the_repository() {
    assert_eq!(key_shaped("x 0xAB"), Vec::<String>::new());
    assert_eq!(key_shaped(&format!("k=0x{}", "ab".repeat(32))), vec!["ab".repeat(32)]);
    assert_eq!(key_shaped("s = \"sk_test_abc\""), vec!["sk_test_abc".to_owned()]);
    let repo = kippu_e2e::repo();
    let files = std::process::Command::new("git").arg("ls-files").current_dir(&repo).output().unwrap();
    assert!(files.status.success(), "git ls-files");
    let skip = |f: &str| {
        f.ends_with(".lock")
            || f.ends_with("package-lock.json")
            || f.ends_with(".png")
            || f.ends_with(".zip")
            || f.ends_with(".pb")
            || f.ends_with(".gas-snapshot")
            || f.starts_with("contracts/abi/")
            || f == "services/kippu/src/secrets/denylist.txt"
            || f == "tests/security/runtime.rs"
    };
    let mut missing = BTreeSet::new();
    let mut seen = 0;
    for f in String::from_utf8(files.stdout).unwrap().lines().filter(|f| !skip(f)) {
        let Ok(text) = std::fs::read_to_string(repo.join(f)) else { continue };
        for k in key_shaped(&text) {
            seen += 1;
            if !kippu::secrets::denylist::is_denied(&k) {
                missing.insert(format!("{k}  # {f}"));
            }
        }
    }
    assert!(seen > 20, "the scan finds the committed test keys ({seen})");
    assert!(
        missing.is_empty(),
        "key-shaped strings committed but not denied; add to services/kippu/src/secrets/denylist.txt:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// A deployment record that is missing, names another chain, or whose recorded code differs
/// from what is at its addresses is refused, and `kippu serve` never deploys in its place.
#[tokio::test]
async fn serve_refuses_a_missing_or_foreign_deployment_and_never_deploys() {
    let prod = Prod::new("foreign").await;
    let chain = alloy::providers::ProviderBuilder::new().connect_http(prod.anvil.url().parse().unwrap());
    use alloy::providers::Provider as _;
    let block = chain.get_block_number().await.unwrap();
    let record = std::fs::read(prod.cfg.deployment_path()).unwrap();

    let mut other_chain: serde_json::Value = serde_json::from_slice(&record).unwrap();
    other_chain["chain_id"] = (other_chain["chain_id"].as_u64().unwrap() + 1).into();
    let mut other_code: serde_json::Value = serde_json::from_slice(&record).unwrap();
    let hashes = other_code["code_hashes"].as_object_mut().expect("code hashes recorded");
    let first = hashes.keys().next().unwrap().clone();
    hashes.insert(first, format!("0x{}", "11".repeat(32)).into());

    for (what, doc) in [("another chain", Some(other_chain)), ("other code", Some(other_code)), ("missing", None)] {
        let dir = temp_dir("rec");
        let mut cfg = prod.cfg.clone();
        cfg.deployment_file = Some(dir.join("deployment.json"));
        if let Some(doc) = doc {
            std::fs::write(dir.join("deployment.json"), serde_json::to_vec(&doc).unwrap()).unwrap();
        }
        match kippu::serve::serve(cfg).await {
            Err(kippu::serve::ServeError::Refused(r)) => {
                assert!(r.iter().any(|r| r.setting.starts_with("deployment_file")), "{what}: {r:?}")
            }
            Err(e) => panic!("{what}: refused for another reason: {e}"),
            Ok(_) => panic!("{what}: kippu serve started"),
        }
        assert!(!listening(prod.web_port), "{what}: nothing listens");
    }
    assert_eq!(chain.get_block_number().await.unwrap(), block, "no transaction was sent: nothing deployed or seeded");
}

/// `kippu init` gives each role its own key: the cold admin only grants roles and pauses, each
/// hot key holds exactly its roles, and the deployer keeps nothing.
#[tokio::test]
async fn init_grants_each_role_to_its_own_key_and_the_deployer_keeps_none() {
    use kippu_chain::bindings::{Clearing, DelayInsurance, FareToken, PlanMarket, Ticket};
    let prod = Prod::new("roles").await;
    let d = &prod.init.deployment;
    let p = alloy::providers::ProviderBuilder::new().connect_http(prod.anvil.url().parse().unwrap());
    let role = |n: &str| alloy::primitives::keccak256(n.as_bytes());
    let admin_role = alloy::primitives::B256::ZERO;
    let deployer: alloy::signers::local::PrivateKeySigner = crate::support::DEPLOYER_KEY.parse().unwrap();
    let r = &d.roles;
    let keys = [r.admin, r.minter, r.relayer, r.settler, r.catalog, r.attestor, deployer.address()];
    let distinct: BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "every role has its own key");

    let fare = FareToken::new(d.fare, &p);
    let market = PlanMarket::new(d.market, &p);
    let ticket = Ticket::new(d.ticket, &p);
    let clearing = Clearing::new(d.clearing, &p);
    let insurance = DelayInsurance::new(d.insurance, &p);
    // (contract, role, holder) triples that must hold; every other (role, key) pair must not.
    let expected = [
        ("fare", admin_role, r.admin),
        ("market", admin_role, r.admin),
        ("ticket", admin_role, r.admin),
        ("clearing", admin_role, r.admin),
        ("insurance", admin_role, r.admin),
        ("market", role("PAUSER_ROLE"), r.admin),
        ("fare", role("MINTER_ROLE"), r.minter),
        ("market", role("RELAYER_ROLE"), r.relayer),
        ("insurance", role("REDEEMER_ROLE"), r.relayer),
        ("clearing", role("SETTLER_ROLE"), r.settler),
        ("clearing", role("ANCHOR_ROLE"), r.settler),
        ("ticket", role("VALIDATOR_ROLE"), r.settler),
        ("insurance", role("ORACLE_ROLE"), r.settler),
        ("market", role("CATALOG_ROLE"), r.catalog),
        ("clearing", role("CATALOG_ROLE"), r.catalog),
        ("insurance", role("CATALOG_ROLE"), r.catalog),
        ("market", role("CONCESSION_ISSUER_ROLE"), r.attestor),
    ];
    let roles = [
        admin_role,
        role("PAUSER_ROLE"),
        role("MINTER_ROLE"),
        role("RELAYER_ROLE"),
        role("REDEEMER_ROLE"),
        role("SETTLER_ROLE"),
        role("ANCHOR_ROLE"),
        role("VALIDATOR_ROLE"),
        role("ORACLE_ROLE"),
        role("CATALOG_ROLE"),
        role("CONCESSION_ISSUER_ROLE"),
    ];
    for contract in ["fare", "market", "ticket", "clearing", "insurance"] {
        for rl in roles {
            for k in keys {
                let has = match contract {
                    "fare" => fare.hasRole(rl, k).call().await.unwrap(),
                    "market" => market.hasRole(rl, k).call().await.unwrap(),
                    "ticket" => ticket.hasRole(rl, k).call().await.unwrap(),
                    "clearing" => clearing.hasRole(rl, k).call().await.unwrap(),
                    _ => insurance.hasRole(rl, k).call().await.unwrap(),
                };
                let want = expected.iter().any(|(c, x, h)| *c == contract && *x == rl && *h == k);
                assert_eq!(has, want, "{contract}: role {rl} held by {k}: {has}, expected {want}");
            }
        }
    }
}

/// `kippu init` writes its files readable by their owner only, and never over existing ones.
#[tokio::test]
async fn init_writes_its_files_private_and_never_overwrites_them() {
    use std::os::unix::fs::PermissionsExt as _;
    let prod = Prod::new("files").await;
    let files = [
        prod.cfg.master_key_path(),
        prod.cfg.secrets_path(),
        prod.cfg.deployment_path(),
        prod.init.cold_admin_file.clone().expect("a cold admin key was generated"),
    ];
    for f in &files {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let opts = kippu::init::InitOptions {
        deployer_key_file: prod.dir.join("deployer.key"),
        admin: None,
        fund_hot_keys_wei: 0,
        voucher_operator_id: 0,
        mqtt_hosts: vec![],
        admin_email: crate::support::ADMIN_EMAIL.into(),
    };
    let again = kippu::init::init(&prod.cfg, &opts).await.unwrap_err().to_string();
    assert!(again.contains("initialised already"), "{again}");
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after);
}

/// Secrets are sealed, not derived: rotating the master key re-wraps them and the keystore and
/// changes no gate's password, no signature key, no hot key; the old key opens nothing after.
#[tokio::test]
async fn rotating_the_master_key_changes_no_gate_password_or_signature_key() {
    let prod = Prod::new("rotate").await;
    let store = kippu_store::Store::connect(&prod.cfg.database_url()).await.unwrap();
    let gate = kippu::gates::parse_gate("metro/central/g1").unwrap();
    let gate_password = kippu::gates::add(&store, &gate, "Central", None, false).await.unwrap();
    let gate_row = store.credential("metro/central/g1").await.unwrap().unwrap();
    let before = prod.secrets();
    let old_key = std::fs::read_to_string(prod.cfg.master_key_path()).unwrap();
    // A traveler's custodial key, sealed under the old master key.
    let ks = kippu::serve::master_key(&prod.cfg).unwrap();
    let (traveler, sealed) = ks.create().unwrap();
    store
        .upsert_traveler(&kippu_store::Traveler {
            address: traveler,
            did: kippu_identity::did_pkh(31337, traveler),
            display_name: "T".into(),
            sealed_key: Some(sealed.to_string()),
            created_at: 0,
        })
        .await
        .unwrap();

    let rotated = kippu::ops::rotate_master_key(&prod.cfg, None).await.unwrap();
    assert!(rotated.replaced_file && rotated.travelers == 1 && rotated.issuers == 1, "{rotated}");
    let new_key = std::fs::read_to_string(prod.cfg.master_key_path()).unwrap();
    assert_ne!(old_key, new_key);
    let after = prod.secrets();
    use kippu::secrets::SecretName as N;
    assert_eq!(before.verdict_key().to_bytes(), after.verdict_key().to_bytes());
    for n in [N::MetricsToken, N::MqttValidatorPassword] {
        assert_eq!(before.text(n), after.text(n));
    }
    for n in [N::MinterKey, N::RelayerKey, N::SettlerKey, N::CatalogKey, N::AttestorKey] {
        assert_eq!(before.evm_key(n).address(), after.evm_key(n).address());
    }
    assert_eq!(store.credential("metro/central/g1").await.unwrap().unwrap(), gate_row, "the gate's login is unchanged");
    assert_eq!(gate_row.secret_sha256, kippu_mqtt::credential_hash(&gate_password));
    let old = kippu_identity::Keystore::new(*kippu::secrets::parse_master_key(&old_key).unwrap());
    assert!(kippu::secrets::Secrets::load(&prod.cfg.secrets_path(), &old).is_err(), "the old key opens nothing");
    let row = store.traveler(&traveler).await.unwrap().unwrap();
    let resealed = kippu_identity::SealedKey::parse(row.sealed_key.as_deref().unwrap()).unwrap();
    assert!(old.open(&resealed).is_err());
    let new = kippu::serve::master_key(&prod.cfg).unwrap();
    assert_eq!(new.open(&resealed).unwrap().address(), traveler);
    // …and the deployment serves with it.
    let stack = prod.serve().await;
    stack.shutdown().await;
}

/// A default build of the platform links no simulator and no fake Stripe (the `dev` feature
/// brings them); `make test` also checks the built binary's bytes and `--help`.
#[test]
fn a_default_build_links_no_demo() {
    let repo = kippu_e2e::repo();
    let tree = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["tree", "-p", "kippu", "--offline", "--locked"])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let normal = tree(&["-e", "normal"]);
    assert!(normal.contains("kippu-web") && normal.contains("kippu-payments"), "{normal}");
    assert!(!normal.contains("gate-firmware-sim"), "the default build links the simulator:\n{normal}");
    let features = tree(&["-e", "normal,features", "-i", "kippu-payments"]);
    assert!(!features.contains("\"fake\""), "the default build enables the fake Stripe:\n{features}");
    let with_dev = tree(&["-e", "normal", "--features", "dev"]);
    assert!(with_dev.contains("gate-firmware-sim"), "the check would see it");
}

/// The demo's secret generator and the secrets sealed by `kippu init` are random per
/// deployment: two deployments share no secret.
#[tokio::test]
async fn two_deployments_share_no_secret() {
    let (a, b) = tokio::join!(Prod::new("twin-a"), Prod::new("twin-b"));
    let (sa, sb) = (a.secrets(), b.secrets());
    use kippu::secrets::SecretName as N;
    assert_ne!(sa.verdict_key().to_bytes(), sb.verdict_key().to_bytes());
    for n in [N::MetricsToken, N::MqttValidatorPassword] {
        assert_ne!(sa.text(n), sb.text(n));
    }
    assert_ne!(std::fs::read(a.cfg.master_key_path()).unwrap(), std::fs::read(b.cfg.master_key_path()).unwrap());
    let _ = stripe_secret("x");
}
