//! Refunding a ticket; binding and unbinding a contactless card.

use alloy_primitives::{Address, Signature};
use kippu_app::accounts::SignerError;
use kippu_app::tickets::*;
use kippu_app::ChainFailure;
use kippu_domain::model::{CardBindingRow, TicketRow};
use kippu_domain::ContractRejection;

use crate::support::*;

fn ticket(id: u64, holder: Address) -> TicketRow {
    TicketRow {
        id,
        holder,
        plan_id: 1,
        operator_id: 1,
        product_id: 1,
        valid_from: NOW - 60,
        valid_until: NOW + 3_600,
        rides: 1,
        share: 250,
        taps: 0,
    }
}

struct World {
    store: FakeStore,
    chain: FakeChain,
    ks: kippu_identity::Keystore,
    notifier: FakeNotifier,
    ada: Address,
    bob: Address,
}

/// Ada holds ticket 7 (refundable for 250 until NOW + 60), Bob ticket 8.
fn world() -> World {
    let (store, chain, ks) = (FakeStore::default(), FakeChain::default(), keystore());
    let ada = custodial_traveler(&store, &ks, "Ada");
    let bob = custodial_traveler(&store, &ks, "Bob");
    store.state().tickets.insert(7, ticket(7, ada));
    store.state().tickets.insert(8, ticket(8, bob));
    chain.state().refundable.insert(7, (250, NOW as u64 + 60));
    World { store, chain, ks, notifier: FakeNotifier::default(), ada, bob }
}

#[tokio::test]
async fn an_unused_refundable_ticket_is_refunded() {
    let w = world();
    assert_eq!(refund_offer(&w.chain, &CLOCK, 7).await, Some(250));
    let r = refund_ticket(&w.store, &w.chain, &CLOCK, w.ada, 7).await.unwrap();
    assert_eq!(r, Refunded { ticket_id: 7, amount: 250 });
    assert_eq!(w.chain.state().refunded, [7]);
}

#[tokio::test]
async fn a_refund_is_refused_for_each_reason() {
    let w = world();
    let refund = |who, id| refund_ticket(&w.store, &w.chain, &CLOCK, who, id);
    assert_eq!(refund(w.ada, 8).await, Err(RefundTicketError::NotYours { ticket_id: 8 }), "Bob's");
    assert_eq!(refund(w.ada, 99).await, Err(RefundTicketError::NotYours { ticket_id: 99 }));

    w.store.state().taps.insert(7, 1);
    assert_eq!(refund(w.ada, 7).await, Err(RefundTicketError::Used));
    w.store.state().taps.clear();

    assert_eq!(refund(w.bob, 8).await, Err(RefundTicketError::NotRefundable), "no refund offered");
    w.chain.state().refundable.insert(8, (250, NOW as u64));
    assert_eq!(refund(w.bob, 8).await, Err(RefundTicketError::NotRefundable), "the window closed");
    w.chain.state().refundable.insert(8, (0, NOW as u64 + 60));
    assert_eq!(refund(w.bob, 8).await, Err(RefundTicketError::NotRefundable), "nothing to refund");
    w.chain.fail("refundable", ChainFailure::Unavailable("timeout".into()));
    assert_eq!(refund_offer(&w.chain, &CLOCK, 7).await, None, "a chain that cannot say offers none");
    assert_eq!(refund(w.ada, 7).await, Err(RefundTicketError::NotRefundable));
    w.chain.state().fail.clear();

    // A ride forwarded late by an offline gate: the chain has the last word.
    let used = ChainFailure::Rejected(ContractRejection::TicketAlreadyUsed { ticket: 7 });
    w.chain.fail("refund", used.clone());
    assert_eq!(refund(w.ada, 7).await, Err(RefundTicketError::Chain(used)));
    assert!(w.chain.state().refunded.is_empty());

    w.store.fail("ticket");
    assert!(matches!(refund(w.ada, 7).await, Err(RefundTicketError::Store(_))));
}

