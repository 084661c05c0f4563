//! Writing the audit log from the web: who (a staff sign-in, a scanner's token, a traveler),
//! for which organisation, what, to what, from which address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use kippu_domain::audit::{AuditAction, AuditRecord};

use crate::session::now;
use crate::AppState;

/// The client's address as the log records it: the TCP peer, or the address a trusted proxy
/// forwarded (`web.trusted_proxies`).
pub(crate) struct ClientAddr(pub(crate) String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        Ok(Self(s.login_limits.client_address(peer, &parts.headers).map(|ip| ip.to_string()).unwrap_or_default()))
    }
}

/// Appends an entry. The action has happened by now, so a log that cannot be written does not
/// undo it: the failure is logged loudly and counted (`kippu_audit_write_failures_total`) for an
/// alert.
pub(crate) async fn record(
    s: &AppState,
    actor: &str,
    organisation: &str,
    action: AuditAction,
    target: &str,
    client: &ClientAddr,
) {
    let r = AuditRecord {
        at: now(),
        actor: actor.to_owned(),
        organisation: organisation.to_owned(),
        action,
        target: target.to_owned(),
        client: client.0.clone(),
    };
    if let Err(e) = s.store.append_audit(&r).await {
        metrics::counter!("kippu_audit_write_failures_total").increment(1);
        tracing::error!(error = %e, action = %action, actor, target, "the audit log could not be written");
    }
}
