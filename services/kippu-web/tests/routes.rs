//! Every route of `kippu_web::router`, over the in-memory fakes of kippu-testkit (a real store
//! on SQLite in memory, the fake chain, payments and platform): for each, a request that
//! succeeds and one that is refused (not signed in, not staff, bad input, someone else's
//! ticket, a replayed webhook, a chain refusal, …), asserting the status and what the answer
//! says. Then snapshots of the operator reports, their exports and a few pages.
//!
//! No chain, broker or database server is started: the whole file runs in seconds.

use alloy::primitives::{keccak256, Address};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync as _;
use axum::http::{Method, StatusCode};
use kippu_domain::staff::Permission::{TimetableRead, TimetableWrite, VouchersRedeem};
use kippu_domain::ContractRejection as R;
use kippu_testkit::app::{staff_email, ADMIN, PASSWORD, PUBLIC_URL, STAFF_PASSWORD};
use kippu_testkit::catalogue::*;
use kippu_testkit::passkey::SoftAuthenticator;
use kippu_testkit::{Client, PlatformCall, TestApp};
use serde_json::json;

const SEE_OTHER: StatusCode = StatusCode::SEE_OTHER;
const OK: StatusCode = StatusCode::OK;

/// The bus operator's real GTFS timetable (USF Bull Runner).
const BULL_RUNNER: &[u8] = include_bytes!("../../kippu-gtfs/testdata/bullrunner-gtfs.zip");

// ---- helpers ---------------------------------------------------------------------------------

/// A traveler who bought the Explorer (tickets: metro pass, bus day, taxi ride, 3-day cover).
async fn explorer<'a>(app: &'a TestApp, name: &str) -> (Client<'a>, u64, Vec<u64>) {
    let c = app.traveler(name, 5_000).await;
    let plan = c.buy(EXPLORER).await;
    let tickets = c.ticket_ids().await;
    assert_eq!(tickets.len(), 4);
    (c, plan, tickets)
}

/// A traveler holding a delay voucher (of the Explorer's cover, redeemable at the taxi).
async fn with_voucher<'a>(app: &'a TestApp, name: &str) -> (Client<'a>, u64) {
    let (c, _, tickets) = explorer(app, name).await;
    let policy = tickets[3];
    let v = app.chain.report_delay(keccak256(format!("run of {name}")), policy, 30).await.unwrap();
    (c, v)
}

/// The voucher code a holder's phone shows now.
fn voucher_code(holder: &PrivateKeySigner, voucher_id: u64) -> String {
    use kippu_domain::voucher::{voucher_window, VoucherCode};
    let window = voucher_window(kippu_testkit::app::now() as u64);
    let sig = holder.sign_hash_sync(&VoucherCode::digest(voucher_id, window)).unwrap();
    VoucherCode { voucher_id, window, signature: sig.as_bytes() }.encode()
}

/// A contactless card's number (its Ed25519 public key, hex).
fn card(n: u8) -> String {
    hex_of(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]).verifying_key().to_bytes())
}

fn hex_of(b: &[u8]) -> String {
    alloy::hex::encode(b)
}

/// A staff member signed in to the portal.
async fn staff(app: &TestApp) -> Client<'_> {
    let s = app.client();
    s.staff_sign_in().await;
    s
}

/// Every route that needs a traveler sends one who is not signed in to the sign-in page.
async fn assert_sign_in_required(app: &TestApp, method: Method, path: &str) {
    let a = app.client().request(method.clone(), path).form(&[]).send().await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/signin", "{method} {path}");
}

// ---- accounts: sign-up, password sign-in, sign-out -------------------------------------------

#[tokio::test]
async fn home_shows_the_traveler_and_sends_strangers_to_sign_in() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/").await;
    let (aiko, _, _) = explorer(&app, "Aiko").await;
    let a = aiko.get("/").await;
    a.assert_status(OK).assert_contains("Aiko").assert_contains("14.30").assert_contains("Metro 3-day pass");
    assert!(a.header("content-security-policy").unwrap().contains("form-action 'self' https://checkout.kippu.test"));
    assert_eq!(a.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
}

