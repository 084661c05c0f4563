//! Staff and machines: organisations, staff accounts (invited with a one-time link, signed in
//! with an Argon2id password), their sessions, and API tokens scoped to one organisation.
//! Every decision of who may do what is `kippu_domain::staff::authorize`'s; these use cases
//! ask it first and then read or write through the store.
//!
//! Secrets are drawn here and handed back once (an invitation link, a session cookie, a
//! token); the store only ever sees their SHA-256 (random 256-bit secrets need no slow hash)
//! or, for passwords, an Argon2id hash.

use kippu_domain::model::{ApiToken, Organisation, StaffAccount};
use kippu_domain::staff::{authorize, valid_slug, Denied, Grant, OrgKind, Permission, Principal, Role, Target};
use kippu_domain::throttle::{Policy, Verdict};
use sha2::{Digest, Sha256};

use crate::accounts::{hash_password, normalize_email, password_matches};
use crate::ports::{PortError, Store};

/// How long a staff session lasts (a working day).
pub const SESSION_SECS: i64 = 8 * 3600;
/// How long an invitation link works.
pub const INVITATION_SECS: i64 = 7 * 86_400;
/// The shortest staff password.
pub const MIN_PASSWORD: usize = 12;
/// The longest a token may live, in days (a year: machines' tokens are rotated at least yearly).
pub const MAX_TOKEN_DAYS: i64 = 365;
/// Throttle scope of failed staff sign-ins per client address.
pub const SIGNIN_CLIENT: &str = "staff-signin-client";
/// Throttle scope of failed staff sign-ins per account (e-mail).
pub const SIGNIN_ACCOUNT: &str = "staff-signin-account";
/// Throttle scope of refused bearer tokens per client address.
pub const TOKEN_CLIENT: &str = "token-client";
/// Throttle scope of refused bearer tokens per token id.
pub const TOKEN_ID: &str = "token-id";

/// A fresh 256-bit secret, hex.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What the store keeps of a secret: its SHA-256, hex.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two digests are equal, in time independent of where they differ.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The audit log's name for a member of staff.
pub fn actor_name(a: &StaffAccount) -> String {
    format!("staff:{}", a.email)
}

/// The principal a staff account acts as.
pub async fn principal_of(store: &dyn Store, a: &StaffAccount) -> Result<Principal, PortError> {
    let org = store
        .organisation(&a.organisation)
        .await?
        .ok_or_else(|| PortError::Corrupt(format!("staff account {} of unknown organisation", a.id)))?;
    Ok(Principal { organisation: org.slug, kind: org.kind, grant: Grant::Role(a.role) })
}

// ---- invitations ------------------------------------------------------------------------

/// A staff account just added, with the secret of its one-time invitation link (shown once).
#[derive(Debug, Clone)]
pub struct Invitation {
    /// The account (no password yet).
    pub account: StaffAccount,
    /// The link's secret: `/portal/invitations/{secret}`.
    pub secret: String,
    /// When the link stops working.
    pub expires_at: i64,
}

impl Invitation {
    /// The link to hand over.
    pub fn link(&self, public_url: &str) -> String {
        format!("{}/portal/invitations/{}", public_url.trim_end_matches('/'), self.secret)
    }
}

