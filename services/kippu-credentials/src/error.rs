use thiserror::Error;

/// Why a credential or presentation was refused. Each case is specific, so a
/// traveler (or an issuer's support desk) can tell what to fix.
#[derive(Debug, Error)]
pub enum CredentialError {
    #[error("not a well-formed VC 2.0 credential: {0}")]
    Malformed(String),
    #[error("not a concession credential (its type must include ConcessionCredential)")]
    NotAConcession,
    #[error("unknown concession `{0}` (expected student, senior or disability)")]
    UnknownConcession(String),
    #[error("the credential carries no proof")]
    Unsigned,
    #[error("the signature does not match: the credential was altered or not signed by {issuer}")]
    BadSignature { issuer: String },
    #[error("issuer {issuer} is not on the consortium's trust list for {concession} concessions")]
    UntrustedIssuer { issuer: String, concession: String },
    #[error("the credential is not valid before {0}")]
    NotYetValid(String),
    #[error("the credential expired at {0}")]
    Expired(String),
    #[error("the credential was revoked by its issuer")]
    Revoked,
    #[error("the revocation status could not be checked: {0}")]
    StatusUnavailable(String),
    #[error("cannot resolve {did}: {reason}")]
    UnresolvableDid { did: String, reason: String },
    #[error("the presentation answers another challenge (or none): ask for a fresh one")]
    WrongChallenge,
    #[error("the presentation is bound to domain {got:?}, not {expected}")]
    WrongDomain { expected: String, got: Option<String> },
    #[error("the presentation's signature is not the holder's: {0}")]
    BadPresentation(String),
    #[error("the credential was issued to {subject}, not to the presenter {holder}")]
    NotTheHolder { subject: String, holder: String },
    #[error("the presentation holds no concession credential")]
    NothingPresented,
    #[error("signing failed: {0}")]
    Signing(String),
}

impl CredentialError {
    /// A stable machine-readable code for APIs, metrics and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "MALFORMED",
            Self::NotAConcession => "NOT_A_CONCESSION",
            Self::UnknownConcession(_) => "UNKNOWN_CONCESSION",
            Self::Unsigned => "UNSIGNED",
            Self::BadSignature { .. } => "BAD_SIGNATURE",
            Self::UntrustedIssuer { .. } => "UNTRUSTED_ISSUER",
            Self::NotYetValid(_) => "NOT_YET_VALID",
            Self::Expired(_) => "EXPIRED",
            Self::Revoked => "REVOKED",
            Self::StatusUnavailable(_) => "STATUS_UNAVAILABLE",
            Self::UnresolvableDid { .. } => "UNRESOLVABLE_DID",
            Self::WrongChallenge => "WRONG_CHALLENGE",
            Self::WrongDomain { .. } => "WRONG_DOMAIN",
            Self::BadPresentation(_) => "BAD_PRESENTATION",
            Self::NotTheHolder { .. } => "NOT_THE_HOLDER",
            Self::NothingPresented => "NOTHING_PRESENTED",
            Self::Signing(_) => "SIGNING_FAILED",
        }
    }
}

pub type Result<T, E = CredentialError> = std::result::Result<T, E>;
