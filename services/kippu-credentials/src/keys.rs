use ed25519_dalek::SigningKey;
use ssi::jwk::{Algorithm, Base64urlUInt, ECParams, OctetParams, Params, JWK};
use zeroize::Zeroizing;

use crate::{CredentialError, Result};

/// An issuer's Ed25519 signing key (an eddsa-rdfc-2022 Multikey).
///
/// Only the 32-byte seed is stored (sealed by Kippu's keystore); everything
/// else is derived, so a key cannot drift from its published DID document.
pub struct IssuerKey {
    seed: Zeroizing<[u8; 32]>,
}

impl IssuerKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { seed: Zeroizing::new(seed) }
    }

    pub fn generate() -> Self {
        Self::from_seed(rand::random())
    }

    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    pub fn public_key(&self) -> [u8; 32] {
        SigningKey::from_bytes(&self.seed).verifying_key().to_bytes()
    }

    /// `z` + base58btc(0xed01 ‖ public key): the Multikey encoding used in DID documents.
    pub fn public_key_multibase(&self) -> String {
        ed25519_multibase(&self.public_key())
    }

    pub(crate) fn jwk(&self) -> JWK {
        JWK::from(Params::OKP(OctetParams {
            curve: "Ed25519".into(),
            public_key: Base64urlUInt(self.public_key().to_vec()),
            private_key: Some(Base64urlUInt(self.seed.to_vec())),
        }))
    }
}

pub fn ed25519_multibase(public_key: &[u8; 32]) -> String {
    let mut bytes = vec![0xed, 0x01];
    bytes.extend_from_slice(public_key);
    format!("z{}", bs58::encode(bytes).into_string())
}

/// A secp256k1 account key (the traveler's wallet key) as a JWK for
/// `EthereumPersonalSignature2021` proofs, which recover the signer's address
/// the way `personal_sign` does, so a did:pkh holder needs no published key.
pub(crate) fn secp256k1_jwk(secret: &[u8; 32]) -> Result<JWK> {
    let sk = k256::SecretKey::from_slice(secret).map_err(|e| CredentialError::Signing(e.to_string()))?;
    let mut jwk = JWK::from(Params::EC(ECParams::from(&sk)));
    jwk.algorithm = Some(Algorithm::ES256KR);
    Ok(jwk)
}