/// Why staff could not be added. `Display` is the sentence the inviter reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    /// The inviter may not add staff there.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// No such organisation.
    #[error("there is no organisation {0:?}")]
    NoOrganisation(String),
    /// Not an e-mail address.
    #[error("{0:?} is not an e-mail address")]
    BadEmail(String),
    /// The e-mail has an account (in this or another organisation).
    #[error("{0} has a staff account already")]
    Taken(String),
    /// The role does not exist in such an organisation, or only an admin may grant it.
    #[error("{0}")]
    BadRole(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Adds a member of staff to `organisation` and returns their invitation. `who` must be
/// allowed to manage that organisation's staff; only the consortium's admins grant `admin`.
pub async fn invite(
    store: &dyn Store,
    who: Option<(&Principal, &str)>,
    organisation: &str,
    email: &str,
    role: Role,
    now: i64,
) -> Result<Invitation, InviteError> {
    if let Some((p, _)) = who {
        authorize(p, Permission::StaffWrite, Target::Org(organisation))?;
        if role == Role::Admin && p.grant != Grant::Role(Role::Admin) {
            return Err(InviteError::BadRole("only the consortium's admins make admins".into()));
        }
    }
    let org =
        store.organisation(organisation).await?.ok_or_else(|| InviteError::NoOrganisation(organisation.into()))?;
    if !role.fits(org.kind) {
        return Err(InviteError::BadRole(format!("{} organisations have no {role}s", org.kind)));
    }
    let email = normalize_email(email).map_err(|_| InviteError::BadEmail(email.into()))?;
    let account = StaffAccount {
        id: hex::encode(rand::random::<[u8; 8]>()),
        email: email.clone(),
        organisation: org.slug,
        role,
        password_hash: None,
        created_at: now,
        created_by: who.map_or_else(|| "cli".to_owned(), |(_, name)| name.to_owned()),
        disabled_at: None,
    };
    let secret = new_secret();
    let expires_at = now + INVITATION_SECS;
    if !store.add_staff(&account, &digest(&secret), expires_at).await? {
        return Err(InviteError::Taken(email));
    }
    Ok(Invitation { account, secret, expires_at })
}

/// A fresh invitation link for an existing account (a lost link, a forgotten password).
pub async fn reinvite(
    store: &dyn Store,
    who: Option<&Principal>,
    organisation: &str,
    account_id: &str,
    now: i64,
) -> Result<Invitation, InviteError> {
    if let Some(p) = who {
        authorize(p, Permission::StaffWrite, Target::Org(organisation))?;
    }
    let account = store
        .staff_account(account_id)
        .await?
        .filter(|a| a.organisation == organisation && a.disabled_at.is_none())
        .ok_or_else(|| InviteError::BadEmail(account_id.into()))?;
    if account.role == Role::Admin && who.is_some_and(|p| p.grant != Grant::Role(Role::Admin)) {
        return Err(InviteError::BadRole("only the consortium's admins reset an admin".into()));
    }
    let secret = new_secret();
    let expires_at = now + INVITATION_SECS;
    store.reinvite_staff(&account.id, &digest(&secret), expires_at, now).await?;
    Ok(Invitation { account, secret, expires_at })
}

/// Why an invitation could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// Unknown, used or expired link.
    #[error("this invitation link is unknown, used or expired: ask a colleague for a new one")]
    Invalid,
    /// The password is too short.
    #[error("a staff password has at least {MIN_PASSWORD} characters")]
    TooShort,
    /// Hashing failed.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// The account an invitation link is for, if it still works.
pub async fn invitation(store: &dyn Store, secret: &str, now: i64) -> Result<Option<StaffAccount>, PortError> {
    store.invitation(&digest(secret), now).await
}

/// Sets the invited account's password and uses the link up.
pub async fn accept_invitation(
    store: &dyn Store,
    secret: &str,
    password: &str,
    now: i64,
) -> Result<StaffAccount, AcceptError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AcceptError::TooShort);
    }
    if store.invitation(&digest(secret), now).await?.is_none() {
        return Err(AcceptError::Invalid);
    }
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AcceptError::Internal(e.to_string()))?
        .map_err(AcceptError::Internal)?;
    store.accept_invitation(&digest(secret), &hash, now).await?.ok_or(AcceptError::Invalid)
}

// ---- organisations ----------------------------------------------------------------------

