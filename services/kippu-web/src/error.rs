//! Error policy of the web layer: every failure becomes a page (or JSON for
//! API routes) with a status code and a message fit for a traveler. Internal
//! errors (database, chain transport) are logged in full and shown only as
//! "something went wrong"; contract reverts and bad input say what is wrong.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Not signed in.
    #[error("please sign in")]
    SignInRequired,
    /// Bad input; the message says what is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// No such thing (or not yours).
    #[error("{0}")]
    NotFound(String),
    /// A business rule refused (e.g. insufficient FARE).
    #[error("{0}")]
    Refused(String),
    /// Too many of something are open at once (sign-in challenges, passkey ceremonies):
    /// refused rather than held, until `retry_after_secs` have passed.
    #[error("{message}")]
    Busy {
        /// What to tell the traveler.
        message: String,
        /// When to try again (the `Retry-After` header).
        retry_after_secs: u64,
    },
    /// Signed in, but this is not theirs (another organisation's, beyond a role or a token's
    /// scopes); the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// Anything internal.
    #[error("internal: {0}")]
    Internal(String),
}

impl AppError {
    /// [`AppError::Busy`] with the standard wording.
    pub(crate) fn busy(retry_after_secs: u64) -> Self {
        Self::Busy { message: crate::i18n::tf("error.busy_text", retry_after_secs), retry_after_secs }
    }
}

