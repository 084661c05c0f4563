//! Third-party vectors (see testdata/README.md): these check that our wiring
//! of ssi resolves DIDs the way other implementations say it should.

use std::path::PathBuf;

use alloy::signers::local::PrivateKeySigner;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kippu_identity::{parse_did_pkh, verify_did_auth, Challenge, IdentityError};
use serde_json::Value;
use ssi_dids::resolution::{Options, Parameters};
use ssi_dids::{AnyDidMethod, DIDResolver, DID, DIDPKH};

/// multicodec `secp256k1-pub` as an unsigned varint.
const SECP256K1_PUB: [u8; 2] = [0xe7, 0x01];

fn testdata(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn b58(s: &str) -> Vec<u8> {
    bs58::decode(s).into_vec().unwrap()
}

fn resolved_json(document: ssi_dids::Document) -> Value {
    serde_json::to_value(document).unwrap()
}

#[tokio::test]
async fn did_key_secp256k1_vectors_resolve_to_their_public_keys() {
    let vectors: serde_json::Map<String, Value> = serde_json::from_str(&testdata("did-key-secp256k1.json")).unwrap();
    assert_eq!(vectors.len(), 6);
    let resolver = AnyDidMethod::default();

    for (did, vector) in &vectors {
        let pair = &vector["verificationKeyPair"];
        let expected_vm = &vector["didDocument"]["verificationMethod"][0];
        // Five vectors give the key in base58 (EcdsaSecp256k1VerificationKey2019),
        // one as a JWK (JsonWebKey2020); reduce both to the compressed SEC1 key.
        let expected_key = match expected_vm["publicKeyBase58"].as_str() {
            Some(key) => b58(key),
            None => compress_jwk(&expected_vm["publicKeyJwk"]),
        };
        assert_eq!(expected_key.len(), 33, "{did}: compressed SEC1 key");

        // Default representation: Multikey, whose multibase value must decode
        // to multicodec secp256k1-pub + the vector's key.
        let parsed = DID::new(did.as_str()).unwrap();
        let doc = resolver.resolve(parsed).await.unwrap().document.into_document();
        assert_eq!(doc.id.as_str(), did);
        assert_eq!(doc.verification_method.len(), 1);
        let vm = &doc.verification_method[0];
        assert_eq!(vm.id.as_str(), expected_vm["id"].as_str().unwrap(), "{did}");
        assert_eq!(vm.controller.as_str(), did);
        let multibase = vm.properties["publicKeyMultibase"].as_str().unwrap();
        let decoded = b58(multibase.strip_prefix('z').expect("base58btc"));
        assert_eq!(decoded[..2], SECP256K1_PUB, "{did}");
        assert_eq!(decoded[2..], expected_key[..], "{did}");
        let json = resolved_json(doc);
        for relation in ["authentication", "assertionMethod"] {
            assert_eq!(json[relation], vector["didDocument"][relation], "{did} {relation}");
        }

        // The vector's own VM type: ssi represents the key as a JWK, which
        // must be the vector's key.
        let vm_type = expected_vm["type"].as_str().unwrap();
        let options = Options {
            parameters: Parameters { public_key_format: Some(vm_type.to_owned()), ..Default::default() },
            ..Default::default()
        };
        let doc = resolver.resolve_with(parsed, options).await.unwrap().document.into_document();
        let vm = &doc.verification_method[0];
        assert_eq!(vm.type_, vm_type, "{did}");
        let jwk = &vm.properties["publicKeyJwk"];
        assert_eq!(compress_jwk(jwk), expected_key, "{did}: JWK");
        if let Some(expected_jwk) = expected_vm.get("publicKeyJwk") {
            for member in ["kty", "crv", "x", "y"] {
                assert_eq!(jwk[member], expected_jwk[member], "{did} {member}");
            }
        }

        // And the vector's private key is one alloy signs with for that key.
        let secret = match pair["privateKeyBase58"].as_str() {
            Some(key) => b58(key),
            None => URL_SAFE_NO_PAD.decode(pair["privateKeyJwk"]["d"].as_str().unwrap()).unwrap(),
        };
        if let Some(seed) = vector.get("seed") {
            assert_eq!(hex::encode(&secret), seed.as_str().unwrap(), "{did}");
        }
        let signer = PrivateKeySigner::from_slice(&secret).unwrap();
        let ours = signer.credential().verifying_key().to_encoded_point(true).as_bytes().to_vec();
        assert_eq!(ours, expected_key, "{did}: private key");
    }
}

/// SEC1 compressed form of an EC JWK: parity byte of y, then x.
fn compress_jwk(jwk: &Value) -> Vec<u8> {
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "secp256k1");
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    assert_eq!((x.len(), y.len()), (32, 32));
    let mut compressed = vec![if y[31] & 1 == 0 { 2 } else { 3 }];
    compressed.extend_from_slice(&x);
    compressed
}

#[tokio::test]
async fn did_pkh_vectors_resolve_to_ssi_expected_documents() {
    for (did, file, chain) in [
        ("did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a", "did-pkh-eth.jsonld", 1),
        ("did:pkh:eip155:137:0x4e90e8a8191c1c23a24a598c3ab4fb47ce926ff5", "did-pkh-poly.jsonld", 137),
    ] {
        let expected: Value = serde_json::from_str(&testdata(file)).unwrap();
        let (parsed_chain, address) = parse_did_pkh(did).unwrap();
        assert_eq!(parsed_chain, chain);
        assert_eq!(format!("{address:#x}"), did.rsplit(':').next().unwrap());

        let out = DIDPKH.resolve(DID::new(did).unwrap()).await.unwrap();
        let doc = resolved_json(out.document.document().clone());
        for field in ["id", "verificationMethod", "authentication", "assertionMethod"] {
            assert_eq!(doc[field], expected[field], "{did} {field}");
        }

        // We hold no key for these accounts, so a sign-in must reach the
        // signature check (the VM lookup succeeded) and fail there.
        let c = Challenge::new("kippu.example", 1, 60);
        let sig = kippu_identity::sign_challenge(&PrivateKeySigner::random(), &c, did).unwrap();
        let err = verify_did_auth(did, &c, &sig, 2).await.unwrap_err();
        assert!(matches!(err, IdentityError::SignerMismatch { expected, .. } if expected == address), "{err}");
    }
}