fn card(seed: u8) -> [u8; 32] {
    kippu_domain::card::Card::from_secret([seed; 32]).public_key()
}

fn bind(holder: Address, ticket_id: u64, card: &str) -> BindCard {
    BindCard { holder, ticket_id, card: card.into() }
}

#[tokio::test]
async fn a_card_is_bound_with_the_account_key_and_the_gates_learn_it() {
    let w = world();
    let typed = format!("0x{}", alloy_primitives::hex::encode(card(1)));
    let bound = bind_card(&w.store, &w.chain, &w.ks, &w.notifier, &CLOCK, bind(w.ada, 7, &typed)).await.unwrap();
    assert_eq!((bound.ticket_id, bound.card_key), (7, card(1)));
    let digest = kippu_domain::card::binding_digest(31337, &card(1), 7);
    let sig = Signature::from_raw(&bound.sig).unwrap();
    assert_eq!(sig.recover_address_from_prehash(&digest).unwrap(), w.ada);
    let row = w.store.state().cards[&card(1)].clone();
    assert_eq!(
        row,
        CardBindingRow { card_key: card(1), ticket_id: 7, holder: w.ada, sig: bound.sig.clone(), bound_at: NOW }
    );
    assert_eq!(w.notifier.notices(), [Notice::CardBound(card(1), 7, bound.sig)]);
    // The same traveler may bind it again (to move it).
    bind_card(&w.store, &w.chain, &w.ks, &w.notifier, &CLOCK, bind(w.ada, 7, &typed)).await.unwrap();
}

#[tokio::test]
async fn a_card_is_not_bound_for_each_reason() {
    let w = world();
    let hex = |k: [u8; 32]| alloy_primitives::hex::encode(k);
    let try_bind = |req| bind_card(&w.store, &w.chain, &w.ks, &w.notifier, &CLOCK, req);
    assert_eq!(try_bind(bind(w.ada, 8, &hex(card(1)))).await, Err(CardError::NotYours { ticket_id: 8 }));
    assert_eq!(try_bind(bind(w.ada, 7, "12345")).await, Err(CardError::NotACard));
    try_bind(bind(w.bob, 8, &hex(card(2)))).await.unwrap();
    assert_eq!(try_bind(bind(w.ada, 7, &hex(card(2)))).await, Err(CardError::CardTaken));
    w.store.state().revoked_keys.insert(w.ada, (NOW, "leaked".into()));
    let err = try_bind(bind(w.ada, 7, &hex(card(3)))).await.unwrap_err();
    assert_eq!(err, CardError::Signer(SignerError::KeyRevoked { at: NOW, reason: "leaked".into() }));
    assert_eq!(w.notifier.notices().len(), 1, "only Bob's card");
    w.store.fail("card_binding");
    assert!(matches!(try_bind(bind(w.bob, 8, &hex(card(4)))).await, Err(CardError::Store(_))));
}

#[tokio::test]
async fn a_lost_card_is_unbound() {
    let w = world();
    let hex = alloy_primitives::hex::encode(card(1));
    bind_card(&w.store, &w.chain, &w.ks, &w.notifier, &CLOCK, bind(w.ada, 7, &hex)).await.unwrap();
    assert_eq!(unbind_card(&w.store, &w.notifier, w.bob, 8, &hex).await, Err(CardError::NotBound), "not Bob's card");
    assert_eq!(unbind_card(&w.store, &w.notifier, w.bob, 7, &hex).await, Err(CardError::NotYours { ticket_id: 7 }));
    assert_eq!(unbind_card(&w.store, &w.notifier, w.ada, 7, "zz").await, Err(CardError::NotACard));
    assert_eq!(unbind_card(&w.store, &w.notifier, w.ada, 7, &hex).await, Ok(card(1)));
    assert!(w.store.state().cards.is_empty());
    assert_eq!(w.notifier.notices().last(), Some(&Notice::CardUnbound(card(1))));
    assert_eq!(unbind_card(&w.store, &w.notifier, w.ada, 7, &hex).await, Err(CardError::NotBound));
}
