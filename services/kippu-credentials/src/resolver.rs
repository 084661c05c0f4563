//! DID resolution for every method Kippu meets: did:pkh (travelers), did:web
//! (consortium, operators, issuers), did:key (gates, outside issuers).
//!
//! Documents Kippu itself publishes are answered from memory: a verifier must
//! not depend on reaching its own public URL. Other did:web documents are fetched
//! over HTTPS under a [`FetchPolicy`] (public addresses only, no redirects, a total
//! deadline and a size limit: the DID comes from whoever presents a credential), and
//! the methods that need no network (did:key, did:jwk, did:pkh, did:ethr) go to `ssi`'s
//! resolvers; both behind a TTL cache, so a slow or flapping issuer host costs one fetch
//! per TTL, not one per verification. Methods that would fetch from a third-party
//! service (did:tz asks TzKT, did:ion a Sidetree node) are not resolved.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ssi::dids::resolution::{Error as ResolutionError, Options, Output};
use ssi::dids::{AnyDidMethod, DIDResolver, Document, DID};

use crate::fetch::{FetchError, FetchPolicy};
use crate::{CredentialError, Result};

const CACHE_CAPACITY: usize = 10_000;
const DID_JSON: &str = "application/did+json";
/// Methods `ssi` resolves from the DID alone, with no network.
const OFFLINE_METHODS: [&str; 4] = ["key", "jwk", "pkh", "ethr"];

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
    fetch: FetchPolicy,
    stats: Mutex<Stats>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub local: u64,
    pub cache_hits: u64,
    pub fetched: u64,
}

impl Resolver {
    /// A resolver fetching did:web documents under the default [`FetchPolicy`].
    pub fn new(local_prefix: impl Into<String>, ttl: Duration) -> Self {
        Self::with_policy(local_prefix, ttl, FetchPolicy::default())
    }