/// Why an organisation could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrganisationError {
    /// Only the consortium's admins add organisations.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// The slug is not path-safe.
    #[error("{0:?}: a slug is 2 to 32 lower-case letters, digits and dashes, starting with a letter")]
    BadSlug(String),
    /// The name is empty or too long.
    #[error("an organisation's name has 1 to 100 characters")]
    BadName,
    /// The slug is taken.
    #[error("there is an organisation {0:?} already")]
    Taken(String),
    /// The consortium is made once, by `kippu init`.
    #[error("the consortium is made by `kippu init`, once")]
    SecondConsortium,
    /// Its first member of staff could not be invited.
    #[error("{0}")]
    FirstStaff(InviteError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Adds an organisation and invites its first member of staff (role `staff`).
pub async fn add_organisation(
    store: &dyn Store,
    who: Option<(&Principal, &str)>,
    org: &Organisation,
    first_staff_email: &str,
) -> Result<Invitation, OrganisationError> {
    if let Some((p, _)) = who {
        authorize(p, Permission::OrganisationsWrite, Target::Consortium)?;
    }
    if !valid_slug(&org.slug) {
        return Err(OrganisationError::BadSlug(org.slug.clone()));
    }
    if org.name.trim().is_empty() || org.name.chars().count() > 100 {
        return Err(OrganisationError::BadName);
    }
    if org.kind == OrgKind::Consortium {
        return Err(OrganisationError::SecondConsortium);
    }
    // The e-mail is checked before anything is written, so a bad one leaves no organisation
    // without staff behind.
    normalize_email(first_staff_email)
        .map_err(|_| OrganisationError::FirstStaff(InviteError::BadEmail(first_staff_email.into())))?;
    if store.staff_by_email(&normalize_email(first_staff_email).unwrap_or_default()).await?.is_some() {
        return Err(OrganisationError::FirstStaff(InviteError::Taken(first_staff_email.into())));
    }
    if !store.add_organisation(org).await? {
        return Err(OrganisationError::Taken(org.slug.clone()));
    }
    // The admin adds the first member; they add their colleagues.
    invite(store, who, &org.slug, first_staff_email, Role::Staff, org.created_at)
        .await
        .map_err(OrganisationError::FirstStaff)
}

/// `kippu init`'s part: the consortium's organisation (made if missing) and its first admin.
pub async fn first_admin(store: &dyn Store, email: &str, now: i64) -> Result<Invitation, OrganisationError> {
    let consortium = Organisation {
        slug: kippu_domain::staff::CONSORTIUM.into(),
        name: "Kippu consortium".into(),
        kind: OrgKind::Consortium,
        created_at: now,
    };
    store.add_organisation(&consortium).await?;
    invite(store, None, &consortium.slug, email, Role::Admin, now).await.map_err(OrganisationError::FirstStaff)
}

/// The organisations a catalogue implies: one per operator (the insurer's entry is the
/// insurer) and one per hosted issuer, named as there. For the demo and tests; in production
/// the consortium's admin adds each with its first member of staff.
pub fn catalogue_organisations(
    operators: &[kippu_domain::model::Operator],
    issuers: &[kippu_domain::model::IssuerRow],
    now: i64,
) -> Vec<Organisation> {
    let ops = operators.iter().map(|o| Organisation {
        slug: o.slug.clone(),
        name: o.name.clone(),
        kind: if o.kind == "insurer" { OrgKind::Insurer } else { OrgKind::Operator },
        created_at: now,
    });
    let iss = issuers.iter().map(|i| Organisation {
        slug: i.slug.clone(),
        name: i.name.clone(),
        kind: OrgKind::Issuer,
        created_at: now,
    });
    ops.chain(iss).collect()
}

/// Adds a member of staff with a password already set, through the same invitation an invited
/// colleague uses (made and accepted at once). For the demo's and tests' known accounts.
pub async fn add_staff_with_password(
    store: &dyn Store,
    organisation: &str,
    email: &str,
    role: Role,
    password: &str,
    now: i64,
) -> Result<StaffAccount, String> {
    let inv = invite(store, None, organisation, email, role, now).await.map_err(|e| e.to_string())?;
    accept_invitation(store, &inv.secret, password, now).await.map_err(|e| e.to_string())
}

/// Why a role change or a disabling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffChangeError {
    /// Not allowed.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// The organisation has no such account.
    #[error("no such member of staff")]
    Unknown,
    /// The role does not fit, or only an admin may grant or take it.
    #[error("{0}")]
    BadRole(String),
    /// One's own account: changing it could lock the last one out.
    #[error("ask a colleague to change your own account")]
    Yourself,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

async fn colleague(
    store: &dyn Store,
    who: &Principal,
    me: &StaffAccount,
    organisation: &str,
    id: &str,
) -> Result<(StaffAccount, Organisation), StaffChangeError> {
    authorize(who, Permission::StaffWrite, Target::Org(organisation))?;
    if me.id == id {
        return Err(StaffChangeError::Yourself);
    }
    let a =
        store.staff_account(id).await?.filter(|a| a.organisation == organisation).ok_or(StaffChangeError::Unknown)?;
    if a.role == Role::Admin && who.grant != Grant::Role(Role::Admin) {
        return Err(StaffChangeError::BadRole("only the consortium's admins change an admin".into()));
    }
    let org = store.organisation(organisation).await?.ok_or(StaffChangeError::Unknown)?;
    Ok((a, org))
}

/// Changes a colleague's role.
pub async fn set_role(
    store: &dyn Store,
    who: &Principal,
    me: &StaffAccount,
    organisation: &str,
    id: &str,
    role: Role,
) -> Result<StaffAccount, StaffChangeError> {
    let (a, org) = colleague(store, who, me, organisation, id).await?;
    if !role.fits(org.kind) {
        return Err(StaffChangeError::BadRole(format!("{} organisations have no {role}s", org.kind)));
    }
    if role == Role::Admin && who.grant != Grant::Role(Role::Admin) {
        return Err(StaffChangeError::BadRole("only the consortium's admins make admins".into()));
    }
    if !store.set_staff_role(organisation, &a.id, role).await? {
        return Err(StaffChangeError::Unknown);
    }
    Ok(StaffAccount { role, ..a })
}

/// Disables a colleague's account: it signs in no more and its sessions end at once.
pub async fn disable(
    store: &dyn Store,
    who: &Principal,
    me: &StaffAccount,
    organisation: &str,
    id: &str,
    now: i64,
) -> Result<StaffAccount, StaffChangeError> {
    let (a, _) = colleague(store, who, me, organisation, id).await?;
    if !store.disable_staff(organisation, &a.id, now).await? {
        return Err(StaffChangeError::Unknown);
    }
    Ok(StaffAccount { disabled_at: Some(now), ..a })
}

// ---- sign-in ----------------------------------------------------------------------------

/// A member of staff signed in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Their account.
    pub account: StaffAccount,
    /// The session cookie's value (shown to the browser once; stored hashed).
    pub session: String,
}

