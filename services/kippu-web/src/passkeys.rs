//! Passkeys (WebAuthn) shared by the audiences that sign people in with them: the relying
//! party, and the ceremonies in flight (bounded, so nobody fills memory with them). Travelers'
//! and staff's ceremonies are held apart, as their credentials are stored apart.

use crate::AppError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use webauthn_rp::bin::{Decode, Encode};
use webauthn_rp::request::auth::AuthenticationVerificationOptions;
use webauthn_rp::request::register::UserHandle64;
use webauthn_rp::request::{AsciiDomain, FixedCapHashSet, InsertResult, RpId, TimedCeremony};
use webauthn_rp::response::register::{CompressedPubKey, DynamicState, StaticState};
use webauthn_rp::response::{CredentialId, SentChallenge};
use webauthn_rp::{
    AuthenticatedCredential, DiscoverableAuthentication64, DiscoverableAuthenticationServerState,
    DiscoverableCredentialRequestOptions, RegistrationServerState,
};

type StoredKey = StaticState<CompressedPubKey<[u8; 32], [u8; 32], [u8; 48], Vec<u8>>>;

/// Passkey ceremonies in flight and the relying party they are for.
pub struct Passkeys {
    rp_id: Option<RpId>,
    pub(crate) origin: String,
    pub(crate) registering: Ceremonies<RegistrationServerState<64>>,
    pub(crate) signing_in: Ceremonies<DiscoverableAuthenticationServerState>,
    /// Staff's, apart from travelers'.
    pub(crate) staff_registering: Ceremonies<RegistrationServerState<64>>,
    pub(crate) staff_signing_in: Ceremonies<DiscoverableAuthenticationServerState>,
    /// How long a ceremony is held (and what the browser is told to wait).
    pub(crate) timeout: NonZeroU32,
}

/// Ceremonies of one kind, at most `max` held.
pub(crate) struct Ceremonies<T> {
    set: Mutex<FixedCapHashSet<T>>,
    max: usize,
}

/// The ceremony store is full of unexpired ceremonies: try again once the oldest has expired.
#[derive(Debug)]
pub(crate) struct Full {
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
    pub(crate) fn hold(&self, ceremony: T) -> Result<(), Full> {
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

    pub(crate) fn take(&self, challenge: &SentChallenge) -> Option<T> {
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
            staff_registering: Ceremonies::new(max_ceremonies),
            staff_signing_in: Ceremonies::new(max_ceremonies),
            // Five minutes, as the WebAuthn default: time to find the phone or the key.
            timeout: NonZeroU32::new(300_000).expect("non-zero"),
        }
    }

    /// Whether passkeys work here.
    pub fn available(&self) -> bool {
        self.rp_id.is_some()
    }

    pub(crate) fn rp(&self) -> Result<&RpId, AppError> {
        self.rp_id.as_ref().ok_or_else(|| {
            AppError::Refused(
                "Passkeys need the app to be reached by a domain name (e.g. http://localhost:8080).".into(),
            )
        })
    }
}

/// 503 with `Retry-After` when too many ceremonies of a kind are open.
/// Whose passkeys a sign-in is for: each has its own ceremonies (and its own table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Travelers (`/passkeys/…`).
    Traveler,
    /// Staff (`/portal/passkeys/…`).
    Staff,
}

/// A stored passkey, as a sign-in is verified against it.
pub(crate) struct Stored<'a> {
    pub(crate) credential_id: &'a [u8],
    pub(crate) user_handle: &'a [u8],
    pub(crate) static_state: &'a [u8],
    pub(crate) dynamic_state: &'a [u8],
}

impl Passkeys {
    fn sign_ins(&self, who: Audience) -> &Ceremonies<DiscoverableAuthenticationServerState> {
        match who {
            Audience::Traveler => &self.signing_in,
            Audience::Staff => &self.staff_signing_in,
        }
    }

