//! kippu-chain as the application's [`kippu_app::ports::Chain`] and
//! [`kippu_app::ports::Clearing`]: each method forwards to the [`Chain`] method of the same
//! name; a contract's refusal stays typed, anything else is the chain being unavailable.

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use kippu_app::ports::{ChainFailure, ChainResult, SettlementState};
use kippu_domain::outbox::{PreparedWrite, WriteKey};

use crate::{Chain, ChainError};

fn failure(e: ChainError) -> ChainFailure {
    match e {
        ChainError::Rejected(r) => ChainFailure::Rejected(r),
        ChainError::Reverted { data } => ChainFailure::Reverted(crate::rejection::describe_undecoded(&data)),
        ChainError::Pending(key) => ChainFailure::Pending(key),
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

    fn prepare_mint(&self, to: Address, amount: u128, payment_ref: B256) -> ChainResult<Option<PreparedWrite>> {
        Chain::prepare_mint(self, to, amount, payment_ref).map_err(failure)
    }

    async fn await_mint(&self, key: &WriteKey) -> ChainResult<B256> {
        Chain::await_mint(self, key).await.map_err(failure)
    }

    async fn buy_with_permit(
        &self,
        request_id: B256,
        traveler: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
    ) -> ChainResult<(u64, B256)> {
        Chain::buy_with_permit(self, request_id, traveler, bundle_id, max_price, valid_from).await.map_err(failure)
    }

    async fn purchase_of(&self, request_id: B256) -> ChainResult<Option<(u64, B256, u128)>> {
        Chain::purchase_of(self, request_id).await.map_err(failure)
    }

    async fn buy_with_permit_and_concession(
        &self,
        request_id: B256,
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
            request_id,
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

#[async_trait]
impl kippu_app::ports::Clearing for Chain {
    async fn current_period(&self) -> ChainResult<u64> {
        Chain::current_period(self).await.map_err(failure)
    }

    async fn block_number(&self) -> ChainResult<u64> {
        Chain::block_number(self).await.map_err(failure)
    }

    async fn block_header(&self, n: u64) -> ChainResult<Option<(B256, B256, u64)>> {
        Chain::block_header(self, n).await.map_err(failure)
    }

    async fn settlement_state(&self, block: u64, operators: &[u32]) -> ChainResult<SettlementState> {
        let s = Chain::settlement_state(self, block, operators).await.map_err(failure)?;
        Ok(SettlementState {
            block: s.block,
            escrow: s.escrow,
            total_unpaid: s.total_unpaid,
            unpaid: s.unpaid,
            payable: s.payable,
            total_payable: s.total_payable,
        })
    }

    async fn insurer(&self) -> ChainResult<Option<u32>> {
        Chain::insurer(self).await.map_err(failure)
    }

    async fn settle_period(&self, period_id: u64, adjustments: &[(u32, u32, i64)]) -> ChainResult<(B256, u64)> {
        Chain::settle_period(self, period_id, adjustments).await.map_err(failure)
    }
}
