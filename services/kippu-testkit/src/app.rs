//! [`TestApp`]: kippu-web's router over a real store (SQLite in memory) seeded with a
//! catalogue, the [`FakeChain`], [`FakePayments`] and [`FakePlatform`], and the identity
//! services, keystore, passkeys and login limits `kippu serve` wires (`services/kippu/src/
//! stack.rs`). Requests go through `tower::ServiceExt::oneshot`; each [`Client`] is a browser
//! with its own cookie jar that says where its requests come from the way browsers do
//! (`Sec-Fetch-Site`, `Origin`), so the app's cross-site rules apply as in production.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use alloy_primitives::{keccak256, Address};
use alloy_signer_local::PrivateKeySigner;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use kippu_credentials::{account_document, did_web, issuer_document, Concession, Credentials, IssuerKey, Resolver};
use kippu_domain::model::Traveler;
use kippu_identity::{did_pkh, ChallengeBook, Keystore};
use kippu_web::{AppState, GateStatus, IdentityServices, Inner, LoginLimits, Passkeys};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::{memory_store, Catalogue, FakeChain, FakePayments, FakePlatform, SetupResult, Store};

/// Where travelers reach the test app (a domain, so passkeys work; HTTPS, so cookies are `Secure`).
pub const PUBLIC_URL: &str = "https://kippu.test";
/// Its did:web authority.
pub const AUTHORITY: &str = "kippu.test";
/// The password of every seeded staff account ([`ADMIN`], [`AUDITOR`], [`staff_email`]).
pub const STAFF_PASSWORD: &str = "staff-password-for-tests";
/// The consortium's seeded admin.
pub const ADMIN: &str = "admin@kippu.test";
/// The consortium's seeded auditor (reads everything, changes nothing).
pub const AUDITOR: &str = "auditor@kippu.test";

/// The seeded member of staff (role `staff`) of an organisation: `staff@{slug}.test`.
pub fn staff_email(slug: &str) -> String {
    format!("staff@{slug}.test")
}
/// The bearer token Prometheus scrapes `/metrics` with.
pub const METRICS_TOKEN: &str = "metrics-token-for-tests";
/// The Stripe webhook signing secret.
pub const WEBHOOK_SECRET: &str = "whsec_kippu_testkit";
/// The keystore's master key.
pub const MASTER_KEY: [u8; 32] = [7; 32];
/// The password of travelers made with [`TestApp::traveler`] (their account exists; signing in
/// with it goes through the real Argon2 check, so it is only known to [`Client::sign_up`]ed ones).
pub const PASSWORD: &str = "correct horse battery staple";

/// How a [`TestApp`] is made.
pub struct TestAppBuilder {
    catalogue: Catalogue,
    time: Option<u64>,
    gates: Vec<GateStatus>,
    metrics_token: Option<String>,
    login_limits: Option<LoginLimits>,
    challenges: Option<(ChallengeBook, ChallengeBook)>,
    max_ceremonies: Option<usize>,
    public_url: String,
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self {
            catalogue: Catalogue::demo(),
            time: None,
            gates: vec![GateStatus {
                key: "metro/central/g1".into(),
                station: "Central Station".into(),
                state: "online".into(),
                last: "OPEN ticket #1".into(),
                did: "did:key:z6MkTestGate".into(),
            }],
            metrics_token: Some(METRICS_TOKEN.into()),
            login_limits: None,
            challenges: None,
            max_ceremonies: None,
            public_url: PUBLIC_URL.into(),
        }
    }
}

impl TestAppBuilder {
    /// Seeds this catalogue instead of the demo's.
    pub fn catalogue(mut self, c: Catalogue) -> Self {
        self.catalogue = c;
        self
    }

    /// Fixes the chain's block time (unix seconds), for figures that must not move.
    pub fn chain_time(mut self, t: u64) -> Self {
        self.time = Some(t);
        self
    }

    /// The gate fleet the platform reports.
    pub fn gates(mut self, gates: Vec<GateStatus>) -> Self {
        self.gates = gates;
        self
    }

    /// The metrics bearer token (`None`: staff only).
    pub fn metrics_token(mut self, token: Option<&str>) -> Self {
        self.metrics_token = token.map(str::to_owned);
        self
    }

