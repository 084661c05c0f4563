//! Voucher redemption codes: the QR a traveler shows a taxi driver. Like a
//! pass, it is the holder's signature over (voucher, time window), so a
//! screenshot goes stale in a minute and nobody but the holder can make one;
//! the signed text is domain-separated from passes, so a pass is never a
//! voucher code or the other way round.

use alloy_primitives::{eip191_hash_message, keccak256, Address, Signature, B256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// QR text prefix.
pub const VOUCHER_PREFIX: &str = "KV1.";
/// A code is accepted in its own window and the one before (a minute or two).
pub const VOUCHER_WINDOW_SECS: u64 = 60;
const WIRE_LEN: usize = 8 + 4 + 65;

/// A decoded voucher code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoucherCode {
    /// Voucher NFT id.
    pub voucher_id: u64,
    /// `unix / VOUCHER_WINDOW_SECS` when signed.
    pub window: u32,
    /// Holder's EIP-191 signature.
    pub signature: [u8; 65],
}

/// Why a redemption is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedeemDeny {
    /// Not a voucher code, or damaged.
    Malformed,
    /// Signed too long ago (a screenshot) or in the future.
    StaleCode,
    /// No such voucher.
    UnknownVoucher,
    /// Not signed by the voucher's holder.
    NotHolder,
    /// The voucher is for another operator.
    WrongOperator,
    /// Already used.
    AlreadyRedeemed,
    /// Past its expiry.
    Expired,
}

impl RedeemDeny {
    /// What the driver's screen says.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => "not a Kippu voucher code",
            Self::StaleCode => "code has expired, ask the traveler to refresh it",
            Self::UnknownVoucher => "unknown voucher",
            Self::NotHolder => "code not signed by the voucher's holder",
            Self::WrongOperator => "voucher not valid with this operator",
            Self::AlreadyRedeemed => "voucher already used",
            Self::Expired => "voucher expired",
        }
    }
}

/// What the check needs to know about the voucher (from the ledger's read model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoucherState {
    /// Holder.
    pub holder: Address,
    /// Operator it is redeemable at.
    pub operator_id: u32,
    /// The kind of operator that also accepts it (any taxi, say), as the contract holds it
    /// ([`voucher_category`]); `None` when only `operator_id` does.
    pub category: Option<B256>,
    /// Expiry, unix seconds.
    pub expiry: u64,
    /// Whether it was redeemed.
    pub redeemed: bool,
}

/// The category of operators a voucher of `kind` is accepted by, as `DelayInsurance` keys
/// it (`keccak256(kind)`); `None` for no kind.
pub fn voucher_category(kind: &str) -> Option<B256> {
    (!kind.is_empty()).then(|| keccak256(kind.as_bytes()))
}

/// Where a voucher is presented: the operator and its kind (`taxi`, `bus`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redeemer<'a> {
    /// The operator's id.
    pub id: u32,
    /// The operator's kind, its voucher category.
    pub kind: &'a str,
}

/// Window number for a unix time.
pub fn voucher_window(unix_secs: u64) -> u32 {
    (unix_secs / VOUCHER_WINDOW_SECS) as u32
}

impl VoucherCode {
    /// The EIP-191 digest the holder signs (any wallet's `personal_sign` can make it).
    pub fn digest(voucher_id: u64, window: u32) -> B256 {
        let mut buf = Vec::with_capacity(16 + 12);
        buf.extend_from_slice(b"kippu-voucher-v1");
        buf.extend_from_slice(&voucher_id.to_be_bytes());
        buf.extend_from_slice(&window.to_be_bytes());
        eip191_hash_message(keccak256(buf))
    }

    /// QR text.
    pub fn encode(&self) -> String {
        let mut wire = Vec::with_capacity(WIRE_LEN);
        wire.extend_from_slice(&self.voucher_id.to_be_bytes());
        wire.extend_from_slice(&self.window.to_be_bytes());
        wire.extend_from_slice(&self.signature);
        format!("{VOUCHER_PREFIX}{}", URL_SAFE_NO_PAD.encode(wire))
    }

    /// Parses QR text (format only).
    pub fn decode(text: &str) -> Result<Self, RedeemDeny> {
        if text.len() > 200 {
            return Err(RedeemDeny::Malformed);
        }
        let body = text.trim().strip_prefix(VOUCHER_PREFIX).ok_or(RedeemDeny::Malformed)?;
        let wire = URL_SAFE_NO_PAD.decode(body).map_err(|_| RedeemDeny::Malformed)?;
        if wire.len() != WIRE_LEN {
            return Err(RedeemDeny::Malformed);
        }
        let mut signature = [0u8; 65];
        signature.copy_from_slice(&wire[12..]);
        Ok(Self {
            voucher_id: u64::from_be_bytes(wire[..8].try_into().expect("8 bytes")),
            window: u32::from_be_bytes(wire[8..12].try_into().expect("4 bytes")),
            signature,
        })
    }

