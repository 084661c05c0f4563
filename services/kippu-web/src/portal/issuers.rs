//! An issuer's portal: issuing and revoking concession credentials.

use crate::identity::chrono_now;
use crate::identity::day;
use crate::identity::issuer_key;
use crate::identity::status_url;
use crate::identity::trust_list;
use crate::identity::uuid_v4;
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
use kippu_credentials::{Concession, NewConcession, StatusEntry, STATUS_LIST_LEN};
use kippu_domain::model::IssuedCredential;
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
    _staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
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
    _staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    headers: axum::http::HeaderMap,
    Form(f): Form<IssueForm>,
) -> Result<Response, AppError> {
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
    let holder = match kippu_identity::normalize_did_pkh(f.holder.trim()) {
        Ok(d) => d,
        Err(e) => return refuse(format!("The holder must be a traveler's did:pkh DID: {e}.")).await,
    };
    let Ok(concession) = Concession::parse(&f.concession) else {
        return refuse(format!("Unknown concession {:?}.", f.concession)).await;
    };
    let until = match chrono::NaiveDate::parse_from_str(&f.valid_until, "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(23, 59, 59).expect("valid time").and_utc(),
        Err(_) => return refuse("Valid until must be a date (YYYY-MM-DD).".into()).await,
    };
    let issued_at = chrono_now();
    if until <= issued_at {
        return refuse("Valid until must be in the future.".into()).await;
    }
    let (row, key) = issuer_key(&s, &slug).await?;
    if !trust_list(&s).await?.allows(&row.did, concession) {
        return refuse(format!("{} is not on the trust list for {concession} concessions.", row.name)).await;
    }
    let id = format!("urn:uuid:{}", uuid_v4());
    let index = s
        .store
        .record_issued(
            &IssuedCredential {
                id: id.clone(),
                issuer_slug: slug.clone(),
                holder_did: holder.clone(),
                concession: concession.to_string(),
                status_index: 0,
                issued_at: issued_at.timestamp(),
                valid_until: until.timestamp(),
                revoked_at: None,
            },
            STATUS_LIST_LEN as i64,
        )
        .await?;
    let vc = s
        .identity
        .credentials
        .issue(
            &row.did,
            &key,
            &NewConcession {
                id: id.clone(),
                subject_did: holder.clone(),
                concession,
                valid_from: issued_at,
                valid_until: until,
                status: Some(StatusEntry { list_url: status_url(&s, &slug), index: index as u64 }),
            },
        )
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let (_, address) = kippu_identity::parse_did_pkh(&holder).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let delivered = if s.store.traveler(&address).await?.is_some() {
        s.store.add_to_wallet(&address, &id, &vc.to_string(), now()).await?;
        "delivered to the traveler's Kippu wallet"
    } else {
        "the traveler can import it in their wallet"
    };
    metrics::counter!("kippu_credentials_issued_total", "concession" => concession.as_str()).increment(1);
    tracing::info!(issuer = %row.did, %id, %concession, "concession credential issued");
    if wants_json {
        return Ok(Json(vc).into_response());
    }
    let notice = format!("Issued {concession} credential {id}: {delivered}.");
    Ok(Redirect::to(&format!("/portal/issuers/{slug}?notice={}", urlencode(&notice))).into_response())
}

#[derive(serde::Deserialize)]
pub(crate) struct RevokeForm {
    id: String,
}

pub(crate) async fn revoke(
    _staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Result<Response, AppError> {
    if !s.store.revoke_issued(&slug, &f.id, now()).await? {
        return Err(AppError::NotFound(format!("{} is not an unrevoked credential of this issuer.", f.id)));
    }
    tracing::info!(issuer = %slug, id = %f.id, "concession credential revoked");
    let notice = format!("Revoked {}: its status list bit is set.", f.id);
    Ok(Redirect::to(&format!("/portal/issuers/{slug}?notice={}", urlencode(&notice))).into_response())
}
