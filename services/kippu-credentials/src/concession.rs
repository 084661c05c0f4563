use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use ssi::claims::data_integrity::{AnySuite, CryptographicSuite, DataIntegrity, ProofOptions};
use ssi::claims::vc::v2::syntax::JsonPresentation;
use ssi::claims::vc::v2::JsonCredential;
use ssi::claims::{SignatureEnvironment, VerificationParameters};
use ssi::dids::{DIDResolver, DIDURLBuf};
use ssi::json_ld::ContextLoader;
use ssi::status::bitstring_status_list::{BitString, EncodedList, StatusSize};
use ssi::verification_methods::{AnyMethod, ProofPurpose, SingleSecretSigner};

use crate::keys::{secp256k1_jwk, IssuerKey};
use crate::resolver::Resolver;
use crate::{CredentialError, Result};

pub const CREDENTIALS_V2: &str = "https://www.w3.org/ns/credentials/v2";
pub const CONCESSION_CONTEXT: &str = "https://kippu.example/contexts/concession/v1";
pub const CONCESSION_CONTEXT_DOCUMENT: &str = include_str!("../contexts/concession-v1.jsonld");
/// The Bitstring Status List spec's minimum length (16 KiB of bits), so one
/// credential's status cannot be singled out from a short list.
pub const STATUS_LIST_LEN: usize = 131_072;
/// Proofs created up to this far in the verifier's future are accepted: the
/// issuer's clock may run ahead. Validity dates are checked exactly, before.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(300);

/// The concession a credential proves. The numbers are PlanMarket's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concession {
    Student,
    Senior,
    Disability,
}

impl Concession {
    pub const ALL: [Concession; 3] = [Self::Student, Self::Senior, Self::Disability];

    pub fn kind(self) -> u8 {
        match self {
            Self::Student => 1,
            Self::Senior => 2,
            Self::Disability => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Student => "student",
            Self::Senior => "senior",
            Self::Disability => "disability",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| CredentialError::UnknownConcession(s.into()))
    }
}

impl std::fmt::Display for Concession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which issuers the consortium trusts, for which concessions.
#[derive(Debug, Clone, Default)]
pub struct TrustList {
    entries: HashMap<String, HashSet<Concession>>,
}

impl TrustList {
    pub fn trust(&mut self, issuer_did: &str, concession: Concession) {
        self.entries.entry(issuer_did.to_owned()).or_default().insert(concession);
    }

    pub fn allows(&self, issuer_did: &str, concession: Concession) -> bool {
        self.entries.get(issuer_did).is_some_and(|s| s.contains(&concession))
    }
}

/// Where a Bitstring Status List credential comes from (Kippu's own store for
/// lists it publishes, HTTP for everyone else's).
#[allow(async_fn_in_trait)]
pub trait StatusSource {
    async fn status_list(&self, url: &str) -> std::result::Result<Value, String>;
}

/// A credential's place in its issuer's revocation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    pub list_url: String,
    pub index: u64,
}

/// What a new concession credential says.
#[derive(Debug, Clone)]
pub struct NewConcession {
    pub id: String,
    pub subject_did: String,
    pub concession: Concession,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub status: Option<StatusEntry>,
}

