//! The router answering real requests, over an app state with a scratch SQLite database, a
//! stand-in JSON-RPC node (every call answers zero) and stand-in platform services: which
//! routes exist in which build, who may see the staff pages and metrics, and the bounds on
//! open challenges and ceremonies.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use kippu_identity::{ChallengeBook, Keystore};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::{AppState, GateStatus, IdentityServices, Inner, Platform};

pub(crate) const STAFF_PASSWORD: &str = "staff-password-for-tests";
/// The consortium's admin the scratch database is seeded with.
pub(crate) const ADMIN: &str = "admin@kippu.test";
pub(crate) const METRICS_TOKEN: &str = "metrics-token-for-tests";

/// Production services that do nothing.
#[derive(Default)]
pub(crate) struct FakePlatform;

#[async_trait]
impl Platform for FakePlatform {
    async fn catch_up(&self) {}
    async fn gates(&self) -> Vec<GateStatus> {
        vec![GateStatus {
            key: "metro/central/g1".into(),
            station: "Central".into(),
            state: "online".into(),
            last: "OPEN".into(),
            did: String::new(),
        }]
    }
    async fn timetable_imported(&self, _operator_id: u32, _timetable: kippu_gtfs::Timetable) {}
    async fn key_revoked(&self, _holder: alloy::primitives::Address) {}
    async fn card_bound(&self, _card_key: [u8; 32], _ticket_id: u64, _sig: Vec<u8>) {}
    async fn card_unbound(&self, _card_key: [u8; 32]) {}
    async fn device_revoked(&self, _device_key: [u8; 32]) {}
    async fn metrics(&self) -> String {
        "kippu_up 1\n".into()
    }
}

/// A JSON-RPC node on loopback that answers every call with zero (a 32-byte zero word for
/// `eth_call`), enough for the pages that read a balance.
async fn zero_node() -> String {
    fn answer(req: Value) -> Value {
        match req {
            Value::Array(batch) => Value::Array(batch.into_iter().map(answer).collect()),
            req => {
                let result = match req["method"].as_str() {
                    Some("eth_chainId") => json!("0x7a69"),
                    Some("eth_blockNumber") => json!("0x1"),
                    _ => json!(format!("0x{}", "00".repeat(32))),
                };
                json!({"jsonrpc": "2.0", "id": req["id"], "result": result})
            }
        }
    }
    let app = Router::new()
        .route("/", axum::routing::post(|axum::Json(req): axum::Json<Value>| async move { axum::Json(answer(req)) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn deployment() -> kippu_chain::Deployment {
    use alloy::primitives::{Address, B256};
    kippu_chain::Deployment {
        chain_id: 31337,
        deploy_block: 0,
        fare: Address::repeat_byte(1),
        ticket: Address::repeat_byte(2),
        market: Address::repeat_byte(3),
        insurance: Address::repeat_byte(4),
        clearing: Address::repeat_byte(5),
        code_hashes: kippu_chain::CodeHashes {
            fare: B256::ZERO,
            ticket: B256::ZERO,
            market: B256::ZERO,
            insurance: B256::ZERO,
            clearing: B256::ZERO,
        },
        roles: kippu_chain::RoleHolders {
            admin: Address::ZERO,
            minter: Address::ZERO,
            relayer: Address::ZERO,
            settler: Address::ZERO,
            catalog: Address::ZERO,
            attestor: Address::ZERO,
        },
    }
}

/// A scratch SQLite file, removed (with its journal files) when dropped.
pub(crate) struct ScratchDb(std::path::PathBuf, pub(crate) kippu_store::Store);

impl Drop for ScratchDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An app state over a scratch database (keep the [`ScratchDb`] for the test's length);
/// `tweak` adjusts it before it is frozen.
pub(crate) async fn state(tweak: impl FnOnce(&mut Inner)) -> (AppState, ScratchDb) {
    let path = std::env::temp_dir().join(format!("kippu-web-test-{}.db", hex::encode(rand::random::<[u8; 8]>())));
    let store = kippu_store::Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let db = ScratchDb(path, store.clone());
    let admin_invitation = kippu_app::staff::first_admin(&store, ADMIN, 0).await.unwrap();
    kippu_app::staff::accept_invitation(&store, &admin_invitation.secret, STAFF_PASSWORD, 0).await.unwrap();
    let admin = alloy::signers::local::PrivateKeySigner::random();
    let chain = kippu_chain::Chain::attach(
        &kippu_chain::ChainConfig { rpc_url: zero_node().await, admin_key: hex::encode(admin.to_bytes()) },
        deployment(),
    )
    .await
    .unwrap();
    let checkout = kippu_payments::Checkout::new(&kippu_payments::StripeConfig {
        api_base: "http://127.0.0.1:9".into(),
        secret_key: "sk_test_unused".into(),
        webhook_secret: "whsec_unused".into(),
        currency: "eur".into(),
    })
    .unwrap();
    let authority = "localhost:8080".to_owned();
    let resolver = kippu_credentials::Resolver::new(
        kippu_credentials::did_web(&authority, &[]),
        std::time::Duration::from_secs(60),
    );
    let mut inner = Inner {
        store: Arc::new(store.clone()),
        chain: Arc::new(chain),
        chain_writes: Arc::new(store),
        outbox_policy: kippu_domain::outbox::Policy::default(),
        keystore: Keystore::new([7; 32]),
        challenges: ChallengeBook::default(),
        presentation_challenges: ChallengeBook::default(),
        checkout: Arc::new(checkout),
        webhook_secret: "whsec_unused".into(),
        public_url: "http://localhost:8080".into(),
        platform: Arc::new(FakePlatform),
        #[cfg(feature = "dev")]
        dev: None,
        metrics_token: Some(METRICS_TOKEN.into()),
        identity: IdentityServices {
            credentials: kippu_credentials::Credentials::new(resolver),
            authority,
            attestor: alloy::signers::local::PrivateKeySigner::random(),
            discounts: Default::default(),
        },
        login_limits: crate::LoginLimits::default(),
        passkeys: crate::Passkeys::new("http://localhost:8080"),
        checkout_origin: "http://127.0.0.1:9".into(),
    };
    tweak(&mut inner);
    (AppState::new(inner), db)
}

/// What a request got: status, headers, body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

pub(crate) async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Answer { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&body).into_owned() }
}

pub(crate) fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut r = Request::get(path);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Body::empty()).unwrap()
}

pub(crate) fn post(path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path).header(header::CONTENT_TYPE, content_type).body(body.into()).unwrap()
}

