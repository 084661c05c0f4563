//! Staff sign-in to the portal.

use crate::audit::ClientAddr;
use crate::auth::STAFF_COOKIE;
use crate::auth::STAFF_SESSION_SECS;
use crate::session::now;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use kippu_domain::audit::AuditAction;
use kippu_domain::throttle::{Policy, Verdict};

/// The throttle's scope for staff sign-ins, keyed by client address.
const THROTTLE_SCOPE: &str = "staff-signin-client";
use std::collections::HashMap;

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
    client: ClientAddr,
    jar: CookieJar,
    Form(f): Form<SigninForm>,
) -> Result<Response, AppError> {
    let next = safe_next(f.next.as_ref());
    // Failed sign-ins are counted per client address in the database, so the lock holds in
    // every process. (The staff login is one shared password today; per-account locks come
    // with staff accounts, where locking one cannot lock every colleague out.)
    let at = now();
    let locked = |until: i64, next: String| -> Result<Response, AppError> {
        let when = crate::views::fmt_time(until);
        let error = Some(format!("Too many failed sign-ins from your address: try again after {when}."));
        let page = SigninPage { next, error, chain_id: s.chain.chain_id() };
        let retry = (until - at).max(1).to_string();
        Ok((StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry)], Html(page.render()?)).into_response())
    };
    if let Verdict::Locked { until } = s.store.throttle_verdict(THROTTLE_SCOPE, &client.0, at).await? {
        metrics::counter!("kippu_signin_throttled_total").increment(1);
        return locked(until, next);
    }
    if !s.identity.portal.accepts(&f.password) {
        crate::audit::record(&s, "staff", "kippu", AuditAction::SignInFailed, "portal", &client).await;
        // A fixed pause per wrong attempt bounds guessing to one try per second per connection.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        tracing::warn!("issuer portal: wrong password");
        if let Verdict::Locked { until } =
            s.store.throttle_failure(THROTTLE_SCOPE, &client.0, at, &Policy::CLIENT).await?
        {
            return locked(until, next);
        }
        let page = SigninPage { next, error: Some("Wrong password.".into()), chain_id: s.chain.chain_id() };
        return Ok((StatusCode::UNAUTHORIZED, Html(page.render()?)).into_response());
    }
    s.store.throttle_success(THROTTLE_SCOPE, &client.0, at).await?;
    crate::audit::record(&s, "staff", "kippu", AuditAction::SignIn, "portal", &client).await;
    let cookie = Cookie::build((STAFF_COOKIE, s.identity.portal.open()))
        // Sent to the staff pages under /operators/ (reports, scanner tokens) as well as /portal/.
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(STAFF_SESSION_SECS))
        .build();
    Ok((jar.add(cookie), Redirect::to(&next)).into_response())
}
