//! An issuer's portal: issuing and revoking concession credentials.

use crate::audit::ClientAddr;
use crate::identity::day;
use crate::identity::issuer_key;
use crate::identity::status_url;
use crate::portal::Staff;
use crate::session::now;
use crate::views::html;
use crate::views::urlencode;
use crate::views::Page;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use kippu_app::credentials::{
    issue_credential, revoke_credential, IssueCredential, IssueCredentialError, RevokeCredentialError,
};
use kippu_domain::audit::AuditAction;
use kippu_domain::staff::{Permission, Target};
use std::collections::HashMap;

// ---- issuer portal --------------------------------------------------------------------
pub(crate) struct IssuedView {
    id: String,
    holder: String,
    concession: String,
    issued: String,
    valid_until: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "issuer.html")]
struct IssuerPage {
    slug: String,
    did_path: String,
    name: String,
    did: String,
    concessions: Vec<String>,
    travelers: Vec<(String, String)>,
    issued: Vec<IssuedView>,
    default_until: String,
    notice: Option<String>,
    error: Option<String>,
    chain_id: u64,
}

async fn issuer_page(s: &AppState, slug: &str, notice: Option<String>, error: Option<String>) -> Page {
    let (row, _) = issuer_key(s, slug).await?;
    let concessions = s.store.trust_list().await?.into_iter().filter(|(d, _)| *d == row.did).map(|(_, c)| c).collect();
    let travelers = s.store.travelers().await?.into_iter().map(|t| (t.did, t.display_name)).collect();
    let issued = s
        .store
        .issued_by(slug)
        .await?
        .into_iter()
        .map(|c| IssuedView {
            id: c.id,
            holder: c.holder_did,
            concession: c.concession,
            issued: day(c.issued_at),
            valid_until: day(c.valid_until),
            revoked: c.revoked_at.map(day),
        })
        .collect();
    html(IssuerPage {
        did_path: kippu_credentials::did_web_path(&row.did).unwrap_or_default().trim_start_matches('/').to_owned(),
        slug: row.slug,
        name: row.name,
        did: row.did,
        concessions,
        travelers,
        issued,
        default_until: day(now() + 365 * 86_400),
        notice,
        error,
        chain_id: s.chain.chain_id(),
    })
}

pub(crate) async fn issuer(
    staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    staff.may(Permission::CredentialsRead, Target::Org(&slug))?;
    issuer_page(&s, &slug, q.get("notice").cloned(), None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct IssueForm {
    holder: String,
    concession: String,
    valid_until: String,
}

/// Issues a concession credential to a traveler's DID and delivers it to
/// their Kippu wallet when they have one here.
pub(crate) async fn issue(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path(slug): Path<String>,
    headers: axum::http::HeaderMap,
    Form(f): Form<IssueForm>,
) -> Result<Response, AppError> {
    staff.may(Permission::CredentialsWrite, Target::Org(&slug))?;
    // An issuer's own systems ask for JSON and get the credential to hand over themselves.
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") || a.contains("application/vc"));
    let refuse = |msg: String| {
        let s = s.clone();
        let slug = slug.clone();
        async move {
            Ok::<_, AppError>(
                (StatusCode::UNPROCESSABLE_ENTITY, issuer_page(&s, &slug, None, Some(msg)).await?).into_response(),
            )
        }
    };
    let req = IssueCredential {
        issuer_slug: slug.clone(),
        holder: f.holder,
        concession: f.concession,
        valid_until: f.valid_until,
        status_list_url: status_url(&s, &slug),
    };
    let issued = match issue_credential(&*s.store, &s.keystore, &s.identity.credentials, &crate::CLOCK, req).await {
        Ok(issued) => issued,
        Err(
            e @ (IssueCredentialError::BadHolder(_)
            | IssueCredentialError::UnknownConcession(_)
            | IssueCredentialError::BadDate
            | IssueCredentialError::NotInFuture
            | IssueCredentialError::NotTrusted { .. }),
        ) => return refuse(e.to_string()).await,
        Err(IssueCredentialError::Issuer(e)) => return Err(e.into()),
        Err(IssueCredentialError::Signing(e)) => return Err(AppError::Internal(e)),
        Err(e @ IssueCredentialError::HolderAddress(_)) => return Err(AppError::BadRequest(e.to_string())),
        Err(IssueCredentialError::Store(e)) => return Err(e.into()),
    };
    crate::audit::record(&s, &staff.actor, &slug, AuditAction::CredentialIssued, &issued.id, &client).await;
    if wants_json {
        return Ok(Json(issued.vc).into_response());
    }
    let delivered = match issued.delivered {
        true => "delivered to the traveler's Kippu wallet",
        false => "the traveler can import it in their wallet",
    };
    let notice = format!("Issued {} credential {}: {delivered}.", issued.concession, issued.id);
    Ok(Redirect::to(&format!("/portal/issuers/{slug}?notice={}", urlencode(&notice))).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct RevokeForm {
    id: String,
}

pub(crate) async fn revoke(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path(slug): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Result<Response, AppError> {
    staff.may(Permission::CredentialsWrite, Target::Org(&slug))?;
    match revoke_credential(&*s.store, &crate::CLOCK, &slug, &f.id).await {
        Ok(()) => crate::audit::record(&s, &staff.actor, &slug, AuditAction::CredentialRevoked, &f.id, &client).await,
        Err(e @ RevokeCredentialError::NotFound { .. }) => return Err(AppError::NotFound(e.to_string())),
        Err(RevokeCredentialError::Store(e)) => return Err(e.into()),
    }
    let notice = format!("Revoked {}: its status list bit is set.", f.id);
    Ok(Redirect::to(&format!("/portal/issuers/{slug}?notice={}", urlencode(&notice))).into_response())
}
