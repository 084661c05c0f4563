//! What `kippu serve` answers on the web: no demo route, staff pages behind the staff login,
//! bounded uploads, DID fetches and challenges, no payment forged with the demo's secret.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use kippu_credentials::{Concession, Credentials, IssuerKey, NewConcession, Resolver};
use kippu_e2e::Client;
use serde_json::{json, Value};

use crate::support::Prod;

/// A 1×1 PNG whose header claims `side`×`side` pixels (CRCs left wrong on purpose would be
/// refused earlier; these are right, so only the dimensions can refuse it).
fn png_claiming(side: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for b in bytes {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01]);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// In production no route drives a gate, names a run for delay cover, decodes an uploaded
/// image, feeds delays, closes a period, or signs anyone in with one click; the sign-in page
/// lists no account.
#[tokio::test]
async fn no_public_endpoint_drives_a_gate_names_a_run_or_decodes_an_image() {
    let prod = Prod::new("routes").await;
    let stack = prod.serve().await;
    let store = &stack.store;
    kippu::gates::add(store, &kippu::gates::parse_gate("metro/central/g1").unwrap(), "Central", None, false)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = &stack.web_url;
    for (path, body) in [
        ("/gates/metro/central/g1/scan?trip=1", png_claiming(1)),
        ("/gates/metro/central/g1/scan", png_claiming(100_000)),
        ("/dev/gates/metro/central/g1/tap", b"secret=00".to_vec()),
        ("/dev/gtfs-rt", vec![0u8; 8]),
        ("/dev/close-period", vec![]),
    ] {
        let r = http.post(format!("{base}{path}")).body(body).send().await.unwrap();
        assert_eq!(r.status(), 404, "POST {path} is not served");
    }
    let any = format!("{:#x}", alloy::primitives::Address::repeat_byte(7));
    let r = http.post(format!("{base}/signin")).form(&[("address", any.as_str())]).send().await.unwrap();
    assert!(matches!(r.status().as_u16(), 404 | 405), "one-click sign-in: {}", r.status());
    assert!(r.headers().get("set-cookie").is_none(), "nobody was signed in");
    let page = http.get(format!("{base}/signin")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains(&any) && !page.contains("name=\"address\""), "the sign-in page lists no account");
    stack.shutdown().await;
}

/// The demo's simulated gate bounds the pixel dimensions of the PNG it decodes: a tiny file
/// claiming 100,000×100,000 pixels is refused at once, with its reason.
#[tokio::test]
async fn the_demo_gate_refuses_an_image_claiming_huge_dimensions() {
    let stack = kippu::start(kippu_e2e::config("png", None, None)).await.unwrap();
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let r = http
        .post(format!("{}/gates/metro/central/g1/scan", stack.web_url))
        .body(png_claiming(100_000))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    // Decoding 10^10 pixels would take minutes and tens of GB; refused from the header, at once.
    assert!(started.elapsed() < Duration::from_secs(5), "refused without decoding");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["open"], false, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("image too large: 100000×100000 pixels"), "{body}");
    stack.shutdown().await;
}

/// The operator report, the insurance dashboard and the gate fleet need the staff login;
/// `/metrics` needs the metrics token (or the staff login), or is served on its own listener.
#[tokio::test]
async fn staff_pages_and_metrics_need_the_staff_login_or_the_metrics_token() {
    let mut prod = Prod::new("staff").await;
    prod.cfg.web.metrics_bind = Some(format!("127.0.0.1:{}", crate::support::free_port()));
    let stack = prod.serve().await;
    let secrets = prod.secrets();
    let token = secrets.text(kippu::secrets::SecretName::MetricsToken);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = &stack.web_url;
    let admin = prod.admin(base).await;
    for path in ["/operators/report", "/operators/insurance", "/gates", "/portal/chain-writes", "/metrics"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert!(matches!(r.status().as_u16(), 303 | 401), "GET {path} without a login: {}", r.status());
        if r.status() == 303 {
            assert!(r.headers()["location"].to_str().unwrap().starts_with("/portal/signin"));
        }
        let r = http.get(format!("{base}{path}")).bearer_auth("kippu-dev-portal").send().await.unwrap();
        assert_eq!(r.status(), 401, "GET {path} with the demo's password");
        let r = admin.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path} as the consortium's admin");
    }
    let r = http.get(format!("{base}/metrics")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("kippu_"), "Prometheus text");
    // The outbox's writes as they stand, read from the database at the scrape, on both listeners.
    let outbox = |text: &str| text.contains("kippu_chain_writes_gone 0") && text.contains("kippu_chain_writes_open{");
    assert!(outbox(&text), "{text}");
    let separate = stack.metrics_url.clone().expect("the metrics listener");
    let r = http.get(&separate).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(outbox(&text), "{text}");
    stack.shutdown().await;
}

