//! Staff sign-in to the portal.

use crate::audit::ClientAddr;
use crate::auth::STAFF_COOKIE;
use crate::auth::STAFF_SESSION_SECS;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use kippu_domain::audit::AuditAction;
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
    if !s.identity.portal.accepts(&f.password) {
        crate::audit::record(&s, "staff", "kippu", AuditAction::SignInFailed, "portal", &client).await;
        // A fixed pause per wrong attempt bounds guessing to one try per second per connection.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        tracing::warn!("issuer portal: wrong password");
        let page = SigninPage { next, error: Some("Wrong password.".into()), chain_id: s.chain.chain_id() };
        return Ok((StatusCode::UNAUTHORIZED, Html(page.render()?)).into_response());
    }
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
