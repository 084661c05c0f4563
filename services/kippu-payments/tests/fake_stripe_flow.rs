//! End-to-end tests over real loopback HTTP: `Checkout` (async-stripe) talks to the fake
//! Stripe server, which delivers signed webhooks to a small axum receiver.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use kippu_payments::fake::{FakeStripe, FakeStripeHandle};
use kippu_payments::{
    verify_webhook, Checkout, PaymentsError, StripeConfig, TopUpRequest, CHECKOUT_SESSION_COMPLETED,
    DEFAULT_TOLERANCE_SECS,
};
use serde_json::Value;
use tokio::sync::mpsc;

const SECRET_KEY: &str = "sk_test_kippu_flow";
const WEBHOOK_SECRET: &str = "whsec_kippu_flow";
const TRAVELER: &str = "0x1111222233334444555566667777888899990000";

/// One webhook request as the receiver saw it.
#[derive(Debug)]
struct Delivery {
    signature: String,
    body: Bytes,
}

struct Receiver {
    url: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    hits: Arc<AtomicU32>,
}

#[derive(Clone)]
struct ReceiverState {
    tx: mpsc::UnboundedSender<Delivery>,
    hits: Arc<AtomicU32>,
    /// Answer 500 to this many requests before accepting.
    fail_first: u32,
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = state.hits.fetch_add(1, Ordering::SeqCst);
    if n < state.fail_first {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let _ = state.tx.send(Delivery { signature, body });
    StatusCode::OK
}

async fn start_receiver(fail_first: u32) -> Receiver {
    let (tx, deliveries) = mpsc::unbounded_channel();
    let hits = Arc::new(AtomicU32::new(0));
    let state = ReceiverState { tx, hits: hits.clone(), fail_first };
    let app = Router::new().route("/webhooks/stripe", post(receive)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url: format!("http://{addr}/webhooks/stripe"), deliveries, hits }
}

async fn start_fake(webhook_url: &str) -> FakeStripeHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    FakeStripe::start(bind, webhook_url.into(), WEBHOOK_SECRET.into(), SECRET_KEY.into()).await.unwrap()
}

fn config(fake: &FakeStripeHandle, secret_key: &str) -> StripeConfig {
    StripeConfig {
        api_base: fake.base_url().into(),
        secret_key: secret_key.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        currency: "eur".into(),
    }
}