    /// Password sign-in and sign-up limits.
    pub fn login_limits(mut self, l: LoginLimits) -> Self {
        self.login_limits = Some(l);
        self
    }

    /// The sign-in and the presentation challenge books.
    pub fn challenges(mut self, sign_in: ChallengeBook, presentations: ChallengeBook) -> Self {
        self.challenges = Some((sign_in, presentations));
        self
    }

    /// Passkey ceremonies held at most, of each kind.
    pub fn max_passkey_ceremonies(mut self, n: usize) -> Self {
        self.max_ceremonies = Some(n);
        self
    }

    /// Where travelers reach the app (`http://127.0.0.1:8080`: no passkeys, no `Secure` cookies).
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = url.into();
        self
    }

    /// Builds the app: a fresh database, seeded; a fresh chain.
    pub async fn build(self) -> SetupResult<TestApp> {
        let store = memory_store().await?;
        let chain = Arc::new(FakeChain::new(store.clone()));
        chain.set_time(self.time).await;
        let authority = self.public_url.split("://").nth(1).unwrap_or(AUTHORITY).trim_end_matches('/').to_owned();
        let keystore = Keystore::new(MASTER_KEY);
        self.catalogue.apply(&store, &chain, &keystore, &authority).await?;
        seed_staff(&store).await?;
        let payments = Arc::new(FakePayments::default());
        let platform = Arc::new(FakePlatform::new(self.gates));

        // The consortium's concession attestor, trusted by the market (CONCESSION_ISSUER_ROLE).
        let attestor = PrivateKeySigner::from_bytes(&keccak256("kippu-testkit attestor"))?;
        chain.trust_attestor(attestor.address()).await;
        // The did:web documents Kippu answers for, as `kippu serve` publishes them.
        let resolver = Resolver::new(did_web(&authority, &[]), std::time::Duration::from_secs(60));
        let root = did_web(&authority, &[]);
        let chain_id = crate::chain::CHAIN_ID;
        resolver.publish(
            &root,
            &account_document(&root, chain_id, &attestor.address().to_checksum(None), "Kippu consortium"),
        );
        for o in store.operators().await? {
            let did = did_web(&authority, &["operators", &o.slug]);
            resolver.publish(&did, &account_document(&did, chain_id, &o.payee.to_checksum(None), &o.name));
        }
        for i in store.issuers().await? {
            let key = IssuerKey::from_seed(*keystore.open_seed(&i.did, &i.sealed_seed)?);
            resolver.publish(&i.did, &issuer_document(&i.did, &key.public_key(), &i.name));
        }
        let identity = IdentityServices {
            credentials: Credentials::new(resolver),
            authority,
            attestor: attestor.clone(),
            discounts: HashMap::from([
                (Concession::Student, 3_000),
                (Concession::Senior, 5_000),
                (Concession::Disability, 5_000),
            ]),
        };
        let (challenges, presentation_challenges) = self.challenges.unwrap_or_default();
        let passkeys = match self.max_ceremonies {
            Some(n) => Passkeys::with_limit(&self.public_url, n),
            None => Passkeys::new(&self.public_url),
        };
        let inner = Inner {
            store: Arc::new(store.clone()),
            chain: chain.clone(),
            chain_writes: Arc::new(store.clone()),
            outbox_policy: kippu_domain::outbox::Policy::default(),
            keystore,
            challenges,
            presentation_challenges,
            checkout: payments.clone(),
            webhook_secret: WEBHOOK_SECRET.into(),
            public_url: self.public_url.clone(),
            platform: platform.clone(),
            dev: None,
            metrics_token: self.metrics_token,
            identity,
            login_limits: self.login_limits.unwrap_or_default(),
            passkeys,
            checkout_origin: payments.origin().to_owned(),
        };
        let router = kippu_web::router(AppState::new(inner));
        Ok(TestApp {
            store,
            chain,
            payments,
            platform,
            catalogue: self.catalogue,
            keystore: Keystore::new(MASTER_KEY),
            attestor,
            public_url: self.public_url,
            router,
            next_event: Mutex::new(0),
        })
    }
}

