//! End-to-end DID-auth through the public API: custodial key in the keystore,
//! server-side signing, and verification via ssi's did:pkh resolution.

use kippu_identity::{
    did_pkh, sign_challenge, verify_did_auth, ChallengeBook, IdentityError, Keystore, PrivateKeySigner,
};

const NOW: u64 = 1_750_000_000;
const DOMAIN: &str = "kippu.example";
const CHAIN: u64 = 31337;

fn traveler() -> (PrivateKeySigner, String) {
    let signer = PrivateKeySigner::random();
    let did = did_pkh(CHAIN, signer.address());
    (signer, did)
}

#[tokio::test]
async fn custodial_sign_in_round_trip() {
    let keystore = Keystore::new([42u8; 32]);
    let (address, sealed) = keystore.create().unwrap();
    // What the database column holds, and what comes back from it.
    let column = sealed.to_string();
    let did = did_pkh(CHAIN, address);

    let book = ChallengeBook::default();
    let issued = book.issue(DOMAIN, NOW).unwrap();

    let signer = keystore.open_for(address, &column.parse().unwrap()).unwrap();
    let signature = sign_challenge(&signer, &issued, &did).unwrap();
    assert!(signature.starts_with("0x"));
    assert_eq!(signature.len(), 2 + 65 * 2);

    let challenge = book.take(&issued.nonce, NOW + 5).unwrap();
    let who = verify_did_auth(&did, &challenge, &signature, NOW + 5).await.unwrap();
    assert_eq!(who, address);

    // The same response cannot be replayed: the nonce is gone.
    assert_eq!(book.take(&issued.nonce, NOW + 6), Err(IdentityError::UnknownChallenge));
}

#[tokio::test]
async fn accepts_lowercase_did_spelling() {
    let (signer, did) = traveler();
    let did = did.to_lowercase();
    let c = ChallengeBook::default().issue(DOMAIN, NOW).unwrap();
    let sig = sign_challenge(&signer, &c, &did).unwrap();
    assert_eq!(verify_did_auth(&did, &c, &sig, NOW).await, Ok(signer.address()));
}

#[tokio::test]
async fn rejects_expired_challenge() {
    let (signer, did) = traveler();
    let c = kippu_identity::Challenge::new(DOMAIN, NOW, 60);
    let sig = sign_challenge(&signer, &c, &did).unwrap();
    assert!(verify_did_auth(&did, &c, &sig, NOW + 59).await.is_ok());
    assert_eq!(
        verify_did_auth(&did, &c, &sig, NOW + 60).await,
        Err(IdentityError::ChallengeExpired { expires_at: NOW + 60, now: NOW + 60 })
    );
}

#[tokio::test]
async fn rejects_signature_by_another_key() {
    let (signer, did) = traveler();
    let (mallory, _) = traveler();
    let c = kippu_identity::Challenge::new(DOMAIN, NOW, 60);
    let sig = sign_challenge(&mallory, &c, &did).unwrap();
    assert_eq!(
        verify_did_auth(&did, &c, &sig, NOW).await,
        Err(IdentityError::SignerMismatch { expected: signer.address(), recovered: mallory.address() })
    );
}

#[tokio::test]
async fn rejects_tampered_message() {
    let (signer, did) = traveler();
    let c = kippu_identity::Challenge::new(DOMAIN, NOW, 60);
    let sig = sign_challenge(&signer, &c, &did).unwrap();

    // Every field of the challenge is covered by the signature.
    let mut other_nonce = c.clone();
    other_nonce.nonce = "00".repeat(16);
    let mut other_domain = c.clone();
    other_domain.domain = "evil.example".into();
    let mut longer = c.clone();
    longer.expires_at += 3600;
    let mut earlier = c.clone();
    earlier.issued_at -= 1;
    for tampered in [other_nonce, other_domain, longer, earlier] {
        let err = verify_did_auth(&did, &tampered, &sig, NOW).await.unwrap_err();
        assert!(matches!(err, IdentityError::SignerMismatch { .. }), "{tampered:?}: {err}");
    }
}

#[tokio::test]
async fn rejects_malformed_signature() {
    let (signer, did) = traveler();
    let c = kippu_identity::Challenge::new(DOMAIN, NOW, 60);
    let good = sign_challenge(&signer, &c, &did).unwrap();
    let bad_v = format!("{}05", &good[..good.len() - 2]);
    for bad in [
        "",
        "0x",
        "not hex",
        "0x1234",
        &good[..good.len() - 2],
        &format!("{good}00"),
        &good.replace("0x", "0xzz")[..good.len()],
        &bad_v,
    ] {
        let err = verify_did_auth(&did, &c, bad, NOW).await.unwrap_err();
        assert!(matches!(err, IdentityError::BadSignature(_)), "{bad:?}: {err}");
    }
    // Without the 0x prefix it is still the same signature.
    assert!(verify_did_auth(&did, &c, &good[2..], NOW).await.is_ok());
}

#[tokio::test]
async fn rejects_did_with_wrong_chain_id() {
    // The DID (and so the chain id) is part of the signed text: a signature
    // given for one chain does not sign the traveler in on another.
    let (signer, did) = traveler();
    let c = kippu_identity::Challenge::new(DOMAIN, NOW, 60);
    let sig = sign_challenge(&signer, &c, &did).unwrap();
    let other_chain = did_pkh(1, signer.address());
    let err = verify_did_auth(&other_chain, &c, &sig, NOW).await.unwrap_err();
    assert!(matches!(err, IdentityError::SignerMismatch { expected, .. } if expected == signer.address()), "{err}");
}

#[tokio::test]
async fn rejects_non_pkh_and_malformed_dids() {
    let (signer, did) = traveler();
    let c = kippu_identity::Challenge::new(DOMAIN, NOW, 60);
    let sig = sign_challenge(&signer, &c, &did).unwrap();
    let cases = [
        ("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme".to_owned(), "MalformedDid"),
        (
            "did:pkh:solana:4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ:CKg5d12Jhpej1JqtmxLJgaFqqeYjxgPqToJ4LBdvG9Ev".to_owned(),
            "UnsupportedNamespace",
        ),
        (did.replace(":31337:", ":0x7a69:"), "InvalidChainId"),
    ];
    for (bad, kind) in cases {
        let err = verify_did_auth(&bad, &c, &sig, NOW).await.unwrap_err();
        assert!(format!("{err:?}").starts_with(kind), "{bad}: {err:?}");
    }
}
