//! A loopback stand-in for Stripe, for development and tests.
//!
//! It speaks enough of Stripe's wire format for Kippu's top-up flow: Bearer-key auth,
//! form-encoded (bracket notation) Checkout Session creation, session retrieval, a hosted
//! payment page, and signed `checkout.session.completed` webhook delivery with retries.
//! State lives in memory and is lost when the handle is dropped.
//!
//! ```no_run
//! # async fn demo() -> kippu_payments::Result<()> {
//! use kippu_payments::fake::FakeStripe;
//! let fake = FakeStripe::start(
//!     "127.0.0.1:0".parse().unwrap(),
//!     "http://127.0.0.1:8080/webhooks/stripe".into(),
//!     "whsec_dev".into(),
//!     "sk_test_dev".into(),
//! )
//! .await?;
//! println!("point StripeConfig::api_base at {}", fake.base_url());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::webhook::{sign_webhook, CHECKOUT_SESSION_COMPLETED};
use crate::{PaymentsError, Result};

/// Marks the fake's pages; `make test` checks a default build of `kippu` holds no such bytes.
pub const MARKER: &str = "kippu-fake-stripe";

/// API version stamped on events; the one the pinned async-stripe release is generated for.
const API_VERSION: &str = "2026-09-30.endive";

/// Stripe retries failed deliveries for days; a dev server only needs to ride out a
/// receiver that is still starting up.
const DELIVERY_ATTEMPTS: u32 = 4;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Real sessions expire after 24 h by default.
const SESSION_LIFETIME_SECS: i64 = 24 * 60 * 60;

/// Entry point of the fake server; see [`FakeStripe::start`].
#[derive(Debug)]
pub struct FakeStripe;

impl FakeStripe {
    /// Binds `bind` (port 0 picks a free port) and serves the fake API in a background task.
    ///
    /// Requests must carry `Authorization: Bearer <secret_key>`. Completed sessions are
    /// announced by POSTing a signed event (secret `webhook_secret`) to `webhook_url`.
    ///
    /// # Errors
    /// [`PaymentsError::Io`] if the address cannot be bound, [`PaymentsError::Config`] if
    /// the HTTP client for webhook delivery cannot be built.
    pub async fn start(
        bind: SocketAddr,
        webhook_url: String,
        webhook_secret: String,
        secret_key: String,
    ) -> Result<FakeStripeHandle> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        // A wildcard bind is reachable through loopback, and a wildcard address is not
        // something a browser or client can be sent to.
        let reachable_ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let base_url = format!("http://{}", SocketAddr::new(reachable_ip, addr.port()));
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            // Deliveries target local receivers; an ambient HTTP(S)_PROXY must not reroute them.
            .no_proxy()
            .build()
            .map_err(|e| PaymentsError::Config(format!("webhook HTTP client: {e}")))?;

        let shared =
            Arc::new(Shared { base_url, webhook_url, webhook_secret, secret_key, http, state: Mutex::default() });
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(retrieve_session))
            .route("/pay/{id}", get(pay_page).post(pay))
            .with_state(shared.clone());

        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(%err, "fake Stripe server stopped");
            }
        });
        tracing::info!(base_url = %shared.base_url, "fake Stripe listening");

        Ok(FakeStripeHandle { addr, shared, shutdown: Some(shutdown_tx), task: Some(task) })
    }
}

/// A running fake Stripe server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeStripeHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeStripeHandle {
    /// The socket address actually bound (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Origin to use as [`StripeConfig::api_base`](crate::StripeConfig::api_base),
    /// e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Pays a session as if the traveler pressed "Pay", then delivers the
    /// `checkout.session.completed` webhook. For headless tests.
    ///
    /// # Errors
    /// [`PaymentsError::UnknownSession`], [`PaymentsError::SessionNotOpen`] if it was
    /// already paid, or [`PaymentsError::WebhookDelivery`] if the receiver never accepted
    /// the event (the session stays paid, as on Stripe).
    pub async fn complete(&self, session_id: &str) -> Result<()> {
        let event_id = self.shared.complete_session(session_id)?;
        self.shared.deliver(&event_id).await
    }

    /// Sends an already-emitted event again, freshly signed, as Stripe does when it is
    /// unsure a delivery arrived. Lets tests check that receivers are idempotent.
    ///
    /// # Errors
    /// [`PaymentsError::UnknownEvent`] or [`PaymentsError::WebhookDelivery`].
    pub async fn redeliver(&self, event_id: &str) -> Result<()> {
        self.shared.deliver(event_id).await
    }

    /// The current Checkout Session object as the API would return it.
    pub fn session(&self, session_id: &str) -> Option<Value> {
        self.shared.lock().sessions.get(session_id).map(|s| s.object.clone())
    }

    /// Ids of all events emitted so far, oldest first.
    pub fn event_ids(&self) -> Vec<String> {
        self.shared.lock().event_order.clone()
    }

    /// Stops accepting connections and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeStripeHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Shared {
    base_url: String,
    webhook_url: String,
    webhook_secret: String,
    secret_key: String,
    http: reqwest::Client,
    state: Mutex<FakeState>,
}

