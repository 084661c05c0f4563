//! What the contracts refuse, whoever calls them: refunds of ridden tickets, concessions above
//! the configured maximum, a second close of one period.

use std::time::Duration;

use alloy::primitives::{keccak256, Address, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync as _;
use kippu_chain::bindings::{PlanMarket, Ticket};
use kippu_chain::{ChainError, ContractRejection};
use kippu_domain::device_pass::{cert_digest, Device};
use kippu_domain::pass::window_at;

use crate::support::{run_kippu, traveler, Prod};

/// FARE for `who` from the minter, then a plan of bundle 1 bought through the relayer.
pub(crate) async fn buy_plan(stack: &kippu::Stack, who: &PrivateKeySigner) -> u64 {
    let reference = keccak256(format!("test-topup:{}", who.address()));
    stack.chain.mint_fare(who.address(), 10_000, reference).await.unwrap();
    let now = kippu_e2e::now();
    let (plan, _) = stack.chain.buy_with_permit(alloy::primitives::B256::random(), who, 1, 10_000, now).await.unwrap();
    stack.indexer.catch_up().await.unwrap();
    plan
}

/// The plan's ticket of `operator`.
pub(crate) async fn ticket_of(stack: &kippu::Stack, who: Address, operator: u32) -> u64 {
    stack
        .store
        .tickets_of(&who)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.operator_id == operator)
        .expect("a ticket of that operator")
        .id
}

/// A phone whose device key `who` certified.
pub(crate) fn phone(who: &PrivateKeySigner) -> Device {
    let now = kippu_e2e::now();
    let seed: [u8; 32] = rand::random();
    let public = Device::new(seed, 0, [0; 65]).public_key();
    let cert = who.sign_hash_sync(&cert_digest(31337, &public, now + 3_600)).unwrap();
    Device::new(seed, now + 3_600, cert.as_bytes())
}

/// A gate registered with `kippu gate add` (its own credential), connected to the platform's broker.
pub(crate) async fn gate(stack: &kippu::Stack, key: &str) -> kippu_mqtt::GateClient {
    let path = kippu::gates::parse_gate(key).unwrap();
    let password = kippu::gates::add(&stack.store, &path, "Station", None, false).await.unwrap();
    let url = kippu_mqtt::MqttUrl::parse(&stack.mqtt_url).unwrap().with_login(key, &password);
    kippu_mqtt::GateClient::connect(&url, path).await.expect("the gate logs in with its credential")
}

/// A ridden ticket is refused a refund by the contract itself — through Kippu's relayer and
/// directly by its holder — because every tap batch records its rides on chain.
#[tokio::test]
async fn a_ridden_ticket_cannot_be_refunded_on_chain() {
    let prod = Prod::new("ridden").await;
    let stack = prod.serve().await;
    let who = traveler();
    buy_plan(&stack, &who).await;
    let ticket = ticket_of(&stack, who.address(), 1).await;
    let (refundable, _) = stack.chain.refundable(ticket).await.unwrap();
    assert!(refundable > 0, "the ten-ride ticket is refundable while unused");

    let gate = gate(&stack, "metro/central/g1").await;
    // A gate added after start is learnt by the validator on its next snapshot round; wait
    // for its first verdict that is not UNKNOWN_GATE.
    let pass = || phone(&who).pass(ticket, window_at(kippu_mqtt::now_unix()), rand::random()).encode();
    let mut verdict = gate.scan(&pass(), Duration::from_secs(10)).await.unwrap();
    for _ in 0..40 {
        if verdict.open {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        verdict = gate.scan(&pass(), Duration::from_secs(10)).await.unwrap();
    }
    assert!(verdict.open, "the ride is let through: {verdict:?}");

    // The tap batch reaches the chain within a few anchor rounds.
    let t = Ticket::new(stack.deployment.ticket, stack.chain.provider());
    let mut used = false;
    for _ in 0..60 {
        let data = t.ticketData(U256::from(ticket)).call().await.unwrap();
        if data.flags & 2 != 0 {
            used = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(used, "the ride is recorded on chain");

    let relayed = stack.chain.refund(ticket).await.unwrap_err();
    assert_eq!(relayed.rejection(), Some(&ContractRejection::TicketAlreadyUsed { ticket }), "{relayed}");
    let market = PlanMarket::new(stack.deployment.market, stack.chain.provider());
    let direct = market.refund(U256::from(ticket)).from(who.address()).call().await.unwrap_err().to_string();
    assert!(direct.contains("revert"), "the holder calling the contract is refused too: {direct}");
    stack.shutdown().await;
}

/// A concession attestation above the configured maximum discount is refused by the contract,
/// even when the attestor's signature is good.
#[tokio::test]
async fn a_concession_above_the_configured_maximum_is_refused_on_chain() {
    let prod = Prod::new("concession").await;
    let stack = prod.serve().await;
    let attestor = prod.secrets().evm_key(kippu::secrets::SecretName::AttestorKey);
    let max = prod.cfg.identity.max_concession_bps;
    let who = traveler();
    stack.chain.mint_fare(who.address(), 10_000, keccak256("c1")).await.unwrap();
    let buy = |bps| {
        let request = alloy::primitives::B256::random();
        stack.chain.buy_with_permit_and_concession(request, &who, &attestor, 1, 10_000, kippu_e2e::now(), 1, bps)
    };
    let over = buy(max + 1).await.unwrap_err();
    assert_eq!(
        over.rejection(),
        Some(&ContractRejection::ConcessionAboveMax { discount_bps: max + 1, max_bps: max }),
        "{over}"
    );
    buy(max).await.expect("the maximum itself is accepted");
    stack.shutdown().await;
}

/// A period closes by `kippu close-period` (or the schedule), never by an open route, and a
/// period can be closed once: two closes at once settle one period, the other is refused.
#[tokio::test]
async fn a_period_closes_once_by_the_admin_command_never_by_a_route() {
    let prod = Prod::new("close").await;
    let stack = prod.serve().await;
    let http = reqwest::Client::new();
    let r = http.post(format!("{}/dev/close-period", stack.web_url)).send().await.unwrap();
    assert_eq!(r.status(), 404, "no open route closes a period");

    let file = prod.config_file(&prod.cfg, "kippu.toml");
    let (code, out, err) =
        run_kippu(&["--config", file.to_str().unwrap(), "close-period"], &[], Duration::from_secs(120)).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"period_id\": 1"), "{out}");

    let (a, b) = (kippu::ops::Ops::open(&prod.cfg).await.unwrap(), kippu::ops::Ops::open(&prod.cfg).await.unwrap());
    let (ra, rb) = tokio::join!(a.close_period(), b.close_period());
    let outcomes = [ra.is_ok(), rb.is_ok()];
    assert_eq!(outcomes.iter().filter(|o| **o).count(), 1, "one of two simultaneous closes settles: {ra:?} {rb:?}");
    let refused = ra.err().or(rb.err()).unwrap();
    let why = refused.downcast_ref::<ChainError>().and_then(ChainError::rejection);
    assert_eq!(why, Some(&ContractRejection::WrongPeriod { given: 2, current: 3 }), "{refused:#}");
    assert_eq!(stack.chain.current_period().await.unwrap(), 3, "two periods closed, not three");
    stack.shutdown().await;
}