/// The consortium, one organisation per catalogue operator and issuer, and their staff: the
/// consortium's [`ADMIN`] and [`AUDITOR`], and [`staff_email`] of each organisation, all with
/// [`STAFF_PASSWORD`].
async fn seed_staff(store: &Store) -> SetupResult<()> {
    use kippu_app::staff::{catalogue_organisations, digest, new_secret};
    use kippu_domain::model::{Organisation, StaffAccount};
    use kippu_domain::staff::{OrgKind, Role, CONSORTIUM};
    // One Argon2id hash of STAFF_PASSWORD for every seeded account and every TestApp: hashing
    // per account made each app's set-up take a third of a second (sign-in still checks it).
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| kippu_app::accounts::hash_password(STAFF_PASSWORD).expect("argon2"));
    let now = 1;
    let consortium = Organisation {
        slug: CONSORTIUM.into(),
        name: "Kippu consortium".into(),
        kind: OrgKind::Consortium,
        created_at: now,
    };
    let mut staff =
        vec![(consortium.clone(), ADMIN.to_owned(), Role::Admin), (consortium, AUDITOR.to_owned(), Role::Auditor)];
    for o in catalogue_organisations(&store.operators().await?, &store.issuers().await?, now) {
        let email = staff_email(&o.slug);
        staff.push((o, email, Role::Staff));
    }
    for (i, (org, email, role)) in staff.into_iter().enumerate() {
        store.add_organisation(&org).await?;
        let account = StaffAccount {
            id: format!("seed{i}"),
            email,
            organisation: org.slug,
            role,
            password_hash: Some(hash.clone()),
            created_at: now,
            created_by: "testkit".into(),
            disabled_at: None,
        };
        // The invitation is used up at once: its secret is never known.
        store.add_staff(&account, &digest(&new_secret()), now).await?;
    }
    Ok(())
}

/// Kippu's web app over fakes, for route tests.
pub struct TestApp {
    /// The database (a real store, in memory).
    pub store: Store,
    /// The chain.
    pub chain: Arc<FakeChain>,
    /// The card payment provider.
    pub payments: Arc<FakePayments>,
    /// The platform's services.
    pub platform: Arc<FakePlatform>,
    /// The catalogue seeded.
    pub catalogue: Catalogue,
    /// A keystore with the app's master key (opens what the app sealed).
    pub keystore: Keystore,
    /// The concession attestor the market trusts.
    pub attestor: PrivateKeySigner,
    /// Where travelers reach it.
    pub public_url: String,
    router: Router,
    next_event: Mutex<u64>,
}

impl TestApp {
    /// The demo catalogue, the system clock, the defaults of `kippu serve`.
    pub async fn new() -> Self {
        Self::builder().build().await.expect("the test app starts")
    }

    /// A builder to change the defaults.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// The router, to send requests of one's own.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The app's origin (`scheme://host`).
    pub fn origin(&self) -> String {
        let (scheme, rest) = self.public_url.split_once("://").unwrap_or(("https", &self.public_url));
        format!("{scheme}://{}", rest.split('/').next().unwrap_or(""))
    }

