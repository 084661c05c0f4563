//! What a concession costs Kippu per purchase: issuing a credential, signing a
//! status list, verifying a credential (with its revocation check) and
//! verifying a presentation (holder signature + the credential inside).
//! Run: `cargo bench -p kippu-credentials --bench credentials`

#![recursion_limit = "256"]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use kippu_credentials::{
    did_web, issuer_document, Concession, Credentials, IssuerKey, NewConcession, Resolver, StatusEntry, StatusSource,
    TrustList,
};
use serde_json::Value;

struct Lists(HashMap<String, Value>);

impl StatusSource for Lists {
    async fn status_list(&self, url: &str) -> Result<Value, String> {
        self.0.get(url).cloned().ok_or_else(|| url.to_owned())
    }
}

async fn time<T>(what: &str, n: u32, mut f: impl AsyncFnMut() -> T) {
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f().await);
    }
    let each = start.elapsed() / n;
    println!("{what:<52} {:>9.2} ms  {:>7.0} /s", each.as_secs_f64() * 1e3, 1.0 / each.as_secs_f64());
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let resolver = Resolver::new(did_web("kippu.example", &[]), Duration::from_secs(300));
    let issuer = did_web("kippu.example", &["issuers", "usf"]);
    let key = IssuerKey::from_seed([7; 32]);
    resolver.publish(&issuer, &issuer_document(&issuer, &key.public_key(), "USF"));
    let creds = Credentials::new(resolver);
    let holder_secret = [9u8; 32];
    let signer = kippu_identity::PrivateKeySigner::from_slice(&holder_secret).unwrap();
    let holder = kippu_identity::did_pkh(31337, signer.address());
    let url = "https://kippu.example/credentials/status/usf";
    let now = Utc::now();
    let new = NewConcession {
        id: "urn:uuid:bench".into(),
        subject_did: holder.clone(),
        concession: Concession::Student,
        valid_from: now - chrono::Duration::days(1),
        valid_until: now + chrono::Duration::days(365),
        status: Some(StatusEntry { list_url: url.into(), index: 42 }),
    };
    let vc = creds.issue(&issuer, &key, &new).await.unwrap();
    let list = creds.status_list(&issuer, &key, url, &[1, 2, 3], now).await.unwrap();
    let lists = Lists(HashMap::from([(url.to_owned(), list)]));
    let mut trust = TrustList::default();
    trust.trust(&issuer, Concession::Student);
    let vp = creds.present(&holder_secret, &holder, std::slice::from_ref(&vc), "c", "kippu.example").await.unwrap();
    let empty = Lists(HashMap::new());
    let mut no_status = vc.clone();
    no_status.as_object_mut().unwrap().remove("credentialStatus");

    const N: u32 = 200;
    println!("release build, one core, N = {N}");
    time("issue a credential (eddsa-rdfc-2022)", N, async || creds.issue(&issuer, &key, &new).await.unwrap()).await;
    time("sign a 131,072-entry status list", N, async || {
        creds.status_list(&issuer, &key, url, &[1, 2, 3], now).await.unwrap()
    })
    .await;
    time("check a credential's signature only (no status lookup)", N, async || {
        creds.verify_credential(&no_status, &trust, &empty, now).await.unwrap_err()
    })
    .await;
    time("verify a credential + its status list", N, async || {
        creds.verify_credential(&vc, &trust, &lists, now).await.unwrap()
    })
    .await;
    time("verify a presentation (holder + credential + status)", N, async || {
        creds.verify_presentation(&vp, "c", "kippu.example", &trust, &lists, now).await.unwrap()
    })
    .await;
}