#[tokio::test]
async fn sign_in_page_offers_passwords_and_passkeys_and_takes_only_get() {
    let app = TestApp::new().await;
    let a = app.client().get("/signin").await;
    a.assert_status(OK).assert_contains("name=\"password\"").assert_contains("/static/passkey.js");
    app.client().request(Method::POST, "/signin").form(&[]).send().await.assert_status(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn sign_up_creates_an_account_and_refuses_bad_or_taken_details() {
    let app = TestApp::new().await;
    let page = app.client().get("/signup").await;
    page.assert_status(OK).assert_contains("name=\"confirm\"");
    app.client().request(Method::PUT, "/signup").send().await.assert_status(StatusCode::METHOD_NOT_ALLOWED);

    let ben = app.client();
    let a = ben.sign_up("ben@example.com", PASSWORD).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/");
    assert!(a.header("set-cookie").unwrap().contains("Secure"), "served over HTTPS: Secure cookies");
    assert_eq!(ben.me().await["balance"], 0);
    assert!(app.store.traveler(&ben.address()).await.unwrap().unwrap().sealed_key.is_some(), "a custodial key");

    let other = app.client();
    let taken = other.sign_up("Ben@Example.com", PASSWORD).await;
    taken.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("An account with this e-mail exists");
    let bad = other
        .post_form("/signup", &[("name", ""), ("email", "nobody"), ("password", "short"), ("confirm", "other")])
        .await;
    bad.assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("Use at least 10 characters")
        .assert_contains("The two passwords differ.");
    assert!(other.cookie("kippu_session").is_none(), "no session for a refused sign-up");
}

#[tokio::test]
async fn sign_ups_are_throttled_per_client() {
    let app = TestApp::new().await;
    let c = app.client();
    // Refused forms count too (the throttle comes first), so no password is hashed here.
    for _ in 0..5 {
        let a = c.post_form("/signup", &[("name", "x"), ("email", "x"), ("password", "x"), ("confirm", "y")]).await;
        a.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let a = c
        .post_form(
            "/signup",
            &[("name", "x"), ("email", "x@example.com"), ("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    a.assert_status(StatusCode::TOO_MANY_REQUESTS).assert_contains("Too many attempts");
}

#[tokio::test]
async fn password_sign_in_opens_a_session_and_refuses_wrong_passwords_and_closed_accounts() {
    let app = TestApp::new().await;
    let first = app.client();
    first.sign_up("chiyo@example.com", PASSWORD).await.assert_status(SEE_OTHER);
    let address = first.address();

    let phone = app.client();
    let wrong = phone.sign_in("chiyo@example.com", "not the password at all").await;
    wrong.assert_status(StatusCode::UNAUTHORIZED).assert_contains("do not match an account");
    let a = phone.sign_in("  CHIYO@example.com ", PASSWORD).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/");
    assert_eq!(phone.address(), address);

    // A cross-site form cannot sign anyone in (login CSRF).
    let evil = app.cross_site("https://evil.example");
    let a = evil.post_form("/signin/password", &[("email", "chiyo@example.com"), ("password", PASSWORD)]).await;
    a.assert_status(StatusCode::FORBIDDEN).assert_contains("Request refused");

    app.store.revoke_key(&address, "revoked by the traveler", 0).await.unwrap();
    let closed = app.client().sign_in("chiyo@example.com", PASSWORD).await;
    closed.assert_status(StatusCode::FORBIDDEN).assert_contains("This account is closed: revoked by the traveler.");
}

#[tokio::test]
async fn sign_out_ends_the_session_and_clears_the_device() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let token = aiko.cookie("kippu_session").unwrap();
    let a = aiko.sign_out().await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/signin");
    assert_eq!(a.header("clear-site-data"), Some("\"cache\", \"storage\""));
    assert!(app.store.session(&token, 0).await.unwrap().is_none(), "ended server-side");
    // The old cookie opens nothing.
    let thief = app.client();
    thief.set_cookie("kippu_session", &token);
    assert_eq!(thief.get("/").await.location(), "/signin");
    // Signing out from another site is refused.
    let evil = app.cross_site("https://evil.example");
    evil.set_cookie("kippu_session", "whatever");
    evil.post_form("/signout", &[]).await.assert_status(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn language_choice_is_remembered_and_only_leads_back_here() {
    let app = TestApp::new().await;
    let c = app.client();
    let a = c.request(Method::GET, "/lang/ja").header("referer", "https://kippu.test/plans?x=1").send().await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/plans?x=1");
    assert_eq!(c.cookie("kippu_lang").as_deref(), Some("ja"));
    c.get("/signin").await.assert_contains("<html lang=\"ja\">");
    // An unknown language changes nothing; a Referer on another site leads home.
    let other = app.client();
    let a = other.request(Method::GET, "/lang/xx").header("referer", "https://evil.example/x").send().await;
    assert_eq!((a.status, a.location()), (SEE_OTHER, "/"));
    assert!(other.cookie("kippu_lang").is_none());
    let a =
        other.request(Method::GET, "/lang/en").header("referer", "https://evil.example//evil.example/x").send().await;
    assert_eq!(a.location(), "/");
}

// ---- account page and devices ---------------------------------------------------------------

#[tokio::test]
async fn account_page_lists_the_account_and_its_devices() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/account").await;
    let aiko = app.traveler("Aiko", 0).await;
    let key = card(1); // any Ed25519 public key
    aiko.request(Method::POST, "/api/device")
        .header("user-agent", "Mozilla/5.0 (Linux; Android 14) Chrome/156.0 Mobile")
        .json(&json!({"public_key": key}))
        .send()
        .await
        .assert_status(OK);
    let a = aiko.get("/account").await;
    a.assert_status(OK)
        .assert_contains("aiko@kippu.test")
        .assert_contains("Chrome on Android")
        .assert_contains(&key[..8]);
}

#[tokio::test]
async fn a_phone_key_is_certified_by_the_account_key() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let key = card(2);
    let a = aiko.post_json("/api/device", &json!({"public_key": key})).await;
    a.assert_status(OK);
    let v = a.json();
    assert_eq!(v["holder"], format!("{:#x}", aiko.address()));
    assert_eq!(v["chain_id"], 31_337);
    // The certificate verifies as the account key's EIP-712 signature over the device key.
    let sig =
        alloy::primitives::Signature::try_from(alloy::hex::decode(v["cert_sig"].as_str().unwrap()).unwrap().as_slice())
            .unwrap();
    let key_bytes: [u8; 32] = alloy::hex::decode(&key).unwrap().try_into().unwrap();
    let digest = kippu_domain::device_pass::cert_digest(31_337, &key_bytes, v["cert_expiry"].as_u64().unwrap());
    assert_eq!(sig.recover_address_from_prehash(&digest).unwrap(), aiko.address());

    let bad = aiko.post_json("/api/device", &json!({"public_key": "00ff"})).await;
    bad.assert_status(StatusCode::BAD_REQUEST).assert_contains("Ed25519 public key");
    // Someone else's (or a revoked) phone key is not certified for this account.
    let ben = app.traveler("Ben", 0).await;
    ben.post_json("/api/device", &json!({"public_key": key}))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("revoked");
    assert_sign_in_required(&app, Method::POST, "/api/device").await;
}

#[tokio::test]
async fn a_phone_asks_whether_its_certificate_stands() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let key = card(3);
    aiko.post_json("/api/device", &json!({"public_key": key})).await.assert_status(OK);
    assert_eq!(aiko.get(&format!("/api/device/{key}")).await.json()["state"], "certified");
    assert_eq!(aiko.get(&format!("/api/device/{}", card(4))).await.json()["state"], "unknown");
    let ben = app.traveler("Ben", 0).await;
    assert_eq!(ben.get(&format!("/api/device/{key}")).await.json()["state"], "unknown", "not Ben's phone");
    assert_sign_in_required(&app, Method::GET, &format!("/api/device/{key}")).await;
}

#[tokio::test]
async fn revoking_a_lost_phone_stops_it_and_ends_its_sessions() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let key = card(5);
    aiko.post_json("/api/device", &json!({"public_key": key})).await.assert_status(OK);
    // The lost phone's own session.
    let lost_token = "lost-phone-session";
    app.store.create_session(lost_token, &aiko.address(), i64::MAX).await.unwrap();
    let a = aiko.post_form("/account/devices/revoke", &[("device", &key)]).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/account#devices");
    assert_eq!(aiko.get(&format!("/api/device/{key}")).await.json()["state"], "revoked");
    let key_bytes: [u8; 32] = alloy::hex::decode(&key).unwrap().try_into().unwrap();
    assert_eq!(app.platform.calls(), vec![PlatformCall::DeviceRevoked(key_bytes)]);
    assert!(app.store.session(lost_token, 0).await.unwrap().is_none(), "the phone is signed out");
    assert!(aiko.get("/account").await.status == OK, "the revoking session stays");

    aiko.post_form("/account/devices/revoke", &[("device", &card(6))])
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("You have no such device.");
    aiko.post_form("/account/devices/revoke", &[("device", "zz")]).await.assert_status(StatusCode::BAD_REQUEST);
}

// ---- passkeys -------------------------------------------------------------------------------

#[tokio::test]
async fn a_passkey_is_registered_and_signs_in_without_a_password() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let mut authenticator = SoftAuthenticator::new(&app.origin());
    let options = aiko.post_json("/passkeys/register/start", &json!({})).await;
    options.assert_status(OK);
    let options = options.json();
    let registration = authenticator.register(&options);
    let done = aiko.post_json("/passkeys/register/finish", &registration).await;
    done.assert_status(OK);
    assert_eq!(done.json(), json!({"ok": true}));
    assert_eq!(app.store.passkeys_of(&aiko.address()).await.unwrap().len(), 1);
    // The same answer again finds its ceremony gone.
    let again = aiko.post_json("/passkeys/register/finish", &registration).await;
    again.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("expired or was already used");

    let phone = app.client();
    let options = phone.post_json("/passkeys/signin/start", &json!({})).await;
    options.assert_status(OK);
    let assertion = authenticator.sign_in(&options.json());
    let a = phone.post_json("/passkeys/signin/finish", &assertion).await;
    a.assert_status(OK);
    assert_eq!(a.json(), json!({"ok": true, "to": "/"}));
    assert_eq!(phone.me().await["address"], format!("{:#x}", aiko.address()));
    let replay = app.client().post_json("/passkeys/signin/finish", &assertion).await;
    replay.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("expired or was already used");
}

#[tokio::test]
async fn passkey_ceremonies_refuse_strangers_garbage_and_unknown_keys() {
    let app = TestApp::builder().max_passkey_ceremonies(1).build().await.unwrap();
    assert_sign_in_required(&app, Method::POST, "/passkeys/register/start").await;
    assert_sign_in_required(&app, Method::POST, "/passkeys/register/finish").await;
    let aiko = app.traveler("Aiko", 0).await;
    let a = aiko.post_json("/passkeys/register/finish", &json!({"id": "nope"})).await;
    a.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("not a passkey registration");

    // An authenticator whose credential Kippu never registered.
    let c = app.client();
    let options = c.post_json("/passkeys/signin/start", &json!({})).await.json();
    let mut stranger = SoftAuthenticator::new(&app.origin());
    let user_id = "A".repeat(86); // 64 zero bytes, base64url
    stranger.register(&json!({"challenge": "AAAAAAAAAAAAAAAAAAAAAA", "user": {"id": user_id}}));
    let a = c.post_json("/passkeys/signin/finish", &stranger.sign_in(&options)).await;
    a.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("not registered with Kippu");
    assert!(c.cookie("kippu_session").is_none());

    // One ceremony at a time here: a second one waits.
    c.post_json("/passkeys/signin/start", &json!({})).await.assert_status(OK);
    let busy = c.post_json("/passkeys/signin/start", &json!({})).await;
    busy.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(busy.header("retry-after").is_some());
    let garbage = c.post_json("/passkeys/signin/finish", &json!([])).await;
    garbage.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("not a passkey sign-in");
}

#[tokio::test]
async fn passkeys_need_a_domain_name() {
    let app = TestApp::builder().public_url("http://127.0.0.1:8080").build().await.unwrap();
    let a = app.client().post_json("/passkeys/signin/start", &json!({})).await;
    a.assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("Passkeys need the app to be reached by a domain name");
    let aiko = app.traveler("Aiko", 0).await;
    aiko.post_json("/passkeys/register/start", &json!({})).await.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}

// ---- wallet sign-in (self-custodied) ------------------------------------------------------

#[tokio::test]
async fn a_wallet_signs_in_with_a_signed_challenge_once() {
    let app = TestApp::new().await;
    let wallet = PrivateKeySigner::from_bytes(&keccak256("a wallet")).unwrap();
    let did = format!("did:pkh:eip155:31337:{}", wallet.address());
    let c = app.client();
    let ch = c.get(&format!("/signin/wallet/challenge?did={did}")).await;
    ch.assert_status(OK);
    let ch = ch.json();
    let message = ch["message"].as_str().unwrap();
    assert!(message.contains("kippu.test"), "{message}");
    let signature = format!("0x{}", hex_of(&wallet.sign_message_sync(message.as_bytes()).unwrap().as_bytes()));
    let body = json!({"did": did, "nonce": ch["nonce"], "signature": signature});
    let a = c.post_json("/signin/wallet", &body).await;
    a.assert_status(OK);
    assert_eq!(a.json()["signed_in"], true);
    let me = c.me().await;
    assert_eq!(me["address"], format!("{:#x}", wallet.address()));
    let t = app.store.traveler(&wallet.address()).await.unwrap().unwrap();
    assert!(t.sealed_key.is_none() && t.display_name.starts_with("Wallet 0x"), "Kippu holds no key of a wallet");
    // The same signature again: its challenge is spent.
    let replay = app.client().post_json("/signin/wallet", &body).await;
    replay.assert_status(StatusCode::BAD_REQUEST).assert_contains("Sign-in refused");
    // A wallet account cannot buy with a custodial key it does not have.
    c.post_form("/plans/1/buy", &[])
        .await
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_contains("Wallet accounts buy from their wallet.");
}

#[tokio::test]
async fn wallet_sign_in_refuses_other_chains_other_signers_and_bad_dids() {
    let app = TestApp::builder()
        .challenges(kippu_identity::ChallengeBook::with_limit(300, 2), kippu_identity::ChallengeBook::default())
        .build()
        .await
        .unwrap();
    let c = app.client();
    c.get("/signin/wallet/challenge?did=did:web:evil.example").await.assert_status(StatusCode::BAD_REQUEST);
    let wallet = PrivateKeySigner::random();
    let did = format!("did:pkh:eip155:31337:{}", wallet.address());
    let ch = c.get(&format!("/signin/wallet/challenge?did={did}")).await.json();
    let impostor = PrivateKeySigner::random();
    let sig = format!(
        "0x{}",
        hex_of(&impostor.sign_message_sync(ch["message"].as_str().unwrap().as_bytes()).unwrap().as_bytes())
    );
    let a = c.post_json("/signin/wallet", &json!({"did": did, "nonce": ch["nonce"], "signature": sig})).await;
    a.assert_status(StatusCode::BAD_REQUEST).assert_contains("DID authentication failed");
    let other_chain = format!("did:pkh:eip155:1:{}", wallet.address());
    let a = c.post_json("/signin/wallet", &json!({"did": other_chain, "nonce": "x", "signature": "0x00"})).await;
    a.assert_status(StatusCode::BAD_REQUEST).assert_contains("Kippu runs on chain 31337");
    // Two open challenges at most here.
    c.get(&format!("/signin/wallet/challenge?did={did}")).await.assert_status(OK);
    c.get(&format!("/signin/wallet/challenge?did={did}")).await.assert_status(OK);
    let busy = c.get(&format!("/signin/wallet/challenge?did={did}")).await;
    busy.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(busy.header("retry-after").is_some());
}

// ---- top-up and the Stripe webhook -------------------------------------------------------

#[tokio::test]
async fn top_up_page_and_checkout() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/topup").await;
    assert_sign_in_required(&app, Method::POST, "/topup").await;
    let aiko = app.traveler("Aiko", 0).await;
    aiko.get("/topup").await.assert_status(OK).assert_contains("name=\"amount\"");
    let a = aiko.post_form("/topup", &[("amount", "25.50")]).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "https://checkout.kippu.test/pay/cs_test_1");
    let req = app.payments.last_request().unwrap();
    assert_eq!((req.traveler, req.amount_minor), (aiko.address(), 2_550));
    assert_eq!(req.success_url, "https://kippu.test/topup/done?session_id={CHECKOUT_SESSION_ID}");
    let p = app.store.payment("cs_test_1").await.unwrap().unwrap();
    assert_eq!((p.amount, p.status.as_str()), (2_550, "open"));

    for bad in ["0.99", "500.01", "12.345", "abc"] {
        let a = aiko.post_form("/topup", &[("amount", bad)]).await;
        a.assert_status(StatusCode::BAD_REQUEST).assert_contains("Enter an amount between 1.00 and 500.00 EUR");
    }
    app.payments.fail_next("card network down");
    aiko.post_form("/topup", &[("amount", "10")]).await.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(app.store.payment("cs_test_2").await.unwrap().is_none(), "no payment recorded when no page opened");
}

#[tokio::test]
async fn the_webhook_mints_once_per_payment() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let session = aiko.top_up(2_000).await;
    assert_eq!(aiko.me().await["balance"], 2_000);
    assert_eq!(app.store.payment(&session).await.unwrap().unwrap().status, "minted");
    // Stripe retries the same event, or sends another for the same session: nothing more is minted.
    let again = app.checkout_completed(&session, aiko.address(), 2_000, "paid");
    let a = app.deliver_webhook(&again).await;
    a.assert_status(OK);
    assert_eq!(a.body, "already minted");
    let a = app.deliver_webhook(&again).await;
    assert_eq!((a.status, a.body.as_str()), (OK, "already minted"));
    assert_eq!(aiko.me().await["balance"], 2_000);
    assert_eq!(app.chain.mined().await.len(), 1);
}

#[tokio::test]
async fn the_webhook_refuses_forged_stale_and_mismatched_deliveries() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    aiko.post_form("/topup", &[("amount", "20")]).await.assert_status(SEE_OTHER);
    let event = app.checkout_completed("cs_test_1", aiko.address(), 2_000, "paid");
    let body = event.to_string();
    // Signed with another secret, or long ago.
    let forged = kippu_payments::sign_webhook(body.as_bytes(), "whsec_attacker", kippu_testkit::app::now());
    let a = app.deliver_webhook_signed(body.clone(), &forged).await;
    a.assert_status(StatusCode::BAD_REQUEST).assert_contains("invalid webhook");
    let stale = kippu_payments::sign_webhook(body.as_bytes(), kippu_testkit::app::WEBHOOK_SECRET, 1_000);
    app.deliver_webhook_signed(body.clone(), &stale).await.assert_status(StatusCode::BAD_REQUEST);
    app.deliver_webhook_signed(body, "").await.assert_status(StatusCode::BAD_REQUEST);
    // A session that is not the recorded top-up.
    let more = app.checkout_completed("cs_test_1", aiko.address(), 200_000, "paid");
    app.deliver_webhook(&more).await.assert_status(StatusCode::BAD_REQUEST).assert_contains("does not match");
    let someone = app.checkout_completed("cs_test_1", Address::repeat_byte(9), 2_000, "paid");
    app.deliver_webhook(&someone).await.assert_status(StatusCode::BAD_REQUEST);
    let unknown = app.checkout_completed("cs_test_99", aiko.address(), 2_000, "paid");
    app.deliver_webhook(&unknown).await.assert_status(StatusCode::NOT_FOUND);
    // Not paid yet (a delayed payment method), and other event kinds: acknowledged, nothing minted.
    let unpaid = app.checkout_completed("cs_test_1", aiko.address(), 2_000, "unpaid");
    let a = app.deliver_webhook(&unpaid).await;
    assert_eq!((a.status, a.body.as_str()), (OK, "not paid"));
    let other = json!({"id": "evt_other", "type": "customer.created", "created": 1, "data": {"object": {}}});
    assert_eq!(app.deliver_webhook(&other).await.body, "ignored");
    assert_eq!(aiko.me().await["balance"], 0);
    assert!(app.chain.mined().await.is_empty());
}

