//! Organisations, staff invitations and sign-in, role changes, API tokens: who may do what is
//! the domain's rule; these check the use cases ask it and keep secrets hashed.

use kippu_app::staff::*;
use kippu_domain::model::Organisation;
use kippu_domain::staff::{Denied, Grant, OrgKind, Permission, Principal, Role, CONSORTIUM};

use crate::support::*;
use kippu_app::ports::Store as _;

const PW: &str = "a long staff password";

fn org(slug: &str, kind: OrgKind) -> Organisation {
    Organisation { slug: slug.into(), name: format!("{slug} Ltd"), kind, created_at: NOW }
}

/// The consortium with its admin, and operator `bus` with its first member of staff.
async fn world() -> (FakeStore, Principal, Principal) {
    let store = FakeStore::default();
    let inv = first_admin(&store, "Root@Kippu.example", NOW).await.unwrap();
    assert_eq!(inv.account.email, "root@kippu.example");
    accept_invitation(&store, &inv.secret, PW, NOW).await.unwrap();
    let admin =
        Principal { organisation: CONSORTIUM.into(), kind: OrgKind::Consortium, grant: Grant::Role(Role::Admin) };
    let bus_inv = add_organisation(
        &store,
        Some((&admin, "staff:root@kippu.example")),
        &org("bus", OrgKind::Operator),
        "ops@bus.example",
    )
    .await
    .unwrap();
    accept_invitation(&store, &bus_inv.secret, PW, NOW).await.unwrap();
    let bus = Principal { organisation: "bus".into(), kind: OrgKind::Operator, grant: Grant::Role(Role::Staff) };
    (store, admin, bus)
}

#[tokio::test]
async fn an_invitation_sets_the_password_once_and_stores_only_hashes() {
    let store = FakeStore::default();
    let inv = first_admin(&store, "root@kippu.example", NOW).await.unwrap();
    assert!(inv.link("https://kippu.example/").starts_with("https://kippu.example/portal/invitations/"));
    assert!(!store.state().invitations.contains_key(&inv.secret), "the link's secret is not stored");
    assert_eq!(accept_invitation(&store, &inv.secret, "short", NOW).await.unwrap_err(), AcceptError::TooShort);
    let a = accept_invitation(&store, &inv.secret, PW, NOW).await.unwrap();
    assert!(a.password_hash.as_deref().unwrap().starts_with("$argon2id$"));
    assert_eq!(accept_invitation(&store, &inv.secret, PW, NOW).await.unwrap_err(), AcceptError::Invalid, "used up");
    // An expired link works no more.
    let later = reinvite(&store, None, CONSORTIUM, &a.id, NOW).await.unwrap();
    let expired = NOW + INVITATION_SECS;
    assert_eq!(accept_invitation(&store, &later.secret, PW, expired).await.unwrap_err(), AcceptError::Invalid);
}

#[tokio::test]
async fn sign_in_opens_a_session_the_store_knows_only_by_hash() {
    let (store, _, _) = world().await;
    let done = sign_in(&store, " OPS@bus.example", PW, "10.0.0.1", NOW).await.unwrap();
    assert_eq!(done.account.organisation, "bus");
    assert!(!store.state().staff_sessions.contains_key(&done.session));
    assert_eq!(session(&store, &done.session, NOW + 1).await.unwrap().unwrap().email, "ops@bus.example");
    assert!(session(&store, &done.session, NOW + SESSION_SECS).await.unwrap().is_none(), "expired");
    let wrong = sign_in(&store, "ops@bus.example", "not the password", "10.0.0.1", NOW).await.unwrap_err();
    assert!(matches!(wrong, StaffSignInError::Wrong { account: Some(_) }), "{wrong:?}");
    let unknown = sign_in(&store, "nobody@bus.example", PW, "10.0.0.1", NOW).await.unwrap_err();
    assert!(matches!(unknown, StaffSignInError::Wrong { account: None }));
    assert_eq!(store.calls().iter().filter(|c| **c == "throttle_failure").count(), 4, "per account and per address");
}

