//! Any bytes on a gate's scan topic: parsed and, when they parse, decided by a validator
//! that knows a gate and a ticket. Must never panic; every input gets a verdict.
#![no_main]

use kippu_domain::{GateInfo, ScanRequest, TicketState, Validator, ValidatorConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = ScanRequest::parse(data) else { return };
    let mut v = Validator::new(ValidatorConfig::default());
    v.add_gate("metro/central/g1", GateInfo { operator_id: 1 });
    v.upsert_ticket(TicketState {
        id: 7,
        holder: Default::default(),
        operator_id: 1,
        product_id: 1,
        valid_from: 0,
        valid_until: u64::MAX,
        rides_left: Some(1),
    });
    let d = v.check("metro/central/g1", &req, 1_800_000_000);
    assert!(d.verdict.open || d.verdict.reason.is_some());
    // A re-sent scan is answered the same and never counted twice.
    let again = v.check("metro/central/g1", &req, 1_800_000_001);
    assert_eq!(again.verdict, d.verdict);
    assert!(again.tap.is_none());
});