#[tokio::test]
async fn the_webhook_answers_5xx_while_the_chain_is_down_so_stripe_retries() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    aiko.post_form("/topup", &[("amount", "20")]).await.assert_status(SEE_OTHER);
    let event = app.checkout_completed("cs_test_1", aiko.address(), 2_000, "paid");
    app.chain.fail_next("connection refused").await;
    app.deliver_webhook(&event).await.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(aiko.me().await["balance"], 0);
    // Stripe's retry (the payment is `paid` now, not `open`) still mints, once.
    let retry = app.deliver_webhook(&event).await;
    assert_eq!((retry.status, retry.body.as_str()), (OK, "minted"));
    assert_eq!(aiko.me().await["balance"], 2_000);
}

#[tokio::test]
async fn the_top_up_return_page_tells_how_the_payment_stands() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    aiko.post_form("/topup", &[("amount", "20")]).await;
    let a = aiko.get("/topup/done?session_id=cs_test_1").await;
    a.assert_status(OK).assert_contains("data-status=\"pending\"");
    let event = app.checkout_completed("cs_test_1", aiko.address(), 2_000, "paid");
    app.deliver_webhook(&event).await.assert_status(OK);
    aiko.get("/topup/done?session_id=cs_test_1")
        .await
        .assert_status(OK)
        .assert_contains("20.00 FARE added to your account.");
    aiko.get("/topup/done").await.assert_status(StatusCode::BAD_REQUEST).assert_contains("Missing session id.");
    let ben = app.traveler("Ben", 0).await;
    ben.get("/topup/done?session_id=cs_test_1")
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("No such top-up.");
}

// ---- plans, purchase, receipt ------------------------------------------------------------

#[tokio::test]
async fn plans_show_bundle_prices_and_the_balance() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/plans").await;
    let aiko = app.traveler("Aiko", 1_234).await;
    let a = aiko.get("/plans").await;
    a.assert_status(OK)
        .assert_contains("Explorer 3 days")
        .assert_contains("35.70")
        .assert_contains("42.00")
        .assert_contains("Commuter")
        .assert_contains("24.75")
        .assert_contains("12.34");
}

#[tokio::test]
async fn buying_a_plan_takes_fare_and_issues_its_tickets() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::POST, "/plans/1/buy").await;
    let aiko = app.traveler("Aiko", 5_000).await;
    let plan = aiko.buy(EXPLORER).await;
    assert_eq!(plan, 1);
    let me = aiko.me().await;
    assert_eq!(me["balance"], 5_000 - EXPLORER_PRICE as u64);
    assert_eq!(me["tickets"].as_array().unwrap().len(), 4);
    assert!(app.platform.catch_ups() >= 1, "the page waits for the ledger before showing the tickets");
    let ben = app.traveler("Ben", 100).await;
    let short = ben.post_form("/plans/1/buy", &[]).await;
    short
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("This plan costs 35.70 FARE and you have 1.00 FARE");
    let unknown = aiko.post_form("/plans/77/buy", &[]).await;
    unknown.assert_status(StatusCode::NOT_FOUND).assert_contains("That plan is not on sale.");
    // A purchase from another site is refused before anything is signed.
    let evil = app.cross_site("https://evil.example");
    evil.set_cookie("kippu_session", &aiko.cookie("kippu_session").unwrap());
    evil.post_form("/plans/1/buy", &[]).await.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(aiko.me().await["tickets"].as_array().unwrap().len(), 4);
}

/// Issue 20: each buy form carries its own purchase request id, so the same form submitted
/// twice (a double click, a resubmission after a slow answer) buys one plan and shows that
/// plan both times, even though the first spent the FARE a second would need. A damaged id
/// buys nothing rather than becoming a purchase of its own.
#[tokio::test]
async fn a_buy_form_submitted_twice_buys_one_plan() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", EXPLORER_PRICE + 100).await;
    let page = aiko.get("/plans").await;
    page.assert_status(OK);
    let request = page.body.split("name=\"request\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
    assert_eq!(request.len(), 66, "{request}");
    let first = aiko.post_form(&format!("/plans/{EXPLORER}/buy"), &[("request", request)]).await;
    first.assert_status(StatusCode::SEE_OTHER);
    let again = aiko.post_form(&format!("/plans/{EXPLORER}/buy"), &[("request", request)]).await;
    again.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(first.location(), again.location(), "the same plan both times");
    assert_eq!(aiko.me().await["tickets"].as_array().unwrap().len(), 4, "one plan's tickets");
    assert_eq!(aiko.me().await["balance"], 100, "paid once");
    // another page's form is another purchase (refused here for the balance)
    let other = aiko.get("/plans").await;
    let fresh = other.body.split("name=\"request\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
    assert_ne!(fresh, request, "every page render gives a new request id");
    aiko.post_form(&format!("/plans/{EXPLORER}/buy"), &[("request", fresh)])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    for bad in ["0x12", "nonsense", &format!("0x{}", "0".repeat(64)), &"ab".repeat(32)] {
        aiko.post_form(&format!("/plans/{EXPLORER}/buy"), &[("request", bad)])
            .await
            .assert_status(StatusCode::BAD_REQUEST)
            .assert_contains("This purchase form is damaged");
    }
    assert_eq!(aiko.me().await["tickets"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_purchase_the_chain_refuses_reads_as_its_reason() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 5_000).await;
    app.chain.pause(true).await;
    aiko.post_form("/plans/1/buy", &[])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("Sales are paused right now.");
    app.chain.pause(false).await;
    app.chain.reject_next(R::UnknownPolicy { policy: 9 }).await;
    aiko.post_form("/plans/1/buy", &[])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("The ticketing contract refused: UnknownPolicy");
    app.chain.set_down(Some("node unreachable")).await;
    let down = aiko.post_form("/plans/1/buy", &[]).await;
    down.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!down.body.contains("node unreachable"), "internal errors are not shown");
    app.chain.set_down(None).await;
    assert_eq!(aiko.me().await["tickets"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_receipt_shows_what_was_bought_to_its_buyer_only() {
    let app = TestApp::new().await;
    let (aiko, plan, _) = explorer(&app, "Aiko").await;
    let a = aiko.get(&format!("/plans/{plan}/receipt")).await;
    a.assert_status(OK)
        .assert_contains("Explorer 3 days")
        .assert_contains("35.70")
        .assert_contains("15.30")
        .assert_contains("Kippu Mutual");
    let tx = format!("{:#x}", app.chain.mined().await.last().unwrap().hash);
    a.assert_contains(&tx);
    let ben = app.traveler("Ben", 0).await;
    ben.get(&format!("/plans/{plan}/receipt"))
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("You bought no plan #1.");
    assert_sign_in_required(&app, Method::GET, "/plans/1/receipt").await;
}

#[tokio::test]
async fn a_concession_credential_lowers_the_price_on_chain() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 5_000).await;
    let staff = staff(&app).await;
    let did = format!("did:pkh:eip155:31337:{}", aiko.address());
    let a = staff
        .post_form(
            "/portal/issuers/usf/issue",
            &[("holder", &did), ("concession", "student"), ("valid_until", "2099-12-31")],
        )
        .await;
    a.assert_status(SEE_OTHER);
    aiko.get("/plans").await.assert_contains("student concession, 30% off").assert_contains("24.99");
    let plan = aiko.buy(EXPLORER).await;
    assert_eq!(app.store.plan_receipt(plan).await.unwrap().unwrap().price, 2_499);
    assert!(matches!(
        app.chain.mined().await.last().unwrap().tx,
        kippu_testkit::Tx::Purchase { concession: Some((1, 3_000)), .. }
    ));
}

// ---- tickets and passes --------------------------------------------------------------------

#[tokio::test]
async fn tickets_list_the_travelers_tickets_with_banners_only_for_their_own_plans() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/tickets").await;
    let (aiko, plan, _) = explorer(&app, "Aiko").await;
    let a = aiko.get(&format!("/tickets?bought={plan}")).await;
    a.assert_status(OK)
        .assert_contains("Plan #1 bought.")
        .assert_contains("Taxi ride credit")
        .assert_contains("City Taxi");
    let ben = app.traveler("Ben", 0).await;
    let b = ben.get(&format!("/tickets?bought={plan}")).await;
    b.assert_status(OK);
    assert!(!b.body.contains("Plan #1 bought") && !b.body.contains("Taxi ride credit"), "not Ben's plan");
}

#[tokio::test]
async fn the_pass_page_is_the_holders_and_offers_a_refund_while_unused() {
    let app = TestApp::new().await;
    let (aiko, _, t) = explorer(&app, "Aiko").await;
    let taxi = t[2];
    let a = aiko.get(&format!("/tickets/{taxi}/pass")).await;
    a.assert_status(OK).assert_contains("Taxi ride credit").assert_contains("10.20").assert_contains("/static/pass.js");
    let metro = aiko.get(&format!("/tickets/{}/pass", t[0])).await;
    assert!(!metro.body.contains("/refund\""), "a pass does not refund");
    let ben = app.traveler("Ben", 0).await;
    ben.get(&format!("/tickets/{taxi}/pass"))
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("You hold no ticket #3.");
    assert_sign_in_required(&app, Method::GET, "/tickets/1/pass").await;
}

#[tokio::test]
async fn the_pass_image_is_a_png_signed_by_the_holders_key() {
    let app = TestApp::new().await;
    let (aiko, _, t) = explorer(&app, "Aiko").await;
    let a = aiko.get(&format!("/tickets/{}/pass.png", t[0])).await;
    a.assert_status(OK);
    assert_eq!(a.header("content-type"), Some("image/png"));
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert!(a.bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let ben = app.traveler("Ben", 0).await;
    ben.get(&format!("/tickets/{}/pass.png", t[0])).await.assert_status(StatusCode::NOT_FOUND);
    // A revoked key signs no pass (revoking ends the sessions; one made since finds the key revoked).
    app.store.revoke_key(&aiko.address(), "revoked by the traveler", 0).await.unwrap();
    assert_eq!(aiko.get(&format!("/tickets/{}/pass.png", t[0])).await.location(), "/signin");
    app.store.create_session("after", &aiko.address(), i64::MAX).await.unwrap();
    aiko.set_cookie("kippu_session", "after");
    let revoked = aiko.get(&format!("/tickets/{}/pass.png", t[0])).await;
    revoked.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("key was revoked");
}

#[tokio::test]
async fn a_card_is_bound_to_a_ticket_and_removed_again() {
    let app = TestApp::new().await;
    let (aiko, _, t) = explorer(&app, "Aiko").await;
    let number = card(7);
    let a = aiko.post_form(&format!("/tickets/{}/cards", t[0]), &[("card", &number)]).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), format!("/tickets/{}/pass#cards", t[0]));
    let key: [u8; 32] = alloy::hex::decode(&number).unwrap().try_into().unwrap();
    let binding = app.store.card_binding(&key).await.unwrap().unwrap();
    assert_eq!((binding.ticket_id, binding.holder), (t[0], aiko.address()));
    assert_eq!(app.platform.calls(), vec![PlatformCall::CardBound { card_key: key, ticket_id: t[0], sig_len: 65 }]);
    aiko.get(&format!("/tickets/{}/pass", t[0])).await.assert_contains(&number);

    let bad = aiko.post_form(&format!("/tickets/{}/cards", t[0]), &[("card", "1234")]).await;
    bad.assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("That is not a card number: 64 hexadecimal digits");
    let (ben, _, bt) = explorer(&app, "Ben").await;
    // Aiko's card cannot be moved to Ben's ticket by Ben.
    let taken = ben.post_form(&format!("/tickets/{}/cards", bt[0]), &[("card", &number)]).await;
    taken.assert_status(StatusCode::CONFLICT).assert_contains("That card is linked to someone else");
    ben.post_form(&format!("/tickets/{}/cards", t[0]), &[("card", &card(8))])
        .await
        .assert_status(StatusCode::NOT_FOUND);

    let a = aiko.post_form(&format!("/tickets/{}/cards/remove", t[0]), &[("card", &number)]).await;
    a.assert_status(SEE_OTHER);
    assert!(app.store.card_binding(&key).await.unwrap().is_none());
    assert_eq!(app.platform.calls().last(), Some(&PlatformCall::CardUnbound(key)));
    let again = aiko.post_form(&format!("/tickets/{}/cards/remove", t[0]), &[("card", &number)]).await;
    again.assert_status(StatusCode::NOT_FOUND).assert_contains("You have no such card.");
    aiko.post_form(&format!("/tickets/{}/cards/remove", t[0]), &[("card", "nope")])
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_unused_refundable_ticket_is_refunded_to_its_holder() {
    let app = TestApp::new().await;
    let (aiko, _, t) = explorer(&app, "Aiko").await;
    let taxi = t[2];
    let a = aiko.post_form(&format!("/tickets/{taxi}/refund"), &[]).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), format!("/tickets?refunded={taxi}"));
    assert_eq!(aiko.me().await["balance"], 5_000 - EXPLORER_PRICE as u64 + 1_020);
    aiko.get(a.location()).await.assert_contains("Ticket #3 refunded: 10.20 FARE are back in your balance.");
    // Gone now; and nobody else's refund banner shows it.
    aiko.post_form(&format!("/tickets/{taxi}/refund"), &[]).await.assert_status(StatusCode::NOT_FOUND);
    let ben = app.traveler("Ben", 0).await;
    assert!(!ben.get(&format!("/tickets?refunded={taxi}")).await.body.contains("refunded:"));
    assert_sign_in_required(&app, Method::POST, "/tickets/3/refund").await;
}

