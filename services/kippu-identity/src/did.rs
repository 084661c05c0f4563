use alloy::primitives::Address;

use crate::{IdentityError, Result};

const PREFIX: &str = "did:pkh:";

/// Formats the `did:pkh` DID of an EVM account.
///
/// The address is written EIP-55 checksummed, which is what wallets display,
/// so the DID a traveler sees matches the address in their wallet.
pub fn did_pkh(chain_id: u64, address: Address) -> String {
    format!("{PREFIX}eip155:{chain_id}:{}", address.to_checksum(None))
}

/// Parses `did:pkh:eip155:<chainId>:<address>` into its chain id and address.
///
/// Accepts an all-lowercase (or all-uppercase) address, as CAIP-10 examples
/// and many wallets emit, but rejects mixed case whose EIP-55 checksum is
/// wrong, because that usually means a mistyped address.
pub fn parse_did_pkh(did: &str) -> Result<(u64, Address)> {
    let rest = did.strip_prefix(PREFIX).ok_or_else(|| IdentityError::MalformedDid(did.to_owned()))?;
    // DID URLs (paths, queries, fragments) name resources *in* a document, not an identity.
    if rest.contains(['/', '?', '#']) {
        return Err(IdentityError::MalformedDid(did.to_owned()));
    }
    let mut parts = rest.split(':');
    let (Some(namespace), Some(reference), Some(account), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::MalformedDid(did.to_owned()));
    };
    if namespace != "eip155" {
        return Err(IdentityError::UnsupportedNamespace(namespace.to_owned()));
    }
    Ok((parse_chain_id(reference)?, parse_address(account)?))
}

/// Rewrites a `did:pkh` into its canonical form (checksummed address).
///
/// Use this before using a DID as a database key, so that the lowercase and
/// checksummed spellings of one account do not become two travelers.
pub fn normalize_did_pkh(did: &str) -> Result<String> {
    let (chain_id, address) = parse_did_pkh(did)?;
    Ok(did_pkh(chain_id, address))
}

/// Only the canonical decimal form is accepted, so each chain has exactly one
/// DID spelling (no `01`, no `+1`); chain id 0 is not a valid EIP-155 chain.
pub(crate) fn parse_chain_id(reference: &str) -> Result<u64> {
    let invalid = || IdentityError::InvalidChainId(reference.to_owned());
    if reference.is_empty() || !reference.bytes().all(|b| b.is_ascii_digit()) || reference.starts_with('0') {
        return Err(invalid());
    }
    reference.parse().map_err(|_| invalid())
}

pub(crate) fn parse_address(account: &str) -> Result<Address> {
    let invalid = || IdentityError::InvalidAddress(account.to_owned());
    let hex_part = account.strip_prefix("0x").ok_or_else(invalid)?;
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let mut bytes = [0u8; 20];
    hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| invalid())?;
    let address = Address::from(bytes);
    let has_lower = hex_part.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex_part.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper && address.to_checksum(None) != account {
        return Err(IdentityError::BadChecksum(account.to_owned()));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    // EIP-55's own test vector, so the checksum logic is checked against the spec.
    const EIP55: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    #[test]
    fn format_and_parse_round_trip() {
        let a = address!("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        let did = did_pkh(137, a);
        assert_eq!(did, format!("did:pkh:eip155:137:{EIP55}"));
        assert_eq!(parse_did_pkh(&did).unwrap(), (137, a));
    }

    #[test]
    fn accepts_lowercase_and_normalizes() {
        // The did-pkh spec example (also ssi's did-pkh test vector) is lowercase.
        let did = "did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a";
        let (chain, addr) = parse_did_pkh(did).unwrap();
        assert_eq!(chain, 1);
        assert_eq!(addr, address!("b9c5714089478a327f09197987f16f9e5d936e8a"));
        let canonical = normalize_did_pkh(did).unwrap();
        assert_eq!(canonical.to_lowercase(), did);
        assert_ne!(canonical, did);
        assert_eq!(normalize_did_pkh(&canonical).unwrap(), canonical);
    }

    #[test]
    fn rejects_bad_inputs() {
        let a = "0xb9c5714089478a327f09197987f16f9e5d936e8a";
        let cases = [
            (format!("did:key:eip155:1:{a}"), "MalformedDid"),
            (format!("did:pkh:eip155:1:{a}:extra"), "MalformedDid"),
            ("did:pkh:eip155:1".to_owned(), "MalformedDid"),
            (format!("did:pkh:eip155:1:{a}#key"), "MalformedDid"),
            (
                "did:pkh:solana:4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ:CKg5d12Jhpej1JqtmxLJgaFqqeYjxgPqToJ4LBdvG9Ev"
                    .to_owned(),
                "UnsupportedNamespace(\"solana\")",
            ),
            (format!("did:pkh:eip155:0:{a}"), "InvalidChainId"),
            (format!("did:pkh:eip155:01:{a}"), "InvalidChainId"),
            (format!("did:pkh:eip155:mainnet:{a}"), "InvalidChainId"),
            (format!("did:pkh:eip155::{a}"), "InvalidChainId"),
            (format!("did:pkh:eip155:99999999999999999999:{a}"), "InvalidChainId"),
            (format!("did:pkh:eip155:1:{}", &a[2..]), "InvalidAddress"),
            (format!("did:pkh:eip155:1:{}", &a[..40]), "InvalidAddress"),
            (format!("did:pkh:eip155:1:{a}00"), "InvalidAddress"),
            (format!("did:pkh:eip155:1:0xz{}", &a[3..]), "InvalidAddress"),
            // EIP-55 vector with one letter's case flipped.
            (format!("did:pkh:eip155:1:{}D", &EIP55[..41]), "BadChecksum"),
        ];
        for (did, kind) in cases {
            let err = parse_did_pkh(&did).expect_err(&did);
            assert!(format!("{err:?}").starts_with(kind), "{did}: {err:?}");
        }
    }
}
