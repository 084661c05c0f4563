//! Values that must never guard production: every public dev default, anvil's and Hardhat's
//! well-known keys, the keys anyone can recompute from the demo's code, and every key-shaped
//! string committed to this repository (`denylist.txt`, kept complete by a security test).

use std::collections::HashSet;
use std::sync::OnceLock;

/// The list as shipped.
pub const LIST: &str = include_str!("denylist.txt");

/// Labels of the demo's deterministic keys (`kippu_identity::deterministic_demo_key`): anyone
/// can recompute them from the source, so they are as public as the list.
const DEMO_KEY_LABELS: [&str; 3] = ["kippu-concession-attestor", "aiko", "ben"];

/// How a candidate is compared: trimmed, lower case, without a `0x` prefix.
pub fn normalize(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    v.strip_prefix("0x").map(str::to_owned).unwrap_or(v)
}

/// The entries of `LIST`, normalized.
pub fn entries() -> impl Iterator<Item = String> {
    LIST.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(normalize)
}

fn set() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut s: HashSet<String> = entries().collect();
        for label in DEMO_KEY_LABELS {
            s.insert(hex::encode(kippu_identity::deterministic_demo_key(label).to_bytes()));
        }
        s
    })
}

/// Whether `value` is on the list.
pub fn is_denied(value: &str) -> bool {
    set().contains(&normalize(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_defaults_and_anvil_keys_are_denied_in_any_spelling() {
        assert!(is_denied("kippu-dev-portal"));
        assert!(is_denied("0xAC0974BEC39A17E36BA4A6B4D238FF944BACB478CBED5EFCAE784D7BF4F2FF80"));
        assert!(is_denied(kippu_chain::anvil::DEV_ADMIN_KEY));
        assert!(is_denied(&hex::encode(
            kippu_identity::deterministic_demo_key("kippu-concession-attestor").to_bytes()
        )));
        assert!(!is_denied(&hex::encode(rand::random::<[u8; 32]>())));
        assert!(entries().count() > 30);
    }
}
