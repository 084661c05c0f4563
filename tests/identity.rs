//! Decentralized identity end to end: did:web documents served by Kippu, a
//! concession credential issued in the issuer portal lowering a bundle's price
//! (the attestation, not the credential, reaching the chain), revocation
//! through the Bitstring Status List restoring the full price, presentations
//! from a self-custodied wallet with every kind of bad input refused with its
//! own code, key revocation, and GDPR export and erasure leaving the ledger exact.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use chrono::{TimeZone, Utc};
use kippu::Config;
use kippu_credentials::{did_web, Concession, Credentials, IssuerKey, NewConcession, Resolver};
use kippu_domain::staff::Permission;
use kippu_e2e::{config, production_parts, staff_token, Client};
use kippu_identity::{deterministic_demo_key, did_pkh};
use serde_json::{json, Value};

fn thief_key() -> PrivateKeySigner {
    PrivateKeySigner::random()
}

fn one_year() -> String {
    (Utc::now() + chrono::Duration::days(365)).format("%Y-%m-%d").to_string()
}

/// A wallet outside Kippu: its key never touches the server.
struct Wallet {
    key: PrivateKeySigner,
    did: String,
    creds: Credentials,
}

impl Wallet {
    fn new() -> Self {
        let key = PrivateKeySigner::random();
        let did = did_pkh(31337, key.address());
        Self { key, did, creds: Credentials::new(Resolver::new("did:web:wallet.invalid", Duration::from_secs(60))) }
    }

    async fn present(&self, vcs: &[Value], challenge: &str, domain: &str) -> Value {
        self.creds.present(&self.key.to_bytes().0, &self.did, vcs, challenge, domain).await.unwrap()
    }
}

async fn challenge(c: &Client) -> (String, String) {
    let v: Value = c.json("/api/presentations/challenge").await;
    (v["challenge"].as_str().unwrap().to_owned(), v["domain"].as_str().unwrap().to_owned())
}

async fn submit(c: &Client, vp: &Value) -> Value {
    let r =
        c.http.post(format!("{}/api/presentations", c.base)).json(&json!({"presentation": vp})).send().await.unwrap();
    r.json().await.unwrap()
}

/// A fresh challenge, a presentation of `vcs` by `w`, Kippu's answer.
async fn present(c: &Client, w: &Wallet, vcs: &[Value]) -> Value {
    let (nonce, domain) = challenge(c).await;
    submit(c, &w.present(vcs, &nonce, &domain).await).await
}

