//! Staff sign-in (e-mail and password), sign-out, and accepting an invitation (setting the
//! password through a one-time link).

use crate::audit::ClientAddr;
use crate::auth::STAFF_COOKIE;
use crate::session::now;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use kippu_app::staff::{AcceptError, StaffSignInError, SESSION_SECS};
use kippu_domain::audit::AuditAction;
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "portal_signin.html")]
struct SigninPage {
    /// Offer passkey sign-in (the app is reached by a domain name).
    passkeys: bool,
    next: String,
    email: String,
    error: Option<String>,
    notice: Option<String>,
    chain_id: u64,
}

fn safe_next(next: Option<&String>) -> String {
    // Only paths on this site: no open redirect. Staff pages live under /portal, /operators/,
    // and the gate fleet at /gates.
    let staff_page = |n: &str| {
        n == "/portal"
            || n.starts_with("/portal/")
            || n.starts_with("/operators/")
            || n == "/gates"
            || n.starts_with("/gates?")
    };
    next.filter(|n| staff_page(n) && !n.starts_with("//")).cloned().unwrap_or_else(|| "/portal".into())
}

pub(crate) async fn signin_page(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Html<String>, AppError> {
    let page = SigninPage {
        passkeys: s.passkeys.available(),
        next: safe_next(q.get("next")),
        email: String::new(),
        error: None,
        notice: q.get("notice").cloned(),
        chain_id: s.chain.chain_id(),
    };
    Ok(Html(page.render()?))
}

#[derive(serde::Deserialize)]
pub(crate) struct SigninForm {
    #[serde(default)]
    email: String,
    password: String,
    next: Option<String>,
}

pub(super) fn session_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((STAFF_COOKIE, value))
        // Sent to the staff pages under /operators/ and /gates as well as /portal/.
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(SESSION_SECS))
        .build()
}

pub(crate) async fn signin(
    State(s): State<AppState>,
    client: ClientAddr,
    jar: CookieJar,
    Form(f): Form<SigninForm>,
) -> Result<Response, AppError> {
    let next = safe_next(f.next.as_ref());
    let at = now();
    let page = |status: StatusCode, error: String| -> Result<Response, AppError> {
        let p = SigninPage {
            passkeys: s.passkeys.available(),
            next: next.clone(),
            email: f.email.clone(),
            error: Some(error),
            notice: None,
            chain_id: s.chain.chain_id(),
        };
        Ok((status, Html(p.render()?)).into_response())
    };
    match kippu_app::staff::sign_in(&*s.store, &f.email, &f.password, &client.0, at).await {
        Ok(done) => {
            let org = done.account.organisation.clone();
            let actor = kippu_app::staff::actor_name(&done.account);
            crate::audit::record(&s, &actor, &org, AuditAction::SignIn, "portal", &client).await;
            Ok((jar.add(session_cookie(done.session, s.secure_cookies())), Redirect::to(&next)).into_response())
        }
        Err(StaffSignInError::Locked { which, until }) => {
            metrics::counter!("kippu_signin_throttled_total").increment(1);
            let actor = format!("staff:{}", f.email.trim().to_lowercase());
            crate::audit::record(&s, &actor, "", AuditAction::SignInFailed, "portal (locked)", &client).await;
            let when = crate::views::fmt_time(until);
            let mut r = page(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed sign-ins {which}: try again after {when}."),
            )?;
            let retry = (until - at).max(1).to_string();
            r.headers_mut().insert(header::RETRY_AFTER, retry.parse().expect("digits"));
            Ok(r)
        }
        Err(StaffSignInError::Wrong { account }) => {
            let (actor, org) = match &account {
                Some(a) => (kippu_app::staff::actor_name(a), a.organisation.clone()),
                None => (format!("unknown:{}", f.email.trim().to_lowercase()), String::new()),
            };
            crate::audit::record(&s, &actor, &org, AuditAction::SignInFailed, "portal", &client).await;
            // A fixed pause per wrong attempt bounds guessing to one try per second per connection.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            tracing::warn!("staff portal: wrong e-mail or password");
            page(StatusCode::UNAUTHORIZED, "Wrong e-mail or password.".into())
        }
        Err(StaffSignInError::Internal(e)) => Err(AppError::Internal(e)),
        Err(StaffSignInError::Store(e)) => Err(e.into()),
    }
}