// Secrets stay out of debug output.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("base_url", &self.base_url)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct FakeState {
    sessions: HashMap<String, FakeSession>,
    /// Serialized once so that redeliveries carry byte-identical payloads.
    events: HashMap<String, Vec<u8>>,
    event_order: Vec<String>,
}

struct FakeSession {
    object: Value,
    /// Line items are not part of the session object unless expanded, but the hosted
    /// page shows them.
    product_names: Vec<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panic while holding the lock cannot leave the maps half-updated in a way
        // that matters for a test double, so keep serving.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the session paid and records the completion event; returns the event id.
    fn complete_session(&self, session_id: &str) -> Result<String> {
        let mut state = self.lock();
        let session =
            state.sessions.get_mut(session_id).ok_or_else(|| PaymentsError::UnknownSession(session_id.to_owned()))?;
        if session.object["status"] != "open" {
            return Err(PaymentsError::SessionNotOpen(session_id.to_owned()));
        }
        session.object["status"] = json!("complete");
        session.object["payment_status"] = json!("paid");
        session.object["payment_intent"] = json!(new_id("pi_test_"));
        let object = session.object.clone();

        let event_id = new_id("evt_test_");
        let event = json!({
            "id": event_id,
            "object": "event",
            "api_version": API_VERSION,
            "created": unix_now(),
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": CHECKOUT_SESSION_COMPLETED,
            "data": { "object": object },
        });
        let payload = serde_json::to_vec(&event).expect("serializing a json! value cannot fail");
        state.events.insert(event_id.clone(), payload);
        state.event_order.push(event_id.clone());
        Ok(event_id)
    }

    async fn deliver(&self, event_id: &str) -> Result<()> {
        let payload = self
            .lock()
            .events
            .get(event_id)
            .cloned()
            .ok_or_else(|| PaymentsError::UnknownEvent(event_id.to_owned()))?;

        let mut delay = FIRST_RETRY_DELAY;
        let mut last_error = String::new();
        for attempt in 1..=DELIVERY_ATTEMPTS {
            // Each attempt is signed anew, like Stripe, so a slow retry is not rejected
            // as stale by the receiver's tolerance check.
            let signature = sign_webhook(&payload, &self.webhook_secret, unix_now());
            let sent = self
                .http
                .post(&self.webhook_url)
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .header(header::USER_AGENT, "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
                .header("Stripe-Signature", signature)
                .body(payload.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    tracing::debug!(event_id, attempt, "webhook delivered");
                    return Ok(());
                }
                Ok(resp) => last_error = format!("HTTP {}", resp.status()),
                Err(err) => last_error = err.to_string(),
            }
            tracing::warn!(event_id, attempt, %last_error, "webhook delivery failed");
            if attempt < DELIVERY_ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        Err(PaymentsError::WebhookDelivery { event_id: event_id.to_owned(), attempts: DELIVERY_ATTEMPTS, last_error })
    }

    fn check_auth(&self, headers: &HeaderMap) -> std::result::Result<(), ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "You did not provide an API key. You need to provide your API key in the \
                 Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                 YOUR_SECRET_KEY').",
            ));
        };
        let presented = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
        if presented != self.secret_key {
            // Stripe echoes only the last four characters of a rejected key.
            let tail_start = presented.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                format!("Invalid API Key provided: sk_****{}", &presented[tail_start..]),
            ));
        }
        Ok(())
    }
}