    /// A browser with an empty cookie jar.
    pub fn client(&self) -> Client<'_> {
        Client { app: self, jar: Mutex::default(), kind: Kind::Browser, address: Mutex::new(None) }
    }

    /// A client that is no browser (curl, a scanner, Stripe): no `Sec-Fetch-Site`, no `Origin`.
    pub fn machine(&self) -> Client<'_> {
        Client { app: self, jar: Mutex::default(), kind: Kind::Machine, address: Mutex::new(None) }
    }

    /// An API token of an organisation with `scopes`, valid 30 days, issued as `kippu token
    /// issue` does (the bearer value; the store keeps its hash).
    pub async fn token(&self, organisation: &str, scopes: &[kippu_domain::staff::Permission]) -> String {
        let req = kippu_app::staff::TokenRequest { organisation, name: "test machine", scopes, days: 30 };
        kippu_app::staff::issue_token(&self.store, None, &req, kippu_web_now()).await.expect("token issued").bearer
    }

    /// A browser on another site, whose writes carry `Sec-Fetch-Site: cross-site` and its `Origin`.
    pub fn cross_site(&self, origin: &str) -> Client<'_> {
        Client { app: self, jar: Mutex::default(), kind: Kind::CrossSite(origin.to_owned()), address: Mutex::new(None) }
    }

    /// A traveler with an account made straight in the store (no Argon2 hashing: it cannot sign
    /// in with a password), signed in through a session of its own, holding `fare` FARE minor
    /// units. Its key (so its address) follows from its name: the same in every run.
    pub async fn traveler(&self, name: &str, fare: u128) -> Client<'_> {
        let key = PrivateKeySigner::from_bytes(&keccak256(format!("kippu-testkit traveler:{name}"))).expect("a key");
        let address = key.address();
        let sealed = self.keystore.seal(&key).expect("sealed");
        let now = now();
        let t = Traveler {
            address,
            did: did_pkh(self.chain_id(), address),
            display_name: name.into(),
            sealed_key: Some(sealed.to_string()),
            created_at: now,
        };
        let email = format!("{}@kippu.test", name.to_lowercase().replace(' ', "."));
        assert!(self.store.create_account(&t, &email, "$unusable$", now).await.expect("account"), "{email} is new");
        if fare > 0 {
            self.chain.fund(address, fare).await.expect("funded");
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.store.create_session(&token, &address, now + 3_600).await.expect("session");
        let c = self.client();
        c.set_cookie("kippu_session", &token);
        *c.address.lock().expect("address") = Some(address);
        c
    }

    /// The signer of an account's custodial key (to sign what the traveler's phone would).
    pub async fn signer_of(&self, address: Address) -> PrivateKeySigner {
        let t = self.store.traveler(&address).await.expect("store").expect("a traveler");
        let sealed = kippu_identity::SealedKey::parse(t.sealed_key.as_deref().expect("custodial")).expect("sealed key");
        self.keystore.open_for(address, &sealed).expect("opens")
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        crate::chain::CHAIN_ID
    }

    /// A `checkout.session.completed` event as Stripe sends it (a fresh event id each call).
    pub fn checkout_completed(&self, session_id: &str, traveler: Address, amount: i64, payment_status: &str) -> Value {
        let n = {
            let mut n = self.next_event.lock().expect("event ids");
            *n += 1;
            *n
        };
        json!({
            "id": format!("evt_test_{n}"),
            "object": "event",
            "created": now(),
            "livemode": false,
            "type": "checkout.session.completed",
            "data": { "object": {
                "id": session_id,
                "object": "checkout.session",
                "amount_total": amount,
                "currency": "eur",
                "client_reference_id": format!("{traveler:#x}"),
                "metadata": { "traveler": format!("{traveler:#x}") },
                "mode": "payment",
                "status": "complete",
                "payment_status": payment_status,
            }}
        })
    }

    /// Delivers a webhook event as Stripe does: the exact body, signed now with the configured secret.
    pub async fn deliver_webhook(&self, event: &Value) -> Answer {
        let body = event.to_string();
        let sig = kippu_payments::sign_webhook(body.as_bytes(), WEBHOOK_SECRET, now());
        self.deliver_webhook_signed(body, &sig).await
    }

    /// Delivers `body` with the given `Stripe-Signature` header.
    pub async fn deliver_webhook_signed(&self, body: String, signature: &str) -> Answer {
        let req = Request::post("/webhooks/stripe")
            .header(header::CONTENT_TYPE, "application/json")
            .header("stripe-signature", signature)
            .body(Body::from(body))
            .expect("request");
        send(&self.router, req).await
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[derive(Debug, Clone)]
enum Kind {
    Browser,
    Machine,
    CrossSite(String),
}

/// A browser (or a machine) talking to the [`TestApp`], keeping its cookies.
pub struct Client<'a> {
    app: &'a TestApp,
    jar: Mutex<BTreeMap<String, String>>,
    kind: Kind,
    address: Mutex<Option<Address>>,
}

/// A request being made by a [`Client`].
pub struct Call<'c, 'a> {
    client: &'c Client<'a>,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Body,
}

