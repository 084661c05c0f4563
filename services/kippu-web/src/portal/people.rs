//! The portal's home, the consortium's list of organisations, and each organisation's staff:
//! inviting colleagues (a one-time link, shown once), changing a role, disabling an account.

use crate::audit::ClientAddr;
use crate::portal::Staff;
use crate::session::now;
use crate::views::{fmt_time, html, Page};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use kippu_app::staff::{Invitation, InviteError, OrganisationError, StaffChangeError};
use kippu_domain::audit::AuditAction;
use kippu_domain::model::Organisation;
use kippu_domain::staff::{OrgKind, Permission, Role, Target};
use std::collections::HashMap;

/// A link on the home page, shown only when the caller may follow it.
struct Link {
    href: String,
    label: String,
}

#[derive(Template)]
#[template(path = "portal_home.html")]
struct HomePage {
    who: String,
    role: String,
    organisation: String,
    kind: String,
    links: Vec<Link>,
    /// The signed-in person's passkeys (`None`: a token, or passkeys do not work here).
    passkeys: Option<usize>,
    chain_id: u64,
}

/// What one organisation's staff find in the portal, checked against the rule so the page
/// shows only links that open.
fn org_links(staff: &Staff, o: &Organisation) -> Vec<Link> {
    let may = |p: Permission| p.fits(o.kind) && staff.can(p, Target::Org(&o.slug));
    let mut out = Vec::new();
    let mut add = |ok: bool, href: String, label: String| {
        if ok {
            out.push(Link { href, label });
        }
    };
    let slug = &o.slug;
    let name = &o.name;
    add(may(Permission::ReportsRead), format!("/operators/{slug}/report"), format!("{name}: report"));
    add(may(Permission::CredentialsRead), format!("/portal/issuers/{slug}"), format!("{name}: credentials"));
    add(may(Permission::StaffRead), format!("/portal/orgs/{slug}/staff"), format!("{name}: staff"));
    add(may(Permission::TokensRead), format!("/portal/orgs/{slug}/tokens"), format!("{name}: API tokens"));
    add(may(Permission::AuditRead), format!("/portal/orgs/{slug}/audit"), format!("{name}: audit log"));
    out
}

/// `GET /portal`: who is signed in, and what they can open.
pub(crate) async fn home(staff: Staff, State(s): State<AppState>) -> Page {
    let mut links = Vec::new();
    let may = |p: Permission| staff.can(p, Target::Consortium);
    for (ok, href, label) in [
        (may(Permission::ConsortiumRead), "/gates", "Gate fleet"),
        (may(Permission::ConsortiumRead), "/operators/report", "Report across operators"),
        (may(Permission::InsuranceRead), "/operators/insurance", "Delay insurance"),
        (
            may(Permission::OrganisationsWrite) || may(Permission::ConsortiumRead),
            "/portal/organisations",
            "Organisations",
        ),
        (may(Permission::AuditRead), "/portal/audit", "Audit log (all organisations)"),
        // The outbox is the platform's: its readers are the whole audit log's.
        (may(Permission::AuditRead), "/portal/chain-writes", "Chain writes (outbox)"),
    ] {
        if ok {
            links.push(Link { href: href.into(), label: label.into() });
        }
    }
    let orgs = s.store.organisations().await?;
    let own = orgs.iter().find(|o| o.slug == staff.organisation()).cloned();
    if let Some(o) = &own {
        links.extend(org_links(&staff, o));
    }
    html(HomePage {
        who: staff.actor.trim_start_matches("staff:").to_owned(),
        role: match &staff.principal.grant {
            kippu_domain::staff::Grant::Role(r) => r.to_string(),
            kippu_domain::staff::Grant::Token(_) => "API token".into(),
        },
        organisation: own.as_ref().map_or_else(|| staff.organisation().to_owned(), |o| o.name.clone()),
        kind: staff.principal.kind.to_string(),
        links,
        passkeys: match &staff.account {
            Some(a) if s.passkeys.available() => Some(s.store.staff_passkeys_of(&a.id).await?.len()),
            _ => None,
        },
        chain_id: s.chain.chain_id(),
    })
}

struct OrgRow {
    slug: String,
    name: String,
    kind: String,
    created: String,
    links: Vec<Link>,
}

#[derive(Template)]
#[template(path = "portal_organisations.html")]
struct OrganisationsPage {
    orgs: Vec<OrgRow>,
    kinds: Vec<&'static str>,
    can_add: bool,
    invited: Option<Shown>,
    error: Option<String>,
    chain_id: u64,
}

/// A secret shown once: an invitation link.
struct Shown {
    email: String,
    link: String,
    expires: String,
}

fn shown(s: &AppState, i: &Invitation) -> Shown {
    Shown { email: i.account.email.clone(), link: i.link(&s.public_url), expires: fmt_time(i.expires_at) }
}