    /// Request options for a discoverable sign-in (the authenticator picks the account), its
    /// ceremony held; 503 when too many are open.
    pub(crate) fn start_sign_in(&self, who: Audience) -> Result<Response, AppError> {
        let mut options = DiscoverableCredentialRequestOptions::passkey(self.rp()?);
        options.0.timeout = self.timeout;
        let (server, client) =
            options.start_ceremony().map_err(|e| AppError::Internal(format!("passkey options: {e}")))?;
        let body = serde_json::to_value(&client).map_err(|e| AppError::Internal(e.to_string()))?;
        if let Err(full) = self.sign_ins(who).hold(server) {
            tracing::warn!(?who, "passkey sign-ins: too many in progress");
            return Ok(busy(full));
        }
        Ok(Json(body).into_response())
    }

    /// Reads a sign-in answer (`PublicKeyCredential.toJSON()`) and takes its ceremony, once.
    pub(crate) fn take_sign_in(
        &self,
        who: Audience,
        body: &[u8],
    ) -> Result<(DiscoverableAuthentication64, DiscoverableAuthenticationServerState), Box<Response>> {
        let auth = serde_json::from_slice::<DiscoverableAuthentication64>(body).map_err(|e| {
            tracing::warn!(error = %e, "unreadable passkey sign-in");
            Box::new(refused(format!("That is not a passkey sign-in ({e}).")))
        })?;
        let challenge = auth.challenge().map_err(|_| Box::new(refused("That is not a passkey sign-in.")))?;
        let server = self
            .sign_ins(who)
            .take(&challenge)
            .ok_or_else(|| Box::new(refused("This sign-in expired or was already used; try again.")))?;
        Ok((auth, server))
    }

    /// Verifies a sign-in against its stored passkey: the passkey's new dynamic state (counter
    /// and flags) to store, or the refusal to answer.
    pub(crate) fn verify_sign_in(
        &self,
        server: DiscoverableAuthenticationServerState,
        auth: &DiscoverableAuthentication64,
        stored: Stored<'_>,
    ) -> Result<Result<Vec<u8>, Response>, AppError> {
        let internal = |e: String| AppError::Internal(e);
        let user_bytes: [u8; 64] = stored.user_handle.try_into().map_err(|_| internal("user handle".into()))?;
        let user = UserHandle64::decode(user_bytes).unwrap_or_else(|never| match never {});
        if *auth.response().user_handle() != user {
            return Ok(Err(refused("This passkey belongs to another account.")));
        }
        let static_state = StoredKey::decode(stored.static_state).map_err(|e| internal(e.to_string()))?;
        let dyn_bytes: [u8; 7] = stored.dynamic_state.try_into().map_err(|_| internal("dynamic state".into()))?;
        let dynamic = DynamicState::decode(dyn_bytes).map_err(|e| internal(e.to_string()))?;
        let id = CredentialId::<&[u8]>::decode(stored.credential_id).map_err(|e| internal(e.to_string()))?;
        let mut cred =
            AuthenticatedCredential::new(id, &user, static_state, dynamic).map_err(|e| internal(e.to_string()))?;
        let origins = [self.origin.as_str()];
        let opts = AuthenticationVerificationOptions::<&str, &str> { allowed_origins: &origins, ..Default::default() };
        if let Err(e) = server.verify(self.rp()?, auth, &mut cred, &opts) {
            tracing::warn!(error = %e, "passkey sign-in refused");
            return Ok(Err(refused(format!("The passkey could not be verified: {e}"))));
        }
        Ok(Ok(cred.dynamic_state().encode().map(|d| d.to_vec()).unwrap_or_else(|never| match never {})))
    }
}

pub(crate) fn busy(full: Full) -> Response {
    let message = crate::i18n::tf("error.busy_text", full.retry_after_secs);
    crate::error::busy_json(&message, full.retry_after_secs)
}

pub(crate) fn refused(msg: impl Into<String>) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(serde_json::json!({"error": msg.into()}))).into_response()
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