/// Why a staff sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaffSignInError {
    /// Too many failures from this address or for this account.
    #[error("too many failed sign-ins {which}: try again after {until}")]
    Locked {
        /// "from your address" or "for this account".
        which: &'static str,
        /// Unix seconds.
        until: i64,
    },
    /// Unknown e-mail, wrong password, disabled account or invitation not accepted yet (one
    /// answer for all, so it tells nobody who has an account).
    #[error("wrong e-mail or password")]
    Wrong {
        /// The account it named, if one (for the audit log).
        account: Option<StaffAccount>,
    },
    /// Hashing failed.
    #[error("{0}")]
    Internal(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("kippu staff decoy").unwrap_or_default())
}

async fn locked(store: &dyn Store, client: &str, email: &str, now: i64) -> Result<Option<StaffSignInError>, PortError> {
    if let Verdict::Locked { until } = store.throttle_verdict(SIGNIN_ACCOUNT, email, now).await? {
        return Ok(Some(StaffSignInError::Locked { which: "for this account", until }));
    }
    if let Verdict::Locked { until } = store.throttle_verdict(SIGNIN_CLIENT, client, now).await? {
        return Ok(Some(StaffSignInError::Locked { which: "from your address", until }));
    }
    Ok(None)
}

/// Checks a staff e-mail and password, throttled per account and per client address in the
/// database (so the locks hold in every process), and opens a session.
pub async fn sign_in(
    store: &dyn Store,
    email: &str,
    password: &str,
    client: &str,
    now: i64,
) -> Result<SignedIn, StaffSignInError> {
    let email = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
    if let Some(refusal) = locked(store, client, &email, now).await? {
        return Err(refusal);
    }
    let found = store.staff_by_email(&email).await?;
    let usable = found.as_ref().filter(|a| a.disabled_at.is_none()).and_then(|a| a.password_hash.clone());
    let hash = usable.clone().unwrap_or_else(|| decoy_hash().to_owned());
    let candidate = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || password_matches(&candidate, &hash))
        .await
        .map_err(|e| StaffSignInError::Internal(e.to_string()))?;
    if !(ok && usable.is_some()) {
        metrics::counter!("kippu_staff_signin_failed_total").increment(1);
        let by_account = store.throttle_failure(SIGNIN_ACCOUNT, &email, now, &Policy::ACCOUNT).await?;
        let by_client = store.throttle_failure(SIGNIN_CLIENT, client, now, &Policy::CLIENT).await?;
        return Err(match (by_account, by_client) {
            (Verdict::Locked { until }, _) => StaffSignInError::Locked { which: "for this account", until },
            (_, Verdict::Locked { until }) => StaffSignInError::Locked { which: "from your address", until },
            _ => StaffSignInError::Wrong { account: found },
        });
    }
    let account = found.expect("usable implies found");
    // Only the account's count is forgiven: the address's decays with its window, or one
    // valid account would let its holder guess others' passwords without end.
    store.throttle_success(SIGNIN_ACCOUNT, &email, now).await?;
    let session = open_session(store, &account, now).await?;
    Ok(SignedIn { account, session })
}