/// A timetable upload is bounded: a zip bomb (a small file inflating past the limit) is
/// refused with the limit named, and the current timetable stays.
#[tokio::test]
async fn an_oversized_gtfs_upload_is_refused_with_its_limit_and_changes_nothing() {
    let prod = Prod::new("gtfs").await;
    let stack = prod.serve().await;
    // The metro's timetable upload machine.
    let store = kippu_store::Store::connect(&prod.cfg.database_url()).await.unwrap();
    let metro = kippu_domain::staff::OrgKind::Operator;
    kippu::staff::org_add(&prod.cfg, &store, "metro", "Metro", metro, "ops@metro.example").await.unwrap();
    let scopes = ["timetable:write".to_owned()];
    let staff = kippu::staff::token_issue(&store, "metro", "timetable upload", &scopes, 30).await.unwrap();
    // A zip whose stop_times.txt inflates to 1.5 GiB + 1 byte of zeros: over the total limit.
    let bomb = {
        use std::io::Write as _;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflate = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("stop_times.txt", deflate).unwrap();
        let block = vec![b'0'; 1 << 20];
        for _ in 0..(1_536 + 1) {
            zip.write_all(&block).unwrap();
        }
        zip.finish().unwrap().into_inner()
    };
    assert!(bomb.len() < 8 << 20, "a small upload ({} bytes)", bomb.len());
    let r = reqwest::Client::new()
        .post(format!("{}/operators/metro/timetable", stack.web_url))
        .bearer_auth(&staff.bearer)
        .body(bomb)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_client_error(), "{status}: {text}");
    assert!(text.contains("stop_times.txt") && text.contains("at most"), "the file and the limit are named: {text}");
    assert!(stack.store.current_timetables().await.unwrap().is_empty(), "no timetable was saved");
    stack.shutdown().await;
}

/// Resolving a DID named in a presentation never reaches loopback, private or link-local
/// addresses: a trusted issuer whose did:web points at a local listener is refused as
/// unresolvable, and the listener is never contacted. (`kippu serve` refuses the test-only
/// allow-list that would permit it.)
#[tokio::test]
async fn did_resolution_never_reaches_private_addresses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let contacted = Arc::new(AtomicUsize::new(0));
    let seen = contacted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let prod = Prod::new("did").await;
    let stack = prod.serve().await;
    let issuer_did = format!("did:web:127.0.0.1%3A{port}:issuers:local");
    stack.store.trust(&issuer_did, "student").await.unwrap();
    let issuer_key = IssuerKey::generate();
    let issuing = Credentials::new(Resolver::new(format!("did:web:127.0.0.1%3A{port}"), Duration::from_secs(60)));
    issuing
        .resolver()
        .publish(&issuer_did, &kippu_credentials::issuer_document(&issuer_did, &issuer_key.public_key(), "Local"));
    let holder = alloy::signers::local::PrivateKeySigner::random();
    let holder_did = kippu_identity::did_pkh(31337, holder.address());
    let t = Utc::now().timestamp();
    let vc = issuing
        .issue(
            &issuer_did,
            &issuer_key,
            &NewConcession {
                id: format!("urn:uuid:{}", rand::random::<u64>()),
                subject_did: holder_did.clone(),
                concession: Concession::Student,
                valid_from: Utc.timestamp_opt(t - 10, 0).unwrap(),
                valid_until: Utc.timestamp_opt(t + 86_400, 0).unwrap(),
                status: None,
            },
        )
        .await
        .unwrap();
    let c = Client::new(&stack.web_url);
    let ch: Value = c.json("/api/presentations/challenge").await;
    let vp = issuing
        .present(
            &holder.to_bytes().0,
            &holder_did,
            &[vc],
            ch["challenge"].as_str().unwrap(),
            ch["domain"].as_str().unwrap(),
        )
        .await
        .unwrap();
    let r =
        c.http.post(format!("{}/api/presentations", c.base)).json(&json!({"presentation": vp})).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["verified"], false, "{v}");
    assert_eq!(v["code"], "UNRESOLVABLE_DID", "{v}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(contacted.load(Ordering::SeqCst), 0, "the loopback listener was never contacted");
    stack.shutdown().await;

    let mut allow = prod.cfg.clone();
    allow.identity.did_fetch_allow_hosts = vec![format!("127.0.0.1:{port}")];
    assert!(matches!(kippu::serve::serve(allow).await, Err(kippu::serve::ServeError::Refused(_))));
}