#[tokio::test]
async fn refunds_are_refused_for_used_passes_and_when_the_chain_knows_of_a_ride() {
    let app = TestApp::new().await;
    let (aiko, _, t) = explorer(&app, "Aiko").await;
    // A pass is not refundable at all.
    aiko.post_form(&format!("/tickets/{}/refund", t[0]), &[])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("not refundable");
    // A ride the validator recorded.
    let tap = kippu_domain::validation::Tap {
        scan_id: "scan-1".into(),
        ticket_id: t[2],
        operator_id: TAXI,
        gate: "taxi/cab-7/onboard".into(),
        at: kippu_testkit::app::now() as u64,
        trip: None,
    };
    app.store.record_tap(&tap).await.unwrap();
    aiko.post_form(&format!("/tickets/{}/refund", t[2]), &[])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("This ticket has been used");
    // A ride the chain knows of before this page did (a gate that was offline): the contract refuses.
    let (ben, _, bt) = explorer(&app, "Ben").await;
    app.chain.record_ride(bt[2]).await.unwrap();
    ben.post_form(&format!("/tickets/{}/refund", bt[2]), &[])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("This ticket has been used");
    assert_eq!(ben.me().await["balance"], 5_000 - EXPLORER_PRICE as u64);
}

// ---- vouchers ------------------------------------------------------------------------------

#[tokio::test]
async fn a_voucher_page_and_its_signed_code_are_the_holders() {
    let app = TestApp::new().await;
    let (aiko, v) = with_voucher(&app, "Aiko").await;
    let a = aiko.get(&format!("/vouchers/{v}")).await;
    a.assert_status(OK).assert_contains("15.00").assert_contains("City Taxi").assert_contains("code.png");
    aiko.get("/").await.assert_contains(&format!("/vouchers/{v}"));
    let png = aiko.get(&format!("/vouchers/{v}/code.png")).await;
    png.assert_status(OK);
    assert!(png.bytes.starts_with(b"\x89PNG"));
    let ben = app.traveler("Ben", 0).await;
    ben.get(&format!("/vouchers/{v}"))
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("You hold no voucher #1.");
    ben.get(&format!("/vouchers/{v}/code.png")).await.assert_status(StatusCode::NOT_FOUND);
    assert_sign_in_required(&app, Method::GET, "/vouchers/1").await;
}

#[tokio::test]
async fn a_taxi_scanner_redeems_a_voucher_once() {
    let app = TestApp::new().await;
    let (aiko, v) = with_voucher(&app, "Aiko").await;
    let holder = app.signer_of(aiko.address()).await;
    let token = app.token("taxi", &[VouchersRedeem]).await;
    let scanner = app.machine();
    let redeem = |code: String| {
        let token = token.clone();
        let scanner = &scanner;
        async move {
            scanner
                .request(Method::POST, "/operators/taxi/vouchers/redeem")
                .header("authorization", &format!("Bearer {token}"))
                .json(&json!({"code": code}))
                .send()
                .await
        }
    };
    let a = redeem(voucher_code(&holder, v)).await;
    a.assert_status(OK);
    assert_eq!(a.json()["redeemed"], true);
    assert_eq!(app.store.voucher(v).await.unwrap().unwrap().redeemed_by, Some(TAXI));
    let again = redeem(voucher_code(&holder, v)).await;
    again.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.json()["reason"], "ALREADY_REDEEMED");
    let garbage = redeem("KV1.nonsense".into()).await;
    assert_eq!(garbage.json()["reason"], "MALFORMED");
}

#[tokio::test]
async fn redemption_refuses_other_operators_tokens_other_signers_and_chain_races() {
    let app = TestApp::new().await;
    let (aiko, v) = with_voucher(&app, "Aiko").await;
    let holder = app.signer_of(aiko.address()).await;
    let metro_token = app.token("metro", &[VouchersRedeem]).await;
    let taxi_token = app.token("taxi", &[VouchersRedeem]).await;
    let scanner = app.machine();
    // The metro's scanner token redeems nothing at the taxi.
    let a = scanner
        .request(Method::POST, "/operators/taxi/vouchers/redeem")
        .header("authorization", &format!("Bearer {metro_token}"))
        .json(&json!({"code": voucher_code(&holder, v)}))
        .send()
        .await;
    a.assert_status(StatusCode::FORBIDDEN).assert_contains("another organisation");
    assert_eq!(a.json()["redeemed"], false);
    // The metro's own scanner: not the voucher's operator.
    let a = scanner
        .request(Method::POST, "/operators/metro/vouchers/redeem")
        .header("authorization", &format!("Bearer {metro_token}"))
        .json(&json!({"code": voucher_code(&holder, v)}))
        .send()
        .await;
    assert_eq!((a.status, a.json()["reason"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("WRONG_OPERATOR")));
    // A code signed by someone else.
    let a = scanner
        .request(Method::POST, "/operators/taxi/vouchers/redeem")
        .header("authorization", &format!("Bearer {taxi_token}"))
        .json(&json!({"code": voucher_code(&PrivateKeySigner::random(), v)}))
        .send()
        .await;
    assert_eq!(a.json()["reason"], "NOT_HOLDER");
    // Redeemed on chain by another scanner a moment ago: the chain decides.
    app.chain.hold_events(true).await;
    use kippu_app::ports::Chain as _;
    app.chain.redeem_voucher(v, TAXI).await.unwrap();
    let a = scanner
        .request(Method::POST, "/operators/taxi/vouchers/redeem")
        .header("authorization", &format!("Bearer {taxi_token}"))
        .json(&json!({"code": voucher_code(&holder, v)}))
        .send()
        .await;
    assert_eq!((a.status, a.json()["reason"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("ALREADY_REDEEMED")));
    app.chain.hold_events(false).await;
}

/// README: a voucher's terms name a kind (`taxi`), and "any operator in that category accepts
/// it", as the contract does (`DelayInsurance.redeem` checks the operator's category). The
/// platform's own check once compared the operator id only, so a second taxi company's scanner
/// was told `WRONG_OPERATOR` before the chain was asked.
#[tokio::test]
async fn a_voucher_is_accepted_by_any_operator_of_its_kind() {
    let mut catalogue = Catalogue::demo();
    catalogue.operators.push(kippu_domain::model::Operator {
        id: 5,
        slug: "cab2".into(),
        name: "Second Cab Co".into(),
        kind: "taxi".into(),
        payee: payee("cab2"),
    });
    let app = TestApp::builder().catalogue(catalogue).build().await.unwrap();
    let (aiko, v) = with_voucher(&app, "Aiko").await;
    let holder = app.signer_of(aiko.address()).await;
    let token = app.token("cab2", &[VouchersRedeem]).await;
    let a = app
        .machine()
        .request(Method::POST, "/operators/cab2/vouchers/redeem")
        .header("authorization", &format!("Bearer {token}"))
        .json(&json!({"code": voucher_code(&holder, v)}))
        .send()
        .await;
    a.assert_status(OK);
    assert_eq!(app.store.voucher(v).await.unwrap().unwrap().redeemed_by, Some(5));
}

#[tokio::test]
async fn new_vouchers_arrive_on_the_open_home_page_as_server_sent_events() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/api/events").await;
    let (aiko, _, t) = explorer(&app, "Aiko").await;
    let mut events = aiko.request(Method::GET, "/api/events").open().await;
    assert_eq!(events.status, OK);
    assert_eq!(events.headers.get("content-type").unwrap(), "text/event-stream");
    let v = app.chain.report_delay(keccak256("late run"), t[3], 25).await.unwrap();
    let mut got = String::new();
    while !got.contains("\n\n") {
        let chunk =
            events.next_chunk(std::time::Duration::from_secs(6)).await.expect("an event within the poll interval");
        got.push_str(&chunk);
    }
    assert!(got.contains("event: voucher"), "{got}");
    assert!(
        got.contains(&format!("\"id\":{v}")) && got.contains("\"value\":\"15.00\"") && got.contains("City Taxi"),
        "{got}"
    );
}

// ---- traveler API ----------------------------------------------------------------------------

#[tokio::test]
async fn api_me_describes_the_signed_in_traveler() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/api/me").await;
    let (aiko, v) = with_voucher(&app, "Aiko").await;
    let me = aiko.me().await;
    assert_eq!(me["did"], format!("did:pkh:eip155:31337:{}", aiko.address().to_checksum(None)));
    assert_eq!(me["balance"], 5_000 - EXPLORER_PRICE as u64);
    assert_eq!(me["vouchers"], json!([{"id": v, "value": 1500, "operator_id": TAXI, "redeemed": false}]));
    assert_eq!(me["tickets"][2]["rides_left"], 1);
}

// ---- staff pages -----------------------------------------------------------------------------

#[tokio::test]
async fn the_staff_portal_sign_in_leads_only_to_staff_pages() {
    let app = TestApp::new().await;
    let c = app.client();
    let page = c.get("/portal/signin?next=/operators/report").await;
    page.assert_status(OK).assert_contains("value=\"/operators/report\"");
    // An open redirect is not offered.
    let page = c.get("/portal/signin?next=https://evil.example").await;
    assert!(!page.body.contains("evil.example"));
    let a = c
        .post_form("/portal/signin", &[("email", ADMIN), ("password", STAFF_PASSWORD), ("next", "//evil.example/")])
        .await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/portal");
    assert!(a.header("set-cookie").unwrap().contains("SameSite=Strict"));
}

#[tokio::test]
async fn a_wrong_staff_password_is_refused_after_a_pause() {
    let app = TestApp::new().await;
    let c = app.client();
    let started = std::time::Instant::now();
    let a = c.post_form("/portal/signin", &[("email", ADMIN), ("password", "guess"), ("next", "/gates")]).await;
    a.assert_status(StatusCode::UNAUTHORIZED).assert_contains("Wrong e-mail or password.");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "one guess a second");
    assert!(c.cookie("kippu_portal").is_none());
}

#[tokio::test]
async fn the_gate_fleet_is_for_staff() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let a = aiko.get("/gates").await;
    assert_eq!((a.status, a.location()), (SEE_OTHER, "/portal/signin?next=%2Fgates"));
    let s = staff(&app).await;
    s.get("/gates").await.assert_status(OK).assert_contains("metro/central/g1").assert_contains("OPEN ticket #1");
}

