//! Sign-up, sign-in, the custodial key, revoking and erasing an account.

use alloy::signers::local::PrivateKeySigner;
use kippu_app::accounts::*;
use kippu_app::PortError;
use kippu_identity::{did_pkh, ChallengeBook, Keystore, SealedKey};

use crate::support::*;

fn form(name: &str, email: &str, password: &str, confirm: &str) -> SignUp {
    SignUp { name: name.into(), email: email.into(), password: password.into(), confirm: confirm.into() }
}

fn good() -> SignUp {
    form("  Ada Lovelace ", " Ada@Example.ORG ", "analytical engine", "analytical engine")
}

#[tokio::test]
async fn sign_up_makes_a_traveler_with_a_sealed_key_and_a_password_login() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let up = sign_up(&store, &chain, &ks, &CLOCK, good()).await.unwrap();
    assert_eq!(up.did, did_pkh(31337, up.address));
    let s = store.state();
    let t = &s.travelers[&up.address];
    assert_eq!((t.display_name.as_str(), t.did.as_str(), t.created_at), ("Ada Lovelace", up.did.as_str(), NOW));
    let sealed = SealedKey::parse(t.sealed_key.as_deref().unwrap()).unwrap();
    assert_eq!(ks.open_for(up.address, &sealed).unwrap().address(), up.address, "the key is the account's");
    let (address, hash) = &s.logins["ada@example.org"];
    assert_eq!(*address, up.address);
    assert!(hash.starts_with("$argon2id$") && password_matches("analytical engine", hash));
}

#[tokio::test]
async fn sign_up_reports_every_problem_in_form_order_and_creates_nothing() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let err = sign_up(&store, &chain, &ks, &CLOCK, form(" ", "ada", "short", "other")).await.unwrap_err();
    assert_eq!(
        err,
        SignUpError::Invalid(vec![
            SignUpProblem::Name,
            SignUpProblem::Email(EmailProblem::Invalid),
            SignUpProblem::PasswordTooShort { min: MIN_PASSWORD },
            SignUpProblem::ConfirmMismatch,
        ])
    );
    let long = "x".repeat(MAX_PASSWORD + 1);
    let err = sign_up(&store, &chain, &ks, &CLOCK, form(&"n".repeat(61), "a b@example.org", &long, &long)).await;
    assert_eq!(
        err.unwrap_err(),
        SignUpError::Invalid(vec![
            SignUpProblem::Name,
            SignUpProblem::Email(EmailProblem::Spaces),
            SignUpProblem::PasswordTooLong { max: MAX_PASSWORD },
        ])
    );
    assert!(!store.calls().contains(&"create_account"));
    assert!(store.state().travelers.is_empty());
}

#[tokio::test]
async fn an_email_in_use_is_refused_before_and_after_hashing() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    sign_up(&store, &chain, &ks, &CLOCK, good()).await.unwrap();
    let err = sign_up(&store, &chain, &ks, &CLOCK, good()).await.unwrap_err();
    assert_eq!(err, SignUpError::Invalid(vec![SignUpProblem::EmailTaken]));

    // Another sign-up took the e-mail between the check and the insert: no traveler is left.
    store.state().race_for.push("grace@example.org".into());
    let raced = form("Grace", "Grace@example.org", "compiler compiler", "compiler compiler");
    let err = sign_up(&store, &chain, &ks, &CLOCK, raced).await.unwrap_err();
    assert_eq!(err, SignUpError::EmailTaken { email: "grace@example.org".into() });
    assert_eq!(store.state().travelers.len(), 1);
}

#[tokio::test]
async fn sign_up_when_the_store_is_down() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    store.fail("password_login");
    let err = sign_up(&store, &chain, &ks, &CLOCK, good()).await.unwrap_err();
    assert!(matches!(err, SignUpError::Store(PortError::Unavailable(_))), "{err:?}");
}

#[tokio::test]
async fn password_sign_in_tells_right_from_wrong_and_revoked() {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let up = sign_up(&store, &chain, &ks, &CLOCK, good()).await.unwrap();
    assert_eq!(sign_in_with_password(&store, " ADA@example.org", "analytical engine").await, Ok(up.address));
    assert_eq!(
        sign_in_with_password(&store, "ada@example.org", "analytical engines").await,
        Err(PasswordSignInError::Wrong)
    );
    assert_eq!(
        sign_in_with_password(&store, "bob@example.org", "analytical engine").await,
        Err(PasswordSignInError::Wrong)
    );
    assert_eq!(sign_in_with_password(&store, "no e-mail", "analytical engine").await, Err(PasswordSignInError::Wrong));
    store.state().revoked_keys.insert(up.address, (NOW, "revoked by the traveler".into()));
    assert_eq!(
        sign_in_with_password(&store, "ada@example.org", "analytical engine").await,
        Err(PasswordSignInError::KeyRevoked { reason: "revoked by the traveler".into() })
    );
    // A wrong password says nothing about the key.
    assert_eq!(
        sign_in_with_password(&store, "ada@example.org", "nope nope nope").await,
        Err(PasswordSignInError::Wrong)
    );
    store.fail("password_login");
    assert!(matches!(
        sign_in_with_password(&store, "ada@example.org", "analytical engine").await,
        Err(PasswordSignInError::Store(_))
    ));
}

async fn answer(book: &ChallengeBook, key: &PrivateKeySigner, did: &str) -> WalletSignIn {
    let c = book.issue("kippu.example", NOW as u64).unwrap();
    let signature = kippu_identity::sign_challenge(key, &c, did).unwrap();
    WalletSignIn { did: did.into(), nonce: c.nonce, signature }
}

