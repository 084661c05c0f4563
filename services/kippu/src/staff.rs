//! `kippu org`, `kippu staff` and `kippu token`: what the consortium's admin does from the
//! portal, from the command line (for the first steps and for automation). Each action goes
//! through the same use case as the portal and into the audit log, as `cli`.

use anyhow::Context;
use kippu_app::staff::{IssuedToken, TokenRequest};
use kippu_domain::audit::AuditAction;
use kippu_domain::model::Organisation;
use kippu_domain::staff::{OrgKind, Permission, Role};
use kippu_store::Store;

use crate::config::Config;

fn public_url(cfg: &Config) -> String {
    cfg.web.public_url.clone().unwrap_or_else(|| format!("http://{}", cfg.web.bind))
}

/// `kippu org add`: an organisation and its first member of staff; returns their one-time link.
pub async fn org_add(
    cfg: &Config,
    store: &Store,
    slug: &str,
    name: &str,
    kind: OrgKind,
    first_staff_email: &str,
) -> anyhow::Result<String> {
    let org = Organisation { slug: slug.into(), name: name.into(), kind, created_at: crate::clock::now() };
    let inv = kippu_app::staff::add_organisation(store, None, &org, first_staff_email).await?;
    crate::audit::record(store, "cli", slug, AuditAction::OrganisationAdded, slug).await?;
    let target = format!("{} ({})", inv.account.email, inv.account.role);
    crate::audit::record(store, "cli", slug, AuditAction::StaffAdded, &target).await?;
    Ok(inv.link(&public_url(cfg)))
}

/// `kippu org list`: `slug  kind  name  staff`.
pub async fn org_list(store: &Store) -> anyhow::Result<String> {
    let mut out = String::new();
    for o in store.organisations().await? {
        let staff = store.staff_of(&o.slug).await?.iter().filter(|a| a.disabled_at.is_none()).count();
        out.push_str(&format!("{}\t{}\t{}\t{} staff\n", o.slug, o.kind, o.name, staff));
    }
    Ok(out)
}

/// `kippu staff invite`: a member of staff of an organisation, or a fresh link for one who
/// has an account (a lost link, a forgotten password, a locked-out admin).
pub async fn invite(
    cfg: &Config,
    store: &Store,
    organisation: &str,
    email: &str,
    role: Role,
) -> anyhow::Result<String> {
    let now = crate::clock::now();
    let normalized = kippu_app::accounts::normalize_email(email).map_err(|e| anyhow::anyhow!("{email}: {e}"))?;
    let inv = match store.staff_by_email(&normalized).await? {
        Some(a) => {
            anyhow::ensure!(a.organisation == organisation, "{email} is staff of {}", a.organisation);
            kippu_app::staff::reinvite(store, None, organisation, &a.id, now).await?
        }
        None => kippu_app::staff::invite(store, None, organisation, email, role, now).await?,
    };
    let target = format!("{} ({})", inv.account.email, inv.account.role);
    crate::audit::record(store, "cli", organisation, AuditAction::StaffAdded, &target).await?;
    Ok(inv.link(&public_url(cfg)))
}

/// `kippu token issue`: an API token for an organisation's machines (shown once).
pub async fn token_issue(
    store: &Store,
    organisation: &str,
    name: &str,
    scopes: &[String],
    days: i64,
) -> anyhow::Result<IssuedToken> {
    let scopes: Vec<Permission> = kippu_domain::staff::parse_scopes(&scopes.join(" ")).context("--scope")?;
    let req = TokenRequest { organisation, name, scopes: &scopes, days };
    let issued = kippu_app::staff::issue_token(store, None, &req, crate::clock::now()).await?;
    let t = &issued.token;
    let target = format!("{} {:?} [{}]", t.id, t.name, kippu_domain::staff::scopes_text(&t.scopes));
    crate::audit::record(store, "cli", organisation, AuditAction::TokenIssued, &target).await?;
    Ok(issued)
}

/// `kippu token revoke`.
pub async fn token_revoke(store: &Store, organisation: &str, id: &str) -> anyhow::Result<()> {
    let done = kippu_app::staff::revoke_token(store, None, organisation, id, crate::clock::now()).await?;
    anyhow::ensure!(done, "{organisation} has no live token {id:?}");
    crate::audit::record(store, "cli", organisation, AuditAction::TokenRevoked, id).await?;
    Ok(())
}