#[tokio::test]
async fn the_consortium_report_shows_revenue_and_escrow() {
    let app = TestApp::new().await;
    explorer(&app, "Aiko").await;
    let s = staff(&app).await;
    let a = s.get("/operators/report").await;
    a.assert_status(OK)
        .assert_contains("Metro Rail")
        .assert_contains("15.30")
        .assert_contains("12.75")
        .assert_contains("35.70");
    let by_bearer =
        app.machine().request(Method::GET, "/operators/report").header("authorization", "Bearer wrong").send().await;
    by_bearer.assert_status(StatusCode::UNAUTHORIZED).assert_contains("unknown API token");
    app.chain.fail_next("rpc down").await;
    s.get("/operators/report").await.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn the_insurance_dashboard_shows_terms_and_vouchers() {
    let app = TestApp::new().await;
    with_voucher(&app, "Aiko").await;
    // The insurer's own staff see its pool; an operator's do not.
    let insurer = app.client();
    insurer.staff_sign_in_as(&staff_email("insurer")).await;
    insurer
        .get("/operators/insurance")
        .await
        .assert_status(OK)
        .assert_contains("Delay cover, 3 days")
        .assert_contains("15.00 FARE taxi voucher, valid 7 days, at City Taxi or any taxi operator")
        .assert_contains("no cap per run · 2 per traveler a day");
    assert_eq!(
        app.client().get("/operators/insurance").await.location(),
        "/portal/signin?next=%2Foperators%2Finsurance"
    );
    let bus = app.client();
    bus.staff_sign_in_as(&staff_email("bus")).await;
    bus.get("/operators/insurance").await.assert_status(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn operator_reports_come_as_html_csv_and_json_for_staff() {
    let app = TestApp::new().await;
    explorer(&app, "Aiko").await;
    let s = staff(&app).await;
    s.get("/operators/metro/report").await.assert_status(OK).assert_contains("Metro Rail").assert_contains("15.30");
    let csv = s.get("/operators/metro/report.csv").await;
    csv.assert_status(OK);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.body.lines().count() >= 2 && csv.body.contains("1530"), "{}", csv.body);
    let json = s.get("/operators/metro/report.json").await;
    json.assert_status(OK);
    assert_eq!(json.json()["operator"]["slug"], "metro");
    // Refusals: unknown operator, unknown parameter, contradicting format, not staff.
    s.get("/operators/nowhere/report").await.assert_status(StatusCode::NOT_FOUND);
    s.get("/operators/metro/report?perod=3")
        .await
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_contains("Unknown parameter");
    s.get("/operators/metro/report.csv?format=json").await.assert_status(StatusCode::BAD_REQUEST);
    s.get("/operators/metro/report.json?table=nonsense").await.assert_status(StatusCode::BAD_REQUEST);
    let anon = app.machine();
    for path in ["/operators/metro/report.csv", "/operators/metro/report.json"] {
        anon.request(Method::GET, path)
            .header("authorization", "Bearer nope")
            .send()
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert!(app.client().get("/operators/metro/report").await.location().starts_with("/portal/signin?next="));
}

#[tokio::test]
async fn the_events_behind_a_figure_are_listed_and_filtered() {
    let app = TestApp::new().await;
    explorer(&app, "Aiko").await;
    let (_, _, t) = explorer(&app, "Ben").await;
    use kippu_app::ports::Chain as _;
    app.chain.refund(t[2]).await.unwrap();
    let s = staff(&app).await;
    let html = s.get("/operators/taxi/events?kind=LegSold").await;
    html.assert_status(OK).assert_contains("12.75");
    let json = s.get("/operators/taxi/events.json?kind=TicketRefunded").await;
    json.assert_status(OK);
    let v = json.json();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{v}");
    assert_eq!(events[0]["kind"], "TicketRefunded");
    let csv = s.get("/operators/taxi/events.csv").await;
    csv.assert_status(OK);
    assert_eq!(csv.body.lines().filter(|l| l.contains("LegSold")).count(), 2);
    assert_eq!(csv.body.lines().filter(|l| l.contains("TicketRefunded")).count(), 1);
    s.get("/operators/taxi/events?kind=Nonsense")
        .await
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_contains("kind must be one or more");
    s.get("/operators/taxi/events.csv?day=2026-13-01").await.assert_status(StatusCode::BAD_REQUEST);
    s.get("/operators/taxi/events.json?page=0").await.assert_status(StatusCode::BAD_REQUEST);
    app.machine()
        .request(Method::GET, "/operators/taxi/events.json")
        .header("authorization", "Bearer x")
        .send()
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_rides_behind_a_figure_are_listed() {
    let app = TestApp::new().await;
    let (_, _, t) = explorer(&app, "Aiko").await;
    for (i, gate) in ["metro/central/g1", "metro/central/g1"].iter().enumerate() {
        let tap = kippu_domain::validation::Tap {
            scan_id: format!("scan-{i}"),
            ticket_id: t[0],
            operator_id: METRO,
            gate: (*gate).into(),
            at: 1_767_225_600 + i as u64 * 60,
            trip: None,
        };
        app.store.record_tap(&tap).await.unwrap();
    }
    let s = staff(&app).await;
    s.get("/operators/metro/rides").await.assert_status(OK).assert_contains("metro/central/g1");
    let json = s.get("/operators/metro/rides.json?day=2026-01-01").await;
    json.assert_status(OK);
    assert_eq!(json.json()["rides"].as_array().unwrap().len(), 2, "{}", json.body);
    let csv = s.get("/operators/metro/rides.csv").await;
    csv.assert_status(OK);
    assert_eq!(csv.body.lines().filter(|l| l.contains("scan-")).count(), 2, "{}", csv.body);
    assert_eq!(s.get("/operators/bus/rides.json").await.json()["rides"], json!([]));
    s.get("/operators/metro/rides?day=yesterday").await.assert_status(StatusCode::BAD_REQUEST);
    s.get("/operators/metro/rides.csv?kind=LegSold").await.assert_status(StatusCode::BAD_REQUEST);
    s.get("/operators/nowhere/rides.json").await.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_closed_periods_statement_reconciles() {
    let app = TestApp::new().await;
    explorer(&app, "Aiko").await;
    app.chain.close_period(1).await.unwrap();
    let s = staff(&app).await;
    let html = s.get("/operators/metro/statements/1").await;
    html.assert_status(OK).assert_contains("15.30").assert_contains("/static/print.js");
    let json = s.get("/operators/metro/statements/1?format=json").await.json();
    assert_eq!(
        (json["revenue"].clone(), json["payouts"].clone(), json["reconciles"].clone()),
        (json!(1530), json!(1530), json!(true)),
        "{json}"
    );
    let csv = s.get("/operators/metro/statements/1?format=csv").await;
    assert!(csv.body.contains("revenue,1,1530"), "{}", csv.body);
    s.get("/operators/metro/statements/9")
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("No clearing period 9");
    s.get("/operators/metro/statements/first").await.assert_status(StatusCode::BAD_REQUEST);
    s.get("/operators/metro/statements/1?format=pdf").await.assert_status(StatusCode::BAD_REQUEST);
    assert!(app.client().get("/operators/metro/statements/1").await.location().starts_with("/portal/signin"));
}

#[tokio::test]
async fn operators_import_their_timetable_and_a_broken_feed_is_refused() {
    let app = TestApp::new().await;
    let admin = staff(&app).await;
    let none = admin.get("/operators/bus/timetable").await;
    none.assert_status(StatusCode::NOT_FOUND).assert_contains("has not imported a timetable");
    admin.get("/operators/nowhere/timetable").await.assert_status(StatusCode::NOT_FOUND);
    let staff_bearer = format!("Bearer {}", app.token("bus", &[TimetableRead, TimetableWrite]).await);
    let curl = app.machine();
    let broken = curl
        .request(Method::POST, "/operators/bus/timetable")
        .header("authorization", &staff_bearer)
        .body("application/zip", b"PK not a zip".to_vec())
        .send()
        .await;
    broken.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(broken.json()["imported"], false);
    // The metro's products name no routes; the bus's name A-F, which the Bull Runner feed has.
    let a = curl
        .request(Method::POST, "/operators/bus/timetable")
        .header("authorization", &staff_bearer)
        .body("application/zip", BULL_RUNNER.to_vec())
        .send()
        .await;
    a.assert_status(OK);
    let v = a.json();
    assert_eq!((v["imported"].clone(), v["version"].clone()), (json!(true), json!(1)), "{v}");
    assert!(
        matches!(app.platform.calls()[..], [PlatformCall::TimetableImported { operator_id: BUS, trips }] if trips > 0)
    );
    let current =
        curl.request(Method::GET, "/operators/bus/timetable").header("authorization", &staff_bearer).send().await;
    current.assert_status(OK);
    assert_eq!(current.json()["version"], 1);
    // Not staff.
    curl.request(Method::POST, "/operators/bus/timetable")
        .body("application/zip", BULL_RUNNER.to_vec())
        .send()
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_timetable_that_drops_a_route_a_product_is_sold_for_is_refused() {
    let mut catalogue = Catalogue::demo();
    catalogue.products.iter_mut().find(|(p, _)| p.id == BUS_DAY).unwrap().0.routes.push("Z".into());
    let app = TestApp::builder().catalogue(catalogue).build().await.unwrap();
    let a = app
        .machine()
        .request(Method::POST, "/operators/bus/timetable")
        .header("authorization", &format!("Bearer {}", app.token("bus", &[TimetableWrite]).await))
        .body("application/zip", BULL_RUNNER.to_vec())
        .send()
        .await;
    a.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("route \\\"Z\\\", which this feed does not have");
    assert!(app.platform.calls().is_empty());
}

// ---- metrics, health, static files -------------------------------------------------------------

#[tokio::test]
async fn metrics_need_the_token_or_a_staff_sign_in() {
    let app = TestApp::new().await;
    app.platform.set_metrics("kippu_plans_bought_total 3\n");
    let m = app.machine();
    let a = m.request(Method::GET, "/metrics").header("authorization", "Bearer metrics-token-for-tests").send().await;
    a.assert_status(OK).assert_contains("kippu_plans_bought_total 3");
    assert!(a.header("content-type").unwrap().starts_with("text/plain"));
    let denied = m.get("/metrics").await;
    denied.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer realm=\"kippu-metrics\""));
    m.request(Method::GET, "/metrics")
        .header("authorization", "Bearer wrong")
        .send()
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    staff(&app).await.get("/metrics").await.assert_status(OK);
}

#[tokio::test]
async fn health_and_static_assets_are_served_and_take_only_get() {
    let app = TestApp::new().await;
    let c = app.client();
    let h = c.get("/healthz").await;
    assert_eq!((h.status, h.body.as_str()), (OK, "ok"));
    for (path, kind, marker) in [
        ("/static/kippu.css", "text/css", "{"),
        ("/static/pass.js", "text/javascript", "function"),
        ("/static/live.js", "text/javascript", "EventSource"),
        ("/static/device.js", "text/javascript", "crypto"),
        ("/static/passkey.js", "text/javascript", "credentials"),
        ("/static/print.js", "text/javascript", "window.print()"),
        ("/sw.js", "text/javascript", "caches"),
        ("/static/vendor/qrcode-generator.js", "text/javascript", "qrcode"),
    ] {
        let a = c.get(path).await;
        a.assert_status(OK).assert_contains(marker);
        assert_eq!(a.header("content-type"), Some(kind), "{path}");
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{path}");
        c.post_form(path, &[]).await.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    }
    assert_eq!(c.get("/sw.js").await.header("cache-control"), Some("no-cache"));
    c.post_form("/healthz", &[]).await.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    c.get("/no/such/page").await.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let big = "x".repeat(1024 * 1024 + 1);
    let a = aiko
        .request(Method::POST, "/credentials/import")
        .body("application/x-www-form-urlencoded", format!("credential={big}"))
        .send()
        .await;
    a.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    let a = app.deliver_webhook_signed(big, "t=1,v1=00").await;
    a.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
}

// ---- DIDs, credentials, the issuer portal ----------------------------------------------------

#[tokio::test]
async fn kippu_publishes_its_did_documents() {
    let app = TestApp::new().await;
    let c = app.client();
    let root = c.get("/.well-known/did.json").await;
    root.assert_status(OK);
    assert_eq!(root.header("content-type"), Some("application/did+json"));
    assert_eq!(root.json()["id"], "did:web:kippu.test");
    c.post_form("/.well-known/did.json", &[]).await.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    let usf = c.get("/issuers/usf/did.json").await.json();
    assert_eq!(usf["id"], "did:web:kippu.test:issuers:usf");
    let bus = c.get("/operators/bus/did.json").await.json();
    assert!(bus.to_string().contains(&payee("bus").to_checksum(None)), "{bus}");
    c.get("/issuers/nobody/did.json")
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("no such DID document");
}

/// Issues a concession to a traveler through the portal; returns the credential's id.
async fn issue(staff: &Client<'_>, issuer: &str, holder: Address, concession: &str) -> String {
    let did = format!("did:pkh:eip155:31337:{holder}");
    let a = staff
        .request(Method::POST, &format!("/portal/issuers/{issuer}/issue"))
        .header("accept", "application/json")
        .form(&[("holder", &did), ("concession", concession), ("valid_until", "2099-12-31")])
        .send()
        .await;
    a.assert_status(OK);
    a.json()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_issuer_portal_issues_and_revokes_for_staff() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    let s = staff(&app).await;
    let page = s.get("/portal/issuers/usf").await;
    page.assert_status(OK)
        .assert_contains("University of South Florida")
        .assert_contains("did:web:kippu.test:issuers:usf");
    s.get("/portal/issuers/nobody").await.assert_status(StatusCode::NOT_FOUND);
    assert!(aiko.get("/portal/issuers/usf").await.location().starts_with("/portal/signin?next="));

    let did = format!("did:pkh:eip155:31337:{}", aiko.address());
    let a = s
        .post_form(
            "/portal/issuers/usf/issue",
            &[("holder", &did), ("concession", "student"), ("valid_until", "2099-12-31")],
        )
        .await;
    a.assert_status(SEE_OTHER);
    assert!(a.location().starts_with("/portal/issuers/usf?notice=Issued%20student%20credential"), "{}", a.location());
    let wallet = app.store.wallet(&aiko.address()).await.unwrap();
    assert_eq!(wallet.len(), 1, "delivered to the traveler's wallet");
    let id = wallet[0].id.clone();
    s.get("/portal/issuers/usf?notice=x").await.assert_contains(&id);

    for (holder, concession, until, why) in [
        ("someone", "student", "2099-12-31", "did:pkh"),
        (did.as_str(), "pensioner", "2099-12-31", "Unknown concession"),
        (did.as_str(), "student", "31/12/2099", "Valid until must be a date"),
        (did.as_str(), "student", "2001-01-01", "Valid until must be in the future."),
        (did.as_str(), "senior", "2099-12-31", "is not on the trust list for senior concessions"),
    ] {
        let a = s
            .post_form(
                "/portal/issuers/usf/issue",
                &[("holder", holder), ("concession", concession), ("valid_until", until)],
            )
            .await;
        a.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains(why);
    }
    aiko.post_form(
        "/portal/issuers/usf/issue",
        &[("holder", &did), ("concession", "student"), ("valid_until", "2099-12-31")],
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);

    let a = s.post_form("/portal/issuers/usf/revoke", &[("id", &id)]).await;
    a.assert_status(SEE_OTHER);
    assert!(a.location().contains("Revoked"));
    s.post_form("/portal/issuers/usf/revoke", &[("id", &id)])
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("is not an unrevoked credential");
    aiko.post_form("/portal/issuers/usf/revoke", &[("id", &id)]).await.assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn status_lists_are_signed_and_show_revocations() {
    let app = TestApp::new().await;
    let s = staff(&app).await;
    let c = app.client();
    let before = c.get("/credentials/status/usf").await;
    before.assert_status(OK);
    assert_eq!(before.header("content-type"), Some("application/vc+ld+json"));
    let list = before.json();
    assert_eq!(list["issuer"], "did:web:kippu.test:issuers:usf");
    assert!(list["proof"].is_object() || list["proof"].is_array(), "{list}");
    let id = issue(&s, "usf", Address::repeat_byte(3), "student").await;
    s.post_form("/portal/issuers/usf/revoke", &[("id", &id)]).await.assert_status(SEE_OTHER);
    let after = c.get("/credentials/status/usf").await.json();
    assert_ne!(after["credentialSubject"]["encodedList"], list["credentialSubject"]["encodedList"], "a bit set");
    c.get("/credentials/status/nobody").await.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_wallet_lists_downloads_and_imports_credentials_it_can_verify() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/credentials").await;
    assert_sign_in_required(&app, Method::POST, "/credentials/import").await;
    let aiko = app.traveler("Aiko", 0).await;
    let ben = app.traveler("Ben", 0).await;
    let s = staff(&app).await;
    // Issued to Ben, who is not here: handed over as JSON, and imported by him.
    let did = format!("did:pkh:eip155:31337:{}", ben.address());
    let vc = s
        .request(Method::POST, "/portal/issuers/tampa-welfare/issue")
        .header("accept", "application/json")
        .form(&[("holder", &did), ("concession", "senior"), ("valid_until", "2099-12-31")])
        .send()
        .await
        .json();
    let id = vc["id"].as_str().unwrap().to_owned();
    // (The portal delivered it to Ben's Kippu wallet already; clear it to import it by hand.)
    app.store.remove_from_wallet(&ben.address(), &id).await.unwrap();
    let not_yours = aiko.post_form("/credentials/import", &[("credential", &vc.to_string())]).await;
    not_yours.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("this credential was issued to");
    aiko.post_form("/credentials/import", &[("credential", "{nope")])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("That is not JSON");
    let mut forged = vc.clone();
    forged["credentialSubject"]["concession"] = json!("disability");
    let a = ben.post_form("/credentials/import", &[("credential", &forged.to_string())]).await;
    a.assert_status(StatusCode::UNPROCESSABLE_ENTITY).assert_contains("Not added");
    let a = ben.post_form("/credentials/import", &[("credential", &vc.to_string())]).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/credentials?added=1");
    ben.get("/credentials?added=1")
        .await
        .assert_status(OK)
        .assert_contains("Credential added.")
        .assert_contains("City of Tampa Welfare Office")
        .assert_contains("valid");

    let download = ben.get(&format!("/credentials/download?id={}", kippu_testkit::app::urlencode(&id))).await;
    download.assert_status(OK);
    assert_eq!(download.header("content-type"), Some("application/vc+ld+json"));
    assert_eq!(download.json()["id"], id);
    ben.get("/credentials/download").await.assert_status(StatusCode::BAD_REQUEST);
    aiko.get(&format!("/credentials/download?id={}", kippu_testkit::app::urlencode(&id)))
        .await
        .assert_status(StatusCode::NOT_FOUND)
        .assert_contains("No such credential in your wallet.");
    assert_sign_in_required(&app, Method::GET, "/credentials/download?id=x").await;
}

#[tokio::test]
async fn a_wallets_presentation_is_verified_once_per_challenge() {
    let app = TestApp::new().await;
    let holder = PrivateKeySigner::random();
    let did = format!("did:pkh:eip155:31337:{}", holder.address());
    let s = staff(&app).await;
    let vc = s
        .request(Method::POST, "/portal/issuers/usf/issue")
        .header("accept", "application/json")
        .form(&[("holder", &did), ("concession", "student"), ("valid_until", "2099-12-31")])
        .send()
        .await
        .json();
    let wallet = app.machine();
    let ch = wallet.get("/api/presentations/challenge").await;
    ch.assert_status(OK);
    let ch = ch.json();
    assert_eq!(ch["domain"], "kippu.test");
    let credentials = kippu_credentials::Credentials::new(kippu_credentials::Resolver::new(
        "did:web:elsewhere",
        std::time::Duration::from_secs(1),
    ));
    let vp = credentials
        .present(&holder.to_bytes().0, &did, &[vc], ch["challenge"].as_str().unwrap(), "kippu.test")
        .await
        .unwrap();
    let a = wallet.post_json("/api/presentations", &json!({"presentation": vp})).await;
    a.assert_status(OK);
    let v = a.json();
    assert_eq!(v["verified"], true, "{v}");
    assert!(v["concessions"].to_string().contains("student"), "{v}");
    let replay = wallet.post_json("/api/presentations", &json!({"presentation": vp})).await;
    replay.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(replay.json()["code"], "WRONG_CHALLENGE");
}

#[tokio::test]
async fn presentation_challenges_are_bounded() {
    let app = TestApp::builder()
        .challenges(kippu_identity::ChallengeBook::default(), kippu_identity::ChallengeBook::with_limit(300, 1))
        .build()
        .await
        .unwrap();
    let c = app.machine();
    c.get("/api/presentations/challenge").await.assert_status(OK);
    let busy = c.get("/api/presentations/challenge").await;
    busy.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert!(busy.json()["retry_after"].as_u64().unwrap() > 0);
    // The sign-in book is another: wallets can still sign in.
    c.get("/signin/wallet/challenge?did=did:pkh:eip155:31337:0x0000000000000000000000000000000000000001")
        .await
        .assert_status(OK);
}

// ---- personal data ------------------------------------------------------------------------------

#[tokio::test]
async fn a_traveler_downloads_everything_kippu_holds_about_them() {
    let app = TestApp::new().await;
    assert_sign_in_required(&app, Method::GET, "/me/data").await;
    let (aiko, _, _) = explorer(&app, "Aiko").await;
    let a = aiko.get("/me/data").await;
    a.assert_status(OK);
    assert_eq!(
        a.header("content-disposition"),
        Some(format!("attachment; filename=\"kippu-data-{:#x}.json\"", aiko.address()).as_str())
    );
    let data = a.json();
    assert!(data.to_string().contains("aiko@kippu.test") && data.to_string().contains("Aiko"), "{data}");
}

#[tokio::test]
async fn erasure_needs_confirming_then_closes_the_account() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 0).await;
    aiko.post_form("/me/erase", &[("confirm", "yes")])
        .await
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_contains("Type erase in the box to confirm");
    let session = aiko.cookie("kippu_session").unwrap();
    let a = aiko.post_form("/me/erase", &[("confirm", "erase")]).await;
    a.assert_status(SEE_OTHER);
    assert!(app.store.session(&session, 0).await.unwrap().is_none(), "every session ends");
    assert_eq!(a.location(), "/signin?erased=1");
    assert!(aiko.cookie("kippu_session").is_none());
    assert_eq!(app.platform.calls(), vec![PlatformCall::KeyRevoked(aiko.address())]);
    assert!(app.store.email_of(&aiko.address()).await.unwrap().is_none());
    assert!(app.store.key_revocation(&aiko.address()).await.unwrap().is_some());
    assert_sign_in_required(&app, Method::POST, "/me/erase").await;
}

#[tokio::test]
async fn revoking_the_account_key_needs_confirming_and_stops_it_signing() {
    let app = TestApp::new().await;
    let (aiko, _, t) = explorer(&app, "Aiko").await;
    let session = aiko.cookie("kippu_session").unwrap();
    aiko.post_form("/me/revoke-key", &[])
        .await
        .assert_status(StatusCode::BAD_REQUEST)
        .assert_contains("Type revoke in the box to confirm.");
    let a = aiko.post_form("/me/revoke-key", &[("confirm", "revoke")]).await;
    a.assert_status(SEE_OTHER);
    assert_eq!(a.location(), "/signin?revoked=1");
    assert_eq!(app.platform.calls(), vec![PlatformCall::KeyRevoked(aiko.address())]);
    assert!(app.store.session(&session, 0).await.unwrap().is_none(), "its sessions end");
    // Even with a fresh session the key signs no pass.
    app.store.create_session("fresh", &aiko.address(), i64::MAX).await.unwrap();
    let again = app.client();
    again.set_cookie("kippu_session", "fresh");
    again
        .get(&format!("/tickets/{}/pass.png", t[0]))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("revoked by the traveler");
    assert_sign_in_required(&app, Method::POST, "/me/revoke-key").await;
}

// ---- snapshots ---------------------------------------------------------------------------------

/// A consortium with a fixed history: on 2026-01-01 (chain time) Aiko buys the Explorer and
/// Ben the Commuter, Ben refunds his metro rides, a delay pays Aiko a voucher that the taxi
/// redeems, Aiko rides the metro twice, and period 1 closes.
async fn fixed_history() -> TestApp {
    let app = TestApp::builder().chain_time(1_767_225_600).build().await.unwrap();
    let aiko = app.traveler("Aiko", 5_000).await;
    let ben = app.traveler("Ben", 5_000).await;
    aiko.buy(EXPLORER).await;
    ben.buy(COMMUTER).await;
    use kippu_app::ports::Chain as _;
    app.chain.refund(5).await.unwrap();
    app.chain.advance(3_600).await;
    let v = app.chain.report_delay(keccak256("bus trip 7 2026-01-01"), 4, 22).await.unwrap();
    app.chain.redeem_voucher(v, TAXI).await.unwrap();
    for (i, at) in [1_767_229_200u64, 1_767_232_800].iter().enumerate() {
        let tap = kippu_domain::validation::Tap {
            scan_id: format!("scan-{i}"),
            ticket_id: 1,
            operator_id: METRO,
            gate: "metro/central/g1".into(),
            at: *at,
            trip: None,
        };
        app.store.record_tap(&tap).await.unwrap();
    }
    app.chain.advance(86_400).await;
    app.chain.close_period(1).await.unwrap();
    app
}

/// Masks what differs between runs: when a statement was printed (the system clock; every
/// figure is at the fixed chain time).
fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"<dt>Issued</dt><dd>[^<]*</dd>", "<dt>Issued</dt><dd>[now]</dd>");
    // every render gives each buy form a fresh purchase request id
    s.add_filter(r#"name="request" value="0x[0-9a-f]{64}""#, r#"name="request" value="[request id]""#);
    s.set_prepend_module_to_snapshot(false);
    s
}

/// JSON pretty-printed (keys in order), anything else as it came.
fn readable(a: &kippu_testkit::Answer) -> String {
    match serde_json::from_str::<serde_json::Value>(&a.body) {
        Ok(v) if a.header("content-type").is_some_and(|t| t.contains("json")) => {
            serde_json::to_string_pretty(&v).unwrap()
        }
        _ => a.body.clone(),
    }
}

#[tokio::test]
async fn snapshot_operator_reports_and_exports() {
    let app = fixed_history().await;
    let s = staff(&app).await;
    let mut pages = Vec::new();
    for path in [
        "/operators/metro/report.csv",
        "/operators/metro/report.csv?table=bundles",
        "/operators/metro/report.csv?table=periods",
        "/operators/taxi/report.json",
        "/operators/metro/events.csv",
        "/operators/taxi/events.json?kind=VoucherRedeemed,VoucherSettled",
        "/operators/metro/rides.csv",
        "/operators/insurer/statements/1?format=json",
        "/operators/taxi/statements/1?format=csv",
    ] {
        let a = s.get(path).await;
        a.assert_status(OK);
        pages.push((path, readable(&a)));
    }
    let settings = snapshot_settings();
    settings.bind(|| {
        for (path, body) in &pages {
            let name = path.trim_start_matches("/operators/").replace(['/', '?', '=', ',', '.'], "_");
            insta::assert_snapshot!(name, body);
        }
    });
}

#[tokio::test]
async fn snapshot_report_pages() {
    let app = fixed_history().await;
    let s = staff(&app).await;
    let report = s.get("/operators/metro/report").await;
    report.assert_status(OK);
    let consortium = s.get("/operators/report").await;
    consortium.assert_status(OK);
    let statement = s.get("/operators/metro/statements/1").await;
    statement.assert_status(OK);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("page_metro_report", report.body);
        insta::assert_snapshot!("page_consortium_report", consortium.body);
        insta::assert_snapshot!("page_metro_statement_1", statement.body);
    });
}