/// What Kippu learned from a credential that passed every check. Only the
/// holder DID and concession kind go on: no name, no birth date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedConcession {
    pub id: Option<String>,
    pub issuer: String,
    pub subject: String,
    pub concession: Concession,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedPresentation {
    pub holder: String,
    pub concessions: Vec<VerifiedConcession>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn loader() -> ContextLoader {
    let map = HashMap::from([(CONCESSION_CONTEXT.to_owned(), CONCESSION_CONTEXT_DOCUMENT.to_owned())]);
    ContextLoader::default().with_context_map_from(map).expect("the committed concession context is valid JSON-LD")
}

/// Issues and verifies concession credentials and presentations.
pub struct Credentials {
    resolver: Resolver,
    loader: ContextLoader,
}

impl Credentials {
    pub fn new(resolver: Resolver) -> Self {
        Self { resolver, loader: loader() }
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    fn env(&self) -> SignatureEnvironment {
        SignatureEnvironment { json_ld_loader: self.loader.clone(), eip712_loader: () }
    }

    async fn sign_eddsa(&self, issuer_did: &str, key: &IssuerKey, doc: JsonCredential) -> Result<Value> {
        let vm: DIDURLBuf =
            format!("{issuer_did}#key-1").parse().map_err(|e| CredentialError::Signing(format!("{e}")))?;
        let options = ProofOptions::from_method(vm.into_iri().into());
        let signer = SingleSecretSigner::new(key.jwk()).into_local();
        let vm_resolver = self.resolver.clone().into_vm_resolver::<AnyMethod>();
        let signed = AnySuite::EdDsaRdfc2022
            .sign_with(self.env(), doc, &vm_resolver, &signer, options, Default::default())
            .await
            .map_err(|e| CredentialError::Signing(e.to_string()))?;
        serde_json::to_value(&signed).map_err(|e| CredentialError::Signing(e.to_string()))
    }

    /// Issues a VC 2.0 concession credential signed with eddsa-rdfc-2022 by
    /// `issuer_did#key-1` (whose document must be resolvable).
    pub async fn issue(&self, issuer_did: &str, key: &IssuerKey, c: &NewConcession) -> Result<Value> {
        let mut vc = json!({
            "@context": [CREDENTIALS_V2, CONCESSION_CONTEXT],
            "id": c.id,
            "type": ["VerifiableCredential", "ConcessionCredential"],
            "issuer": issuer_did,
            "validFrom": rfc3339(c.valid_from),
            "validUntil": rfc3339(c.valid_until),
            "credentialSubject": { "id": c.subject_did, "concession": c.concession.as_str() },
        });
        if let Some(s) = &c.status {
            vc["credentialStatus"] = json!({
                "id": format!("{}#{}", s.list_url, s.index),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": s.index.to_string(),
                "statusListCredential": s.list_url,
            });
        }
        let doc: JsonCredential = serde_json::from_value(vc).map_err(|e| CredentialError::Malformed(e.to_string()))?;
        self.sign_eddsa(issuer_did, key, doc).await
    }

    /// A signed BitstringStatusListCredential with the given indices revoked.
    pub async fn status_list(
        &self,
        issuer_did: &str,
        key: &IssuerKey,
        url: &str,
        revoked: &[u64],
        now: DateTime<Utc>,
    ) -> Result<Value> {
        let size = StatusSize::default();
        let mut bits = BitString::new_zeroed(size, STATUS_LIST_LEN);
        for &i in revoked {
            let i = usize::try_from(i).ok().filter(|i| *i < STATUS_LIST_LEN);
            let i = i.ok_or_else(|| CredentialError::Signing("status index beyond the list".into()))?;
            bits.set(size, i, 1).map_err(|e| CredentialError::Signing(e.to_string()))?;
        }
        let vc = json!({
            "@context": [CREDENTIALS_V2],
            "id": url,
            "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": issuer_did,
            "validFrom": rfc3339(now),
            "credentialSubject": {
                "id": format!("{url}#list"),
                "type": "BitstringStatusList",
                "statusPurpose": "revocation",
                "encodedList": bits.encode(),
            },
        });
        let doc: JsonCredential = serde_json::from_value(vc).map_err(|e| CredentialError::Malformed(e.to_string()))?;
        self.sign_eddsa(issuer_did, key, doc).await
    }

    /// Wraps credentials in a presentation signed by the holder's account key
    /// (`EthereumPersonalSignature2021`, the `personal_sign` a wallet does),
    /// bound to a verifier's `challenge` and `domain`.
    pub async fn present(
        &self,
        holder_secret: &[u8; 32],
        holder_did: &str,
        credentials: &[Value],
        challenge: &str,
        domain: &str,
    ) -> Result<Value> {
        let vp = json!({
            "@context": [CREDENTIALS_V2, CONCESSION_CONTEXT],
            "type": "VerifiablePresentation",
            "holder": holder_did,
            "verifiableCredential": credentials,
        });
        let vp: JsonPresentation<DataIntegrity<JsonCredential, AnySuite>> =
            serde_json::from_value(vp).map_err(|e| CredentialError::Malformed(e.to_string()))?;
        let vm: DIDURLBuf = format!("{holder_did}#blockchainAccountId")
            .parse()
            .map_err(|e| CredentialError::Signing(format!("{e}")))?;
        let mut options = ProofOptions::from_method(vm.into_iri().into());
        options.proof_purpose = ProofPurpose::Authentication;
        options.challenge = Some(challenge.to_owned());
        options.domains = vec![domain.to_owned()];
        let signer = SingleSecretSigner::new(secp256k1_jwk(holder_secret)?).into_local();
        let vm_resolver = self.resolver.clone().into_vm_resolver::<AnyMethod>();
        let signed = AnySuite::EthereumPersonalSignature2021
            .sign_with(self.env(), vp, &vm_resolver, &signer, options, Default::default())
            .await
            .map_err(|e| CredentialError::Signing(e.to_string()))?;
        serde_json::to_value(&signed).map_err(|e| CredentialError::Signing(e.to_string()))
    }

    /// Checks a concession credential: shape, trust list, validity dates,
    /// issuer's signature, then revocation. Trust comes before any resolution,
    /// so a credential naming an arbitrary issuer never makes Kippu fetch its URL.
    pub async fn verify_credential(
        &self,
        vc: &Value,
        trust: &TrustList,
        status: &impl StatusSource,
        now: DateTime<Utc>,
    ) -> Result<VerifiedConcession> {
        let shape = Shape::read(vc)?;
        if !trust.allows(&shape.issuer, shape.concession) {
            return Err(CredentialError::UntrustedIssuer {
                issuer: shape.issuer,
                concession: shape.concession.to_string(),
            });
        }
        if let Some(from) = shape.valid_from {
            if now < from {
                return Err(CredentialError::NotYetValid(rfc3339(from)));
            }
        }
        if let Some(until) = shape.valid_until {
            if now >= until {
                return Err(CredentialError::Expired(rfc3339(until)));
            }
        }
        self.check_issuer_proof(vc, &shape.issuer, now).await?;
        if let Some(entry) = vc.get("credentialStatus") {
            self.check_status(entry, &shape.issuer, status, now).await?;
        }
        Ok(VerifiedConcession {
            id: vc.get("id").and_then(Value::as_str).map(str::to_owned),
            issuer: shape.issuer,
            subject: shape.subject,
            concession: shape.concession,
            valid_until: shape.valid_until,
        })
    }

    async fn check_issuer_proof(&self, vc: &Value, issuer: &str, now: DateTime<Utc>) -> Result<()> {
        let proof = vc.get("proof").ok_or(CredentialError::Unsigned)?;
        let method = proof.get("verificationMethod").and_then(Value::as_str).unwrap_or_default();
        if method.split('#').next() != Some(issuer) {
            return Err(CredentialError::BadSignature { issuer: issuer.to_owned() });
        }
        // Resolve first, so "cannot reach the issuer" is not reported as "forged".
        self.resolver.document(issuer).await?;
        let signed: DataIntegrity<JsonCredential, AnySuite> =
            serde_json::from_value(vc.clone()).map_err(|e| CredentialError::Malformed(e.to_string()))?;
        let vm_resolver = self.resolver.clone().into_vm_resolver::<AnyMethod>();
        let params = VerificationParameters::from_resolver(&vm_resolver)
            .with_json_ld_loader(self.loader.clone())
            .with_date_time(now + CLOCK_SKEW);
        match signed.verify(&params).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(invalid)) => {
                tracing::debug!(%issuer, %invalid, "credential proof rejected");
                Err(CredentialError::BadSignature { issuer: issuer.to_owned() })
            }
            Err(e) => {
                tracing::debug!(%issuer, error = %e, "credential proof could not be checked");
                Err(CredentialError::BadSignature { issuer: issuer.to_owned() })
            }
        }
    }

    async fn check_status(
        &self,
        entry: &Value,
        issuer: &str,
        source: &impl StatusSource,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let field = |k: &str| entry.get(k).and_then(Value::as_str);
        if field("type") != Some("BitstringStatusListEntry") {
            return Err(CredentialError::StatusUnavailable(format!(
                "unsupported status type {:?} (expected BitstringStatusListEntry)",
                field("type")
            )));
        }
        if field("statusPurpose") != Some("revocation") {
            return Err(CredentialError::StatusUnavailable("only revocation status lists are supported".into()));
        }
        let url = field("statusListCredential")
            .ok_or_else(|| CredentialError::Malformed("credentialStatus has no statusListCredential".into()))?;
        let index: usize = field("statusListIndex")
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| CredentialError::Malformed("credentialStatus has no numeric statusListIndex".into()))?;
        let list = source.status_list(url).await.map_err(CredentialError::StatusUnavailable)?;
        let list_issuer = list.get("issuer").and_then(Value::as_str).unwrap_or_default();
        if list_issuer != issuer {
            return Err(CredentialError::StatusUnavailable(format!(
                "the status list at {url} is issued by {list_issuer:?}, not by the credential's issuer"
            )));
        }
        self.check_issuer_proof(&list, issuer, now).await.map_err(|e| {
            CredentialError::StatusUnavailable(format!("the status list at {url} failed its check: {e}"))
        })?;
        let encoded = list.pointer("/credentialSubject/encodedList").and_then(Value::as_str).ok_or_else(|| {
            CredentialError::StatusUnavailable(format!("the status list at {url} has no encodedList"))
        })?;
        let bytes = EncodedList::new(encoded.to_owned()).decode(None).map_err(|e| {
            CredentialError::StatusUnavailable(format!("the status list at {url} does not decode: {e}"))
        })?;
        match BitString::from_bytes(bytes).get(StatusSize::default(), index) {
            Some(0) => Ok(()),
            Some(_) => Err(CredentialError::Revoked),
            None => {
                Err(CredentialError::StatusUnavailable(format!("index {index} is beyond the status list at {url}")))
            }
        }
    }

    /// Checks a presentation: bound to `challenge` and `domain`, signed by its
    /// holder, and holding concession credentials issued to that holder.
    pub async fn verify_presentation(
        &self,
        vp: &Value,
        challenge: &str,
        domain: &str,
        trust: &TrustList,
        status: &impl StatusSource,
        now: DateTime<Utc>,
    ) -> Result<VerifiedPresentation> {
        if !vp.get("type").is_some_and(|t| has_type(t, "VerifiablePresentation")) {
            return Err(CredentialError::Malformed("not a VerifiablePresentation".into()));
        }
        let holder = vp
            .get("holder")
            .and_then(|h| h.as_str().or_else(|| h.get("id").and_then(Value::as_str)))
            .ok_or_else(|| CredentialError::Malformed("the presentation names no holder".into()))?
            .to_owned();
        let proof = vp.get("proof").ok_or(CredentialError::Unsigned)?;
        if proof.get("challenge").and_then(Value::as_str) != Some(challenge) {
            return Err(CredentialError::WrongChallenge);
        }
        let got_domain = match proof.get("domain") {
            Some(Value::String(d)) => Some(d.clone()),
            Some(Value::Array(ds)) if ds.len() == 1 => ds[0].as_str().map(str::to_owned),
            _ => None,
        };
        if got_domain.as_deref() != Some(domain) {
            return Err(CredentialError::WrongDomain { expected: domain.to_owned(), got: got_domain });
        }
        let method = proof.get("verificationMethod").and_then(Value::as_str).unwrap_or_default();
        if method.split('#').next() != Some(holder.as_str()) {
            return Err(CredentialError::BadPresentation(format!("signed by {method}, not by the holder {holder}")));
        }
        self.resolver.document(&holder).await?;
        let signed: DataIntegrity<JsonPresentation<DataIntegrity<JsonCredential, AnySuite>>, AnySuite> =
            serde_json::from_value(vp.clone()).map_err(|e| CredentialError::Malformed(e.to_string()))?;
        let vm_resolver = self.resolver.clone().into_vm_resolver::<AnyMethod>();
        let params = VerificationParameters::from_resolver(&vm_resolver)
            .with_json_ld_loader(self.loader.clone())
            .with_date_time(now + CLOCK_SKEW);
        match signed.verify(&params).await {
            Ok(Ok(())) => {}
            Ok(Err(invalid)) => return Err(CredentialError::BadPresentation(invalid.to_string())),
            Err(e) => return Err(CredentialError::BadPresentation(e.to_string())),
        }
        let credentials = match vp.get("verifiableCredential") {
            Some(Value::Array(vcs)) => vcs.clone(),
            Some(vc @ Value::Object(_)) => vec![vc.clone()],
            _ => vec![],
        };
        let mut concessions = Vec::new();
        for vc in &credentials {
            let ok = self.verify_credential(vc, trust, status, now).await?;
            if ok.subject != holder {
                return Err(CredentialError::NotTheHolder { subject: ok.subject, holder });
            }
            concessions.push(ok);
        }
        if concessions.is_empty() {
            return Err(CredentialError::NothingPresented);
        }
        Ok(VerifiedPresentation { holder, concessions })
    }
}

