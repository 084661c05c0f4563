//! An organisation's API tokens: issued with scopes and an expiry (the secret shown once),
//! listed, revoked.

use crate::audit::ClientAddr;
use crate::portal::Staff;
use crate::session::now;
use crate::views::{fmt_time, html, Page};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use kippu_app::staff::{IssueTokenError, IssuedToken, RevokeTokenError, TokenRequest, MAX_TOKEN_DAYS};
use kippu_domain::audit::AuditAction;
use kippu_domain::staff::{Permission, Target};
use std::collections::HashMap;

struct TokenRow {
    id: String,
    name: String,
    scopes: String,
    created: String,
    expires: String,
    last_used: String,
    state: String,
    live: bool,
}

struct Scope {
    name: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "portal_tokens.html")]
struct TokensPage {
    slug: String,
    name: String,
    rows: Vec<TokenRow>,
    scopes: Vec<Scope>,
    max_days: i64,
    can_write: bool,
    issued: Option<(String, String, String)>,
    notice: Option<String>,
    error: Option<String>,
    chain_id: u64,
}

struct Flash {
    issued: Option<IssuedToken>,
    notice: Option<String>,
    error: Option<String>,
}

async fn page(s: &AppState, staff: &Staff, slug: &str, flash: Flash) -> Page {
    let org =
        s.store.organisation(slug).await?.ok_or_else(|| AppError::NotFound(format!("No organisation {slug:?}.")))?;
    let at = now();
    let rows = s
        .store
        .tokens_of(slug)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            state: match t.revoked_at {
                Some(r) => format!("revoked {}", fmt_time(r)),
                None if t.expires_at <= at => "expired".into(),
                None => "live".into(),
            },
            live: t.revoked_at.is_none() && t.expires_at > at,
            id: t.id,
            name: t.name,
            scopes: kippu_domain::staff::scopes_text(&t.scopes),
            created: format!("{} by {}", fmt_time(t.created_at), t.created_by),
            expires: fmt_time(t.expires_at),
            last_used: t.last_used_at.map(fmt_time).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let scopes = Permission::SCOPES
        .into_iter()
        .filter(|p| p.scope_fits(org.kind) && staff.can(*p, Target::Org(slug)))
        .map(|p| Scope { name: p.as_str(), checked: false })
        .collect();
    html(TokensPage {
        slug: org.slug,
        name: org.name,
        rows,
        scopes,
        max_days: MAX_TOKEN_DAYS,
        can_write: staff.can(Permission::TokensWrite, Target::Org(slug)),
        issued: flash.issued.map(|i| (i.token.name, i.bearer, fmt_time(i.token.expires_at))),
        notice: flash.notice,
        error: flash.error,
        chain_id: s.chain.chain_id(),
    })
}

/// `GET /portal/orgs/{slug}/tokens`.
pub(crate) async fn list(
    staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    staff.may(Permission::TokensRead, Target::Org(&slug))?;
    page(&s, &staff, &slug, Flash { issued: None, notice: q.get("notice").cloned(), error: None }).await
}

/// `POST /portal/orgs/{slug}/tokens` (form: `name`, `days`, one `scope` per scope). The page,
/// or JSON for `Accept: application/json`, shows the token once.
pub(crate) async fn issue(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    staff.may(Permission::TokensWrite, Target::Org(&slug))?;
    // `scope` repeats (one checkbox each), which a map cannot hold.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|e| AppError::BadRequest(format!("Unreadable form: {e}.")))?;
    let field = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("");
    let mut scopes = Vec::new();
    for (_, v) in pairs.iter().filter(|(n, _)| n == "scope") {
        scopes.extend(kippu_domain::staff::parse_scopes(v).map_err(|e| AppError::BadRequest(e.to_string()))?);
    }
    let days: i64 = field("days").trim().parse().map_err(|_| AppError::BadRequest("days: a whole number".into()))?;
    let wants_json =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"));
    let req = TokenRequest { organisation: &slug, name: field("name"), scopes: &scopes, days };
    match kippu_app::staff::issue_token(&*s.store, Some((&staff.principal, &staff.actor)), &req, now()).await {
        Ok(issued) => {
            let t = &issued.token;
            let target = format!("{} {:?} [{}]", t.id, t.name, kippu_domain::staff::scopes_text(&t.scopes));
            crate::audit::record(&s, &staff.actor, &slug, AuditAction::TokenIssued, &target, &client).await;
            if wants_json {
                let body = serde_json::json!({
                    "id": t.id, "organisation": t.organisation, "name": t.name,
                    "scopes": t.scopes.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    "expires_at": t.expires_at, "token": issued.bearer,
                });
                return Ok((StatusCode::CREATED, Json(body)).into_response());
            }
            Ok(page(&s, &staff, &slug, Flash { issued: Some(issued), notice: None, error: None })
                .await?
                .into_response())
        }
        Err(IssueTokenError::Denied(d)) => Err(AppError::Forbidden(d.to_string())),
        Err(IssueTokenError::NoOrganisation(o)) => Err(AppError::NotFound(format!("No organisation {o:?}."))),
        Err(IssueTokenError::Store(e)) => Err(e.into()),
        Err(e) if wants_json => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({"error": e.to_string()}))).into_response())
        }
        Err(e) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&s, &staff, &slug, Flash { issued: None, notice: None, error: Some(e.to_string()) }).await?,
        )
            .into_response()),
    }
}

/// `POST /portal/orgs/{slug}/tokens/{id}/revoke`: refused from the next request on, in every process.
pub(crate) async fn revoke(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    staff.may(Permission::TokensWrite, Target::Org(&slug))?;
    match kippu_app::staff::revoke_token(&*s.store, Some(&staff.principal), &slug, &id, now()).await {
        Ok(true) => {
            crate::audit::record(&s, &staff.actor, &slug, AuditAction::TokenRevoked, &id, &client).await;
            let notice = crate::views::urlencode(&format!("Token {id} is revoked."));
            Ok(Redirect::to(&format!("/portal/orgs/{slug}/tokens?notice={notice}")).into_response())
        }
        Ok(false) => Err(AppError::NotFound(format!("No live token {id:?} of {slug}."))),
        Err(RevokeTokenError::Denied(d)) => Err(AppError::Forbidden(d.to_string())),
        Err(RevokeTokenError::Store(e)) => Err(e.into()),
    }
}