fn top_up(amount_minor: i64) -> TopUpRequest {
    TopUpRequest {
        traveler: TRAVELER.into(),
        amount_minor,
        success_url: "http://kippu.test/topup/done?session={CHECKOUT_SESSION_ID}".into(),
        cancel_url: "http://kippu.test/topup/cancelled".into(),
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn next_delivery(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("webhook not delivered in time")
        .expect("receiver closed")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).no_proxy().build().unwrap()
}

#[tokio::test]
async fn create_session_through_async_stripe() {
    let fake = start_fake("http://127.0.0.1:9/unused").await;
    let checkout = Checkout::new(&config(&fake, SECRET_KEY)).unwrap();

    let session = checkout.create_session(&top_up(2000)).await.unwrap();
    assert!(session.id.starts_with("cs_test_"), "{}", session.id);
    assert_eq!(session.url, format!("{}/pay/{}", fake.base_url(), session.id));

    // Read it back over the API, the way Stripe clients would.
    let resp = http()
        .get(format!("{}/v1/checkout/sessions/{}", fake.base_url(), session.id))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let object: Value = resp.json().await.unwrap();
    assert_eq!(object["object"], "checkout.session");
    // 2000 can only come from line_items[0][price_data][unit_amount] x quantity, so this
    // also checks the bracket-notation form the client sent.
    assert_eq!(object["amount_total"], 2000);
    assert_eq!(object["currency"], "eur");
    assert_eq!(object["client_reference_id"], TRAVELER);
    assert_eq!(object["metadata"]["traveler"], TRAVELER);
    assert_eq!(object["mode"], "payment");
    assert_eq!(object["status"], "open");
    assert_eq!(object["payment_status"], "unpaid");
    assert_eq!(object["success_url"], top_up(0).success_url);
    assert_eq!(object["cancel_url"], top_up(0).cancel_url);

    let missing = http()
        .get(format!("{}/v1/checkout/sessions/cs_test_nope", fake.base_url()))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource_missing");
}

#[tokio::test]
async fn accepts_hand_written_bracket_notation() {
    let fake = start_fake("http://127.0.0.1:9/unused").await;
    // Literal brackets and percent-encoded ones are the same key on Stripe's side.
    let body = "mode=payment&client_reference_id=0xabc&metadata[traveler]=0xabc\
        &line_items[0][price_data][currency]=eur\
        &line_items[0][price_data][unit_amount]=2000\
        &line_items[0][price_data][product_data][name]=FARE%20top-up\
        &line_items%5B0%5D%5Bquantity%5D=2\
        &success_url=http%3A%2F%2Fkippu.test%2Fok";
    let resp = http()
        .post(format!("{}/v1/checkout/sessions", fake.base_url()))
        .bearer_auth(SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let object: Value = resp.json().await.unwrap();
    assert_eq!(object["amount_total"], 4000);
    assert_eq!(object["metadata"]["traveler"], "0xabc");
    assert_eq!(object["success_url"], "http://kippu.test/ok");
    assert!(object["cancel_url"].is_null());
}

#[tokio::test]
async fn rejects_bad_requests_before_and_at_stripe() {
    let fake = start_fake("http://127.0.0.1:9/unused").await;

    let wrong_key = Checkout::new(&config(&fake, "sk_test_wrong")).unwrap();
    match wrong_key.create_session(&top_up(500)).await {
        Err(PaymentsError::StripeApi { status, kind, message }) => {
            assert_eq!(status, 401);
            assert_eq!(kind, "invalid_request_error");
            assert!(message.contains("Invalid API Key"), "{message}");
        }
        other => panic!("expected a 401 StripeApi error, got {other:?}"),
    }

    let anonymous = http()
        .post(format!("{}/v1/checkout/sessions", fake.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("mode=payment")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("API key"));

    let no_items = http()
        .post(format!("{}/v1/checkout/sessions", fake.base_url()))
        .bearer_auth(SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("mode=payment")
        .send()
        .await
        .unwrap();
    assert_eq!(no_items.status(), 400);
    let body: Value = no_items.json().await.unwrap();
    assert_eq!(body["error"]["param"], "line_items");

    let checkout = Checkout::new(&config(&fake, SECRET_KEY)).unwrap();
    assert!(matches!(checkout.create_session(&top_up(0)).await, Err(PaymentsError::InvalidRequest(_))));
}

#[tokio::test]
async fn completed_session_webhook_verifies_and_redelivers() {
    let mut receiver = start_receiver(0).await;
    let fake = start_fake(&receiver.url).await;
    let checkout = Checkout::new(&config(&fake, SECRET_KEY)).unwrap();
    let session = checkout.create_session(&top_up(2500)).await.unwrap();

    fake.complete(&session.id).await.unwrap();
    let first = next_delivery(&mut receiver.deliveries).await;
    let event = verify_webhook(&first.body, &first.signature, WEBHOOK_SECRET, now(), DEFAULT_TOLERANCE_SECS).unwrap();
    assert!(event.id.starts_with("evt_"), "{}", event.id);
    assert_eq!(event.kind, CHECKOUT_SESSION_COMPLETED);
    let completed = event.completed.clone().unwrap();
    assert_eq!(completed.session_id, session.id);
    assert_eq!(completed.traveler, TRAVELER);
    assert_eq!(completed.amount_total, 2500);
    assert_eq!(completed.currency, "eur");
    assert!(completed.is_paid());

    // The raw event follows Stripe's envelope.
    let raw: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(raw["object"], "event");
    assert_eq!(raw["data"]["object"]["status"], "complete");
    assert!(raw["api_version"].is_string());

    // The wrong secret must not verify a genuine delivery.
    assert!(matches!(
        verify_webhook(&first.body, &first.signature, "whsec_other", now(), 300),
        Err(PaymentsError::SignatureMismatch)
    ));

    assert_eq!(fake.event_ids(), vec![event.id.clone()]);
    fake.redeliver(&event.id).await.unwrap();
    let second = next_delivery(&mut receiver.deliveries).await;
    assert_eq!(second.body, first.body, "redelivery must carry the same event");
    let again = verify_webhook(&second.body, &second.signature, WEBHOOK_SECRET, now(), 300).unwrap();
    assert_eq!(again, event);

    assert!(matches!(fake.complete(&session.id).await, Err(PaymentsError::SessionNotOpen(_))));
    assert!(matches!(fake.complete("cs_test_unknown").await, Err(PaymentsError::UnknownSession(_))));
    assert!(matches!(fake.redeliver("evt_unknown").await, Err(PaymentsError::UnknownEvent(_))));
    assert_eq!(fake.session(&session.id).unwrap()["payment_status"], "paid");
}

#[tokio::test]
async fn hosted_page_pays_and_redirects() {
    let mut receiver = start_receiver(0).await;
    let fake = start_fake(&receiver.url).await;
    let checkout = Checkout::new(&config(&fake, SECRET_KEY)).unwrap();
    let session = checkout.create_session(&top_up(1234)).await.unwrap();
    let client = http();

    let page = client.get(&session.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("12.34 EUR"), "{html}");
    assert!(html.contains("FARE top-up"), "{html}");
    assert!(html.contains(">Pay</button>"), "{html}");

    let paid = client.post(&session.url).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    let expected = format!("http://kippu.test/topup/done?session={}", session.id);
    assert_eq!(paid.headers()["location"], expected.as_str());

    let delivery = next_delivery(&mut receiver.deliveries).await;
    let event = verify_webhook(&delivery.body, &delivery.signature, WEBHOOK_SECRET, now(), 300).unwrap();
    assert_eq!(event.completed.unwrap().amount_total, 1234);

    // A double-clicked Pay button redirects again but emits no second event.
    let again = client.post(&session.url).send().await.unwrap();
    assert_eq!(again.status(), 303);
    assert_eq!(fake.event_ids().len(), 1);
    let html = client.get(&session.url).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains(">Pay</button>"), "{html}");

    let missing = client.get(format!("{}/pay/cs_test_missing", fake.base_url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn delivery_retries_until_the_receiver_accepts() {
    let mut receiver = start_receiver(2).await;
    let fake = start_fake(&receiver.url).await;
    let checkout = Checkout::new(&config(&fake, SECRET_KEY)).unwrap();
    let session = checkout.create_session(&top_up(700)).await.unwrap();

    fake.complete(&session.id).await.unwrap();
    let delivery = next_delivery(&mut receiver.deliveries).await;
    verify_webhook(&delivery.body, &delivery.signature, WEBHOOK_SECRET, now(), 300).unwrap();
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn delivery_gives_up_on_a_dead_receiver() {
    let receiver = start_receiver(u32::MAX).await;
    let fake = start_fake(&receiver.url).await;
    let checkout = Checkout::new(&config(&fake, SECRET_KEY)).unwrap();
    let session = checkout.create_session(&top_up(700)).await.unwrap();

    match fake.complete(&session.id).await {
        Err(PaymentsError::WebhookDelivery { attempts, last_error, .. }) => {
            assert_eq!(attempts, 4);
            assert!(last_error.contains("500"), "{last_error}");
        }
        other => panic!("expected WebhookDelivery, got {other:?}"),
    }
    assert_eq!(receiver.hits.load(Ordering::SeqCst), 4);
    // Payment happened even though nobody heard about it, as on Stripe.
    assert_eq!(fake.session(&session.id).unwrap()["status"], "complete");
    fake.shutdown().await;
}