async fn organisations_page(s: &AppState, staff: &Staff, invited: Option<Shown>, error: Option<String>) -> Page {
    let orgs = s
        .store
        .organisations()
        .await?
        .into_iter()
        .map(|o| OrgRow {
            // The row names the organisation already: its links say only what they open.
            links: org_links(staff, &o)
                .into_iter()
                .map(|l| Link { label: l.label.trim_start_matches(&format!("{}: ", o.name)).to_owned(), href: l.href })
                .collect(),
            slug: o.slug,
            name: o.name,
            kind: o.kind.to_string(),
            created: fmt_time(o.created_at),
        })
        .collect();
    html(OrganisationsPage {
        orgs,
        kinds: [OrgKind::Operator, OrgKind::Issuer, OrgKind::Insurer].map(|k| k.as_str()).to_vec(),
        can_add: staff.can(Permission::OrganisationsWrite, Target::Consortium),
        invited,
        error,
        chain_id: s.chain.chain_id(),
    })
}

/// `GET /portal/organisations`: every organisation (the consortium's staff).
pub(crate) async fn organisations(staff: Staff, State(s): State<AppState>) -> Page {
    staff.may(Permission::ConsortiumRead, Target::Consortium)?;
    organisations_page(&s, &staff, None, None).await
}

#[derive(serde::Deserialize)]
pub(crate) struct AddOrganisationForm {
    slug: String,
    name: String,
    kind: String,
    email: String,
}

/// `POST /portal/organisations`: an admin adds an organisation and invites its first member
/// of staff; the page shows the invitation link once.
pub(crate) async fn add_organisation(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Form(f): Form<AddOrganisationForm>,
) -> Result<Response, AppError> {
    staff.may(Permission::OrganisationsWrite, Target::Consortium)?;
    let kind: OrgKind =
        f.kind.parse().map_err(|e: kippu_domain::staff::UnknownName| AppError::BadRequest(e.to_string()))?;
    let org = Organisation { slug: f.slug.trim().to_owned(), name: f.name.trim().to_owned(), kind, created_at: now() };
    match kippu_app::staff::add_organisation(&*s.store, Some((&staff.principal, &staff.actor)), &org, &f.email).await {
        Ok(inv) => {
            crate::audit::record(&s, &staff.actor, &org.slug, AuditAction::OrganisationAdded, &org.slug, &client).await;
            let target = format!("{} ({})", inv.account.email, inv.account.role);
            crate::audit::record(&s, &staff.actor, &org.slug, AuditAction::StaffAdded, &target, &client).await;
            Ok(organisations_page(&s, &staff, Some(shown(&s, &inv)), None).await?.into_response())
        }
        Err(OrganisationError::Denied(d)) => Err(AppError::Forbidden(d.to_string())),
        Err(OrganisationError::Store(e)) => Err(e.into()),
        Err(e) => Ok((
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            organisations_page(&s, &staff, None, Some(e.to_string())).await?,
        )
            .into_response()),
    }
}

struct StaffRow {
    id: String,
    email: String,
    role: String,
    state: String,
    added: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "portal_staff.html")]
struct StaffPage {
    slug: String,
    name: String,
    rows: Vec<StaffRow>,
    roles: Vec<&'static str>,
    can_write: bool,
    me: String,
    invited: Option<Shown>,
    notice: Option<String>,
    error: Option<String>,
    chain_id: u64,
}

async fn organisation_or_404(s: &AppState, slug: &str) -> Result<Organisation, AppError> {
    s.store.organisation(slug).await?.ok_or_else(|| AppError::NotFound(format!("No organisation {slug:?}.")))
}

struct Flash {
    invited: Option<Shown>,
    notice: Option<String>,
    error: Option<String>,
}

async fn staff_page(s: &AppState, staff: &Staff, slug: &str, flash: Flash) -> Page {
    let org = organisation_or_404(s, slug).await?;
    let rows = s
        .store
        .staff_of(slug)
        .await?
        .into_iter()
        .map(|a| StaffRow {
            state: match (a.disabled_at, &a.password_hash) {
                (Some(t), _) => format!("disabled {}", fmt_time(t)),
                (None, None) => "invited".into(),
                (None, Some(_)) => "active".into(),
            },
            active: a.disabled_at.is_none(),
            id: a.id,
            email: a.email,
            role: a.role.to_string(),
            added: format!("{} by {}", fmt_time(a.created_at), a.created_by),
        })
        .collect();
    let roles = Role::ALL.into_iter().filter(|r| r.fits(org.kind)).map(|r| r.as_str()).collect();
    html(StaffPage {
        slug: org.slug,
        name: org.name,
        rows,
        roles,
        can_write: staff.can(Permission::StaffWrite, Target::Org(slug)),
        me: staff.account.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
        invited: flash.invited,
        notice: flash.notice,
        error: flash.error,
        chain_id: s.chain.chain_id(),
    })
}

/// `GET /portal/orgs/{slug}/staff`.
pub(crate) async fn staff_list(
    staff: Staff,
    State(s): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    staff.may(Permission::StaffRead, Target::Org(&slug))?;
    staff_page(&s, &staff, &slug, Flash { invited: None, notice: q.get("notice").cloned(), error: None }).await
}

#[derive(serde::Deserialize)]
pub(crate) struct InviteForm {
    email: String,
    role: String,
}

