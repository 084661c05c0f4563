//! Passkeys (WebAuthn): registering one and signing in with it.

use crate::session::now;
use crate::session::Traveler;
use crate::{AppError, AppState};
use alloy::primitives::Address;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::cookie::CookieJar;
use kippu_domain::model::PasskeyRow;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::AuthenticationVerificationOptions;
use webauthn_rp::request::register::{
    CredProtect, Nickname, PublicKeyCredentialUserEntity, RegistrationVerificationOptions, UserHandle64, Username,
};
use webauthn_rp::request::{
    AsciiDomain, ExtensionInfo, FixedCapHashSet, InsertResult, PublicKeyCredentialDescriptor, RpId, TimedCeremony,
};
use webauthn_rp::response::register::{CompressedPubKey, DynamicState, StaticState};
use webauthn_rp::response::{AuthTransports, CredentialId, SentChallenge};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication64, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions, PublicKeyCredentialCreationOptions, Registration, RegistrationServerState,
};

type StoredKey = StaticState<CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>>;

/// Passkey ceremonies in flight and the relying party they are for.
pub struct Passkeys {
    rp_id: Option<RpId>,
    origin: String,
    registering: Ceremonies<RegistrationServerState<64>>,
    signing_in: Ceremonies<DiscoverableAuthenticationServerState>,
    /// How long a ceremony is held (and what the browser is told to wait).
    timeout: NonZeroU32,
}

/// Ceremonies of one kind, at most `max` held.
struct Ceremonies<T> {
    set: Mutex<FixedCapHashSet<T>>,
    max: usize,
}

/// The ceremony store is full of unexpired ceremonies: try again once the oldest has expired.
#[derive(Debug)]
struct Full {
    retry_after_secs: u64,
}

impl<T: TimedCeremony + std::borrow::Borrow<SentChallenge> + std::hash::Hash + Eq> Ceremonies<T> {
    fn new(max: usize) -> Self {
        // The set never grows past the capacity it is made with (a few MB for the default
        // bound), so it is made for `max`; `hold` keeps it at exactly `max`.
        let max = max.max(1);
        Self { set: Mutex::new(FixedCapHashSet::new(max)), max }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FixedCapHashSet<T>> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds `ceremony` until it is taken or expires; refused when `max` unexpired ones are held.
    /// The set's own capacity is only a lower bound (a hash table rounds it up), so the bound
    /// is checked here.
    fn hold(&self, ceremony: T) -> Result<(), Full> {
        let mut set = self.lock();
        if set.len() >= self.max {
            set.remove_expired_ceremonies();
        }
        if set.len() >= self.max {
            let now = std::time::Instant::now();
            let mut soonest = Duration::MAX;
            set.retain(|c| {
                soonest = soonest.min(c.expiration().saturating_duration_since(now));
                true
            });
            return Err(Full { retry_after_secs: soonest.as_secs().clamp(1, 3600) });
        }
        match set.insert_or_replace_all_expired(ceremony) {
            InsertResult::Success => Ok(()),
            // A full table (capacity) or a duplicate challenge (16 random bytes): say busy either way.
            InsertResult::CapacityFull | InsertResult::Duplicate => Err(Full { retry_after_secs: 1 }),
        }
    }

    fn take(&self, challenge: &SentChallenge) -> Option<T> {
        self.lock().take(challenge)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Passkeys {
    /// How many ceremonies of each kind (sign-ups, sign-ins) are held at most by default: a
    /// ceremony is a few hundred bytes, so this bounds them to a few MB, far more than the
    /// sign-ins a server sees in their five minutes.
    pub const DEFAULT_MAX_CEREMONIES: usize = 10_000;

    /// For an app served at `public_url`; no passkeys when its host is not a domain.
    pub fn new(public_url: &str) -> Self {
        Self::with_limit(public_url, Self::DEFAULT_MAX_CEREMONIES)
    }

    /// [`Passkeys::new`], holding at most `max_ceremonies` of each kind.
    pub fn with_limit(public_url: &str, max_ceremonies: usize) -> Self {
        let origin = crate::security::origin_of(public_url);
        let host = origin.split_once("://").map_or("", |(_, h)| h);
        let host = host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host });
        let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
        let rp_id = (!is_ip).then(|| AsciiDomain::try_from(host.to_owned()).ok().map(RpId::Domain)).flatten();
        Self {
            rp_id,
            origin,
            registering: Ceremonies::new(max_ceremonies),
            signing_in: Ceremonies::new(max_ceremonies),
            // Five minutes, as the WebAuthn default: time to find the phone or the key.
            timeout: NonZeroU32::new(300_000).expect("non-zero"),
        }
    }

    /// Whether passkeys work here.
    pub fn available(&self) -> bool {
        self.rp_id.is_some()
    }

    fn rp(&self) -> Result<&RpId, AppError> {
        self.rp_id.as_ref().ok_or_else(|| {
            AppError::Refused(
                "Passkeys need the app to be reached by a domain name (e.g. http://localhost:8080).".into(),
            )
        })
    }
}

/// 503 with `Retry-After` when too many ceremonies of a kind are open.
fn busy(full: Full) -> Response {
    let message = crate::i18n::tf("error.busy_text", full.retry_after_secs);
    crate::error::busy_json(&message, full.retry_after_secs)
}

fn refused(msg: impl Into<String>) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({"error": msg.into()}))).into_response()
}