/// Opens a session for an account that proved who it is (a password, a passkey): the cookie's
/// value, stored only as its digest.
pub async fn open_session(store: &dyn Store, account: &StaffAccount, now: i64) -> Result<String, PortError> {
    let session = new_secret();
    store.open_staff_session(&digest(&session), &account.id, now + SESSION_SECS).await?;
    Ok(session)
}

/// The account behind a session cookie.
pub async fn session(store: &dyn Store, cookie: &str, now: i64) -> Result<Option<StaffAccount>, PortError> {
    store.staff_session(&digest(cookie), now).await
}

/// Ends a session.
pub async fn sign_out(store: &dyn Store, cookie: &str, now: i64) -> Result<(), PortError> {
    store.end_staff_session(&digest(cookie), now).await
}

// ---- API tokens -------------------------------------------------------------------------

/// The prefix of every Kippu API token (so secret scanners can spot a leaked one).
pub const TOKEN_PREFIX: &str = "kippu_";

/// A token just issued, with its secret (shown once).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The stored token.
    pub token: ApiToken,
    /// The bearer value: `kippu_<id>_<secret>`.
    pub bearer: String,
}

/// Why a token could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueTokenError {
    /// The issuer may not manage this organisation's tokens, or not grant a scope.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// No such organisation.
    #[error("there is no organisation {0:?}")]
    NoOrganisation(String),
    /// A scope this organisation's tokens cannot carry.
    #[error("the tokens of {kind} organisations cannot carry {scope}")]
    ScopeUnfit {
        /// The organisation's kind.
        kind: OrgKind,
        /// The scope.
        scope: Permission,
    },
    /// No scope at all.
    #[error("a token needs at least one scope")]
    NoScope,
    /// Name missing or too long.
    #[error("a token's name has 1 to 80 characters")]
    BadName,
    /// Lifetime out of range.
    #[error("a token lives 1 to {MAX_TOKEN_DAYS} days")]
    BadLifetime,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// What a new token is for.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// The organisation it acts for.
    pub organisation: &'a str,
    /// What it is for.
    pub name: &'a str,
    /// What it may do.
    pub scopes: &'a [Permission],
    /// Days it lives.
    pub days: i64,
}

/// Issues a token. The issuer must manage the organisation's tokens and hold every scope it
/// grants (so nobody hands a machine more than they have).
pub async fn issue_token(
    store: &dyn Store,
    who: Option<(&Principal, &str)>,
    req: &TokenRequest<'_>,
    now: i64,
) -> Result<IssuedToken, IssueTokenError> {
    if let Some((p, _)) = who {
        authorize(p, Permission::TokensWrite, Target::Org(req.organisation))?;
        for s in req.scopes {
            authorize(p, *s, Target::Org(req.organisation))?;
        }
    }
    let org = store
        .organisation(req.organisation)
        .await?
        .ok_or_else(|| IssueTokenError::NoOrganisation(req.organisation.into()))?;
    if req.scopes.is_empty() {
        return Err(IssueTokenError::NoScope);
    }
    if let Some(s) = req.scopes.iter().find(|s| !s.scope_fits(org.kind)) {
        return Err(IssueTokenError::ScopeUnfit { kind: org.kind, scope: *s });
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(IssueTokenError::BadName);
    }
    if !(1..=MAX_TOKEN_DAYS).contains(&req.days) {
        return Err(IssueTokenError::BadLifetime);
    }
    let id = hex::encode(rand::random::<[u8; 6]>());
    let bearer = format!("{TOKEN_PREFIX}{id}_{}", new_secret());
    let mut scopes = req.scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let token = ApiToken {
        id,
        organisation: org.slug,
        name: name.to_owned(),
        scopes,
        token_hash: digest(&bearer),
        created_by: who.map_or_else(|| "cli".to_owned(), |(_, n)| n.to_owned()),
        created_at: now,
        expires_at: now + req.days * 86_400,
        revoked_at: None,
        last_used_at: None,
    };
    store.issue_token(&token).await?;
    Ok(IssuedToken { token, bearer })
}

