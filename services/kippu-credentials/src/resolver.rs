//! DID resolution for every method Kippu meets: did:pkh (travelers), did:web
//! (consortium, operators, issuers), did:key (gates, outside issuers).
//!
//! Documents Kippu itself publishes are answered from memory: a verifier must
//! not depend on reaching its own public URL. Everything else goes to `ssi`'s
//! resolvers (did:web over HTTPS) behind a TTL cache, so a slow or flapping
//! issuer host costs one fetch per TTL, not one per verification.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ssi::dids::resolution::{Error as ResolutionError, Options, Output};
use ssi::dids::{AnyDidMethod, DIDResolver, Document, DID};

use crate::{CredentialError, Result};

const CACHE_CAPACITY: usize = 10_000;
const DID_JSON: &str = "application/did+json";

#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    /// did:web prefix of the documents this process publishes (e.g. `did:web:127.0.0.1%3A8080`).
    local_prefix: String,
    local: RwLock<HashMap<String, Vec<u8>>>,
    cache: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
    ttl: Duration,
    methods: AnyDidMethod,
    stats: Mutex<Stats>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub local: u64,
    pub cache_hits: u64,
    pub fetched: u64,
}

impl Resolver {
    pub fn new(local_prefix: impl Into<String>, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                local_prefix: local_prefix.into(),
                local: RwLock::default(),
                cache: Mutex::default(),
                ttl,
                methods: AnyDidMethod::default(),
                stats: Mutex::default(),
            }),
        }
    }

    /// Publishes (or replaces) a document this process answers for.
    pub fn publish(&self, did: &str, document: &serde_json::Value) {
        let bytes = serde_json::to_vec(document).expect("a JSON value serializes");
        self.inner.local.write().expect("resolver lock").insert(did.to_owned(), bytes);
    }

    pub fn local_document(&self, did: &str) -> Option<serde_json::Value> {
        let local = self.inner.local.read().expect("resolver lock");
        local.get(did).and_then(|b| serde_json::from_slice(b).ok())
    }

    pub fn stats(&self) -> Stats {
        *self.inner.stats.lock().expect("stats lock")
    }

    /// Resolves `did` to its document, with a specific error when it cannot.
    pub async fn document(&self, did: &str) -> Result<Document> {
        let unresolvable = |reason: String| CredentialError::UnresolvableDid { did: did.to_owned(), reason };
        let parsed = DID::new(did).map_err(|e| unresolvable(format!("not a DID ({e})")))?;
        let out = self.resolve(parsed).await.map_err(|e| unresolvable(e.to_string()))?;
        Ok(out.document.into_document())
    }

    fn is_local(&self, did: &str) -> bool {
        let prefix = &self.inner.local_prefix;
        did == prefix || did.strip_prefix(prefix.as_str()).is_some_and(|rest| rest.starts_with(':'))
    }

    fn bump(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.inner.stats.lock().expect("stats lock"));
    }
}

impl DIDResolver for Resolver {
    async fn resolve_representation<'a>(
        &'a self,
        did: &'a DID,
        options: Options,
    ) -> std::result::Result<Output<Vec<u8>>, ResolutionError> {
        let key = did.as_str();
        if self.is_local(key) {
            let local = self.inner.local.read().expect("resolver lock").get(key).cloned();
            self.bump(|s| s.local += 1);
            return local.map(|doc| Output::from_content(doc, Some(DID_JSON.into()))).ok_or(ResolutionError::NotFound);
        }
        let now = Instant::now();
        if let Some((at, doc)) = self.inner.cache.lock().expect("cache lock").get(key) {
            if now.duration_since(*at) < self.inner.ttl {
                let doc = doc.clone();
                self.bump(|s| s.cache_hits += 1);
                return Ok(Output::from_content(doc, Some(DID_JSON.into())));
            }
        }
        let out = self.inner.methods.resolve_representation(did, options).await?;
        self.bump(|s| s.fetched += 1);
        // Cache the canonical JSON form, whatever representation the method returned.
        let ty = out.metadata.content_type.clone().unwrap_or_else(|| DID_JSON.into());
        let media: ssi::dids::document::representation::MediaType =
            ty.parse().map_err(|_| ResolutionError::RepresentationNotSupported(ty.clone()))?;
        let doc = Document::from_bytes(media, &out.document).map_err(ResolutionError::InvalidData)?;
        let bytes = serde_json::to_vec(&doc).map_err(ResolutionError::internal)?;
        let mut cache = self.inner.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_CAPACITY {
            let ttl = self.inner.ttl;
            cache.retain(|_, (at, _)| now.duration_since(*at) < ttl);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key.to_owned(), (now, bytes.clone()));
        Ok(Output::from_content(bytes, Some(DID_JSON.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::didweb::{did_web, issuer_document};

    #[tokio::test]
    async fn local_did_web_is_answered_from_memory_and_unknown_ones_are_not_found() {
        let r = Resolver::new(did_web("127.0.0.1:8080", &[]), Duration::from_secs(60));
        let did = did_web("127.0.0.1:8080", &["issuers", "usf"]);
        r.publish(&did, &issuer_document(&did, &[7; 32], "USF"));
        let doc = r.document(&did).await.unwrap();
        assert_eq!(doc.id.as_str(), did);
        assert_eq!(doc.verification_method.len(), 1);
        let missing = r.document(&did_web("127.0.0.1:8080", &["issuers", "nobody"])).await.unwrap_err();
        assert_eq!(missing.code(), "UNRESOLVABLE_DID");
        assert!(missing.to_string().contains("not found"), "{missing}");
        assert_eq!(r.stats().local, 2);
        assert_eq!(r.document("not-a-did").await.unwrap_err().code(), "UNRESOLVABLE_DID");
    }

    #[tokio::test]
    async fn did_key_is_resolved_then_cached() {
        let r = Resolver::new("did:web:kippu.example", Duration::from_secs(60));
        let did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
        r.document(did).await.unwrap();
        r.document(did).await.unwrap();
        assert_eq!(r.stats(), Stats { local: 0, cache_hits: 1, fetched: 1 });
    }
}
