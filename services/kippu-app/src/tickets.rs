//! A traveler's tickets: refunding an unused one, and binding contactless cards to one.

use alloy::signers::SignerSync;
use alloy_primitives::Address;
use kippu_domain::model::{CardBindingRow, TicketRow};
use kippu_identity::Keystore;

use crate::accounts::{custodial_signer, SignerError};
use crate::ports::{Chain, Clock, Notifier, Store};
use crate::{ChainFailure, PortError, PortResult};

/// `holder`'s ticket `ticket_id`; `None` if there is none or it is someone else's (the two are
/// not told apart, so ticket ids reveal nothing).
pub async fn own_ticket(store: &dyn Store, holder: Address, ticket_id: u64) -> PortResult<Option<TicketRow>> {
    Ok(store.ticket(ticket_id).await?.filter(|t| t.holder == holder))
}

/// The refund an unused ticket would get now (FARE minor units), if its product allows one and
/// the window is open. A chain that cannot say is logged and offers none.
pub async fn refund_offer(chain: &dyn Chain, clock: &dyn Clock, ticket_id: u64) -> Option<u128> {
    match chain.refundable(ticket_id).await {
        Ok((amount, deadline)) if amount > 0 && deadline > clock.now() as u64 => Some(amount),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(ticket = ticket_id, error = %e, "refund offer unknown");
            None
        }
    }
}

/// A ticket refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refunded {
    /// The ticket.
    pub ticket_id: u64,
    /// What went back to the holder (FARE minor units).
    pub amount: u128,
}

/// Why a ticket was not refunded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundTicketError {
    /// The traveler holds no such ticket.
    #[error("you hold no ticket #{ticket_id}")]
    NotYours {
        /// The ticket asked for.
        ticket_id: u64,
    },
    /// A ride was recorded with it: a used ticket keeps its fare.
    #[error("the ticket was used")]
    Used,
    /// Its product allows no refund, or the refund window closed.
    #[error("the ticket is not refundable")]
    NotRefundable,
    /// The chain failed, or refused the refund.
    #[error(transparent)]
    Chain(#[from] ChainFailure),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Refunds an unused ticket (gasless: Kippu relays; the FARE goes to the holder). A ticket
/// with any recorded entry is used and keeps its fare; the chain has the last word (a ride
/// forwarded late by an offline gate).
pub async fn refund_ticket(
    store: &dyn Store,
    chain: &dyn Chain,
    clock: &dyn Clock,
    holder: Address,
    ticket_id: u64,
) -> Result<Refunded, RefundTicketError> {
    if own_ticket(store, holder, ticket_id).await?.is_none() {
        return Err(RefundTicketError::NotYours { ticket_id });
    }
    if !store.taps_of_ticket(ticket_id).await?.is_empty() {
        return Err(RefundTicketError::Used);
    }
    if refund_offer(chain, clock, ticket_id).await.is_none() {
        return Err(RefundTicketError::NotRefundable);
    }
    let amount = chain.refund(ticket_id).await?;
    tracing::info!(ticket = ticket_id, amount, "ticket refunded");
    Ok(Refunded { ticket_id, amount })
}

/// A traveler binding a contactless card to one of their tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindCard {
    /// The signed-in traveler.
    pub holder: Address,
    /// The ticket.
    pub ticket_id: u64,
    /// The card's public key as typed (hex).
    pub card: String,
}

/// A card bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardBound {
    /// The ticket.
    pub ticket_id: u64,
    /// The card's key.
    pub card_key: [u8; 32],
    /// The account key's EIP-712 binding signature.
    pub sig: Vec<u8>,
}

/// Why a card's binding was not changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// The traveler holds no such ticket.
    #[error("you hold no ticket #{ticket_id}")]
    NotYours {
        /// The ticket asked for.
        ticket_id: u64,
    },
    /// Not a card key.
    #[error("not a card number")]
    NotACard,
    /// Another traveler bound this card.
    #[error("the card is bound by another traveler")]
    CardTaken,
    /// The traveler has not bound this card (unbinding).
    #[error("no such card is bound")]
    NotBound,
    /// The account key cannot sign (a wallet account, a revoked key …).
    #[error(transparent)]
    Signer(SignerError),
    /// Signing failed.
    #[error("{0}")]
    Signing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PortError),
}

/// Binds a contactless card to the ticket: the account key signs the EIP-712 binding in the
/// keystore, the binding is stored (a card bound before by the same traveler moves: one ticket
/// per card) and the gates learn it at once rather than on the card's first tap.
pub async fn bind_card(
    store: &dyn Store,
    chain: &dyn Chain,
    keystore: &Keystore,
    notifier: &dyn Notifier,
    clock: &dyn Clock,
    req: BindCard,
) -> Result<CardBound, CardError> {
    let Some(t) = own_ticket(store, req.holder, req.ticket_id).await? else {
        return Err(CardError::NotYours { ticket_id: req.ticket_id });
    };
    let card_key = kippu_domain::card::parse_card_key(&req.card).ok_or(CardError::NotACard)?;
    if let Some(other) = store.card_binding(&card_key).await? {
        if other.holder != req.holder {
            return Err(CardError::CardTaken);
        }
    }
    let signer = custodial_signer(store, keystore, req.holder).await.map_err(CardError::Signer)?;
    let digest = kippu_domain::card::binding_digest(chain.chain_id(), &card_key, t.id);
    let sig = signer.sign_hash_sync(&digest).map_err(|e| CardError::Signing(e.to_string()))?.as_bytes().to_vec();
    let row = CardBindingRow { card_key, ticket_id: t.id, holder: req.holder, sig: sig.clone(), bound_at: clock.now() };
    store.bind_card(&row).await?;
    notifier.card_bound(card_key, t.id, sig.clone()).await;
    tracing::info!(ticket = t.id, "card bound");
    Ok(CardBound { ticket_id: t.id, card_key, sig })
}

/// Removes a card's binding (a lost card): its taps stop opening gates now.
pub async fn unbind_card(
    store: &dyn Store,
    notifier: &dyn Notifier,
    holder: Address,
    ticket_id: u64,
    card: &str,
) -> Result<[u8; 32], CardError> {
    if own_ticket(store, holder, ticket_id).await?.is_none() {
        return Err(CardError::NotYours { ticket_id });
    }
    let card_key = kippu_domain::card::parse_card_key(card).ok_or(CardError::NotACard)?;
    if !store.unbind_card(&card_key, &holder).await? {
        return Err(CardError::NotBound);
    }
    notifier.card_unbound(card_key).await;
    Ok(card_key)
}