/// Open sign-in and presentation challenges are bounded: a flood is answered 503 with
/// Retry-After once the book is full, instead of growing without end.
#[tokio::test]
async fn open_challenges_are_bounded() {
    let prod = Prod::new("challenges").await;
    let stack = prod.serve().await;
    let http = reqwest::Client::new();
    let mut refused = None;
    for i in 0..kippu_identity::DEFAULT_MAX_OUTSTANDING_CHALLENGES + 10 {
        let r = http.get(format!("{}/api/presentations/challenge", stack.web_url)).send().await.unwrap();
        if r.status() == 503 {
            refused = Some((i, r.headers().get("retry-after").cloned()));
            break;
        }
        assert_eq!(r.status(), 200);
    }
    let (at, retry) = refused.expect("the flood is refused");
    assert_eq!(at, kippu_identity::DEFAULT_MAX_OUTSTANDING_CHALLENGES, "refused exactly at the bound");
    assert!(retry.is_some(), "says when to retry");
    stack.shutdown().await;
}

/// A Stripe event signed with the demo's public webhook secret marks nothing paid in
/// production: anyone who started a top-up cannot mint themselves FARE with it.
#[tokio::test]
async fn a_payment_signed_with_the_demos_webhook_secret_mints_nothing() {
    let prod = Prod::new("webhook").await;
    let stack = prod.serve().await;
    let traveler = alloy::primitives::Address::repeat_byte(0x42);
    let event = json!({
        "id": "evt_forged", "object": "event", "type": "checkout.session.completed",
        "api_version": "2026-09-30.endive", "created": kippu_e2e::now(), "livemode": false,
        "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
        "data": {"object": {
            "id": "cs_forged", "object": "checkout.session", "amount_total": 5000, "currency": "eur",
            "payment_status": "paid", "status": "complete", "mode": "payment",
            "client_reference_id": format!("{traveler:#x}"),
            "metadata": {"traveler": format!("{traveler:#x}"), "fare": "5000"}
        }}
    })
    .to_string();
    let signature =
        kippu_payments::sign_webhook(event.as_bytes(), kippu::dev::DEV_STRIPE_WEBHOOK_SECRET, kippu_e2e::now() as i64);
    let r = reqwest::Client::new()
        .post(format!("{}/webhooks/stripe", stack.web_url))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert_eq!(stack.chain.fare_balance(traveler).await.unwrap(), 0, "no FARE minted");
    stack.shutdown().await;
}

/// Failed staff sign-ins are counted in the database, per account and per client address:
/// five wrong passwords for one account through one process lock that account in every process
/// sharing the database, even with the right password, saying until when; twenty from one
/// address lock the address for every account.
#[tokio::test]
async fn failed_staff_sign_ins_lock_the_account_and_the_address_in_every_process() {
    let prod = Prod::new("throttle").await;
    let a = prod.serve().await;
    let mut cfg_b = prod.cfg.clone();
    cfg_b.web.bind = format!("127.0.0.1:{}", crate::support::free_port());
    cfg_b.mqtt.embedded_bind = format!("127.0.0.1:{}", crate::support::free_port());
    let b = kippu::serve::serve(cfg_b).await.expect("a second process on the same database");
    crate::support::accept_invitation(&a.web_url, &prod.init.admin_invitation).await;
    let store = kippu_store::Store::connect(&prod.cfg.database_url()).await.unwrap();
    let metro = kippu_domain::staff::OrgKind::Operator;
    let link = kippu::staff::org_add(&prod.cfg, &store, "metro", "Metro", metro, "ops@metro.example").await.unwrap();
    crate::support::accept_invitation(&a.web_url, &link).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signin = |base: String, email: &str, password: String| {
        let http = http.clone();
        let email = email.to_owned();
        async move {
            let form = [("email", email.as_str()), ("password", password.as_str())];
            http.post(format!("{base}/portal/signin")).form(&form).send().await.unwrap()
        }
    };
    let admin = crate::support::ADMIN_EMAIL;
    let right = crate::support::STAFF_PASSWORD.to_owned();
    // At once, against process A: each wrong attempt pauses a second.
    let mut wrong = tokio::task::JoinSet::new();
    for i in 0..5 {
        wrong.spawn(signin(a.web_url.clone(), admin, format!("guess {i}")));
    }
    let statuses: Vec<u16> = wrong.join_all().await.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    for stack in [&b, &a] {
        let r = signin(stack.web_url.clone(), admin, right.clone()).await;
        assert_eq!(r.status(), 429, "the other process refuses the right password too");
        let retry: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((800..=900).contains(&retry), "{retry}");
        assert!(r.text().await.unwrap().contains("for this account: try again after"));
    }
    // A colleague's account is not locked by it…
    assert_eq!(signin(b.web_url.clone(), "ops@metro.example", right.clone()).await.status(), 303);
    // …until the address is: twenty failures from it (on any accounts, known or not; a
    // success in between does not reset it) lock it for all.
    let mut wrong = tokio::task::JoinSet::new();
    for i in 0..15 {
        wrong.spawn(signin(b.web_url.clone(), &format!("nobody{i}@metro.example"), format!("guess {i}")));
    }
    wrong.join_all().await;
    let r = signin(a.web_url.clone(), "ops@metro.example", right.clone()).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("from your address: try again after"));
    b.shutdown().await;
    a.shutdown().await;
}