/// An API error rendered in Stripe's envelope:
/// `{"error":{"type":..,"message":..,"param"?,"code"?}}`.
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), param: None, code: None }
    }

    fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            code: Some("parameter_invalid"),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    fn missing_param(param: &str) -> Self {
        Self {
            param: Some(param.to_owned()),
            code: Some("parameter_missing"),
            ..Self::new(StatusCode::BAD_REQUEST, format!("Missing required param: {param}."))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Everything the fake rejects is the caller's fault, which Stripe reports as
        // invalid_request_error (auth failures included).
        let mut error = json!({ "type": "invalid_request_error", "message": self.message });
        if let Some(param) = self.param {
            error["param"] = json!(param);
        }
        if let Some(code) = self.code {
            error["code"] = json!(code);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

/// A parsed line item (`line_items[i][price_data][...]`, `line_items[i][quantity]`).
struct LineItem {
    currency: String,
    unit_amount: i64,
    quantity: i64,
    name: String,
}

/// Reads Stripe's bracket-notation form into the pieces the fake understands.
fn parse_line_items(form: &HashMap<String, String>) -> std::result::Result<Vec<LineItem>, ApiError> {
    let mut items = Vec::new();
    for i in 0.. {
        let key = |suffix: &str| format!("line_items[{i}]{suffix}");
        let present = form.keys().any(|k| k.starts_with(&format!("line_items[{i}]")));
        if !present {
            break;
        }
        if form.contains_key(&key("[price]")) {
            return Err(ApiError::invalid_param(
                &key("[price]"),
                "The fake Stripe server only supports inline price_data.",
            ));
        }
        let required = |suffix: &str| {
            let name = key(suffix);
            form.get(&name).cloned().ok_or_else(|| ApiError::missing_param(&name))
        };
        let integer = |suffix: &str, min: i64| {
            let name = key(suffix);
            let raw = required(suffix)?;
            match raw.parse::<i64>() {
                Ok(v) if v >= min => Ok(v),
                _ => Err(ApiError::invalid_param(&name, format!("Invalid integer: {raw}"))),
            }
        };
        items.push(LineItem {
            currency: required("[price_data][currency]")?.to_ascii_lowercase(),
            unit_amount: integer("[price_data][unit_amount]", 0)?,
            quantity: integer("[quantity]", 1)?,
            name: required("[price_data][product_data][name]")?,
        });
    }
    Ok(items)
}

async fn create_session(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> std::result::Result<Json<Value>, ApiError> {
    shared.check_auth(&headers)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "Request body is not valid application/x-www-form-urlencoded.")
    })?;
    let form: HashMap<String, String> = pairs.into_iter().collect();

    match form.get("mode").map(String::as_str) {
        None => return Err(ApiError::missing_param("mode")),
        Some("payment") => {}
        Some(other) => {
            return Err(ApiError::invalid_param(
                "mode",
                format!("The fake Stripe server only supports mode=payment, got {other}."),
            ))
        }
    }
    let items = parse_line_items(&form)?;
    let Some(currency) = items.first().map(|item| item.currency.clone()) else {
        return Err(ApiError::missing_param("line_items"));
    };
    if items.iter().any(|item| item.currency != currency) {
        return Err(ApiError::invalid_param("line_items", "All line items must use the same currency."));
    }
    let Some(amount_total) = items
        .iter()
        .try_fold(0i64, |acc, item| item.unit_amount.checked_mul(item.quantity).and_then(|line| acc.checked_add(line)))
    else {
        return Err(ApiError::invalid_param("line_items", "Amount total is too large."));
    };
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((key.to_owned(), json!(v)))
        })
        .collect();

    let id = new_id("cs_test_");
    let created = unix_now();
    let url = format!("{}/pay/{id}", shared.base_url);
    // Every field async-stripe treats as required is present; optional ones Kippu never
    // sets are rendered as null, as Stripe does.
    let mut object = json!({
        "id": id,
        "object": "checkout.session",
        "amount_subtotal": amount_total,
        "amount_total": amount_total,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "cancel_url": form.get("cancel_url"),
        "client_reference_id": form.get("client_reference_id"),
        "created": created,
        "currency": currency,
        "custom_fields": [],
        "custom_text": {
            "after_submit": null,
            "shipping_address": null,
            "submit": null,
            "terms_of_service_acceptance": null
        },
        "customer_creation": "if_required",
        "expires_at": created + SESSION_LIFETIME_SECS,
        "livemode": false,
        "metadata": metadata,
        "mode": "payment",
        "payment_method_collection": "if_required",
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "shipping_options": [],
        "status": "open",
        "success_url": form.get("success_url"),
        "url": url,
    });
    for key in [
        "after_expiration",
        "allow_promotion_codes",
        "billing_address_collection",
        "client_secret",
        "consent",
        "consent_collection",
        "customer",
        "customer_details",
        "customer_email",
        "invoice",
        "locale",
        "payment_intent",
        "payment_link",
        "recovered_from",
        "setup_intent",
        "shipping_address_collection",
        "shipping_cost",
        "submit_type",
        "subscription",
    ] {
        object[key] = Value::Null;
    }
    shared.lock().sessions.insert(
        id,
        FakeSession { object: object.clone(), product_names: items.into_iter().map(|item| item.name).collect() },
    );
    Ok(Json(object))
}

