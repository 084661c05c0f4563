//! Certifying and revoking a phone's device key.

use alloy_primitives::Signature;
use kippu_app::accounts::SignerError;
use kippu_app::devices::*;
use kippu_domain::model::DeviceRow;

use crate::support::*;

/// A phone's Ed25519 public key.
fn phone(seed: u8) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes()
}

/// 32 bytes that are no Ed25519 point.
fn not_a_point() -> [u8; 32] {
    (0..=255u8)
        .map(|b| {
            let mut k = [b; 32];
            k[31] = 0x7f;
            k
        })
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
        .expect("some pattern is off the curve")
}

fn request(holder: alloy_primitives::Address, key: [u8; 32]) -> CertifyDevice {
    CertifyDevice { holder, device_key: key, label: "Chrome on Android".into() }
}

#[tokio::test]
async fn the_account_key_certifies_a_phone() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    let cert = certify_device(&store, &chain, &ks, &CLOCK, request(ada, phone(1))).await.unwrap();
    assert_eq!((cert.holder, cert.cert_expiry, cert.chain_id), (ada, NOW + DEVICE_CERT_SECS, 31337));
    let digest = kippu_domain::device_pass::cert_digest(31337, &phone(1), cert.cert_expiry as u64);
    let sig = Signature::from_raw(&cert.cert_sig).unwrap();
    assert_eq!(sig.recover_address_from_prehash(&digest).unwrap(), ada, "signed by the account key");
    let row = store.state().devices[&phone(1)].clone();
    assert_eq!((row.holder, row.label.as_str(), row.revoked_at), (ada, "Chrome on Android", None));
    // Asking again re-certifies.
    certify_device(&store, &chain, &ks, &CLOCK, request(ada, phone(1))).await.unwrap();
}

#[tokio::test]
async fn a_phone_is_refused_for_each_reason() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    let bob = custodial_traveler(&store, &ks, "Bob");
    let certify = |req| {
        let (store, chain, ks) = (&store, &chain, &ks);
        async move { certify_device(store, chain, ks, &CLOCK, req).await }
    };

    assert_eq!(certify(request(ada, not_a_point())).await, Err(CertifyDeviceError::NotEd25519));
    assert!(store.calls().is_empty(), "a bad key touches nothing");

    certify(request(bob, phone(2))).await.unwrap();
    assert_eq!(certify(request(ada, phone(2))).await, Err(CertifyDeviceError::Revoked), "another account's key");
    store.state().devices.insert(
        phone(3),
        DeviceRow {
            device_key: phone(3),
            holder: ada,
            cert_expiry: NOW,
            label: "lost".into(),
            created_at: NOW - 10,
            revoked_at: Some(NOW - 5),
        },
    );
    let err = certify(request(ada, phone(3))).await.unwrap_err();
    assert_eq!(err, CertifyDeviceError::Revoked);
    assert_eq!(err.to_string(), "This device key was revoked; the phone must make a new one.");

    let wallet = wallet_traveler(&store);
    let err = certify(request(wallet.address(), phone(4))).await.unwrap_err();
    assert_eq!(err, CertifyDeviceError::Signer(SignerError::WalletAccount));
    assert!(!store.state().devices.contains_key(&phone(4)));

    store.fail("device");
    assert!(matches!(certify(request(ada, phone(5))).await, Err(CertifyDeviceError::Store(_))));
}

#[tokio::test]
async fn revoking_a_phone_keeps_this_session_and_tells_the_gates() {
    let (store, chain, ks, notifier) =
        (FakeStore::default(), FakeChain::default(), keystore(), FakeNotifier::default());
    let ada = custodial_traveler(&store, &ks, "Ada");
    let bob = custodial_traveler(&store, &ks, "Bob");
    certify_device(&store, &chain, &ks, &CLOCK, request(ada, phone(1))).await.unwrap();
    certify_device(&store, &chain, &ks, &CLOCK, request(bob, phone(2))).await.unwrap();
    assert_eq!(device_state(&store, ada, Some(phone(1))).await.unwrap(), DeviceState::Certified);

    let revoke = RevokeDevice { holder: ada, device_key: phone(1), keep_session: "tok-ada".into() };
    revoke_device(&store, &notifier, &CLOCK, revoke).await.unwrap();
    assert_eq!(store.state().devices[&phone(1)].revoked_at, Some(NOW));
    assert_eq!(store.state().kept_sessions, ["tok-ada"]);
    assert_eq!(notifier.notices(), [Notice::DeviceRevoked(phone(1))]);
    assert_eq!(device_state(&store, ada, Some(phone(1))).await.unwrap(), DeviceState::Revoked);

    let not_hers = RevokeDevice { holder: ada, device_key: phone(2), keep_session: "tok-ada".into() };
    let err = revoke_device(&store, &notifier, &CLOCK, not_hers).await.unwrap_err();
    assert_eq!(err, RevokeDeviceError::NoSuchDevice);
    assert_eq!(err.to_string(), "You have no such device.");
    assert_eq!(notifier.notices().len(), 1);
    assert_eq!(device_state(&store, ada, Some(phone(2))).await.unwrap(), DeviceState::Unknown, "Bob's");
    assert_eq!(device_state(&store, ada, None).await.unwrap().as_str(), "unknown");

    store.fail("revoke_device");
    let revoke = RevokeDevice { holder: bob, device_key: phone(2), keep_session: String::new() };
    assert!(matches!(revoke_device(&store, &notifier, &CLOCK, revoke).await, Err(RevokeDeviceError::Store(_))));
}