/// Why a bearer token was refused. `Display` is what the caller reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Not shaped like a Kippu token, unknown, or the secret is wrong.
    #[error("unknown API token")]
    Unknown,
    /// Revoked.
    #[error("this API token was revoked")]
    Revoked,
    /// Past its expiry.
    #[error("this API token expired")]
    Expired,
    /// Too many refused tokens from this address or for this token.
    #[error("too many refused tokens: try again after {until}")]
    Locked {
        /// Unix seconds.
        until: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// The token id a bearer value names, if it is shaped like one.
fn token_id(bearer: &str) -> Option<&str> {
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && secret.len() == 64 && id.bytes().chain(secret.bytes()).all(|b| b.is_ascii_hexdigit()))
        .then_some(id)
}

/// Checks a bearer token: the principal it acts as, or why not. Refusals are throttled per
/// client address and per token id, in the database.
pub async fn check_token(
    store: &dyn Store,
    bearer: &str,
    client: &str,
    now: i64,
) -> Result<(Principal, ApiToken), TokenRefusal> {
    if let Verdict::Locked { until } = store.throttle_verdict(TOKEN_CLIENT, client, now).await? {
        return Err(TokenRefusal::Locked { until });
    }
    let id = token_id(bearer);
    if let Some(id) = id {
        if let Verdict::Locked { until } = store.throttle_verdict(TOKEN_ID, id, now).await? {
            return Err(TokenRefusal::Locked { until });
        }
    }
    let found = match id {
        Some(id) => store.api_token(id).await?,
        None => None,
    };
    let refusal = match &found {
        Some(t) if !same_digest(&t.token_hash, &digest(bearer)) => TokenRefusal::Unknown,
        Some(t) if t.revoked_at.is_some() => TokenRefusal::Revoked,
        Some(t) if t.expires_at <= now => TokenRefusal::Expired,
        Some(t) => {
            let org = store
                .organisation(&t.organisation)
                .await?
                .ok_or_else(|| PortError::Corrupt(format!("token {} of unknown organisation", t.id)))?;
            store.token_used(&t.id, now).await?;
            let p = Principal { organisation: org.slug, kind: org.kind, grant: Grant::Token(t.scopes.clone()) };
            return Ok((p, t.clone()));
        }
        None => TokenRefusal::Unknown,
    };
    metrics::counter!("kippu_token_refused_total").increment(1);
    let mut until = None;
    if let Verdict::Locked { until: u } = store.throttle_failure(TOKEN_CLIENT, client, now, &Policy::CLIENT).await? {
        until = Some(u);
    }
    if let Some(id) = id {
        if let Verdict::Locked { until: u } = store.throttle_failure(TOKEN_ID, id, now, &Policy::ACCOUNT).await? {
            until = Some(until.map_or(u, |v: i64| v.max(u)));
        }
    }
    Err(until.map_or(refusal, |until| TokenRefusal::Locked { until }))
}

/// Revokes one of an organisation's tokens.
pub async fn revoke_token(
    store: &dyn Store,
    who: Option<&Principal>,
    organisation: &str,
    id: &str,
    now: i64,
) -> Result<bool, RevokeTokenError> {
    if let Some(p) = who {
        authorize(p, Permission::TokensWrite, Target::Org(organisation))?;
    }
    Ok(store.revoke_token(organisation, id, now).await?)
}

/// Why a token could not be revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeTokenError {
    /// Not allowed.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_come_only_from_well_shaped_tokens() {
        let good = format!("kippu_{}_{}", "a1".repeat(6), "0f".repeat(32));
        assert_eq!(token_id(&good), Some("a1a1a1a1a1a1"));
        assert_eq!(token_id(&good[..good.len() - 1]), None);
        assert_eq!(token_id(&good.replace("kippu_", "kipu_")), None);
        assert_eq!(token_id("kippu_zz_zz"), None);
        assert!(same_digest(&digest("x"), &digest("x")) && !same_digest(&digest("x"), &digest("y")));
    }
}