    /// A resolver fetching did:web documents under `fetch`.
    pub fn with_policy(local_prefix: impl Into<String>, ttl: Duration, fetch: FetchPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                local_prefix: local_prefix.into(),
                local: RwLock::default(),
                cache: Mutex::default(),
                ttl,
                methods: AnyDidMethod::default(),
                fetch,
                stats: Mutex::default(),
            }),
        }
    }

    /// The policy fetches go through (other fetches a credential causes, such as its
    /// status list, should use the same).
    pub fn fetch_policy(&self) -> &FetchPolicy {
        &self.inner.fetch
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
        let out = match did.method_name() {
            "web" => {
                let url = self.inner.fetch.did_web_url(did.method_specific_id()).map_err(ResolutionError::internal)?;
                match self.inner.fetch.get(&url, DID_JSON).await {
                    Ok(doc) => Output::from_content(doc, Some(DID_JSON.into())),
                    Err(FetchError::Status { status: 404, .. }) => return Err(ResolutionError::NotFound),
                    Err(e) => {
                        tracing::warn!(%did, error = %e, "did:web document not fetched");
                        return Err(ResolutionError::internal(e));
                    }
                }
            }
            m if OFFLINE_METHODS.contains(&m) => self.inner.methods.resolve_representation(did, options).await?,
            other => return Err(ResolutionError::MethodNotSupported(other.to_owned())),
        };
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

    // ---- did:web fetches under the policy -------------------------------------------------

    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback HTTP/1.1 server: every request gets `answer(path)` = (delay, raw response),
    /// and the connections it accepted and the paths asked are recorded.
    struct TestServer {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
        paths: Arc<Mutex<Vec<String>>>,
    }

    async fn serve(answer: impl Fn(&str) -> (Duration, Vec<u8>) + Send + Sync + 'static) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let (c, p) = (connections.clone(), paths.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (answer, p) = (answer.clone(), p.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&req).into_owned();
                    let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
                    p.lock().unwrap().push(path.clone());
                    let (delay, response) = answer(&path);
                    tokio::time::sleep(delay).await;
                    let _ = sock.write_all(&response).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        TestServer { addr, connections, paths }
    }

    fn ok(body: &[u8], with_length: bool) -> Vec<u8> {
        let length = if with_length { format!("Content-Length: {}\r\n", body.len()) } else { String::new() };
        let mut r =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/did+json\r\n{length}Connection: close\r\n\r\n")
                .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn did_at(addr: SocketAddr, path: &[&str]) -> String {
        did_web(&format!("{}:{}", addr.ip(), addr.port()), path)
    }

    fn test_policy(server: &TestServer) -> FetchPolicy {
        FetchPolicy::default().allowing(format!("{}:{}", server.addr.ip(), server.addr.port()))
    }

    #[tokio::test]
    async fn did_web_documents_on_private_addresses_are_refused_and_never_requested() {
        let server = serve(|_| (Duration::ZERO, ok(b"{}", true))).await;
        let r = Resolver::new("did:web:kippu.example", Duration::from_secs(60));
        let port = server.addr.port();
        for (did, range) in [
            (did_at(server.addr, &["issuers", "x"]), "loopback"),
            (format!("did:web:localhost%3A{port}:issuers:x"), "loopback"),
            ("did:web:10.1.2.3:issuers:x".to_owned(), "private"),
            ("did:web:192.168.0.10".to_owned(), "private"),
            ("did:web:169.254.169.254:latest:meta-data".to_owned(), "link-local"),
            ("did:web:100.64.0.1".to_owned(), "carrier-grade NAT"),
            ("did:web:0.0.0.0%3A80".to_owned(), "unspecified"),
            ("did:web:192.0.2.1".to_owned(), "documentation"),
        ] {
            let e = r.document(&did).await.unwrap_err();
            assert_eq!(e.code(), "UNRESOLVABLE_DID", "{did}");
            let text = e.to_string();
            assert!(text.contains(range) && text.contains("only public addresses are fetched"), "{did}: {text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(server.connections.load(Ordering::SeqCst), 0, "no request reached the local listener");
        assert_eq!(r.stats().fetched, 0);
    }

    #[tokio::test]
    async fn an_allow_listed_loopback_host_is_fetched_and_cached() {
        let did = Arc::new(std::sync::OnceLock::<String>::new());
        let server = serve({
            let did = did.clone();
            move |_| {
                (Duration::ZERO, ok(issuer_document(did.get().unwrap(), &[7; 32], "Ext").to_string().as_bytes(), true))
            }
        })
        .await;
        let id = did_at(server.addr, &["issuers", "ext"]);
        did.set(id.clone()).unwrap();
        let r = Resolver::with_policy("did:web:kippu.example", Duration::from_secs(60), test_policy(&server));
        assert_eq!(r.document(&id).await.unwrap().id.as_str(), id);
        assert_eq!(r.document(&id).await.unwrap().id.as_str(), id);
        assert_eq!(*server.paths.lock().unwrap(), ["/issuers/ext/did.json"]);
        assert_eq!(r.stats(), Stats { local: 0, cache_hits: 1, fetched: 1 });
        assert_eq!(r.fetch_policy().allow_hosts.len(), 1);
    }

    #[tokio::test]
    async fn a_slow_host_times_out() {
        let server = serve(|_| (Duration::from_secs(30), ok(b"{}", true))).await;
        let policy = FetchPolicy { timeout: Duration::from_millis(300), ..test_policy(&server) };
        let r = Resolver::with_policy("did:web:kippu.example", Duration::from_secs(60), policy);
        let started = std::time::Instant::now();
        let e = r.document(&did_at(server.addr, &["slow"])).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(e.to_string().contains("no complete answer within 300ms"), "{e}");
    }

    #[tokio::test]
    async fn an_oversized_document_is_refused_while_streaming() {
        let big = vec![b' '; 200 * 1024];
        // Without Content-Length (read until the server closes) and with an honest one.
        for with_length in [false, true] {
            let body = big.clone();
            let server = serve(move |_| (Duration::ZERO, ok(&body, with_length))).await;
            let r = Resolver::with_policy("did:web:kippu.example", Duration::from_secs(60), test_policy(&server));
            let e = r.document(&did_at(server.addr, &["big"])).await.unwrap_err();
            assert!(e.to_string().contains("larger than 65536 bytes"), "{with_length}: {e}");
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let server = serve(|_| {
            let r = "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest\r\nContent-Length: 0\r\n\r\n";
            (Duration::ZERO, r.as_bytes().to_vec())
        })
        .await;
        let r = Resolver::with_policy("did:web:kippu.example", Duration::from_secs(60), test_policy(&server));
        let e = r.document(&did_at(server.addr, &["moved"])).await.unwrap_err();
        assert!(e.to_string().contains("redirects are not followed"), "{e}");
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn methods_that_would_ask_a_third_party_service_are_not_resolved() {
        let r = Resolver::new("did:web:kippu.example", Duration::from_secs(60));
        let e = r.document("did:tz:tz1YwA1FwpgLtc1G8DKbbZ6e6PTb1dQMRn5x").await.unwrap_err();
        assert!(e.to_string().contains("`tz` not supported"), "{e}");
    }
}