/// The account's WebAuthn user handle: the one its passkeys already use, else a new random one.
async fn user_handle(s: &AppState, me: Address) -> Result<UserHandle64, AppError> {
    let existing = s.store.passkeys_of(&me).await?;
    match existing.first().and_then(|p| <[u8; 64]>::try_from(p.user_handle.as_slice()).ok()) {
        Some(bytes) => Ok(UserHandle64::decode(bytes).unwrap_or_else(|never| match never {})),
        None => Ok(UserHandle64::new()),
    }
}

/// `POST /passkeys/register/start`: creation options for a new passkey of the signed-in account.
pub(crate) async fn register_start(State(s): State<AppState>, Traveler(me): Traveler) -> Result<Response, AppError> {
    let rp = s.passkeys.rp()?;
    let t = s.store.traveler(&me).await?.ok_or(AppError::SignInRequired)?;
    let user_id = user_handle(&s, me).await?;
    let email = s.store.email_of(&me).await?.unwrap_or_else(|| format!("{me:#x}"));
    let name = Username::try_from(email.as_str()).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let display = Nickname::try_from(t.display_name.as_str()).ok();
    let exclude = s
        .store
        .passkeys_of(&me)
        .await?
        .into_iter()
        .filter_map(|p| CredentialId::decode(p.credential_id).ok())
        .filter_map(|id| {
            AuthTransports::decode(0).ok().map(|transports| PublicKeyCredentialDescriptor { id, transports })
        })
        .collect();
    let user = PublicKeyCredentialUserEntity { name, id: &user_id, display_name: display };
    let mut options = PublicKeyCredentialCreationOptions::passkey(rp, user, exclude);
    options.timeout = s.passkeys.timeout;
    // Ask for credProtect but do not make the browser refuse an authenticator without it
    // (Chromium then fails the whole ceremony); user verification is required either way.
    options.extensions.cred_protect = CredProtect::UserVerificationRequired(ExtensionInfo::AllowDontEnforceValue);
    let (server, client) = options.start_ceremony().map_err(|e| AppError::Internal(format!("passkey options: {e}")))?;
    let body = serde_json::to_value(&client).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Err(full) = s.passkeys.registering.hold(server) {
        tracing::warn!("passkey registrations: too many in progress");
        return Ok(busy(full));
    }
    Ok(Json(body).into_response())
}

/// `POST /passkeys/register/finish`: the browser's `PublicKeyCredential.toJSON()`.
pub(crate) async fn register_finish(
    State(s): State<AppState>,
    Traveler(me): Traveler,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let rp = s.passkeys.rp()?;
    let reg = match serde_json::from_slice::<Registration>(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable passkey registration");
            return Ok(refused(format!("That is not a passkey registration ({e}).")));
        }
    };
    let Ok(challenge) = reg.challenge() else {
        return Ok(refused("That is not a passkey registration."));
    };
    let Some(server) = s.passkeys.registering.take(&challenge) else {
        return Ok(refused("This passkey request expired or was already used; try again."));
    };
    let origins = [s.passkeys.origin.as_str()];
    let opts = RegistrationVerificationOptions::<&str, &str> { allowed_origins: &origins, ..Default::default() };
    let cred = match server.verify(rp, &reg, &opts) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "passkey registration refused");
            return Ok(refused(format!("The passkey could not be verified: {e}")));
        }
    };
    let row = PasskeyRow {
        credential_id: cred.id().encode().map(<[u8]>::to_vec).unwrap_or_else(|never| match never {}),
        holder: me,
        user_handle: cred.user_id().encode().map(|h| h.to_vec()).unwrap_or_else(|never| match never {}),
        static_state: cred.static_state().encode().unwrap_or_else(|never| match never {}),
        dynamic_state: cred.dynamic_state().encode().map(|d| d.to_vec()).unwrap_or_else(|never| match never {}),
        created_at: now(),
        last_used: None,
    };
    if !s.store.insert_passkey(&row).await? {
        return Ok(refused("This passkey is already registered."));
    }
    metrics::counter!("kippu_passkeys_registered_total").increment(1);
    tracing::info!(holder = %me, "passkey added");
    Ok(Json(serde_json::json!({"ok": true})).into_response())
}

/// `POST /passkeys/signin/start`: request options; the authenticator picks the account.
pub(crate) async fn signin_start(State(s): State<AppState>) -> Result<Response, AppError> {
    let rp = s.passkeys.rp()?;
    let mut options = DiscoverableCredentialRequestOptions::passkey(rp);
    options.0.timeout = s.passkeys.timeout;
    let (server, client) = options.start_ceremony().map_err(|e| AppError::Internal(format!("passkey options: {e}")))?;
    let body = serde_json::to_value(&client).map_err(|e| AppError::Internal(e.to_string()))?;
    if let Err(full) = s.passkeys.signing_in.hold(server) {
        tracing::warn!("passkey sign-ins: too many in progress");
        return Ok(busy(full));
    }
    Ok(Json(body).into_response())
}

