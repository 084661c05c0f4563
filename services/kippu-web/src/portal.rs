//! Staff sign-in for the issuer portal: a password from configuration, a
//! short-lived server-side session in a strict same-site cookie, and a
//! per-attempt delay so the password cannot be guessed quickly. Issuers'
//! own systems may instead send the password as a bearer token.

use std::collections::HashMap;
use std::sync::Mutex;

use askama::Template;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use sha2::{Digest, Sha256};

use crate::session::now;
use crate::{AppError, AppState};

const COOKIE: &str = "kippu_portal";
const SESSION_SECS: i64 = 8 * 3600;

/// The portal's password (as a digest) and its open staff sessions.
pub struct PortalAuth {
    password: [u8; 32],
    sessions: Mutex<HashMap<String, i64>>,
}

impl PortalAuth {
    /// Staff sign in with `password`.
    pub fn new(password: &str) -> Self {
        Self { password: Sha256::digest(password.as_bytes()).into(), sessions: Mutex::default() }
    }

    /// Compares digests, so the comparison's timing says nothing about the password.
    fn accepts(&self, candidate: &str) -> bool {
        same_secret(candidate, &self.password)
    }

    fn open(&self) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut s = self.sessions.lock().expect("portal sessions");
        let t = now();
        s.retain(|_, exp| *exp > t);
        s.insert(token.clone(), t + SESSION_SECS);
        token
    }

    fn live(&self, token: &str) -> bool {
        self.sessions.lock().expect("portal sessions").get(token).is_some_and(|exp| *exp > now())
    }

    /// The bearer token of one operator's voucher scanners: bound to that operator, so a
    /// token lifted from a taxi's scanner redeems nothing anywhere else, and it is not
    /// the staff password. Derived (keyed by the password's digest), so nothing to store.
    pub fn scanner_token(&self, operator_slug: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"kippu-voucher-scanner\0");
        h.update(self.password);
        h.update(operator_slug.as_bytes());
        hex::encode(&h.finalize()[..20])
    }

    fn accepts_scanner(&self, operator_slug: &str, candidate: &str) -> bool {
        let want = self.scanner_token(operator_slug);
        want.len() == candidate.len() && want.bytes().zip(candidate.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Whether `candidate` hashes to `digest`, in constant time: comparing digests rather than
/// the secrets hides the secret's length too.
fn same_secret(candidate: &str, digest: &[u8; 32]) -> bool {
    let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
    d.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The `Authorization: Bearer …` token of a request, if any.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether the request comes from signed-in staff: the portal session cookie, or the staff
/// password as a bearer token.
fn staff_signed_in(headers: &axum::http::HeaderMap, portal: &PortalAuth) -> bool {
    if bearer(headers).is_some_and(|b| portal.accepts(b)) {
        return true;
    }
    CookieJar::from_headers(headers).get(COOKIE).is_some_and(|c| portal.live(c.value()))
}

/// `GET /metrics`: for a Prometheus scraper with the metrics bearer token, or staff. Metrics
/// name gates, operators and error rates, which are not for the public.
pub(crate) async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let scraper = match (&s.metrics_token, bearer(&headers)) {
        (Some(token), Some(b)) if !token.is_empty() => same_secret(b, &Sha256::digest(token.as_bytes()).into()),
        _ => false,
    };
    if !scraper && !staff_signed_in(&headers, &s.identity.portal) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"kippu-metrics\"")],
            "metrics: the metrics token or a staff sign-in is required",
        )
            .into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.platform.metrics()).into_response()
}

/// A voucher scanner of the operator named in the path (`/operators/{slug}/…`), by its
/// bearer token, or a signed-in staff member.
pub(crate) struct Scanner;

impl FromRequestParts<AppState> for Scanner {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let portal = &s.identity.portal;
        let slug = parts.uri.path().strip_prefix("/operators/").and_then(|p| p.split('/').next()).unwrap_or("");
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| portal.accepts_scanner(slug, b) || portal.accepts(b)) {
            return Ok(Scanner);
        }
        let jar = CookieJar::from_headers(&parts.headers);
        if jar.get(COOKIE).is_some_and(|c| portal.live(c.value())) {
            return Ok(Scanner);
        }
        Err((StatusCode::UNAUTHORIZED, "voucher redemption: this operator's scanner token required").into_response())
    }
}

/// `GET /operators/{slug}/scanner-token`: staff fetch the token to configure the operator's scanners.
pub(crate) async fn scanner_token(
    _staff: Staff,
    State(s): State<AppState>,
    axum::extract::Path(slug): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    if !s.store.operators().await?.iter().any(|o| o.slug == slug) {
        return Err(AppError::NotFound(format!("No operator {slug:?}.")));
    }
    Ok(axum::Json(serde_json::json!({"operator": slug, "token": s.identity.portal.scanner_token(&slug)}))
        .into_response())
}

/// A signed-in member of staff (an issuer's, an operator's, the consortium's).
pub(crate) struct Staff;

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        if staff_signed_in(&parts.headers, &s.identity.portal) {
            return Ok(Staff);
        }
        if bearer(&parts.headers).is_some() || parts.method != axum::http::Method::GET {
            let why = "staff sign-in required (the portal session, or the staff password as a bearer token)";
            return Err((StatusCode::UNAUTHORIZED, why).into_response());
        }
        let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Err(Redirect::to(&format!("/portal/signin?next={}", crate::identity::urlencode(next))).into_response())
    }
}

#[derive(Template)]
#[template(path = "portal_signin.html")]
struct SigninPage {
    next: String,
    error: Option<String>,
    chain_id: u64,
}

fn safe_next(next: Option<&String>) -> String {
    // Only paths on this site: no open redirect. Staff pages live under /portal/ and /operators/,
    // and the gate fleet at /gates.
    let staff_page = |n: &str| {
        n.starts_with("/portal/") || n.starts_with("/operators/") || n == "/gates" || n.starts_with("/gates?")
    };
    next.filter(|n| staff_page(n) && !n.starts_with("//")).cloned().unwrap_or_else(|| "/portal/issuers/usf".into())
}

pub(crate) async fn signin_page(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let page = SigninPage { next: safe_next(q.get("next")), error: None, chain_id: s.chain.chain_id() };
    Ok(Html(page.render()?))
}

#[derive(serde::Deserialize)]
pub(crate) struct SigninForm {
    password: String,
    next: Option<String>,
}

pub(crate) async fn signin(
    State(s): State<AppState>,
    jar: CookieJar,
    Form(f): Form<SigninForm>,
) -> Result<Response, AppError> {
    let next = safe_next(f.next.as_ref());
    if !s.identity.portal.accepts(&f.password) {
        // A fixed pause per wrong attempt bounds guessing to one try per second per connection.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        tracing::warn!("issuer portal: wrong password");
        let page = SigninPage { next, error: Some("Wrong password.".into()), chain_id: s.chain.chain_id() };
        return Ok((StatusCode::UNAUTHORIZED, Html(page.render()?)).into_response());
    }
    let cookie = Cookie::build((COOKIE, s.identity.portal.open()))
        // Sent to the staff pages under /operators/ (reports, scanner tokens) as well as /portal/.
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(SESSION_SECS))
        .build();
    Ok((jar.add(cookie), Redirect::to(&next)).into_response())
}