/// Ends the session (in every process: it is deleted from the database).
pub(crate) async fn signout(
    State(s): State<AppState>,
    client: ClientAddr,
    jar: CookieJar,
) -> Result<Response, AppError> {
    if let Some(c) = jar.get(STAFF_COOKIE) {
        if let Some(a) = kippu_app::staff::session(&*s.store, c.value(), now()).await? {
            let actor = kippu_app::staff::actor_name(&a);
            crate::audit::record(&s, &actor, &a.organisation, AuditAction::SignOut, "portal", &client).await;
        }
        kippu_app::staff::sign_out(&*s.store, c.value(), now()).await?;
    }
    let gone = Cookie::build((STAFF_COOKIE, "")).path("/").build();
    Ok((jar.remove(gone), Redirect::to("/portal/signin?notice=Signed%20out.")).into_response())
}

#[derive(Template)]
#[template(path = "portal_invitation.html")]
struct InvitationPage {
    secret: String,
    email: String,
    organisation: String,
    role: String,
    min: usize,
    error: Option<String>,
    chain_id: u64,
}

/// `GET /portal/invitations/{secret}`: the form to set one's password.
pub(crate) async fn invitation(State(s): State<AppState>, Path(secret): Path<String>) -> Result<Response, AppError> {
    let Some(a) = kippu_app::staff::invitation(&*s.store, &secret, now()).await? else {
        return Err(AppError::NotFound(AcceptError::Invalid.to_string()));
    };
    let page = InvitationPage {
        secret,
        email: a.email,
        organisation: a.organisation,
        role: a.role.to_string(),
        min: kippu_app::staff::MIN_PASSWORD,
        error: None,
        chain_id: s.chain.chain_id(),
    };
    Ok(Html(page.render()?).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct AcceptForm {
    password: String,
    confirm: String,
}

/// `POST /portal/invitations/{secret}`: sets the password, uses the link up, and sends the new
/// member of staff to sign in.
pub(crate) async fn accept(
    State(s): State<AppState>,
    client: ClientAddr,
    Path(secret): Path<String>,
    Form(f): Form<AcceptForm>,
) -> Result<Response, AppError> {
    let at = now();
    let Some(a) = kippu_app::staff::invitation(&*s.store, &secret, at).await? else {
        return Err(AppError::NotFound(AcceptError::Invalid.to_string()));
    };
    let again = |error: String| -> Result<Response, AppError> {
        let page = InvitationPage {
            secret: secret.clone(),
            email: a.email.clone(),
            organisation: a.organisation.clone(),
            role: a.role.to_string(),
            min: kippu_app::staff::MIN_PASSWORD,
            error: Some(error),
            chain_id: s.chain.chain_id(),
        };
        Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
    };
    if f.password != f.confirm {
        return again("The two passwords differ.".into());
    }
    match kippu_app::staff::accept_invitation(&*s.store, &secret, &f.password, at).await {
        Ok(account) => {
            let actor = kippu_app::staff::actor_name(&account);
            crate::audit::record(
                &s,
                &actor,
                &account.organisation,
                AuditAction::InvitationAccepted,
                &account.email,
                &client,
            )
            .await;
            let notice = crate::views::urlencode("Your password is set: sign in.");
            Ok(Redirect::to(&format!("/portal/signin?notice={notice}")).into_response())
        }
        Err(e @ AcceptError::TooShort) => again(e.to_string()),
        Err(e @ AcceptError::Invalid) => Err(AppError::NotFound(e.to_string())),
        Err(AcceptError::Internal(e)) => Err(AppError::Internal(e)),
        Err(AcceptError::Store(e)) => Err(e.into()),
    }
}