fn invite_refusal(e: InviteError) -> Result<String, AppError> {
    match e {
        InviteError::Denied(d) => Err(AppError::Forbidden(d.to_string())),
        InviteError::NoOrganisation(o) => Err(AppError::NotFound(format!("No organisation {o:?}."))),
        InviteError::Store(e) => Err(e.into()),
        other => Ok(other.to_string()),
    }
}

/// `POST /portal/orgs/{slug}/staff`: invites a colleague; the page shows their one-time link.
pub(crate) async fn invite(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path(slug): Path<String>,
    Form(f): Form<InviteForm>,
) -> Result<Response, AppError> {
    staff.may(Permission::StaffWrite, Target::Org(&slug))?;
    let role: Role =
        f.role.parse().map_err(|e: kippu_domain::staff::UnknownName| AppError::BadRequest(e.to_string()))?;
    match kippu_app::staff::invite(&*s.store, Some((&staff.principal, &staff.actor)), &slug, &f.email, role, now())
        .await
    {
        Ok(inv) => {
            let target = format!("{} ({})", inv.account.email, inv.account.role);
            crate::audit::record(&s, &staff.actor, &slug, AuditAction::StaffAdded, &target, &client).await;
            let flash = Flash { invited: Some(shown(&s, &inv)), notice: None, error: None };
            Ok(staff_page(&s, &staff, &slug, flash).await?.into_response())
        }
        Err(e) => {
            let error = invite_refusal(e)?;
            let page = staff_page(&s, &staff, &slug, Flash { invited: None, notice: None, error: Some(error) }).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// `POST /portal/orgs/{slug}/staff/{id}/reinvite`: a fresh one-time link (a lost link or a
/// forgotten password); earlier links stop working.
pub(crate) async fn reinvite(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    staff.may(Permission::StaffWrite, Target::Org(&slug))?;
    match kippu_app::staff::reinvite(&*s.store, Some(&staff.principal), &slug, &id, now()).await {
        Ok(inv) => {
            let target = format!("{} (new invitation)", inv.account.email);
            crate::audit::record(&s, &staff.actor, &slug, AuditAction::StaffAdded, &target, &client).await;
            let flash = Flash { invited: Some(shown(&s, &inv)), notice: None, error: None };
            Ok(staff_page(&s, &staff, &slug, flash).await?.into_response())
        }
        Err(InviteError::BadEmail(_)) => Err(AppError::NotFound("No such member of staff.".into())),
        Err(e) => {
            let error = invite_refusal(e)?;
            let page = staff_page(&s, &staff, &slug, Flash { invited: None, notice: None, error: Some(error) }).await?;
            Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct RoleForm {
    role: String,
}

fn change_refusal(e: StaffChangeError) -> AppError {
    match e {
        StaffChangeError::Denied(d) => AppError::Forbidden(d.to_string()),
        StaffChangeError::Unknown => AppError::NotFound("No such member of staff.".into()),
        StaffChangeError::Store(e) => e.into(),
        other => AppError::Refused(other.to_string()),
    }
}

/// Staff changing accounts are people: a token cannot.
fn me(staff: &Staff) -> Result<&kippu_domain::model::StaffAccount, AppError> {
    staff.account.as_ref().ok_or_else(|| AppError::Forbidden("API tokens do not manage staff".into()))
}

/// `POST /portal/orgs/{slug}/staff/{id}/role`.
pub(crate) async fn set_role(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path((slug, id)): Path<(String, String)>,
    Form(f): Form<RoleForm>,
) -> Result<Response, AppError> {
    staff.may(Permission::StaffWrite, Target::Org(&slug))?;
    let role: Role =
        f.role.parse().map_err(|e: kippu_domain::staff::UnknownName| AppError::BadRequest(e.to_string()))?;
    let a = kippu_app::staff::set_role(&*s.store, &staff.principal, me(&staff)?, &slug, &id, role)
        .await
        .map_err(change_refusal)?;
    let target = format!("{} -> {role}", a.email);
    crate::audit::record(&s, &staff.actor, &slug, AuditAction::RoleChanged, &target, &client).await;
    let notice = crate::views::urlencode(&format!("{} is now {role}.", a.email));
    Ok(Redirect::to(&format!("/portal/orgs/{slug}/staff?notice={notice}")).into_response())
}

/// `POST /portal/orgs/{slug}/staff/{id}/disable`: signs them out everywhere at once.
pub(crate) async fn disable(
    staff: Staff,
    State(s): State<AppState>,
    client: ClientAddr,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    staff.may(Permission::StaffWrite, Target::Org(&slug))?;
    let a = kippu_app::staff::disable(&*s.store, &staff.principal, me(&staff)?, &slug, &id, now())
        .await
        .map_err(change_refusal)?;
    crate::audit::record(&s, &staff.actor, &slug, AuditAction::StaffDisabled, &a.email, &client).await;
    let notice = crate::views::urlencode(&format!("{} is disabled and signed out.", a.email));
    Ok(Redirect::to(&format!("/portal/orgs/{slug}/staff?notice={notice}")).into_response())
}
