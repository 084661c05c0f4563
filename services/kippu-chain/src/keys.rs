//! Who signs what. Production splits the roles over keys so that a leaked hot key
//! can only do its own job: a cold admin (key kept offline) grants roles and pauses,
//! four hot keys send the day-to-day transactions, an attestor key only signs
//! concession attestations. The deploying key ends up holding nothing.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

/// The hot keys Kippu sends transactions with, one per role (see [`RoleHolders`] for
/// what each role may do). Serialized as 0x-prefixed hex private keys; `Debug` shows
/// only addresses.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HotKeys {
    /// Mints FARE for card payments (FareToken `MINTER_ROLE`).
    #[serde(with = "signer_hex")]
    pub minter: PrivateKeySigner,
    /// Relays purchases and refunds, redeems vouchers (PlanMarket `RELAYER_ROLE`,
    /// DelayInsurance `REDEEMER_ROLE`).
    #[serde(with = "signer_hex")]
    pub relayer: PrivateKeySigner,
    /// Records rides, anchors taps, reports delays, settles periods (Ticket
    /// `VALIDATOR_ROLE`, Clearing `SETTLER_ROLE` + `ANCHOR_ROLE`, DelayInsurance `ORACLE_ROLE`).
    #[serde(with = "signer_hex")]
    pub settler: PrivateKeySigner,
    /// Lists products, bundles, operators and cover terms (`CATALOG_ROLE` on PlanMarket,
    /// Clearing and DelayInsurance).
    #[serde(with = "signer_hex")]
    pub catalog: PrivateKeySigner,
}

impl HotKeys {
    /// One key in every role (the embedded default and tests).
    pub fn single(key: PrivateKeySigner) -> Self {
        Self { minter: key.clone(), relayer: key.clone(), settler: key.clone(), catalog: key }
    }

    /// The four signers, in the order minter, relayer, settler, catalog.
    pub(crate) fn signers(&self) -> [&PrivateKeySigner; 4] {
        [&self.minter, &self.relayer, &self.settler, &self.catalog]
    }
}

/// The address holding each role of a deployment (kept in [`crate::Deployment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleHolders {
    /// DEFAULT_ADMIN_ROLE on all five contracts and PlanMarket `PAUSER_ROLE`: grants and
    /// revokes roles, sets the quorum, the pool cap and the concession cap, re-points a
    /// payee. A cold address; its key stays offline.
    pub admin: Address,
    /// [`HotKeys::minter`].
    pub minter: Address,
    /// [`HotKeys::relayer`].
    pub relayer: Address,
    /// [`HotKeys::settler`].
    pub settler: Address,
    /// [`HotKeys::catalog`].
    pub catalog: Address,
    /// PlanMarket `CONCESSION_ISSUER_ROLE`: signs concession attestations, sends nothing.
    pub attestor: Address,
}

impl RoleHolders {
    /// The holders when `keys` are the hot keys.
    pub fn new(admin: Address, attestor: Address, keys: &HotKeys) -> Self {
        Self {
            admin,
            minter: keys.minter.address(),
            relayer: keys.relayer.address(),
            settler: keys.settler.address(),
            catalog: keys.catalog.address(),
            attestor,
        }
    }

    /// One address in every role.
    pub fn single(holder: Address) -> Self {
        Self { admin: holder, minter: holder, relayer: holder, settler: holder, catalog: holder, attestor: holder }
    }

    /// Every holder, the admin first.
    pub(crate) fn all(&self) -> [Address; 6] {
        [self.admin, self.minter, self.relayer, self.settler, self.catalog, self.attestor]
    }

    /// The hot keys' addresses, each once (they pay gas).
    pub(crate) fn hot(&self) -> Vec<Address> {
        let mut hot = vec![self.minter, self.relayer, self.settler, self.catalog];
        hot.sort();
        hot.dedup();
        hot
    }
}

/// A private key as 0x-prefixed hex.
mod signer_hex {
    use alloy::primitives::hex;
    use alloy::signers::local::PrivateKeySigner;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(key: &PrivateKeySigner, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode_prefixed(key.to_bytes()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PrivateKeySigner, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|e| D::Error::custom(format!("private key: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_keys_round_trip_as_hex_and_debug_hides_them() {
        let keys = HotKeys {
            minter: PrivateKeySigner::random(),
            relayer: PrivateKeySigner::random(),
            settler: PrivateKeySigner::random(),
            catalog: PrivateKeySigner::random(),
        };
        let json = serde_json::to_string(&keys).unwrap();
        let back: HotKeys = serde_json::from_str(&json).unwrap();
        assert_eq!(back.signers().map(|k| k.to_bytes()), keys.signers().map(|k| k.to_bytes()));
        let secret = alloy::primitives::hex::encode(keys.relayer.to_bytes());
        assert!(json.contains(&secret));
        assert!(!format!("{keys:?}").contains(&secret));
        assert!(serde_json::from_str::<HotKeys>(&json.replace(&secret, "nothex")).is_err());
    }

    #[test]
    fn hot_addresses_are_distinct() {
        let k = PrivateKeySigner::random();
        let roles = RoleHolders::new(Address::repeat_byte(1), Address::repeat_byte(2), &HotKeys::single(k.clone()));
        assert_eq!(roles.hot(), vec![k.address()]);
        assert_eq!(roles.all()[0], Address::repeat_byte(1));
    }
}