#[tokio::test]
async fn a_wallet_signs_in_and_its_first_sign_in_registers_it() {
    let (store, chain) = (FakeStore::default(), FakeChain::default());
    let book = ChallengeBook::default();
    let key = PrivateKeySigner::random();
    let did = did_pkh(31337, key.address());
    let first = sign_in_with_wallet(&store, &chain, &book, &CLOCK, answer(&book, &key, &did).await).await.unwrap();
    assert_eq!((first.address, first.did.as_str(), first.registered), (key.address(), did.as_str(), true));
    let t = store.state().travelers[&key.address()].clone();
    assert!(t.sealed_key.is_none(), "Kippu holds no key of a wallet's");
    assert!(t.display_name.starts_with("Wallet 0x") && t.display_name.contains('…'), "{}", t.display_name);
    let again = sign_in_with_wallet(&store, &chain, &book, &CLOCK, answer(&book, &key, &did).await).await.unwrap();
    assert!(!again.registered);
}

#[tokio::test]
async fn a_wallet_sign_in_is_refused_for_each_reason() {
    let (store, chain) = (FakeStore::default(), FakeChain::default());
    let book = ChallengeBook::default();
    let key = PrivateKeySigner::random();
    let did = did_pkh(31337, key.address());
    let sign_in = |a: WalletSignIn| {
        let (store, chain, book) = (&store, &chain, &book);
        async move { sign_in_with_wallet(store, chain, book, &CLOCK, a).await }
    };

    let mut bad = answer(&book, &key, &did).await;
    bad.did = "did:web:example.org".into();
    assert!(matches!(sign_in(bad).await, Err(WalletSignInError::BadDid(_))));

    let other_chain = did_pkh(1, key.address());
    let err = sign_in(answer(&book, &key, &other_chain).await).await.unwrap_err();
    assert_eq!(err, WalletSignInError::WrongChain { did_chain: 1, ours: 31337 });
    assert_eq!(err.to_string(), "This DID is on chain 1; Kippu runs on chain 31337.");

    let used = answer(&book, &key, &did).await;
    sign_in(used.clone()).await.unwrap();
    let err = sign_in(used).await.unwrap_err();
    assert!(matches!(&err, WalletSignInError::Challenge(_)), "{err:?}");
    assert!(err.to_string().starts_with("Sign-in refused: "), "{err}");

    let forged = answer(&book, &PrivateKeySigner::random(), &did).await;
    let err = sign_in(forged).await.unwrap_err();
    assert!(matches!(&err, WalletSignInError::AuthFailed(_) | WalletSignInError::SignerMismatch), "{err:?}");
    assert!(err.to_string().starts_with("DID authentication failed: "), "{err}");

    store.state().revoked_keys.insert(key.address(), (NOW - 5, "revoked by the traveler".into()));
    let err = sign_in(answer(&book, &key, &did).await).await.unwrap_err();
    assert_eq!(err, WalletSignInError::KeyRevoked { at: NOW - 5, reason: "revoked by the traveler".into() });

    store.fail("key_revocation");
    assert!(matches!(sign_in(answer(&book, &key, &did).await).await, Err(WalletSignInError::Store(_))));
}

#[tokio::test]
async fn the_custodial_key_opens_only_for_a_live_custodial_account() {
    let (store, ks) = (FakeStore::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    assert_eq!(custodial_signer(&store, &ks, ada).await.unwrap().address(), ada);

    assert_eq!(
        custodial_signer(&store, &ks, PrivateKeySigner::random().address()).await.unwrap_err(),
        SignerError::NoAccount
    );
    let wallet = wallet_traveler(&store);
    assert_eq!(custodial_signer(&store, &ks, wallet.address()).await.unwrap_err(), SignerError::WalletAccount);

    let other_keystore = Keystore::new([8; 32]);
    assert!(matches!(custodial_signer(&store, &other_keystore, ada).await, Err(SignerError::Keystore(_))));

    store.state().revoked_keys.insert(ada, (NOW - 60, "leaked".into()));
    assert_eq!(
        custodial_signer(&store, &ks, ada).await.unwrap_err(),
        SignerError::KeyRevoked { at: NOW - 60, reason: "leaked".into() }
    );
    store.fail("traveler");
    assert!(matches!(custodial_signer(&store, &ks, ada).await, Err(SignerError::Store(_))));
}

#[tokio::test]
async fn revoking_the_key_and_erasing_the_account_tell_the_gates() {
    let (store, chain, ks, notifier) =
        (FakeStore::default(), FakeChain::default(), keystore(), FakeNotifier::default());
    let ada = custodial_traveler(&store, &ks, "Ada");
    revoke_account_key(&store, &notifier, &CLOCK, ada).await.unwrap();
    assert_eq!(store.state().revoked_keys[&ada], (NOW, REVOKED_BY_TRAVELER.to_owned()));
    assert_eq!(notifier.notices(), [Notice::KeyRevoked(ada)]);

    let bob = custodial_traveler(&store, &ks, "Bob");
    erase_account(&store, &chain, &notifier, &CLOCK, bob).await.unwrap();
    assert_eq!(store.state().erased, [(bob, did_pkh(31337, bob))]);
    assert_eq!(notifier.notices(), [Notice::KeyRevoked(ada), Notice::KeyRevoked(bob)]);

    store.fail("revoke_key");
    let carol = custodial_traveler(&store, &ks, "Carol");
    assert!(revoke_account_key(&store, &notifier, &CLOCK, carol).await.is_err());
    assert_eq!(notifier.notices().len(), 2, "nothing revoked, nothing told");
}
