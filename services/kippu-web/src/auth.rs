//! Who a staff or machine request comes from: a staff session (cookie, held in the database so
//! every process knows it) or an organisation's API token (`Authorization: Bearer kippu_…`).
//! Each audience's extractor builds on [`caller`]; what the caller may do is
//! `kippu_domain::staff::authorize`'s, asked through [`Caller::may`].

use crate::audit::ClientAddr;
use crate::session::now;
use crate::{AppError, AppState};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use kippu_app::staff::TokenRefusal;
use kippu_domain::model::StaffAccount;
use kippu_domain::staff::{authorize, Permission, Principal, Target};
use sha2::{Digest, Sha256};

pub(crate) const STAFF_COOKIE: &str = "kippu_portal";

/// A signed-in member of staff or a machine's token, with the organisation it acts for.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The organisation and the role or scopes.
    pub(crate) principal: Principal,
    /// How the audit log names it (`staff:<email>`, `token:<id>`).
    pub(crate) actor: String,
    /// The staff account (`None` for a token).
    pub(crate) account: Option<StaffAccount>,
}

impl Caller {
    /// Whether the caller may do `what` to `target`; a 403 saying why when not.
    pub(crate) fn may(&self, what: Permission, target: Target<'_>) -> Result<(), AppError> {
        authorize(&self.principal, what, target).map_err(|d| {
            metrics::counter!("kippu_staff_forbidden_total").increment(1);
            AppError::Forbidden(d.to_string())
        })
    }

    /// Whether the caller may (to decide what a page offers; [`Caller::may`] guards the action).
    pub(crate) fn can(&self, what: Permission, target: Target<'_>) -> bool {
        authorize(&self.principal, what, target).is_ok()
    }

    /// The organisation the caller belongs to.
    pub(crate) fn organisation(&self) -> &str {
        &self.principal.organisation
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

/// The caller of a request: `Ok(None)` when it carries neither a live session nor a token; an
/// error response when it carries a token that is refused (401, or 429 once throttled).
pub(crate) async fn caller(parts: &mut Parts, s: &AppState) -> Result<Option<Caller>, Response> {
    let at = now();
    if let Some(token) = bearer(&parts.headers).map(str::to_owned) {
        let client = <ClientAddr as axum::extract::FromRequestParts<AppState>>::from_request_parts(parts, s)
            .await
            .unwrap_or_else(|e| match e {});
        return match kippu_app::staff::check_token(&*s.store, &token, &client.0, at).await {
            Ok((principal, t)) => Ok(Some(Caller { principal, actor: format!("token:{}", t.id), account: None })),
            Err(TokenRefusal::Locked { until }) => {
                let retry = (until - at).max(1).to_string();
                let why = format!("too many refused tokens: try again after {}", crate::views::fmt_time(until));
                Err((StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry)], why).into_response())
            }
            Err(TokenRefusal::Store(e)) => Err(AppError::from(e).into_response()),
            Err(refusal) => Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"kippu\"")],
                refusal.to_string(),
            )
                .into_response()),
        };
    }
    let Some(cookie) = CookieJar::from_headers(&parts.headers).get(STAFF_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    let account = match kippu_app::staff::session(&*s.store, &cookie, at).await {
        Ok(Some(a)) => a,
        Ok(None) => return Ok(None),
        Err(e) => return Err(AppError::from(e).into_response()),
    };
    let principal =
        kippu_app::staff::principal_of(&*s.store, &account).await.map_err(|e| AppError::from(e).into_response())?;
    Ok(Some(Caller { principal, actor: kippu_app::staff::actor_name(&account), account: Some(account) }))
}

/// The answer to a request with no caller: a 401 for API callers (anything but a GET), a
/// redirect to the portal's sign-in for a browser.
pub(crate) fn sign_in_required(parts: &Parts) -> Response {
    if parts.method != axum::http::Method::GET {
        let why = "staff sign-in required (a portal session, or an API token as a bearer token)";
        return (StatusCode::UNAUTHORIZED, why).into_response();
    }
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    Redirect::to(&format!("/portal/signin?next={}", crate::views::urlencode(next))).into_response()
}

/// The caller, or the answer for a request without one.
pub(crate) async fn require_caller(parts: &mut Parts, s: &AppState) -> Result<Caller, Response> {
    match caller(parts, s).await? {
        Some(c) => Ok(c),
        None => Err(sign_in_required(parts)),
    }
}

impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        require_caller(parts, s).await
    }
}