impl<'c, 'a> Call<'c, 'a> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A URL-encoded form body.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let body =
            fields.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&");
        self.body("application/x-www-form-urlencoded", body)
    }

    /// A JSON body.
    pub fn json(self, v: &Value) -> Self {
        self.body("application/json", v.to_string())
    }

    /// A body of some content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Body>) -> Self {
        self.headers.push(("content-type".into(), content_type.into()));
        self.body = body.into();
        self
    }

    /// Sends it; the answer's cookies go into the jar.
    pub async fn send(self) -> Answer {
        let (client, req) = self.build();
        let answer = send(&client.app.router, req).await;
        client.take_cookies(&answer.headers);
        answer
    }

    /// Sends it and keeps the body open (a stream of Server-Sent Events).
    pub async fn open(self) -> Stream {
        let (client, req) = self.build();
        let res = client.app.router.clone().oneshot(req).await.expect("the router answers");
        let (parts, body) = res.into_parts();
        client.take_cookies(&parts.headers);
        Stream { status: parts.status, headers: parts.headers, body: body.into_data_stream() }
    }

    fn build(self) -> (&'c Client<'a>, Request<Body>) {
        let c = self.client;
        let mut r = Request::builder().method(self.method.clone()).uri(&self.path);
        let write = !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS);
        match &c.kind {
            Kind::Browser => {
                r = r.header("sec-fetch-site", "same-origin");
                if write {
                    r = r.header(header::ORIGIN, c.app.origin());
                }
            }
            Kind::Machine => {}
            Kind::CrossSite(origin) => {
                r = r.header("sec-fetch-site", "cross-site");
                if write {
                    r = r.header(header::ORIGIN, origin.as_str());
                }
            }
        }
        let cookies = c.cookie_header();
        if !cookies.is_empty() {
            r = r.header(header::COOKIE, cookies);
        }
        for (k, v) in &self.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        (c, r.body(self.body).expect("request"))
    }
}

/// An answer whose body is still arriving.
pub struct Stream {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    body: axum::body::BodyDataStream,
}

impl Stream {
    /// The next chunk of the body as text, or `None` if none came within `wait` (or it ended).
    pub async fn next_chunk(&mut self, wait: std::time::Duration) -> Option<String> {
        use futures::StreamExt as _;
        match tokio::time::timeout(wait, self.body.next()).await {
            Ok(Some(Ok(bytes))) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            _ => None,
        }
    }
}