fn has_type(t: &Value, name: &str) -> bool {
    match t {
        Value::String(s) => s == name,
        Value::Array(a) => a.iter().any(|v| v.as_str() == Some(name)),
        _ => false,
    }
}

/// The fields Kippu relies on, read before any cryptography.
struct Shape {
    issuer: String,
    subject: String,
    concession: Concession,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
}

impl Shape {
    fn read(vc: &Value) -> Result<Self> {
        let malformed = |why: &str| CredentialError::Malformed(why.to_owned());
        if !vc.is_object() {
            return Err(malformed("a credential is a JSON object"));
        }
        let first_context = vc.get("@context").and_then(|c| c.get(0)).and_then(Value::as_str);
        if first_context != Some(CREDENTIALS_V2) {
            return Err(malformed("the first @context must be https://www.w3.org/ns/credentials/v2 (VC 2.0)"));
        }
        let types = vc.get("type").ok_or_else(|| malformed("no type"))?;
        if !has_type(types, "VerifiableCredential") {
            return Err(malformed("type must include VerifiableCredential"));
        }
        if !has_type(types, "ConcessionCredential") {
            return Err(CredentialError::NotAConcession);
        }
        let issuer = match vc.get("issuer") {
            Some(Value::String(s)) => s.clone(),
            Some(o) => o.get("id").and_then(Value::as_str).ok_or_else(|| malformed("issuer has no id"))?.to_owned(),
            None => return Err(malformed("no issuer")),
        };
        let subject = vc.get("credentialSubject").ok_or_else(|| malformed("no credentialSubject"))?;
        let subject_id = subject.get("id").and_then(Value::as_str).ok_or_else(|| malformed("the subject has no id"))?;
        let concession = subject
            .get("concession")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("the subject names no concession"))?;
        let date = |k: &str| -> Result<Option<DateTime<Utc>>> {
            match vc.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|d| Some(d.with_timezone(&Utc)))
                    .ok_or_else(|| CredentialError::Malformed(format!("{k} is not an RFC 3339 date-time"))),
            }
        };
        Ok(Self {
            issuer,
            subject: subject_id.to_owned(),
            concession: Concession::parse(concession)?,
            valid_from: date("validFrom")?,
            valid_until: date("validUntil")?,
        })
    }
}