    /// The signer's address.
    pub fn signer(&self) -> Result<Address, RedeemDeny> {
        let sig = Signature::from_raw(&self.signature).map_err(|_| RedeemDeny::Malformed)?;
        sig.recover_address_from_prehash(&Self::digest(self.voucher_id, self.window)).map_err(|_| RedeemDeny::Malformed)
    }
}

/// Decides a redemption of `code` at `at` at `now`, given the voucher's state. As the
/// contract does, the voucher's own operator accepts it, and so does any operator of the
/// voucher's category.
pub fn check_redemption(
    code: &VoucherCode,
    voucher: Option<&VoucherState>,
    at: Redeemer<'_>,
    now: u64,
) -> Result<(), RedeemDeny> {
    let current = voucher_window(now);
    if code.window > current || current - code.window > 1 {
        return Err(RedeemDeny::StaleCode);
    }
    let v = voucher.ok_or(RedeemDeny::UnknownVoucher)?;
    if code.signer()? != v.holder {
        return Err(RedeemDeny::NotHolder);
    }
    if v.operator_id != at.id && (v.category.is_none() || v.category != voucher_category(at.kind)) {
        return Err(RedeemDeny::WrongOperator);
    }
    if v.redeemed {
        return Err(RedeemDeny::AlreadyRedeemed);
    }
    if now >= v.expiry {
        return Err(RedeemDeny::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::{local::PrivateKeySigner, SignerSync};

    const NOW: u64 = 1_800_000_000;

    fn code(key: &PrivateKeySigner, id: u64, at: u64) -> VoucherCode {
        let window = voucher_window(at);
        let sig = key.sign_hash_sync(&VoucherCode::digest(id, window)).unwrap();
        VoucherCode { voucher_id: id, window, signature: sig.as_bytes() }
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let holder = PrivateKeySigner::random();
        let v = VoucherState {
            holder: holder.address(),
            operator_id: 3,
            category: voucher_category("taxi"),
            expiry: NOW + 100,
            redeemed: false,
        };
        let taxi = |id| Redeemer { id, kind: "taxi" };
        let bus = |id| Redeemer { id, kind: "bus" };
        let ok = code(&holder, 7, NOW);
        assert_eq!(VoucherCode::decode(&ok.encode()), Ok(ok.clone()));
        assert_eq!(check_redemption(&ok, Some(&v), taxi(3), NOW), Ok(()));
        // another operator of the voucher's kind accepts it; one of another kind does not
        assert_eq!(check_redemption(&ok, Some(&v), taxi(5), NOW), Ok(()));
        assert_eq!(check_redemption(&ok, Some(&v), bus(1), NOW), Err(RedeemDeny::WrongOperator));
        // a voucher of no kind is its operator's alone
        let own = VoucherState { category: None, ..v };
        assert_eq!(
            check_redemption(&ok, Some(&own), Redeemer { id: 1, kind: "" }, NOW),
            Err(RedeemDeny::WrongOperator)
        );
        assert_eq!(check_redemption(&ok, Some(&own), taxi(5), NOW), Err(RedeemDeny::WrongOperator));
        assert_eq!(check_redemption(&ok, None, taxi(3), NOW), Err(RedeemDeny::UnknownVoucher));
        let thief = code(&PrivateKeySigner::random(), 7, NOW);
        assert_eq!(check_redemption(&thief, Some(&v), taxi(3), NOW), Err(RedeemDeny::NotHolder));
        assert_eq!(check_redemption(&code(&holder, 7, NOW - 600), Some(&v), taxi(3), NOW), Err(RedeemDeny::StaleCode));
        assert_eq!(check_redemption(&code(&holder, 7, NOW + 600), Some(&v), taxi(3), NOW), Err(RedeemDeny::StaleCode));
        let used = VoucherState { redeemed: true, ..v };
        assert_eq!(check_redemption(&ok, Some(&used), taxi(3), NOW), Err(RedeemDeny::AlreadyRedeemed));
        let old = VoucherState { expiry: NOW, ..v };
        assert_eq!(check_redemption(&ok, Some(&old), taxi(3), NOW), Err(RedeemDeny::Expired));
        for bad in ["", "KV1.", "KV1.@@@", "KP1.AAAA", &"KV1.".repeat(60)] {
            assert_eq!(VoucherCode::decode(bad), Err(RedeemDeny::Malformed), "{bad:?}");
        }
        // A ticket pass signed by the same holder is not a voucher code.
        let pass = crate::pass::Pass::digest(7, 1, &[0; 8]);
        assert_ne!(pass, VoucherCode::digest(7, 1));
    }
}