/// Issues over the issuer's JSON API, as its machines do with its API token (`credentials:write`).
async fn issue_json(c: &Client, token: &str, issuer: &str, holder: &str, concession: &str) -> Value {
    let r = c
        .http
        .post(format!("{}/portal/issuers/{issuer}/issue", c.base))
        .header("accept", "application/json")
        .bearer_auth(token)
        .form(&[("holder", holder), ("concession", concession), ("valid_until", one_year().as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn run(cfg: Config) {
    let stack = kippu::start(cfg).await.expect("stack starts");
    let c = Client::new(&stack.web_url);
    let authority = stack.web_url.trim_start_matches("http://").to_owned();

    // did:web documents: the consortium (its attestor account), operators, issuers (Ed25519 Multikey).
    let root: Value = c.json("/.well-known/did.json").await;
    assert_eq!(root["id"], did_web(&authority, &[]));
    assert!(root["verificationMethod"][0]["blockchainAccountId"].as_str().unwrap().starts_with("eip155:31337:0x"));
    let usf_did = did_web(&authority, &["issuers", "usf"]);
    let usf: Value = c.json("/issuers/usf/did.json").await;
    assert_eq!(usf["id"], usf_did);
    assert_eq!(usf["verificationMethod"][0]["type"], "Multikey");
    assert!(usf["verificationMethod"][0]["publicKeyMultibase"].as_str().unwrap().starts_with("z6Mk"));
    let metro: Value = c.json("/operators/metro/did.json").await;
    assert_eq!(metro["id"], did_web(&authority, &["operators", "metro"]));
    assert_eq!(c.http.get(format!("{}/issuers/nobody/did.json", c.base)).send().await.unwrap().status(), 404);

    // Aiko signs in; no concession yet: full price.
    let aiko = deterministic_demo_key("aiko");
    let aiko_did = did_pkh(31337, aiko.address());
    let (status, _, _) = c.form("/signin", &[("address", &format!("{:#x}", aiko.address()))]).await;
    assert_eq!(status, 200);
    let (full, _) = stack.chain.quote(1).await.unwrap();
    let student = stack.chain.quote_with_concession(1, 3_000).await.unwrap();
    assert!(student < full);
    let fmt = |v: u128| kippu_domain::money::format_fare(v as i128);
    let plans = c.page("/plans").await;
    assert!(plans.contains(&format!("Buy for {} FARE", fmt(full))) && !plans.contains("id=\"concession\""), "{plans}");

    // The portal is for the issuer's staff only.
    let page = c.page("/portal/issuers/usf").await;
    assert!(page.contains("id=\"portal-signin\""), "unauthenticated portal visit goes to the staff sign-in");
    let (status, _, _) = c
        .form(
            "/portal/issuers/usf/issue",
            &[("holder", &aiko_did), ("concession", "student"), ("valid_until", &one_year())],
        )
        .await;
    assert_eq!(status, 401, "nobody but staff issues credentials");
    assert!(stack.store.issued_by("usf").await.unwrap().is_empty());
    let usf_staff = kippu::dev::dev_staff_email("usf");
    let (status, _, page) = c
        .form("/portal/signin", &[("email", &usf_staff), ("password", "guess"), ("next", "/portal/issuers/usf")])
        .await;
    assert_eq!(status, 401);
    assert!(page.contains("Wrong e-mail or password."), "{page}");
    // Another issuer's staff (the city's) may not open the university's register.
    let city = Client::new(&stack.web_url);
    city.staff_sign_in_as(&kippu::dev::dev_staff_email("tampa-welfare"), "/portal").await;
    let r = city.http.get(format!("{}/portal/issuers/usf", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 403, "another issuer's staff in the university's register");
    c.staff_sign_in_as(&usf_staff, "/portal/issuers/usf").await;

    // The university issues her a student credential in the portal; it lands in her wallet.
    let (status, url, page) = c
        .form(
            "/portal/issuers/usf/issue",
            &[("holder", &aiko_did), ("concession", "student"), ("valid_until", &one_year())],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(url.contains("notice=") && page.contains("delivered to the traveler"), "{url}");
    // Bad portal input is refused with a reason.
    let (status, _, page) = c
        .form(
            "/portal/issuers/usf/issue",
            &[("holder", "did:example:x"), ("concession", "student"), ("valid_until", &one_year())],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("did:pkh"), "{page}");
    let (status, _, page) = c
        .form(
            "/portal/issuers/usf/issue",
            &[("holder", &aiko_did), ("concession", "senior"), ("valid_until", &one_year())],
        )
        .await;
    assert_eq!(status, 422, "USF is trusted for student concessions only");
    assert!(page.contains("not on the trust list"), "{page}");

    let wallet = c.page("/credentials").await;
    assert!(wallet.contains("✔ valid") && wallet.contains("University of South Florida"), "{wallet}");
    let plans = c.page("/plans").await;
    assert!(plans.contains("student concession, 30% off"), "{plans}");
    assert!(plans.contains(&format!("Buy for {} FARE", fmt(student))), "{plans}");

    // Buying presents the credential (fresh challenge, signed presentation) and pays the concession price.
    let before = c.me().await["balance"].as_u64().unwrap();
    let (_, url, page) = c.form("/plans/1/buy", &[]).await;
    assert!(url.contains("bought="), "{url}: {page}");
    let after = c.me().await["balance"].as_u64().unwrap();
    assert_eq!(u128::from(before - after), student, "paid the concession price");

    // The issuer revokes it: the status list bit flips, the wallet says so, the full price is back.
    let issued = stack.store.issued_by("usf").await.unwrap();
    let id = issued.iter().find(|i| i.holder_did == aiko_did).unwrap().id.clone();
    let (status, _, page) = c.form("/portal/issuers/usf/revoke", &[("id", &id)]).await;
    assert_eq!(status, 200);
    assert!(page.contains("revoked"), "{page}");
    let (status, _, _) = c.form("/portal/issuers/usf/revoke", &[("id", &id)]).await;
    assert_eq!(status, 404, "revoking twice is refused");
    let list: Value = c.json("/credentials/status/usf").await;
    assert_eq!(list["type"][1], "BitstringStatusListCredential");
    let wallet = c.page("/credentials").await;
    assert!(wallet.contains("revoked by its issuer"), "{wallet}");
    let plans = c.page("/plans").await;
    assert!(plans.contains(&format!("Buy for {} FARE", fmt(full))) && !plans.contains("id=\"concession\""), "{plans}");

    // A self-custodied wallet: its credential comes over the issuer's JSON API; it presents on its own.
    let w = Wallet::new();
    let usf_machine = staff_token(&stack, "usf", &[Permission::CredentialsWrite]).await;
    let vc = issue_json(&c, &usf_machine, "usf", &w.did, "student").await;
    // It signs in with its own key (DID challenge-response, personal_sign on the wallet side).
    let wc = Client::new(&stack.web_url);
    let ch: Value = wc.json(&format!("/signin/wallet/challenge?did={}", w.did)).await;
    let msg = ch["message"].as_str().unwrap();
    let sig = format!("0x{}", hex::encode(w.key.sign_message_sync(msg.as_bytes()).unwrap().as_bytes()));
    let signin = json!({"did": w.did, "nonce": ch["nonce"], "signature": sig});
    let r = wc.http.post(format!("{}/signin/wallet", wc.base)).json(&signin).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(wc.me().await["did"], json!(w.did));
    let r = wc.http.post(format!("{}/signin/wallet", wc.base)).json(&signin).send().await.unwrap();
    assert_eq!(r.status(), 400, "a sign-in signature cannot be replayed");
    let ch: Value = wc.json(&format!("/signin/wallet/challenge?did={}", w.did)).await;
    let forged = format!(
        "0x{}",
        hex::encode(thief_key().sign_message_sync(ch["message"].as_str().unwrap().as_bytes()).unwrap().as_bytes())
    );
    let r = wc
        .http
        .post(format!("{}/signin/wallet", wc.base))
        .json(&json!({"did": w.did, "nonce": ch["nonce"], "signature": forged}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("DID authentication failed"));
    let ok = present(&c, &w, std::slice::from_ref(&vc)).await;
    assert_eq!(ok["verified"], true, "{ok}");
    assert_eq!(ok["concessions"][0]["concession"], "student");
    // Replayed: the challenge was used.
    let (nonce, domain) = challenge(&c).await;
    let vp = w.present(std::slice::from_ref(&vc), &nonce, &domain).await;
    assert_eq!(submit(&c, &vp).await["verified"], true);
    assert_eq!(submit(&c, &vp).await["code"], "WRONG_CHALLENGE");
    // Made-up challenge; another site's domain.
    let bad = w.present(std::slice::from_ref(&vc), "not-issued-by-kippu", &domain).await;
    assert_eq!(submit(&c, &bad).await["code"], "WRONG_CHALLENGE");
    let (nonce, _) = challenge(&c).await;
    let bad = w.present(std::slice::from_ref(&vc), &nonce, "evil.example").await;
    assert_eq!(submit(&c, &bad).await["code"], "WRONG_DOMAIN");
    // Someone else presenting this wallet's credential, as themselves or forging the holder.
    let thief = Wallet::new();
    assert_eq!(present(&c, &thief, std::slice::from_ref(&vc)).await["code"], "NOT_THE_HOLDER");
    let (nonce, domain) = challenge(&c).await;
    let mut forged = thief.present(std::slice::from_ref(&vc), &nonce, &domain).await;
    forged["holder"] = json!(w.did);
    assert_eq!(submit(&c, &forged).await["code"], "BAD_PRESENTATION");
    // A tampered credential (concession changed), presented with a valid holder signature.
    let mut tampered = vc.clone();
    tampered["credentialSubject"]["concession"] = json!("senior");
    assert_eq!(present(&c, &w, &[tampered]).await["code"], "UNTRUSTED_ISSUER", "USF may not vouch for seniors");
    let mut tampered = vc.clone();
    tampered["validUntil"] = json!("2099-01-01T00:00:00Z");
    assert_eq!(present(&c, &w, &[tampered]).await["code"], "BAD_SIGNATURE");
    // An issuer nobody trusts; an issuer on the trust list whose DID cannot be resolved.
    let rogue = IssuerKey::generate();
    let mk = |subject: &str, from: i64, until: i64| NewConcession {
        id: format!("urn:uuid:{}", rand::random::<u64>()),
        subject_did: subject.to_owned(),
        concession: Concession::Student,
        valid_from: Utc.timestamp_opt(from, 0).unwrap(),
        valid_until: Utc.timestamp_opt(until, 0).unwrap(),
        status: None,
    };
    let t = Utc::now().timestamp();
    let offline_did = "did:web:127.0.0.1%3A9:issuers:gone";
    stack.store.trust(offline_did, "student").await.unwrap();
    let offline = Credentials::new(Resolver::new("did:web:127.0.0.1%3A9", Duration::from_secs(60)));
    offline
        .resolver()
        .publish(offline_did, &kippu_credentials::issuer_document(offline_did, &rogue.public_key(), "Gone"));
    let gone = offline.issue(offline_did, &rogue, &mk(&w.did, t - 10, t + 86_400)).await.unwrap();
    assert_eq!(present(&c, &w, &[gone]).await["code"], "UNRESOLVABLE_DID");
    let mut untrusted = offline.issue(offline_did, &rogue, &mk(&w.did, t - 10, t + 86_400)).await.unwrap();
    untrusted["issuer"] = json!("did:web:127.0.0.1%3A9:issuers:unknown");
    assert_eq!(present(&c, &w, &[untrusted]).await["code"], "UNTRUSTED_ISSUER");
    // Expired and not yet valid (dates are checked before the signature).
    let expired = offline.issue(offline_did, &rogue, &mk(&w.did, t - 2 * 86_400, t - 86_400)).await.unwrap();
    assert_eq!(present(&c, &w, &[expired]).await["code"], "EXPIRED");
    let early = offline.issue(offline_did, &rogue, &mk(&w.did, t + 86_400, t + 2 * 86_400)).await.unwrap();
    assert_eq!(present(&c, &w, &[early]).await["code"], "NOT_YET_VALID");
    // Revoked in the portal: the wallet's presentation is refused.
    let id = vc["id"].as_str().unwrap();
    c.form("/portal/issuers/usf/revoke", &[("id", id)]).await;
    assert_eq!(present(&c, &w, std::slice::from_ref(&vc)).await["code"], "REVOKED");
    assert_eq!(present(&c, &w, &[]).await["code"], "NOTHING_PRESENTED");

    // GDPR article 15: everything about Aiko, as JSON.
    let data: Value = c.json("/me/data").await;
    assert_eq!(data["profile"]["display_name"], "Aiko Tanaka");
    assert_eq!(data["wallet_credentials"].as_array().unwrap().len(), 1);
    assert_eq!(data["tickets"].as_array().unwrap().len(), 4);
    assert!(data["credentials_issued_to_you"][0]["revoked_at"].is_i64());

    // A pass her phone showed before erasure (captured, say) no longer opens a gate afterwards.
    let metro = c.me().await["tickets"].as_array().unwrap().iter().find(|t| t["operator_id"] == 1).unwrap()["id"]
        .as_u64()
        .unwrap();
    let pass = c.http.get(format!("{}/tickets/{metro}/pass.png", c.base)).send().await.unwrap().bytes().await.unwrap();

    // Article 17: erased, signed out, no sign-in; the chain and the ledger are untouched and exact.
    let imbalance = stack.store.ledger_imbalance().await.unwrap();
    let tickets_before = stack.store.tickets_of(&aiko.address()).await.unwrap().len();
    let (status, _, _) = c.form("/me/erase", &[("confirm", "no")]).await;
    assert_eq!(status, 400, "erasure needs the confirmation word");
    let (status, url, _) = c.form("/me/erase", &[("confirm", "erase")]).await;
    assert_eq!(status, 200);
    assert!(url.contains("/signin"), "{url}");
    assert!(stack.store.traveler(&aiko.address()).await.unwrap().is_none(), "profile and custodial key erased");
    assert!(stack.store.wallet(&aiko.address()).await.unwrap().is_empty());
    assert!(stack.store.issued_by("usf").await.unwrap().iter().all(|i| i.holder_did != aiko_did));
    assert_eq!(stack.store.ledger_imbalance().await.unwrap(), imbalance);
    assert_eq!(imbalance, 0);
    assert_eq!(stack.store.tickets_of(&aiko.address()).await.unwrap().len(), tickets_before);
    let (status, _, page) = c.form("/signin", &[("address", &format!("{:#x}", aiko.address()))]).await;
    assert_eq!(status, 403, "an erased account cannot sign in");
    assert!(page.contains("erased at the traveler"), "{page}");
    let v: Value = c
        .http
        .post(format!("{}/gates/metro/central/g1/scan", c.base))
        .body(pass.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["reason"], "KEY_REVOKED", "{v}");

    // Key revocation: Ben revokes his key; it signs nothing any more.
    let b = Client::new(&stack.web_url);
    let ben = deterministic_demo_key("ben");
    let (status, _, _) = b.form("/signin", &[("address", &format!("{:#x}", ben.address()))]).await;
    assert_eq!(status, 200);
    let (status, url, _) = b.form("/me/revoke-key", &[("confirm", "revoke")]).await;
    assert_eq!((status, url.contains("/signin")), (200, true));
    let (status, _, page) = b.form("/signin", &[("address", &format!("{:#x}", ben.address()))]).await;
    assert_eq!(status, 403);
    assert!(page.contains("revoked"), "{page}");

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_on_embedded_default() {
    let _ = tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or("warn".into())).try_init();
    run(config("identity", None, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_on_postgres_and_mosquitto() {
    let Some((db, mqtt, guard)) = production_parts().await else { return };
    run(config("identity-prod", Some(db), Some(mqtt))).await;
    guard.drop_now().await;
}
