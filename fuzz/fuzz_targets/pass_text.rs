//! Any text a QR reader or a card reader hands over: the pass and card-answer decoders
//! and signature checks.
//! Must never panic; a decoded pass re-encodes to the same text.
#![no_main]

use kippu_domain::card::{parse_card_key, CardTap};
use kippu_domain::device_pass::DevicePass;
use kippu_domain::pass::{ticket_of, Pass};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ticket_of(text);
    if let Ok(p) = Pass::decode(text) {
        assert_eq!(p.encode(), text);
        let _ = p.signer();
    }
    if let Ok(p) = DevicePass::decode(text) {
        assert_eq!(p.encode(), text);
        let _ = p.verify_device_sig();
        let _ = p.certifier(31_337);
    }
    if let Ok(c) = CardTap::decode(text) {
        assert_eq!(c.encode(), text);
        let _ = c.verify("metro/central/g1");
    }
    let _ = parse_card_key(text);
});
