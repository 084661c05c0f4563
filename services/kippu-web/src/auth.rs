//! Staff and scanner credentials: the portal password, its session cookie and bearer tokens. Each audience's extractor builds on these.

use crate::session::now;
use crate::AppState;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

pub(crate) const STAFF_COOKIE: &str = "kippu_portal";

pub(crate) const STAFF_SESSION_SECS: i64 = 8 * 3600;

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
    pub(crate) fn accepts(&self, candidate: &str) -> bool {
        same_secret(candidate, &self.password)
    }

    pub(crate) fn open(&self) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut s = self.sessions.lock().expect("portal sessions");
        let t = now();
        s.retain(|_, exp| *exp > t);
        s.insert(token.clone(), t + STAFF_SESSION_SECS);
        token
    }

    pub(crate) fn live(&self, token: &str) -> bool {
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

    pub(crate) fn accepts_scanner(&self, operator_slug: &str, candidate: &str) -> bool {
        let want = self.scanner_token(operator_slug);
        want.len() == candidate.len() && want.bytes().zip(candidate.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Whether `candidate` hashes to `digest`, in constant time: comparing digests rather than
/// the secrets hides the secret's length too.
pub(crate) fn same_secret(candidate: &str, digest: &[u8; 32]) -> bool {
    let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
    d.iter().zip(digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The `Authorization: Bearer …` token of a request, if any.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether the request comes from signed-in staff: the portal session cookie, or the staff
/// password as a bearer token.
pub(crate) fn staff_signed_in(headers: &axum::http::HeaderMap, portal: &PortalAuth) -> bool {
    if bearer(headers).is_some_and(|b| portal.accepts(b)) {
        return true;
    }
    CookieJar::from_headers(headers).get(STAFF_COOKIE).is_some_and(|c| portal.live(c.value()))
}

/// Lets signed-in staff through; refuses anyone else — a 401 for API callers (a bearer
/// token, or anything but a GET), a redirect to the portal's sign-in for a browser.
pub(crate) fn require_staff(parts: &Parts, s: &AppState) -> Result<(), Box<Response>> {
    if staff_signed_in(&parts.headers, &s.identity.portal) {
        return Ok(());
    }
    if bearer(&parts.headers).is_some() || parts.method != axum::http::Method::GET {
        let why = "staff sign-in required (the portal session, or the staff password as a bearer token)";
        return Err(Box::new((StatusCode::UNAUTHORIZED, why).into_response()));
    }
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Err(Box::new(Redirect::to(&format!("/portal/signin?next={}", crate::views::urlencode(next))).into_response()))
}