async fn retrieve_session(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> std::result::Result<Json<Value>, ApiError> {
    shared.check_auth(&headers)?;
    match shared.lock().sessions.get(&id) {
        Some(session) => Ok(Json(session.object.clone())),
        None => Err(ApiError {
            param: Some("session".into()),
            code: Some("resource_missing"),
            ..ApiError::new(StatusCode::NOT_FOUND, format!("No such checkout.session: '{id}'"))
        }),
    }
}

async fn pay_page(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let state = shared.lock();
    let Some(session) = state.sessions.get(&id) else {
        return not_found_page(&id);
    };
    let object = &session.object;
    let amount = format_amount(
        object["amount_total"].as_i64().unwrap_or_default(),
        object["currency"].as_str().unwrap_or_default(),
    );
    let products = escape_html(&session.product_names.join(", "));
    let id_html = escape_html(&id);
    let action = if object["status"] == "open" {
        let cancel = object["cancel_url"]
            .as_str()
            .map(|url| format!(r#" <a href="{}">Cancel</a>"#, escape_html(url)))
            .unwrap_or_default();
        format!(r#"<form method="post" action="/pay/{id_html}"><button type="submit">Pay</button>{cancel}</form>"#)
    } else {
        "<p>This session has already been paid.</p>".to_owned()
    };
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"generator\" content=\"{MARKER}\">\
         <title>Fake Stripe Checkout</title></head>\
         <body><h1>Fake Stripe Checkout</h1><p>{products}</p><p class=\"amount\">{amount}</p>{action}\
         <p><small>Session {id_html} (test mode, no real payment)</small></p></body></html>\n"
    ))
    .into_response()
}

async fn pay(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match shared.complete_session(&id) {
        Ok(event_id) => {
            // The traveler's payment went through whatever the receiver does; like
            // Stripe, report delivery trouble out of band and still redirect.
            if let Err(err) = shared.deliver(&event_id).await {
                tracing::warn!(%err, "completed session but could not deliver webhook");
            }
        }
        // A double-submitted form must not emit a second event.
        Err(PaymentsError::SessionNotOpen(_)) => {}
        Err(_) => return not_found_page(&id),
    }
    let success_url = shared.lock().sessions.get(&id).and_then(|s| s.object["success_url"].as_str().map(str::to_owned));
    match success_url {
        Some(url) => Redirect::to(&url.replace("{CHECKOUT_SESSION_ID}", &id)).into_response(),
        None => Html("<!doctype html>\n<p>Payment complete.</p>\n").into_response(),
    }
}

fn not_found_page(id: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(format!("<!doctype html>\n<p>No such checkout session: {}</p>\n", escape_html(id))))
        .into_response()
}

/// Renders minor units for display; every currency Kippu uses has two decimals.
fn format_amount(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {}", abs / 100, abs % 100, currency.to_ascii_uppercase())
}

fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_amounts_and_escapes_html() {
        assert_eq!(format_amount(2000, "eur"), "20.00 EUR");
        assert_eq!(format_amount(5, "eur"), "0.05 EUR");
        assert_eq!(escape_html(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