#[tokio::test]
async fn staff_manage_their_own_organisation_only_and_only_admins_make_admins() {
    let (store, admin, bus) = world().await;
    store.add_organisation(&org("rail", OrgKind::Operator)).await.unwrap();
    let who = Some((&bus, "staff:ops@bus.example"));
    let e = invite(&store, who, "rail", "spy@bus.example", Role::Staff, NOW).await.unwrap_err();
    assert!(matches!(e, InviteError::Denied(Denied::OtherOrganisation { .. })), "{e:?}");
    let e = invite(&store, who, "bus", "boss@bus.example", Role::Admin, NOW).await.unwrap_err();
    assert!(matches!(e, InviteError::BadRole(_)), "{e:?}");
    let e =
        invite(&store, Some((&admin, "staff:root")), "bus", "boss@bus.example", Role::Admin, NOW).await.unwrap_err();
    assert!(e.to_string().contains("no admins"), "{e}");
    let colleague = invite(&store, who, "bus", "clerk@bus.example", Role::Auditor, NOW).await.unwrap();
    assert_eq!(colleague.account.created_by, "staff:ops@bus.example");
    let e = invite(&store, who, "bus", "CLERK@bus.example", Role::Staff, NOW).await.unwrap_err();
    assert!(matches!(e, InviteError::Taken(_)), "{e:?}");
    let me = store.staff_by_email("ops@bus.example").await.unwrap().unwrap();
    assert!(matches!(set_role(&store, &bus, &me, "bus", &me.id, Role::Auditor).await, Err(StaffChangeError::Yourself)));
    let changed = set_role(&store, &bus, &me, "bus", &colleague.account.id, Role::Staff).await.unwrap();
    assert_eq!(changed.role, Role::Staff);
    let rail_staff =
        Principal { organisation: "rail".into(), kind: OrgKind::Operator, grant: Grant::Role(Role::Staff) };
    assert!(matches!(
        disable(&store, &rail_staff, &me, "bus", &colleague.account.id, NOW).await,
        Err(StaffChangeError::Denied(_))
    ));
    disable(&store, &bus, &me, "bus", &colleague.account.id, NOW).await.unwrap();
    // Only the consortium's admins add organisations.
    let e = add_organisation(&store, Some((&bus, "x")), &org("taxi", OrgKind::Operator), "t@taxi.example").await;
    assert!(matches!(e, Err(OrganisationError::Denied(_))));
    let e = add_organisation(&store, Some((&admin, "x")), &org("Taxi!", OrgKind::Operator), "t@taxi.example").await;
    assert!(matches!(e, Err(OrganisationError::BadSlug(_))));
    let e = add_organisation(&store, Some((&admin, "x")), &org("taxi", OrgKind::Operator), "not-an-email").await;
    assert!(matches!(e, Err(OrganisationError::FirstStaff(_))));
    assert!(store.organisation("taxi").await.unwrap().is_none(), "a refused first member leaves no organisation");
}

#[tokio::test]
async fn a_token_acts_within_its_scopes_until_revoked_or_expired() {
    let (store, _, bus) = world().await;
    let who = Some((&bus, "staff:ops@bus.example"));
    let req =
        |scopes: &'static [Permission], days| TokenRequest { organisation: "bus", name: "scanner 1", scopes, days };
    let issued = issue_token(&store, who, &req(&[Permission::VouchersRedeem], 30), NOW).await.unwrap();
    assert!(
        issued.bearer.starts_with("kippu_")
            && !store.state().tokens[&issued.token.id].token_hash.contains(&issued.bearer)
    );
    let (p, t) = check_token(&store, &issued.bearer, "10.0.0.2", NOW + 1).await.unwrap();
    assert_eq!((p.organisation.as_str(), p.grant.clone()), ("bus", Grant::Token(vec![Permission::VouchersRedeem])));
    assert_eq!(t.id, issued.token.id);
    // A wrong secret with a real id, a malformed token, an expired one, a revoked one.
    let forged = format!(
        "{}{}",
        &issued.bearer[..issued.bearer.len() - 1],
        if issued.bearer.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(check_token(&store, &forged, "10.0.0.2", NOW).await.unwrap_err(), TokenRefusal::Unknown);
    assert_eq!(check_token(&store, "kippu-dev-portal", "10.0.0.2", NOW).await.unwrap_err(), TokenRefusal::Unknown);
    assert_eq!(
        check_token(&store, &issued.bearer, "10.0.0.2", NOW + 30 * 86_400).await.unwrap_err(),
        TokenRefusal::Expired
    );
    assert!(revoke_token(&store, Some(&bus), "bus", &issued.token.id, NOW).await.unwrap());
    assert_eq!(check_token(&store, &issued.bearer, "10.0.0.2", NOW + 1).await.unwrap_err(), TokenRefusal::Revoked);
    // Nobody grants a machine what the organisation's kind has not, or beyond a year.
    let e = issue_token(&store, who, &req(&[Permission::CredentialsWrite], 30), NOW).await.unwrap_err();
    assert!(matches!(e, IssueTokenError::Denied(Denied::NotForKind { .. })), "{e:?}");
    assert_eq!(issue_token(&store, who, &req(&[], 30), NOW).await.unwrap_err(), IssueTokenError::NoScope);
    assert_eq!(
        issue_token(&store, who, &req(&[Permission::ReportsRead], 366), NOW).await.unwrap_err(),
        IssueTokenError::BadLifetime
    );
    // An auditor issues none.
    let auditor = Principal { grant: Grant::Role(Role::Auditor), ..bus.clone() };
    let e = issue_token(&store, Some((&auditor, "a")), &req(&[Permission::ReportsRead], 30), NOW).await.unwrap_err();
    assert!(matches!(e, IssueTokenError::Denied(Denied::ReadOnly(_))));
}
