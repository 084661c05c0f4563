//! The crate's error type.

/// Everything that can go wrong while creating Checkout sessions, verifying webhooks, or
/// running the fake Stripe server.
///
/// Webhook verification failures each get their own variant so that a receiver can log
/// *why* a delivery was rejected (a stale timestamp usually means clock skew or a replay,
/// a mismatch usually means a wrong `webhook_secret`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentsError {
    /// The [`StripeConfig`](crate::StripeConfig) cannot be used (empty key, bad URL, ...).
    #[error("invalid Stripe configuration: {0}")]
    Config(String),

    /// A top-up request was rejected before reaching Stripe.
    #[error("invalid top-up request: {0}")]
    InvalidRequest(String),

    /// Stripe answered with an error object (`{"error":{"type":..,"message":..}}`).
    #[error("Stripe API error {status} ({kind}): {message}")]
    StripeApi {
        /// HTTP status code of the response.
        status: u16,
        /// Stripe's `error.type`, e.g. `invalid_request_error`.
        kind: String,
        /// Stripe's `error.message` (empty if Stripe sent none).
        message: String,
    },

    /// Stripe could not be reached, or its answer could not be decoded.
    #[error("Stripe request failed: {0}")]
    Transport(String),

    /// Stripe answered successfully but without a field this crate relies on.
    #[error("unexpected Stripe response: {0}")]
    UnexpectedResponse(String),

    /// The `Stripe-Signature` header is missing, empty, or not `t=..,v1=..` shaped.
    #[error("malformed Stripe-Signature header: {0}")]
    MalformedSignatureHeader(String),

    /// The `Stripe-Signature` header carries no `v1` (HMAC-SHA256) signature.
    #[error("Stripe-Signature header has no v1 signature")]
    NoV1Signature,

    /// No `v1` signature matches the payload under the configured secret.
    #[error("webhook signature does not match the payload")]
    SignatureMismatch,

    /// The signed timestamp is too far from the current time (possible replay).
    #[error("webhook timestamp {timestamp} is outside the {tolerance_secs} s tolerance (now {now})")]
    TimestampOutsideTolerance {
        /// `t=` value from the header.
        timestamp: i64,
        /// The verifier's notion of now, in Unix seconds.
        now: i64,
        /// Accepted distance between the two, in seconds.
        tolerance_secs: i64,
    },

    /// The signature is valid but the payload is not a Stripe event we can read.
    #[error("malformed webhook payload: {0}")]
    MalformedPayload(String),

    /// The fake server knows no Checkout session with this id.
    #[cfg(feature = "fake")]
    #[error("no such checkout session: {0}")]
    UnknownSession(String),

    /// The fake server's session has already been completed.
    #[cfg(feature = "fake")]
    #[error("checkout session {0} is not open")]
    SessionNotOpen(String),

    /// The fake server has not emitted an event with this id.
    #[cfg(feature = "fake")]
    #[error("no such event: {0}")]
    UnknownEvent(String),

    /// The fake server gave up delivering an event to the webhook URL.
    #[cfg(feature = "fake")]
    #[error("webhook delivery of {event_id} failed after {attempts} attempts: {last_error}")]
    WebhookDelivery {
        /// The `evt_...` id that was being delivered.
        event_id: String,
        /// How many POSTs were made.
        attempts: u32,
        /// The last HTTP status or transport error seen.
        last_error: String,
    },

    /// Binding or serving the fake server's socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, PaymentsError>;

impl From<stripe::StripeError> for PaymentsError {
    fn from(err: stripe::StripeError) -> Self {
        match err {
            stripe::StripeError::Stripe(api, status) => PaymentsError::StripeApi {
                status,
                kind: api.type_.as_str().to_owned(),
                message: api.message.unwrap_or_default(),
            },
            stripe::StripeError::ConfigError(msg) => PaymentsError::Config(msg),
            other => PaymentsError::Transport(other.to_string()),
        }
    }
}