#[tokio::test]
async fn snapshot_traveler_pages() {
    let app = TestApp::new().await;
    let aiko = app.traveler("Aiko", 4_321).await;
    let plans = aiko.get("/plans").await;
    plans.assert_status(OK);
    let signin = app.client().get("/signin").await;
    let signup_error = app
        .client()
        .post_form("/signup", &[("name", "Aiko"), ("email", "aiko@"), ("password", "short"), ("confirm", "shorter")])
        .await;
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("page_plans", plans.body);
        insta::assert_snapshot!("page_signin", signin.body);
        insta::assert_snapshot!("page_signup_errors", signup_error.body);
    });
}

// ---- organisations, staff, tokens, the audit log ------------------------------------------

/// The text between `<code id="{id}">` and `</code>` of a page.
fn code_by_id(body: &str, id: &str) -> String {
    let open = format!("<code id=\"{id}\">");
    let start = body.find(&open).unwrap_or_else(|| panic!("no {id} in {body}")) + open.len();
    body[start..start + body[start..].find("</code>").unwrap()].to_owned()
}

#[tokio::test]
async fn an_invited_colleague_sets_a_password_once_and_signs_in() {
    let app = TestApp::new().await;
    let bus = app.client();
    bus.staff_sign_in_as(&staff_email("bus")).await;
    let page = bus.post_form("/portal/orgs/bus/staff", &[("email", " New@Bus.test "), ("role", "staff")]).await;
    page.assert_status(OK).assert_contains("new@bus.test").assert_contains("is not shown again");
    let link = code_by_id(&page.body, "invitation-link");
    let path = link.strip_prefix(PUBLIC_URL).expect("a link to this app").to_owned();
    // The same e-mail twice, a role an operator has not.
    bus.post_form("/portal/orgs/bus/staff", &[("email", "new@bus.test"), ("role", "staff")])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("has a staff account already");
    bus.post_form("/portal/orgs/bus/staff", &[("email", "x@bus.test"), ("role", "admin")])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let new = app.client();
    new.get(&path).await.assert_status(OK).assert_contains("new@bus.test").assert_contains("staff");
    new.post_form(&path, &[("password", "long enough password"), ("confirm", "another one entirely")])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("differ");
    new.post_form(&path, &[("password", "short"), ("confirm", "short")])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("at least 12");
    let done = new.post_form(&path, &[("password", "long enough password"), ("confirm", "long enough password")]).await;
    assert!(done.assert_status(SEE_OTHER).location().starts_with("/portal/signin?notice="));
    new.get(&path).await.assert_status(StatusCode::NOT_FOUND).assert_contains("unknown, used or expired");
    let signin =
        new.post_form("/portal/signin", &[("email", "new@bus.test"), ("password", "long enough password")]).await;
    assert_eq!(signin.assert_status(SEE_OTHER).location(), "/portal");
    new.get("/portal")
        .await
        .assert_status(OK)
        .assert_contains("new@bus.test")
        .assert_contains("/operators/bus/report")
        .assert_contains("/portal/orgs/bus/tokens");
    // The consortium's pages are not among its links.
    let home = new.get("/portal").await.body;
    let links = &home[home.find("portal-links").unwrap()..];
    assert!(!links[..links.find("</ul>").unwrap()].contains("/gates"), "{links}");
}

