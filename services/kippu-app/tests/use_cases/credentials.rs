//! Issuing and revoking concession credentials.

use kippu_app::credentials::*;
use kippu_credentials::{did_web, issuer_document, Concession, Credentials, IssuerKey, Resolver};
use kippu_domain::model::IssuerRow;
use kippu_identity::did_pkh;

use crate::support::*;

const AUTHORITY: &str = "kippu.example";

struct World {
    store: FakeStore,
    ks: kippu_identity::Keystore,
    credentials: Credentials,
    issuer_did: String,
}

/// A hosted issuer (`usf`, trusted for student concessions) whose did:web the resolver knows.
fn world() -> World {
    let (store, ks) = (FakeStore::default(), keystore());
    let key = IssuerKey::generate();
    let issuer_did = did_web(AUTHORITY, &["issuers", "usf"]);
    let resolver = Resolver::new(did_web(AUTHORITY, &[]), std::time::Duration::from_secs(60));
    resolver.publish(&issuer_did, &issuer_document(&issuer_did, &key.public_key(), "University of South Florida"));
    store.state().issuers.push(IssuerRow {
        slug: "usf".into(),
        did: issuer_did.clone(),
        name: "University of South Florida".into(),
        sealed_seed: ks.seal_seed(&issuer_did, key.seed()).unwrap(),
    });
    store.state().trust.push((issuer_did.clone(), "student".into()));
    World { store, ks, credentials: Credentials::new(resolver), issuer_did }
}

fn issue(holder: &str, concession: &str, valid_until: &str) -> IssueCredential {
    IssueCredential {
        issuer_slug: "usf".into(),
        holder: holder.into(),
        concession: concession.into(),
        valid_until: valid_until.into(),
        status_list_url: format!("https://{AUTHORITY}/credentials/status/usf"),
    }
}

#[tokio::test]
async fn a_credential_is_issued_with_a_status_index_and_delivered_to_a_holder_here() {
    let w = world();
    let ada = custodial_traveler(&w.store, &w.ks, "Ada");
    let holder = did_pkh(31337, ada);
    let issued = issue_credential(&w.store, &w.ks, &w.credentials, &CLOCK, issue(&holder, "student", "2027-12-31"))
        .await
        .unwrap();
    assert!(issued.id.starts_with("urn:uuid:") && issued.id.len() == 45, "{}", issued.id);
    assert_eq!(
        (issued.concession, issued.issuer_did.as_str(), issued.delivered),
        (Concession::Student, w.issuer_did.as_str(), true)
    );
    let vc = &issued.vc;
    assert_eq!(vc["issuer"], w.issuer_did.as_str());
    assert_eq!(vc["credentialSubject"]["id"], holder.as_str());
    assert_eq!(vc["credentialSubject"]["concession"], "student");
    assert_eq!(vc["validFrom"], "2027-01-15T08:00:00Z");
    assert_eq!(vc["validUntil"], "2027-12-31T23:59:59Z");
    assert_eq!(vc["credentialStatus"]["statusListIndex"], "1000", "the index the store drew");
    assert_eq!(vc["proof"]["cryptosuite"], "eddsa-rdfc-2022");
    let recorded = w.store.state().issued[0].clone();
    assert_eq!((recorded.holder_did, recorded.issued_at, recorded.status_index), (holder, NOW, 1000));
    assert_eq!(w.store.state().wallets[&ada], [(issued.id.clone(), issued.vc.to_string())]);

    // A holder with no account here imports it themselves.
    let stranger = did_pkh(31337, alloy_primitives::Address::repeat_byte(9));
    let issued = issue_credential(&w.store, &w.ks, &w.credentials, &CLOCK, issue(&stranger, "student", "2027-12-31"))
        .await
        .unwrap();
    assert!(!issued.delivered);
    assert_eq!(w.store.state().wallets.len(), 1);
}

#[tokio::test]
async fn a_credential_is_not_issued_for_each_reason() {
    let w = world();
    let holder = did_pkh(31337, alloy_primitives::Address::repeat_byte(1));
    let try_issue = |req| issue_credential(&w.store, &w.ks, &w.credentials, &CLOCK, req);
    let err = try_issue(issue("ada@example.org", "student", "2027-12-31")).await.unwrap_err();
    assert!(matches!(&err, IssueCredentialError::BadHolder(_)), "{err:?}");
    assert!(err.to_string().starts_with("The holder must be a traveler's did:pkh DID: "), "{err}");
    let err = try_issue(issue(&holder, "pilot", "2027-12-31")).await.unwrap_err();
    assert_eq!(err.to_string(), "Unknown concession \"pilot\".");
    assert_eq!(try_issue(issue(&holder, "student", "31/12/2027")).await, Err(IssueCredentialError::BadDate));
    assert_eq!(try_issue(issue(&holder, "student", "2027-01-14")).await, Err(IssueCredentialError::NotInFuture));
    let mut elsewhere = issue(&holder, "student", "2027-12-31");
    elsewhere.issuer_slug = "mit".into();
    let err = try_issue(elsewhere).await.unwrap_err();
    assert_eq!(err, IssueCredentialError::Issuer(IssuerKeyError::UnknownIssuer { slug: "mit".into() }));
    assert_eq!(err.to_string(), "No issuer \"mit\" is hosted here.");
    let err = try_issue(issue(&holder, "senior", "2027-12-31")).await.unwrap_err();
    assert_eq!(err.to_string(), "University of South Florida is not on the trust list for senior concessions.");
    assert!(w.store.state().issued.is_empty(), "nothing recorded");

    let wrong_keystore = kippu_identity::Keystore::new([9; 32]);
    let err =
        issue_credential(&w.store, &wrong_keystore, &w.credentials, &CLOCK, issue(&holder, "student", "2027-12-31"))
            .await
            .unwrap_err();
    assert!(matches!(err, IssueCredentialError::Issuer(IssuerKeyError::Keystore(_))), "{err:?}");
    w.store.fail("record_issued");
    assert!(matches!(try_issue(issue(&holder, "student", "2027-12-31")).await, Err(IssueCredentialError::Store(_))));
}

#[tokio::test]
async fn a_credential_is_revoked_once() {
    let w = world();
    let holder = did_pkh(31337, alloy_primitives::Address::repeat_byte(1));
    let issued = issue_credential(&w.store, &w.ks, &w.credentials, &CLOCK, issue(&holder, "student", "2027-12-31"))
        .await
        .unwrap();
    revoke_credential(&w.store, &CLOCK, "usf", &issued.id).await.unwrap();
    assert_eq!(w.store.state().issued[0].revoked_at, Some(NOW));
    let err = revoke_credential(&w.store, &CLOCK, "usf", &issued.id).await.unwrap_err();
    assert_eq!(err, RevokeCredentialError::NotFound { id: issued.id.clone() });
    assert_eq!(err.to_string(), format!("{} is not an unrevoked credential of this issuer.", issued.id));
    assert!(revoke_credential(&w.store, &CLOCK, "mit", "urn:uuid:x").await.is_err());
    w.store.fail("revoke_issued");
    assert!(matches!(revoke_credential(&w.store, &CLOCK, "usf", "x").await, Err(RevokeCredentialError::Store(_))));
}

#[tokio::test]
async fn the_trust_list_skips_unknown_concessions() {
    let w = world();
    w.store.state().trust.push((w.issuer_did.clone(), "astronaut".into()));
    let t = trust_list(&w.store).await.unwrap();
    assert!(t.allows(&w.issuer_did, Concession::Student));
    assert!(!t.allows(&w.issuer_did, Concession::Senior));
}