/// A staff portal session cookie (`kippu_portal=…`) of the consortium's admin.
pub(crate) async fn staff_cookie(app: &Router) -> String {
    let form = format!("email={ADMIN}&password={STAFF_PASSWORD}&next=%2Fgates");
    let a = send(app, post("/portal/signin", "application/x-www-form-urlencoded", form)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.headers[header::LOCATION], "/gates", "the sign-in leads back to the fleet page");
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

// ---- 2. staff pages behind the staff login ------------------------------------------------

#[tokio::test]
async fn staff_pages_need_the_staff_login() {
    let (s, _db) = state(|_| {}).await;
    let app = crate::router(s);
    let cookie = staff_cookie(&app).await;
    for (path, shows) in
        [("/operators/report", "Operator"), ("/operators/insurance", "Late trip runs"), ("/gates", "metro/central/g1")]
    {
        // A browser is sent to the portal sign-in, and back here afterwards.
        let a = send(&app, get(path, &[])).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(a.headers[header::LOCATION], format!("/portal/signin?next={}", crate::views::urlencode(path)));
        // A wrong token, the old shared password or a traveler's session opens nothing.
        let a = send(&app, get(path, &[("authorization", "Bearer guess")])).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        let old = format!("Bearer {STAFF_PASSWORD}");
        assert_eq!(send(&app, get(path, &[("authorization", &old)])).await.status, StatusCode::UNAUTHORIZED, "{path}");
        let a = send(&app, get(path, &[("cookie", "kippu_session=abc; kippu_portal=forged")])).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{path}");
        // The consortium's staff see the page.
        for auth in [("cookie", cookie.as_str())] {
            let a = send(&app, get(path, &[auth])).await;
            assert_eq!(a.status, StatusCode::OK, "{path} with {}: {}", auth.0, a.body);
            assert!(a.body.contains(shows), "{path}: {}", a.body);
        }
    }
}

#[tokio::test]
async fn metrics_need_the_metrics_token_or_the_staff_login() {
    let (s, _db) = state(|_| {}).await;
    let app = crate::router(s);
    let cookie = staff_cookie(&app).await;
    for (headers, status) in [
        (vec![], StatusCode::UNAUTHORIZED),
        (vec![("authorization", "Bearer wrong")], StatusCode::UNAUTHORIZED),
        (vec![("authorization", "Bearer ")], StatusCode::UNAUTHORIZED),
        (vec![("authorization", &format!("Bearer {METRICS_TOKEN}x") as &str)], StatusCode::UNAUTHORIZED),
        (vec![("authorization", &format!("Bearer {METRICS_TOKEN}") as &str)], StatusCode::OK),
        (vec![("authorization", &format!("Bearer {STAFF_PASSWORD}") as &str)], StatusCode::UNAUTHORIZED),
        (vec![("cookie", cookie.as_str())], StatusCode::OK),
    ] {
        let a = send(&app, get("/metrics", &headers)).await;
        assert_eq!(a.status, status, "{headers:?}");
        match status {
            StatusCode::OK => assert_eq!(a.body, "kippu_up 1\n"),
            _ => {
                assert!(!a.body.contains("kippu_up"), "{headers:?}");
                assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));
            }
        }
    }
    // Without a configured token only staff get in; an empty bearer is no token.
    let (s, _db2) = state(|i| i.metrics_token = None).await;
    let app = crate::router(s);
    assert_eq!(send(&app, get("/metrics", &[("authorization", "Bearer ")])).await.status, StatusCode::UNAUTHORIZED);
    let cookie = staff_cookie(&app).await;
    assert_eq!(send(&app, get("/metrics", &[("cookie", &cookie)])).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_timetable_upload_is_bounded_by_the_gtfs_limit() {
    let (s, _db) = state(|_| {}).await;
    let app = crate::router(s);
    let cookie = staff_cookie(&app).await;
    let too_big = vec![0u8; kippu_gtfs::ImportLimits::DEFAULT.max_zip_bytes + 1];
    let mut req = post("/operators/bus/timetable", "application/zip", too_big);
    req.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::PAYLOAD_TOO_LARGE);
}