#[tokio::test]
async fn a_disabled_colleague_is_signed_out_at_once_and_a_role_change_applies_at_once() {
    let app = TestApp::new().await;
    let bus = app.client();
    bus.staff_sign_in_as(&staff_email("bus")).await;
    let page = bus.post_form("/portal/orgs/bus/staff", &[("email", "clerk@bus.test"), ("role", "staff")]).await;
    let link = code_by_id(&page.body, "invitation-link");
    let path = link.strip_prefix(PUBLIC_URL).unwrap().to_owned();
    let clerk = app.client();
    clerk.post_form(&path, &[("password", "clerk's password"), ("confirm", "clerk's password")]).await;
    clerk.post_form("/portal/signin", &[("email", "clerk@bus.test"), ("password", "clerk's password")]).await;
    clerk.get("/portal/orgs/bus/tokens").await.assert_status(OK).assert_contains("Issue a token");
    let id = app.store.staff_by_email("clerk@bus.test").await.unwrap().unwrap().id;
    // Made an auditor: reads, changes nothing.
    bus.post_form(&format!("/portal/orgs/bus/staff/{id}/role"), &[("role", "auditor")]).await.assert_status(SEE_OTHER);
    let tokens = clerk.get("/portal/orgs/bus/tokens").await;
    assert!(!tokens.assert_status(OK).body.contains("Issue a token"));
    clerk
        .post_form("/portal/orgs/bus/tokens", &[("name", "x"), ("days", "3"), ("scope", "reports:read")])
        .await
        .assert_status(StatusCode::FORBIDDEN)
        .assert_contains("can read but not change");
    // Nobody changes their own account; then disabled: the open session ends.
    let me = app.store.staff_by_email(&staff_email("bus")).await.unwrap().unwrap().id;
    bus.post_form(&format!("/portal/orgs/bus/staff/{me}/disable"), &[])
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("ask a colleague");
    bus.post_form(&format!("/portal/orgs/bus/staff/{id}/disable"), &[]).await.assert_status(SEE_OTHER);
    assert!(clerk.get("/portal/orgs/bus/tokens").await.location().starts_with("/portal/signin"));
    let again =
        clerk.post_form("/portal/signin", &[("email", "clerk@bus.test"), ("password", "clerk's password")]).await;
    again.assert_status(StatusCode::UNAUTHORIZED);
    // Another operator's staff cannot touch bus's accounts.
    let metro = app.client();
    metro.staff_sign_in_as(&staff_email("metro")).await;
    metro
        .post_form(&format!("/portal/orgs/bus/staff/{me}/role"), &[("role", "auditor")])
        .await
        .assert_status(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tokens_are_issued_shown_once_listed_and_revoked_from_the_portal() {
    let app = TestApp::new().await;
    let metro = app.client();
    metro.staff_sign_in_as(&staff_email("metro")).await;
    let page = metro
        .post_form(
            "/portal/orgs/metro/tokens",
            &[("name", "reporting"), ("days", "30"), ("scope", "reports:read"), ("scope", "audit:read")],
        )
        .await;
    page.assert_status(OK).assert_contains("not shown again");
    let token = code_by_id(&page.body, "token-secret");
    let list = metro.get("/portal/orgs/metro/tokens").await;
    list.assert_status(OK)
        .assert_contains("reporting")
        .assert_contains("reports:read audit:read")
        .assert_contains("never");
    assert!(!list.body.contains(&token), "the secret is shown once");
    let machine = app.machine();
    let report = |t: String| {
        let machine = &machine;
        async move {
            machine
                .request(Method::GET, "/operators/metro/report.json")
                .header("authorization", &format!("Bearer {t}"))
                .send()
                .await
        }
    };
    report(token.clone()).await.assert_status(OK);
    // Refused: a scope the organisation's kind has not, a scope unknown, too long a life.
    for (scope, days, why) in [
        ("credentials:write", "30", "have no credentials:write"),
        ("staff:write", "30", "unknown token scope"),
        ("reports:read", "400", "1 to 365 days"),
    ] {
        let a = metro.post_form("/portal/orgs/metro/tokens", &[("name", "x"), ("days", days), ("scope", scope)]).await;
        assert!(matches!(a.status.as_u16(), 400 | 403 | 422), "{scope}: {}", a.status);
        a.assert_contains(why);
    }
    let id = app.store.tokens_of("metro").await.unwrap()[0].id.clone();
    metro.post_form(&format!("/portal/orgs/metro/tokens/{id}/revoke"), &[]).await.assert_status(SEE_OTHER);
    report(token).await.assert_status(StatusCode::UNAUTHORIZED).assert_contains("revoked");
    metro.get("/portal/orgs/metro/tokens").await.assert_contains("revoked");
    metro.post_form(&format!("/portal/orgs/metro/tokens/{id}/revoke"), &[]).await.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_audit_log_is_filtered_exported_and_scoped_to_the_organisation() {
    let app = TestApp::new().await;
    let metro = app.client();
    metro.staff_sign_in_as(&staff_email("metro")).await;
    metro.post_form("/portal/orgs/metro/tokens", &[("name", "bi"), ("days", "7"), ("scope", "reports:read")]).await;
    let bus = app.client();
    bus.staff_sign_in_as(&staff_email("bus")).await;
    let admin = staff(&app).await;
    let all = admin.get("/portal/audit").await;
    all.assert_status(OK).assert_contains("token.issued").assert_contains(&format!("staff:{}", staff_email("bus")));
    let filtered = admin.get("/portal/audit?action=token.issued").await;
    assert!(filtered.body.contains("<code>token.issued</code>"), "{}", filtered.body);
    assert!(!filtered.body.contains("<code>staff.sign_in</code>"), "{}", filtered.body);
    let csv = admin.get("/portal/audit.csv?organisation=metro").await;
    assert!(csv.assert_status(OK).header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.body.starts_with("seq,at,actor,organisation,action,target,client,hash\n"), "{}", csv.body);
    assert!(csv.body.lines().skip(1).all(|l| l.split(',').nth(3) == Some("metro")), "{}", csv.body);
    assert!(csv.body.contains("token.issued"));
    admin.get("/portal/audit?action=nonsense").await.assert_status(StatusCode::BAD_REQUEST);
    admin.get("/portal/audit?since=yesterday").await.assert_status(StatusCode::BAD_REQUEST);
    // An organisation's staff see theirs only.
    let own = metro.get("/portal/orgs/metro/audit.csv").await;
    assert!(own.assert_status(OK).body.contains("token.issued"));
    assert!(!own.body.contains("staff@bus.test"), "{}", own.body);
    metro.get("/portal/audit").await.assert_status(StatusCode::FORBIDDEN);
    metro.get("/portal/orgs/bus/audit").await.assert_status(StatusCode::FORBIDDEN);
    // The consortium's auditor reads all of it.
    let auditor = app.client();
    auditor.staff_sign_in_as(kippu_testkit::app::AUDITOR).await;
    auditor.get("/portal/audit.csv").await.assert_status(OK).assert_contains("staff@bus.test");
}

/// Seeds the outbox through its port: a write of each state the admin page tells apart.
async fn seed_chain_writes(app: &TestApp) {
    use kippu_app::ports::ChainWrites;
    use kippu_domain::outbox::{Stage, StageChange, WriteKey, WriteKind};
    let w = |kind, id: &str| WriteKey { kind, id: id.into() };
    let now = kippu_testkit::app::now();
    let store: &dyn ChainWrites = &app.store;
    let tx = |b: u8| [b; 32];
    let keys = [
        w(WriteKind::Mint, "cs_recorded"),
        w(WriteKind::Purchase, "req-stuck"),
        w(WriteKind::Redemption, "voucher-gone"),
        w(WriteKind::PeriodClose, "7"),
        w(WriteKind::Anchor, "batch-done"),
    ];
    for k in &keys {
        assert!(store.record_write(k, "{}", "0xsender", now - 600).await.unwrap());
    }
    let at = |stage, attempts, nonce| StageChange { nonce, ..StageChange::to(stage, attempts) };
    let stuck = at(Stage::Sent { tx: tx(0x5a), at: now - 120 }, 6, Some(41));
    store.set_write_stage(&keys[1], &stuck, now - 120).await.unwrap();
    store
        .set_write_stage(&keys[2], &at(Stage::Confirmed { tx: tx(0x01), block: 90 }, 1, Some(7)), now - 300)
        .await
        .unwrap();
    let again = at(Stage::Sent { tx: tx(0x02), at: now - 60 }, 2, Some(8));
    store.set_write_stage(&keys[2], &again, now - 60).await.unwrap();
    let refused = at(Stage::Failed { reason: "PeriodNotOver(7)".into() }, 1, None);
    store.set_write_stage(&keys[3], &refused, now - 30).await.unwrap();
    let done = at(Stage::Confirmed { tx: tx(0xcd), block: 120 }, 1, Some(9));
    store.set_write_stage(&keys[4], &done, now - 10).await.unwrap();
}

/// The `data-state` of each row of the page's table, in order.
fn chain_write_rows(body: &str) -> Vec<String> {
    let table = body.split("id=\"chain-writes\"").nth(1).unwrap_or("");
    table.split("<tr data-state=\"").skip(1).map(|r| r[..r.find('"').unwrap()].to_owned()).collect()
}

#[tokio::test]
async fn the_chain_write_outbox_is_shown_to_the_consortiums_admins_and_auditors_only() {
    let app = TestApp::new().await;
    seed_chain_writes(&app).await;
    let admin = staff(&app).await;
    admin.get("/portal").await.assert_contains("href=\"/portal/chain-writes\"");
    let page = admin.get("/portal/chain-writes").await;
    page.assert_status(OK)
        // counts: pending (recorded, stuck, gone), stuck, failed, gone, confirmed lately
        .assert_contains(r#"<li data-state="pending"><span class="label">Pending</span><a href="/portal/chain-writes?state=pending">3</a>"#)
        .assert_contains(r#"<li data-state="stuck"><span class="label">Stuck</span><a href="/portal/chain-writes?state=stuck">1</a>"#)
        .assert_contains(r#"<li data-state="failed"><span class="label">Failed</span><a href="/portal/chain-writes?state=failed">1</a>"#)
        .assert_contains(r#"<li data-state="gone"><span class="label">Gone from chain</span><a href="/portal/chain-writes?state=gone">1</a>"#)
        .assert_contains(r#"<li data-state="confirmed"><span class="label">Confirmed (24 h)</span><a href="/portal/chain-writes?state=confirmed">1</a>"#)
        .assert_contains("<svg")
        .assert_contains("Needs a look")
        // the rows: what each is, its transaction shortened with the full hash in the title
        .assert_contains("<code>period_close</code></td><td><code>7</code>")
        .assert_contains("PeriodNotOver(7)")
        .assert_contains("confirmed, then gone from the chain — being sent again")
        .assert_contains("sent 6 times, not yet confirmed")
        .assert_contains(&format!(r#"<code class="hash" title="0x{}">0x5a5a…5a5a</code>"#, "5a".repeat(32)))
        .assert_contains("confirmed · block 120")
        .assert_contains("<td class=\"num\">41</td>")
        .assert_contains("10 min")
        .assert_contains("2 min ago");
    // Everything not confirmed first, newest change first; then the confirmed.
    assert_eq!(chain_write_rows(&page.body), ["failed", "gone", "stuck", "pending", "confirmed"]);

    // Filtered by state.
    for (state, rows) in [
        ("pending", &["gone", "stuck", "pending"][..]),
        ("stuck", &["stuck"][..]),
        ("failed", &["failed"][..]),
        ("gone", &["gone"][..]),
        ("confirmed", &["confirmed"][..]),
        ("all", &["failed", "gone", "stuck", "pending", "confirmed"][..]),
    ] {
        let a = admin.get(&format!("/portal/chain-writes?state={state}")).await;
        a.assert_status(OK).assert_contains(&format!("<option selected>{state}</option>"));
        assert_eq!(chain_write_rows(&a.body), rows, "{state}");
    }
    let bad = admin.get("/portal/chain-writes?state=done").await;
    bad.assert_status(StatusCode::BAD_REQUEST)
        .assert_contains("no chain-write state")
        .assert_contains("one of: all, pending, stuck, failed, gone, confirmed");

    // The consortium's auditor reads it too.
    let auditor = app.client();
    auditor.staff_sign_in_as(kippu_testkit::app::AUDITOR).await;
    auditor.get("/portal").await.assert_contains("href=\"/portal/chain-writes\"");
    let a = auditor.get("/portal/chain-writes?state=failed").await;
    a.assert_status(OK).assert_contains("PeriodNotOver(7)");

    // An operator's staff get the consortium pages' refusal, and no link; a stranger is sent to sign in.
    let metro = app.client();
    metro.staff_sign_in_as(&staff_email("metro")).await;
    let p = metro.get("/portal").await;
    assert!(!p.body.contains("/portal/chain-writes"), "{}", p.body);
    metro
        .get("/portal/chain-writes")
        .await
        .assert_status(StatusCode::FORBIDDEN)
        .assert_contains("another organisation");
    let stranger = app.client().get("/portal/chain-writes?state=failed").await;
    assert_eq!(
        (stranger.status, stranger.location()),
        (SEE_OTHER, "/portal/signin?next=%2Fportal%2Fchain-writes%3Fstate%3Dfailed")
    );
    assert!(!stranger.body.contains("PeriodNotOver"));
}

#[tokio::test]
async fn an_empty_outbox_says_nothing_needs_a_look() {
    let app = TestApp::new().await;
    let page = staff(&app).await.get("/portal/chain-writes").await;
    page.assert_status(OK).assert_contains("Nothing needs a look").assert_contains("No chain writes.");
    assert!(!page.body.contains("<svg"), "no chart of nothing");
    assert!(chain_write_rows(&page.body).is_empty());
}

#[tokio::test]
async fn the_admin_adds_an_organisation_and_invites_its_first_member() {
    let app = TestApp::new().await;
    let admin = staff(&app).await;
    let form = [("slug", "ferry"), ("name", "Harbour Ferry"), ("kind", "operator"), ("email", "ops@ferry.test")];
    let page = admin.post_form("/portal/organisations", &form).await;
    page.assert_status(OK).assert_contains("ops@ferry.test").assert_contains("Harbour Ferry");
    let link = code_by_id(&page.body, "invitation-link");
    assert!(link.starts_with(&format!("{PUBLIC_URL}/portal/invitations/")), "{link}");
    assert_eq!(app.store.staff_of("ferry").await.unwrap().len(), 1);
    admin
        .post_form("/portal/organisations", &form)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("already");
    let bad = [("slug", "Ferry!"), ("name", "x"), ("kind", "operator"), ("email", "a@b.test")];
    admin
        .post_form("/portal/organisations", &bad)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("slug");
    let second = [("slug", "kippu2"), ("name", "x"), ("kind", "consortium"), ("email", "a@b.test")];
    admin.post_form("/portal/organisations", &second).await.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let bus = app.client();
    bus.staff_sign_in_as(&staff_email("bus")).await;
    let again = [("slug", "mole"), ("name", "Mole"), ("kind", "operator"), ("email", "m@mole.test")];
    bus.post_form("/portal/organisations", &again).await.assert_status(StatusCode::FORBIDDEN);
    bus.get("/portal/organisations").await.assert_status(StatusCode::FORBIDDEN).assert_contains("another organisation");
    assert!(app.store.organisation("mole").await.unwrap().is_none());
}

#[tokio::test]
async fn staff_sign_in_with_a_passkey_and_no_traveler_passkey_opens_a_staff_session() {
    let app = TestApp::new().await;
    let bus = app.client();
    bus.staff_sign_in_as(&staff_email("bus")).await;
    let mut theirs = SoftAuthenticator::new(&app.origin());
    let options = bus.post_json("/portal/passkeys/register/start", &json!({})).await;
    let registration = theirs.register(&options.assert_status(OK).json());
    bus.post_json("/portal/passkeys/register/finish", &registration).await.assert_status(OK);
    bus.get("/portal").await.assert_contains("has 1 passkey");
    // On another device: the passkey opens a staff session.
    let phone = app.client();
    let options = phone.post_json("/portal/passkeys/signin/start", &json!({})).await;
    let a = phone.post_json("/portal/passkeys/signin/finish", &theirs.sign_in(&options.json())).await;
    assert_eq!(a.assert_status(OK).json(), json!({"ok": true, "to": "/portal"}));
    phone.get("/portal/orgs/bus/staff").await.assert_status(OK);
    phone.get("/portal/orgs/metro/staff").await.assert_status(StatusCode::FORBIDDEN);

    // A traveler's passkey opens no staff session, and a staff passkey no traveler's.
    let aiko = app.traveler("Aiko", 0).await;
    let mut hers = SoftAuthenticator::new(&app.origin());
    let o = aiko.post_json("/passkeys/register/start", &json!({})).await.json();
    aiko.post_json("/passkeys/register/finish", &hers.register(&o)).await.assert_status(OK);
    let stranger = app.client();
    let o = stranger.post_json("/portal/passkeys/signin/start", &json!({})).await.json();
    stranger
        .post_json("/portal/passkeys/signin/finish", &hers.sign_in(&o))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("not a Kippu staff passkey");
    let o = stranger.post_json("/passkeys/signin/start", &json!({})).await.json();
    stranger
        .post_json("/passkeys/signin/finish", &theirs.sign_in(&o))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY)
        .assert_contains("not registered");
    assert!(stranger.cookie("kippu_portal").is_none() && stranger.cookie("kippu_session").is_none());

    // A machine's token adds no passkey; a disabled account's passkey opens nothing.
    let token = app.token("bus", &[kippu_domain::staff::Permission::ReportsRead]).await;
    app.machine()
        .request(Method::POST, "/portal/passkeys/register/start")
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await
        .assert_status(StatusCode::FORBIDDEN);
    let id = app.store.staff_by_email(&staff_email("bus")).await.unwrap().unwrap().id;
    staff(&app).await.post_form(&format!("/portal/orgs/bus/staff/{id}/disable"), &[]).await.assert_status(SEE_OTHER);
    let later = app.client();
    let o = later.post_json("/portal/passkeys/signin/start", &json!({})).await.json();
    later
        .post_json("/portal/passkeys/signin/finish", &theirs.sign_in(&o))
        .await
        .assert_status(StatusCode::FORBIDDEN)
        .assert_contains("disabled");
    assert!(later.cookie("kippu_portal").is_none());
}
