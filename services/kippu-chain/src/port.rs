//! kippu-chain as the application's [`kippu_app::ports::Chain`]: each method forwards to the
//! [`Chain`] method of the same name; a contract's refusal stays typed, anything else is the
//! chain being unavailable.

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use kippu_app::ports::{ChainFailure, ChainResult};

use crate::{Chain, ChainError};

fn failure(e: ChainError) -> ChainFailure {
    match e {
        ChainError::Rejected(r) => ChainFailure::Rejected(r),
        ChainError::Reverted { data } => ChainFailure::Reverted(crate::rejection::describe_undecoded(&data)),
        other => ChainFailure::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl kippu_app::ports::Chain for Chain {
    fn chain_id(&self) -> u64 {
        self.deployment().chain_id
    }

    async fn fare_balance(&self, who: Address) -> ChainResult<u128> {
        Chain::fare_balance(self, who).await.map_err(failure)
    }

    async fn escrow_balance(&self) -> ChainResult<u128> {
        Chain::escrow_balance(self).await.map_err(failure)
    }

    async fn mint_fare(&self, to: Address, amount: u128, payment_ref: B256) -> ChainResult<B256> {
        Chain::mint_fare(self, to, amount, payment_ref).await.map_err(failure)
    }

    async fn payment_minted(&self, payment_ref: B256) -> ChainResult<bool> {
        Chain::payment_minted(self, payment_ref).await.map_err(failure)
    }

    async fn quote(&self, bundle_id: u32) -> ChainResult<(u128, Vec<u128>)> {
        Chain::quote(self, bundle_id).await.map_err(failure)
    }

    async fn quote_with_concession(&self, bundle_id: u32, concession_bps: u16) -> ChainResult<u128> {
        Chain::quote_with_concession(self, bundle_id, concession_bps).await.map_err(failure)
    }

    async fn buy_with_permit(
        &self,
        traveler: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
    ) -> ChainResult<(u64, B256)> {
        Chain::buy_with_permit(self, traveler, bundle_id, max_price, valid_from).await.map_err(failure)
    }

    async fn buy_with_permit_and_concession(
        &self,
        traveler: &PrivateKeySigner,
        attestor: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
        kind: u8,
        discount_bps: u16,
    ) -> ChainResult<(u64, B256)> {
        Chain::buy_with_permit_and_concession(
            self,
            traveler,
            attestor,
            bundle_id,
            max_price,
            valid_from,
            kind,
            discount_bps,
        )
        .await
        .map_err(failure)
    }

    async fn refundable(&self, ticket_id: u64) -> ChainResult<(u128, u64)> {
        Chain::refundable(self, ticket_id).await.map_err(failure)
    }

    async fn refund(&self, ticket_id: u64) -> ChainResult<u128> {
        Chain::refund(self, ticket_id).await.map_err(failure)
    }

    async fn redeem_voucher(&self, voucher_id: u64, operator_id: u32) -> ChainResult<B256> {
        Chain::redeem_voucher(self, voucher_id, operator_id).await.map_err(failure)
    }
}