/// `POST /passkeys/signin/finish`: verifies the assertion and starts a session.
pub(crate) async fn signin_finish(
    State(s): State<AppState>,
    jar: CookieJar,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let rp = s.passkeys.rp()?;
    let auth = match serde_json::from_slice::<DiscoverableAuthentication64>(&body) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable passkey sign-in");
            return Ok(refused(format!("That is not a passkey sign-in ({e}).")));
        }
    };
    let Ok(challenge) = auth.challenge() else {
        return Ok(refused("That is not a passkey sign-in."));
    };
    let Some(server) = s.passkeys.signing_in.take(&challenge) else {
        return Ok(refused("This sign-in expired or was already used; try again."));
    };
    let raw_id: Vec<u8> = auth.raw_id().as_ref().to_vec();
    let Some(row) = s.store.passkey(&raw_id).await? else {
        return Ok(refused("This passkey is not registered with Kippu (it may have been removed)."));
    };
    let user_bytes: [u8; 64] =
        row.user_handle.as_slice().try_into().map_err(|_| AppError::Internal("user handle".into()))?;
    let user = UserHandle64::decode(user_bytes).unwrap_or_else(|never| match never {});
    if *auth.response().user_handle() != user {
        return Ok(refused("This passkey belongs to another account."));
    }
    let static_state = StoredKey::decode(row.static_state.as_slice()).map_err(|e| AppError::Internal(e.to_string()))?;
    let dyn_bytes: [u8; 7] =
        row.dynamic_state.as_slice().try_into().map_err(|_| AppError::Internal("dynamic state".into()))?;
    let dynamic = DynamicState::decode(dyn_bytes).map_err(|e| AppError::Internal(e.to_string()))?;
    let id = CredentialId::<&[u8]>::decode(&row.credential_id).map_err(|e| AppError::Internal(e.to_string()))?;
    let mut cred = AuthenticatedCredential::new(id, &user, static_state, dynamic)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let origins = [s.passkeys.origin.as_str()];
    let opts = AuthenticationVerificationOptions::<&str, &str> { allowed_origins: &origins, ..Default::default() };
    if let Err(e) = server.verify(rp, &auth, &mut cred, &opts) {
        tracing::warn!(error = %e, "passkey sign-in refused");
        metrics::counter!("kippu_signin_failed_total").increment(1);
        return Ok(refused(format!("The passkey could not be verified: {e}")));
    }
    let dynamic = cred.dynamic_state().encode().map(|d| d.to_vec()).unwrap_or_else(|never| match never {});
    s.store.passkey_used(&row.credential_id, &dynamic, now()).await?;
    if let Some((_, reason)) = s.store.key_revocation(&row.holder).await? {
        return Ok(refused(crate::i18n::tf("signin.err.closed", reason)));
    }
    tracing::info!(holder = %row.holder, "signed in with a passkey");
    let res = crate::session::start_session(&s, jar, row.holder, "/").await?;
    // The page follows `to` itself (a fetch does not navigate); the cookie rides on this answer.
    let (mut parts, _) = res.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(axum::http::header::LOCATION);
    parts.headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    Ok(Response::from_parts(parts, axum::body::Body::from(r#"{"ok":true,"to":"/"}"#)))
}

/// How many passkeys an account has (account page).
pub(crate) async fn count(s: &AppState, me: Address) -> Result<usize, AppError> {
    Ok(s.store.passkeys_of(&me).await?.len())
}

#[cfg(test)]
impl Passkeys {
    /// `(sign-ups, sign-ins)` held now.
    pub(crate) fn ceremonies_held(&self) -> (usize, usize) {
        (self.registering.len(), self.signing_in.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceremonies_are_bounded_and_expired_ones_make_room() {
        let rp = RpId::Domain(AsciiDomain::try_from("localhost".to_owned()).unwrap());
        let start = |ms: u32| {
            let mut o = DiscoverableCredentialRequestOptions::passkey(&rp);
            o.0.timeout = NonZeroU32::new(ms).unwrap();
            o.start_ceremony().unwrap().0
        };
        let held = Ceremonies::new(3);
        for _ in 0..3 {
            held.hold(start(1_000)).unwrap();
        }
        // Full of live ceremonies: refused, and nothing more is held.
        for _ in 0..100 {
            assert_eq!(held.hold(start(1_000)).unwrap_err().retry_after_secs, 1);
        }
        assert_eq!(held.len(), 3);
        // Once they expire they are dropped to make room, not merely refused at the finish.
        std::thread::sleep(Duration::from_millis(1_200));
        held.hold(start(60_000)).unwrap();
        assert_eq!(held.len(), 1, "the three expired ones were dropped");
        assert_eq!(Passkeys::new("http://localhost:8080").registering.max, Passkeys::DEFAULT_MAX_CEREMONIES);
    }
}