impl<'a> Client<'a> {
    /// The app it talks to.
    pub fn app(&self) -> &'a TestApp {
        self.app
    }

    /// A request to build.
    pub fn request(&self, method: Method, path: &str) -> Call<'_, 'a> {
        Call { client: self, method, path: path.to_owned(), headers: vec![], body: Body::empty() }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path).send().await
    }

    /// `POST path` with a form.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.request(Method::POST, path).form(fields).send().await
    }

    /// `POST path` with JSON.
    pub async fn post_json(&self, path: &str, v: &Value) -> Answer {
        self.request(Method::POST, path).json(v).send().await
    }

    /// A cookie's value in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    /// Puts a cookie in the jar.
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar.lock().expect("jar").insert(name.into(), value.into());
    }

    fn cookie_header(&self) -> String {
        self.jar.lock().expect("jar").iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn take_cookies(&self, headers: &HeaderMap) {
        let mut jar = self.jar.lock().expect("jar");
        for v in headers.get_all(header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let pair = v.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else { continue };
            let removed = value.is_empty()
                || v.to_ascii_lowercase().contains("max-age=0")
                || v.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if removed {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    /// The signed-in account's address, once known (signed up, or made by [`TestApp::traveler`]).
    pub fn address(&self) -> Address {
        self.address.lock().expect("address").expect("this client has signed in")
    }

    /// The signed-in traveler's view (`GET /api/me`).
    pub async fn me(&self) -> Value {
        let a = self.get("/api/me").await;
        a.assert_status(StatusCode::OK);
        a.json()
    }

    // ---- scenario steps ------------------------------------------------------------------

    /// Creates an account through the sign-up form (name from the e-mail's local part) and
    /// is signed in by it.
    pub async fn sign_up(&self, email: &str, password: &str) -> Answer {
        let name = email.split('@').next().unwrap_or("Traveler");
        let a = self
            .post_form("/signup", &[("name", name), ("email", email), ("password", password), ("confirm", password)])
            .await;
        if a.status == StatusCode::SEE_OTHER {
            let me = self.me().await;
            let address = me["address"].as_str().and_then(|s| s.parse().ok());
            *self.address.lock().expect("address") = address;
        }
        a
    }

    /// Signs in with e-mail and password.
    pub async fn sign_in(&self, email: &str, password: &str) -> Answer {
        let a = self.post_form("/signin/password", &[("email", email), ("password", password)]).await;
        if a.status == StatusCode::SEE_OTHER {
            let me = self.me().await;
            *self.address.lock().expect("address") = me["address"].as_str().and_then(|s| s.parse().ok());
        }
        a
    }

    /// Signs out.
    pub async fn sign_out(&self) -> Answer {
        self.post_form("/signout", &[]).await
    }

    /// Signs in to the staff portal as the consortium's [`ADMIN`] (the session cookie goes in the jar).
    pub async fn staff_sign_in(&self) -> Answer {
        self.staff_sign_in_as(ADMIN).await
    }

    /// Signs in to the staff portal as a seeded member of staff ([`staff_email`], [`AUDITOR`]).
    pub async fn staff_sign_in_as(&self, email: &str) -> Answer {
        let a = self
            .post_form("/portal/signin", &[("email", email), ("password", STAFF_PASSWORD), ("next", "/portal")])
            .await;
        a.assert_status(StatusCode::SEE_OTHER);
        assert!(self.cookie("kippu_portal").is_some(), "the portal session cookie is set");
        a
    }

    /// Tops up `minor` FARE minor units by card: opens the checkout (`POST /topup`), pays it at
    /// the provider, whose signed `checkout.session.completed` webhook mints the FARE. Returns
    /// the checkout session id.
    pub async fn top_up(&self, minor: i64) -> String {
        let amount = kippu_domain::money::format_fare(i128::from(minor));
        let a = self.post_form("/topup", &[("amount", &amount)]).await;
        a.assert_status(StatusCode::SEE_OTHER);
        let url = a.location().to_owned();
        let session = url.rsplit('/').next().unwrap_or_default().to_owned();
        assert!(url.starts_with(self.app.payments.origin()), "sent to the provider's page: {url}");
        let event = self.app.checkout_completed(&session, self.address(), minor, "paid");
        let hook = self.app.deliver_webhook(&event).await;
        hook.assert_status(StatusCode::OK);
        assert_eq!(hook.body, "minted");
        session
    }

    /// Buys a bundle (`POST /plans/{id}/buy`); returns the plan id.
    pub async fn buy(&self, bundle: u32) -> u64 {
        let a = self.post_form(&format!("/plans/{bundle}/buy"), &[]).await;
        a.assert_status(StatusCode::SEE_OTHER);
        let to = a.location();
        to.strip_prefix("/tickets?bought=").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("bought: {to}"))
    }

    /// Ticket ids of the signed-in traveler, oldest first.
    pub async fn ticket_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.me().await["tickets"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["id"].as_u64()).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }
}

/// What a request got.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text (lossy for binary bodies).
    pub body: String,
    /// Body as bytes.
    pub bytes: Vec<u8>,
}

impl Answer {
    /// Panics with the body unless the status is `want`.
    #[track_caller]
    pub fn assert_status(&self, want: StatusCode) -> &Self {
        assert_eq!(self.status, want, "status; body: {}", self.body.chars().take(3_000).collect::<String>());
        self
    }

    /// Panics unless the body contains `text`.
    #[track_caller]
    pub fn assert_contains(&self, text: &str) -> &Self {
        assert!(
            self.body.contains(text),
            "{text:?} not in the body ({}): {}",
            self.status,
            self.body.chars().take(3_000).collect::<String>()
        );
        self
    }

    /// The `Location` header (empty if none).
    pub fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request through the router.
pub async fn send(router: &Router, req: Request<Body>) -> Answer {
    let res = router.clone().oneshot(req).await.expect("the router answers");
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("a body").to_vec();
    Answer { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned(), bytes }
}

/// Percent-encodes a form value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The clock the web app reads (the system's): tokens and sessions made for tests live from now.
fn kippu_web_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