// ---- 1. no demo in production ----------------------------------------------------------------

/// A seeded custodial traveler, as `kippu dev` makes them.
pub(crate) async fn seed_traveler(s: &AppState) -> alloy::primitives::Address {
    let (address, sealed) = s.keystore.create().unwrap();
    s.store
        .upsert_traveler(&kippu_store::Traveler {
            address,
            did: kippu_identity::did_pkh(31337, address),
            display_name: "Aiko Demo".into(),
            sealed_key: Some(sealed.to_string()),
            created_at: 0,
        })
        .await
        .unwrap();
    address
}

/// What a production app (or a dev build without its dev services) must not have.
async fn assert_no_demo(app: &Router, traveler: alloy::primitives::Address) {
    let page = send(app, get("/signin", &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Aiko Demo") && !page.body.contains(&format!("{traveler:#x}")), "{}", page.body);
    assert!(!page.body.contains("action=\"/signin\""), "no one-click form");
    let form = format!("address={traveler:#x}");
    let a = send(app, post("/signin", "application/x-www-form-urlencoded", form)).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "one-click sign-in is not served");
    assert!(!a.headers.contains_key(header::SET_COOKIE));
    for path in
        ["/gates/metro/central/g1/scan?trip=1", "/dev/gates/metro/central/g1/tap", "/dev/gtfs-rt", "/dev/close-period"]
    {
        let a = send(app, post(path, "application/octet-stream", "x")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn production_serves_no_demo_routes_and_lists_no_accounts() {
    let (s, _db) = state(|_| {}).await;
    let traveler = seed_traveler(&s).await;
    assert_no_demo(&crate::router(s), traveler).await;
}

#[cfg(feature = "dev")]
mod dev {
    use super::*;
    use crate::{DelayOutcome, DevPlatform};

    /// Demo services that answer at once and count what they were asked.
    #[derive(Default)]
    struct FakeDev {
        asked: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl DevPlatform for FakeDev {
        async fn scan_png(
            &self,
            gate_key: &str,
            png: Vec<u8>,
            run: Option<kippu_domain::TripRef>,
        ) -> Result<kippu_domain::VerdictMessage, String> {
            self.asked.lock().unwrap().push(format!("scan {gate_key} {} {:?}", png.len(), run.map(|r| r.id)));
            Ok(kippu_domain::VerdictMessage::open("scan-1", 7, Some(2)))
        }
        async fn tap_card(
            &self,
            gate_key: &str,
            _card: kippu_domain::card::Card,
        ) -> Result<kippu_domain::VerdictMessage, String> {
            self.asked.lock().unwrap().push(format!("tap {gate_key}"));
            Err("no card reader here".into())
        }
        async fn ingest_delays(&self, feed: &[u8]) -> Result<DelayOutcome, String> {
            self.asked.lock().unwrap().push(format!("feed {}", feed.len()));
            Ok(DelayOutcome { trips: 1, ..Default::default() })
        }
        async fn close_period(&self) -> Result<kippu_app::period::Closed, String> {
            self.asked.lock().unwrap().push("close".into());
            Ok(kippu_app::period::Closed {
                period_id: 4,
                tx: "0xabc".into(),
                window: (10, 20),
                plans: 2,
                taps: 3,
                transfers: vec![(1, 2, 50)],
                carried: vec![],
            })
        }
        fn runs_of(&self, operator_id: u32) -> Vec<(String, String)> {
            vec![(format!("run-of-{operator_id}"), "A".into())]
        }
    }

    #[tokio::test]
    async fn a_dev_build_without_dev_services_serves_no_demo_either() {
        let (s, _db) = state(|i| i.dev = None).await;
        let traveler = seed_traveler(&s).await;
        assert_no_demo(&crate::router(s.clone()), traveler).await;
        assert!(crate::demo::gate_buttons(&s).await.unwrap().is_empty(), "no simulated gates on the pass page");
    }

    #[tokio::test]
    async fn with_dev_services_the_demo_routes_work_as_before() {
        let fake = Arc::new(FakeDev::default());
        let dev: Arc<dyn DevPlatform> = fake.clone();
        let (s, db) = state(|i| i.dev = Some(dev)).await;
        let traveler = seed_traveler(&s).await;
        let app = crate::router(s.clone());
        // The sign-in page offers the seeded traveler, and one click signs them in.
        let page = send(&app, get("/signin", &[])).await;
        assert!(page.body.contains("Aiko Demo") && page.body.contains("action=\"/signin\""), "{}", page.body);
        let a =
            send(&app, post("/signin", "application/x-www-form-urlencoded", format!("address={traveler:#x}"))).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        assert_eq!(a.headers[header::LOCATION], "/");
        assert!(a.headers[header::SET_COOKIE].to_str().unwrap().starts_with("kippu_session="));
        let unknown = format!("address={:#x}", alloy::primitives::Address::repeat_byte(9));
        let a = send(&app, post("/signin", "application/x-www-form-urlencoded", unknown)).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        // Simulated gates, the hand-fed feed and the period close answer as they did.
        let a = send(&app, post("/gates/metro/central/g1/scan?trip=17", "image/png", vec![1u8; 10])).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(serde_json::from_str::<Value>(&a.body).unwrap()["ticket"], 7);
        let a =
            send(&app, post("/dev/gates/metro/central/g1/tap", "application/x-www-form-urlencoded", "secret=zz")).await;
        assert_eq!((a.status, a.body.contains("32 bytes of hex")), (StatusCode::BAD_REQUEST, true));
        let secret = format!("secret={}", "11".repeat(32));
        let a = send(&app, post("/dev/gates/metro/central/g1/tap", "application/x-www-form-urlencoded", secret)).await;
        assert_eq!((a.status, a.body.contains("no card reader here")), (StatusCode::BAD_REQUEST, true));
        let a = send(&app, post("/dev/gtfs-rt", "application/x-protobuf", vec![0u8; 3])).await;
        assert_eq!(
            (a.status, serde_json::from_str::<Value>(&a.body).unwrap()["trips"].clone()),
            (StatusCode::OK, json!(1))
        );
        let a = send(&app, post("/dev/close-period", "application/json", "")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let closed: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!((closed["period_id"].clone(), closed["transfers"].clone()), (json!(4), json!([[1, 2, 50]])));
        assert_eq!(
            *fake.asked.lock().unwrap(),
            ["scan metro/central/g1 10 Some(\"17\")", "tap metro/central/g1", "feed 3", "close"]
        );
        // The pass page's simulated gates, an on-board one with its runs.
        let bus = kippu_store::Operator {
            id: 2,
            slug: "bus".into(),
            name: "Bus".into(),
            kind: "bus".into(),
            payee: alloy::primitives::Address::repeat_byte(2),
        };
        s.store.upsert_operator(&bus).await.unwrap();
        for (gate_key, on_board) in [("metro/central/g1", false), ("bus/b7/onboard", true)] {
            db.1.upsert_gate(&kippu_store::GateRow {
                gate_key: gate_key.into(),
                operator_id: 2,
                station: "S".into(),
                stop_id: None,
                on_board,
            })
            .await
            .unwrap();
        }
        let buttons = crate::demo::gate_buttons(&s).await.unwrap();
        let shown: Vec<_> = buttons.iter().map(|b| (b.key.as_str(), b.runs.len())).collect();
        assert_eq!(shown, [("bus/b7/onboard", 1), ("metro/central/g1", 0)]);
        assert_eq!(buttons[0].runs, [("run-of-2".to_owned(), "A".to_owned())]);
    }
}

// ---- 5. open challenges and ceremonies are bounded ---------------------------------------------

#[tokio::test]
async fn a_flood_of_challenges_is_refused_with_503_until_they_expire() {
    let (s, _db) = state(|i| {
        // Two seconds' TTL (the book counts whole seconds): the refusals below come well within it.
        i.presentation_challenges = ChallengeBook::with_limit(2, 5);
        i.challenges = ChallengeBook::with_limit(2, 3);
    })
    .await;
    let app = crate::router(s.clone());
    let wallet = "/signin/wallet/challenge?did=did:pkh:eip155:31337:0x0000000000000000000000000000000000000001";
    for (path, limit) in [("/api/presentations/challenge", 5), (wallet, 3)] {
        for i in 0..limit {
            assert_eq!(send(&app, get(path, &[])).await.status, StatusCode::OK, "{path} #{i}");
        }
        for _ in 0..20 {
            let a = send(&app, get(path, &[])).await;
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            let retry: u64 = a.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry), "{retry}");
            assert!(a.body.contains("Too many requests"), "{}", a.body);
        }
    }
    assert_eq!((s.presentation_challenges.len(), s.challenges.len()), (5, 3), "the books stay at their bounds");
    // Once the TTL has passed, the expired ones are dropped and issuing works again.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    for (path, _) in [("/api/presentations/challenge", 5), (wallet, 3)] {
        assert_eq!(send(&app, get(path, &[])).await.status, StatusCode::OK, "{path} after expiry");
    }
    assert_eq!((s.presentation_challenges.len(), s.challenges.len()), (1, 1));
}

#[tokio::test]
async fn a_flood_of_passkey_ceremonies_is_refused_with_503() {
    let (s, _db) = state(|i| i.passkeys = crate::Passkeys::with_limit("http://localhost:8080", 4)).await;
    let app = crate::router(s.clone());
    for i in 0..4 {
        let a = send(&app, post("/passkeys/signin/start", "application/json", "")).await;
        assert_eq!(a.status, StatusCode::OK, "#{i}: {}", a.body);
    }
    for _ in 0..20 {
        let a = send(&app, post("/passkeys/signin/start", "application/json", "")).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        let retry: u64 = a.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((290..=300).contains(&retry), "the oldest expires in five minutes: {retry}");
    }
    assert_eq!(s.passkeys.ceremonies_held(), (0, 4));
}