impl From<kippu_identity::IdentityError> for AppError {
    fn from(e: kippu_identity::IdentityError) -> Self {
        match e {
            kippu_identity::IdentityError::TooManyChallenges { retry_after_secs, .. } => Self::busy(retry_after_secs),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

/// The `Retry-After` header for a 503.
fn retry_after(secs: u64) -> [(axum::http::HeaderName, String); 1] {
    [(axum::http::header::RETRY_AFTER, secs.max(1).to_string())]
}

/// A 503 for API callers: JSON with the reason, and `Retry-After`.
pub(crate) fn busy_json(message: &str, retry_after_secs: u64) -> Response {
    let body = axum::Json(serde_json::json!({"error": message, "retry_after": retry_after_secs}));
    (StatusCode::SERVICE_UNAVAILABLE, retry_after(retry_after_secs), body).into_response()
}

impl From<kippu_app::PortError> for AppError {
    fn from(e: kippu_app::PortError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<kippu_app::ChainFailure> for AppError {
    fn from(e: kippu_app::ChainFailure) -> Self {
        use kippu_app::ChainFailure;
        match e {
            ChainFailure::Rejected(r) => Self::Refused(explain_rejection(&r)),
            // A revert no Kippu contract's error names (a panic, a bare revert): still the
            // contract's refusal, said in its own words.
            e @ ChainFailure::Reverted(_) => Self::Refused(crate::i18n::tf("revert.other", e)),
            // Recorded and being sent: it takes effect once; the traveler looks again shortly.
            ChainFailure::Pending(_) => {
                Self::Busy { message: crate::i18n::t("chain.pending").to_owned(), retry_after_secs: 10 }
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<kippu_app::credentials::IssuerKeyError> for AppError {
    fn from(e: kippu_app::credentials::IssuerKeyError) -> Self {
        use kippu_app::credentials::IssuerKeyError as E;
        match e {
            e @ E::UnknownIssuer { .. } => Self::NotFound(e.to_string()),
            E::Keystore(m) => Self::Internal(m),
            E::Store(e) => e.into(),
        }
    }
}

impl From<kippu_app::ports::ConcessionFailure> for AppError {
    fn from(e: kippu_app::ports::ConcessionFailure) -> Self {
        use kippu_app::ports::ConcessionFailure as F;
        match e {
            F::Busy { retry_after_secs } => Self::busy(retry_after_secs),
            F::Challenge(m) => Self::BadRequest(m),
            F::NotVerified(why) => Self::Refused(format!("Your concession could not be verified: {why}")),
            F::NonePresented => Self::Refused("No concession presented.".into()),
            F::Unavailable(m) => Self::Internal(m),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

/// Turns a contract's refusal into traveler language: the one place a [`ContractRejection`]
/// becomes what a traveler reads. The refusals a traveler's own action (a purchase, a refund)
/// can run into have their own text; the rest are Kippu's or an operator's to fix, and
/// name the contract's error after a generic sentence, which is enough to report it.
///
/// [`ContractRejection`]: kippu_domain::ContractRejection
fn explain_rejection(r: &kippu_domain::ContractRejection) -> String {
    use crate::i18n::{t, tf};
    use kippu_domain::ContractRejection as R;
    match r {
        R::InsufficientBalance { .. } | R::InsufficientAllowance { .. } => t("revert.balance").into(),
        R::PriceAboveMax { .. } => t("revert.price").into(),
        R::Paused => t("revert.paused").into(),
        R::UnknownBundle { .. } => t("plans.err.not_on_sale").into(),
        // A ride the chain knows of (e.g. forwarded by a gate that was offline) that this
        // page had not seen yet.
        R::TicketAlreadyUsed { .. } => t("refund.used").into(),
        // The offer shown on the page lapsed (or was taken) before the refund was mined.
        R::NotRefundable { .. } | R::RefundWindowClosed { .. } => t("refund.not_refundable").into(),
        // The concession attestation Kippu made for this purchase was refused: nothing was
        // bought, and the traveler can try again (or buy at the full price).
        R::ConcessionAboveMax { .. }
        | R::ConcessionExpired { .. }
        | R::ConcessionReplayed { .. }
        | R::ConcessionWrongHolder { .. }
        | R::UntrustedConcessionIssuer { .. }
        | R::InvalidConcession => t("revert.concession").into(),
        other => tf("revert.other", other),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    chain_id: u64,
    /// Offer the staff portal (a 403: the caller's own pages are there).
    portal: bool,
}

/// A full error page with `status`.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage { title, message, chain_id: 0, portal: false }.render().unwrap_or_else(|_| message.to_owned());
    (status, Html(page)).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            Self::SignInRequired => return Redirect::to("/signin").into_response(),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, crate::i18n::t("error.bad_request")),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, crate::i18n::t("error.not_found")),
            Self::Refused(_) => (StatusCode::UNPROCESSABLE_ENTITY, crate::i18n::t("error.refused")),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, crate::i18n::t("error.forbidden")),
            Self::Busy { message, retry_after_secs } => {
                let page = ErrorPage { title: crate::i18n::t("error.busy"), message, chain_id: 0, portal: false }
                    .render()
                    .unwrap_or_else(|_| message.clone());
                return (StatusCode::SERVICE_UNAVAILABLE, retry_after(*retry_after_secs), Html(page)).into_response();
            }
            Self::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, crate::i18n::t("error.internal"))
            }
        };
        let message = match &self {
            Self::Internal(_) => crate::i18n::t("error.try_again").to_string(),
            // The rule's reason is a clause ("this belongs to another organisation …"): a sentence here.
            Self::Forbidden(why) => {
                let mut c = why.chars();
                c.next().map(|f| format!("{}{}.", f.to_uppercase(), c.as_str())).unwrap_or_default()
            }
            other => other.to_string(),
        };
        let portal = matches!(self, Self::Forbidden(_));
        let page =
            ErrorPage { title, message: &message, chain_id: 0, portal }.render().unwrap_or_else(|_| message.clone());
        (status, Html(page)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use kippu_app::ChainFailure as ChainError;
    use kippu_domain::ContractRejection as R;

    use super::AppError;
    use crate::i18n::t;

    fn refused(e: ChainError) -> String {
        match AppError::from(e) {
            AppError::Refused(m) => m,
            other => panic!("expected Refused, got {other:?}"),
        }
    }

    #[test]
    fn a_contract_refusal_reads_as_its_reason() {
        let ticket = R::TicketAlreadyUsed { ticket: 4 };
        assert_eq!(refused(ChainError::Rejected(ticket)), t("refund.used"));
        assert_eq!(refused(ChainError::Rejected(R::Paused)), t("revert.paused"));
        let concession = R::ConcessionAboveMax { discount_bps: 5001, max_bps: 5000 };
        assert_eq!(refused(ChainError::Rejected(concession)), t("revert.concession"));
        // the rest say which error it was, for the traveler to report
        let other = refused(ChainError::Rejected(R::UnknownPolicy { policy: 9 }));
        assert!(other.starts_with("The ticketing contract refused: UnknownPolicy"), "{other}");
        let undecoded = refused(ChainError::Reverted("undecoded revert data 0xdeadbeef".into()));
        assert!(undecoded.ends_with("undecoded revert data 0xdeadbeef"), "{undecoded}");
    }

    #[test]
    fn a_node_failure_is_internal() {
        assert!(matches!(AppError::from(ChainError::Unavailable("connection refused".into())), AppError::Internal(_)));
    }
}
