//! Transactions and reads against a deployed Kippu. One admin key acts as
//! deployer, relayer, minter, oracle and settler in the embedded default; the
//! contracts keep those roles apart so production can split them.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::{eip712_domain, SolEvent, SolStruct};
use kippu_domain::events::{ChainEvent, EventMeta};
use serde::{Deserialize, Serialize};

use crate::bindings::{Clearing, DelayInsurance, FareToken, Permit, PlanMarket, Ticket};
use crate::{decode_log, ChainError, Result};

/// How to reach the chain.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// Hex private key of the operating account.
    pub admin_key: String,
}

/// Addresses of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Chain id.
    pub chain_id: u64,
    /// Block the contracts were deployed in; the follower starts here.
    pub deploy_block: u64,
    /// FareToken.
    pub fare: Address,
    /// Ticket.
    pub ticket: Address,
    /// PlanMarket.
    pub market: Address,
    /// DelayInsurance.
    pub insurance: Address,
    /// Clearing.
    pub clearing: Address,
}

/// An operator to register in Clearing.
#[derive(Debug, Clone)]
pub struct OperatorSpec {
    /// Operator id.
    pub id: u32,
    /// Payout address.
    pub payee: Address,
}

/// How a product's validity window is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// `duration` seconds from the plan's start.
    Fixed = 0,
    /// `duration` days from the first ride, which must come within the activation window.
    Rolling = 1,
    /// A number of rides within `duration` seconds.
    Rides = 2,
}

/// A product to list.
#[derive(Debug, Clone)]
pub struct ProductSpec {
    /// Product id.
    pub id: u32,
    /// Operator.
    pub operator_id: u32,
    /// Zone or route the product is valid in (0 = the operator's whole network).
    pub zone: u32,
    /// List price (minor units).
    pub price: u128,
    /// Validity kind.
    pub validity: Validity,
    /// Seconds (fixed, rides) or days (rolling).
    pub duration: u64,
    /// Rolling only: how long after purchase the first ride may come.
    pub activation_window: u64,
    /// Rides (`u32::MAX` unlimited).
    pub rides: u32,
    /// Delay insurance product?
    pub insurance: bool,
    /// May the ticket change hands?
    pub transferable: bool,
    /// Share refunded for an unused ticket (basis points; 0 = no refunds).
    pub refund_bps: u16,
    /// How long after purchase a refund is possible.
    pub refund_window: u64,
}

/// A bundle to list.
#[derive(Debug, Clone)]
pub struct BundleSpec {
    /// Bundle id.
    pub id: u32,
    /// Products.
    pub product_ids: Vec<u32>,
    /// Discount (basis points).
    pub discount_bps: u16,
}

/// Delay insurance terms.
#[derive(Debug, Clone)]
pub struct InsuranceTerms {
    /// Minimum delay that pays.
    pub threshold_minutes: u32,
    /// Voucher value (minor units).
    pub voucher_value: u128,
    /// Operator that accepts the voucher (the taxi).
    pub voucher_operator_id: u32,
    /// Voucher lifetime (seconds).
    pub voucher_lifetime: u64,
}

/// One insured product's delay-cover terms (`DelayInsurance.ProductTerms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductCover {
    /// Minimum delay that pays.
    pub threshold_minutes: u32,
    /// Voucher value (minor units).
    pub voucher_value: u128,
    /// Operator that issues and always accepts the voucher.
    pub voucher_operator_id: u32,
    /// Voucher lifetime (seconds).
    pub voucher_lifetime: u64,
    /// Kind of voucher (e.g. `taxi`): any operator of that category accepts it; empty = only the operator.
    pub voucher_kind: String,
    /// Vouchers this product pays for one run, all holders together (0 = no cap).
    pub max_per_trip: u16,
    /// Vouchers one policy receives per UTC day (0 = no cap).
    pub max_per_day: u16,
}

/// The on-chain category of a voucher kind: keccak256 of its name, zero for none.
pub fn voucher_category(kind: &str) -> B256 {
    if kind.is_empty() {
        B256::ZERO
    } else {
        alloy::primitives::keccak256(kind.as_bytes())
    }
}

/// Settlement balances held by the contracts at one block (see [`Chain::settlement_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementState {
    /// The block they were read at.
    pub block: u64,
    /// FARE held by Clearing.
    pub escrow: u128,
    /// Clearing's `totalUnpaid`.
    pub total_unpaid: u128,
    /// `Clearing.unpaid(operator)` per operator.
    pub unpaid: Vec<(u32, u128)>,
    /// `DelayInsurance.payableTo(operator)` per operator.
    pub payable: Vec<(u32, u128)>,
    /// `DelayInsurance.totalPayable`.
    pub total_payable: u128,
}

/// A connected, deployed Kippu.
#[derive(Clone, Debug)]
pub struct Chain {
    provider: DynProvider,
    admin: Address,
    d: Deployment,
    send_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

fn rpc<E: std::fmt::Display>(e: E) -> ChainError {
    ChainError::Rpc(e.to_string())
}

/// The plan id a mined purchase created, and its transaction hash.
fn purchased(r: &TransactionReceipt) -> Result<(u64, B256)> {
    let plan = r
        .inner
        .logs()
        .iter()
        .find_map(|l| PlanMarket::PlanPurchased::decode_log_data(l.data()).ok())
        .ok_or_else(|| ChainError::Rpc("purchase mined without PlanPurchased".into()))?;
    Ok((plan.planId, r.transaction_hash))
}

/// Decodes a revert into the contract's custom error name and arguments.
fn revert(e: alloy::contract::Error) -> ChainError {
    macro_rules! try_decode {
        ($($errs:ty),*) => {$(
            if let Some(err) = e.as_decoded_interface_error::<$errs>() {
                return ChainError::Revert(format!("{err:?}"));
            }
        )*};
    }
    try_decode!(
        PlanMarket::PlanMarketErrors,
        FareToken::FareTokenErrors,
        Ticket::TicketErrors,
        DelayInsurance::DelayInsuranceErrors,
        Clearing::ClearingErrors
    );
    ChainError::Revert(e.to_string())
}

/// Sends one transaction. Sends from the operating account are serialized so
/// each takes the next pending nonce; a call that reverts at estimation never
/// consumes a nonce (a cached nonce would, leaving a gap that stalls every later
/// transaction). Receipt waits are bounded.
macro_rules! send {
    ($lock:expr, $call:expr) => {{
        let guard = $lock.lock().await;
        let pending = $call.send().await.map_err(revert)?;
        drop(guard);
        let receipt: TransactionReceipt =
            pending.with_timeout(Some(RECEIPT_TIMEOUT)).get_receipt().await.map_err(rpc)?;
        if !receipt.status() {
            return Err(ChainError::TxFailed(format!("{:#x}", receipt.transaction_hash)));
        }
        receipt
    }};
}

/// Longest wait for a transaction to be mined.
const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn role(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn connect(cfg: &ChainConfig) -> Result<(DynProvider, Address)> {
    let signer: PrivateKeySigner = cfg.admin_key.parse().map_err(|e| ChainError::Config(format!("admin key: {e}")))?;
    let admin = signer.address();
    let url = cfg.rpc_url.parse().map_err(|e| ChainError::Config(format!("rpc url: {e}")))?;
    // alloy's recommended fillers cache nonces, and a call that reverts at gas
    // estimation still consumes one, stalling every later transaction behind
    // the gap. Ask the node for the pending count instead (sends are serialized).
    let provider = ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url)
        .erased();
    Ok((provider, admin))
}

impl Chain {
    /// Deploys all five contracts and wires their roles.
    pub async fn deploy(cfg: &ChainConfig, terms: &InsuranceTerms) -> Result<Self> {
        let (provider, admin) = connect(cfg).await?;
        let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let chain_id = provider.get_chain_id().await.map_err(rpc)?;
        let deploy_block = provider.get_block_number().await.map_err(rpc)?;
        let fare = FareToken::deploy(provider.clone(), admin).await.map_err(revert)?;
        let ticket = Ticket::deploy(provider.clone(), admin).await.map_err(revert)?;
        let clearing = Clearing::deploy(provider.clone(), admin, *fare.address()).await.map_err(revert)?;
        let t = DelayInsurance::Terms {
            thresholdMinutes: terms.threshold_minutes,
            voucherValue: terms.voucher_value,
            voucherOperatorId: terms.voucher_operator_id,
            voucherLifetime: terms.voucher_lifetime,
        };
        let insurance = DelayInsurance::deploy(provider.clone(), admin, t).await.map_err(revert)?;
        let market = PlanMarket::deploy(
            provider.clone(),
            admin,
            *fare.address(),
            *ticket.address(),
            *clearing.address(),
            *insurance.address(),
        )
        .await
        .map_err(revert)?;
        let m = *market.address();
        send!(lock, ticket.grantRole(role("MINTER_ROLE"), m));
        send!(lock, ticket.grantRole(role("VALIDATOR_ROLE"), admin));
        send!(lock, clearing.grantRole(role("MARKET_ROLE"), m));
        send!(lock, clearing.grantRole(role("SETTLER_ROLE"), admin));
        send!(lock, clearing.grantRole(role("ANCHOR_ROLE"), admin));
        send!(lock, insurance.grantRole(role("MARKET_ROLE"), m));
        // Insured legs are covered through the Ticket contract's own data.
        send!(lock, insurance.setTicketContract(*ticket.address()));
        send!(lock, insurance.grantRole(role("ORACLE_ROLE"), admin));
        send!(lock, insurance.grantRole(role("REDEEMER_ROLE"), admin));
        // Clearing pays redeemed vouchers out of the insurer's claim at each close.
        send!(lock, insurance.grantRole(role("CLEARING_ROLE"), *clearing.address()));
        send!(lock, fare.grantRole(role("MINTER_ROLE"), admin));
        send!(lock, market.grantRole(role("RELAYER_ROLE"), admin));
        send!(lock, market.grantRole(role("PAUSER_ROLE"), admin));
        let d = Deployment {
            chain_id,
            deploy_block,
            fare: *fare.address(),
            ticket: *ticket.address(),
            market: m,
            insurance: *insurance.address(),
            clearing: *clearing.address(),
        };
        tracing::info!(?d, "contracts deployed");
        Ok(Self { provider, admin, d, send_lock: lock })
    }

    /// Connects to an existing deployment.
    pub async fn attach(cfg: &ChainConfig, d: Deployment) -> Result<Self> {
        let (provider, admin) = connect(cfg).await?;
        Ok(Self { provider, admin, d, send_lock: Default::default() })
    }

    /// The deployment's addresses.
    pub fn deployment(&self) -> &Deployment {
        &self.d
    }

    /// The operating account.
    pub fn admin(&self) -> Address {
        self.admin
    }

    /// Registers an operator's payout address.
    pub async fn set_operator(&self, op: &OperatorSpec) -> Result<()> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        send!(self.send_lock, c.setOperator(op.id, op.payee));
        Ok(())
    }

    /// Lists a product.
    pub async fn list_product(&self, p: &ProductSpec) -> Result<()> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let c = PlanMarket::ProductConfig {
            operatorId: p.operator_id,
            zone: p.zone,
            price: p.price,
            validity: p.validity as u8,
            duration: p.duration,
            activationWindow: p.activation_window,
            rides: p.rides,
            insurance: p.insurance,
            transferable: p.transferable,
            refundBps: p.refund_bps,
            refundWindow: p.refund_window,
        };
        send!(self.send_lock, m.setProduct(p.id, c));
        Ok(())
    }

    /// Lists a bundle.
    pub async fn list_bundle(&self, b: &BundleSpec) -> Result<()> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        send!(self.send_lock, m.setBundle(b.id, b.product_ids.clone(), b.discount_bps));
        Ok(())
    }

    /// FARE balance in minor units.
    pub async fn fare_balance(&self, who: Address) -> Result<u128> {
        let f = FareToken::new(self.d.fare, &self.provider);
        let b: U256 = f.balanceOf(who).call().await.map_err(revert)?;
        u128::try_from(b).map_err(|_| ChainError::Rpc("balance overflow".into()))
    }

    /// FARE held in escrow by Clearing.
    pub async fn escrow_balance(&self) -> Result<u128> {
        self.fare_balance(self.d.clearing).await
    }

    /// Mints FARE for a card payment; the contract refuses a second mint of the same payment.
    pub async fn mint_fare(&self, to: Address, amount: u128, payment_ref: B256) -> Result<B256> {
        let f = FareToken::new(self.d.fare, &self.provider);
        let r = send!(self.send_lock, f.mint(to, U256::from(amount), payment_ref));
        Ok(r.transaction_hash)
    }

    /// Whether a payment was already minted on chain.
    pub async fn payment_minted(&self, payment_ref: B256) -> Result<bool> {
        let f = FareToken::new(self.d.fare, &self.provider);
        f.paymentMinted(payment_ref).call().await.map_err(revert)
    }

    /// Price of a bundle and each leg's share.
    pub async fn quote(&self, bundle_id: u32) -> Result<(u128, Vec<u128>)> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let q = m.quote(bundle_id).call().await.map_err(revert)?;
        let price = u128::try_from(q.price).map_err(|_| ChainError::Rpc("price overflow".into()))?;
        let shares = q.legShares.into_iter().map(|s| u128::try_from(s).unwrap_or(u128::MAX)).collect();
        Ok((price, shares))
    }

    /// Buys a bundle for `traveler` in one relayed transaction: the traveler's
    /// key signs an EIP-2612 permit here (it never leaves this process), the
    /// relayer pays the gas. `valid_from` 0 starts validity at the block's time
    /// (travelers may also buy ahead for a later start). Returns the plan id and
    /// transaction hash.
    pub async fn buy_with_permit(
        &self,
        traveler: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
    ) -> Result<(u64, B256)> {
        let owner = traveler.address();
        let (value, deadline, v, r, s) = self.permit(traveler, max_price).await?;
        let m = PlanMarket::new(self.d.market, &self.provider);
        let r = send!(self.send_lock, m.buyWithPermit(owner, bundle_id, valid_from, value, deadline, v, r, s));
        purchased(&r)
    }

    /// The bundle's price after a concession discount of `concession_bps`.
    pub async fn quote_with_concession(&self, bundle_id: u32, concession_bps: u16) -> Result<u128> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let q = m.quoteWithConcession(bundle_id, concession_bps).call().await.map_err(revert)?;
        u128::try_from(q.price).map_err(|_| ChainError::Rpc("price overflow".into()))
    }

    /// Grants `account` the right to sign concession attestations.
    pub async fn grant_concession_issuer(&self, account: Address) -> Result<()> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        send!(self.send_lock, m.grantRole(keccak256("CONCESSION_ISSUER_ROLE"), account));
        Ok(())
    }

    /// Buys a bundle at a concession price. `attestor` (a CONCESSION_ISSUER_ROLE
    /// account, Kippu's credential verifier) signs an EIP-712 attestation that
    /// names only the traveler's address, the concession kind and the discount:
    /// the credential itself, and whatever personal data it holds, stays off chain.
    #[allow(clippy::too_many_arguments)]
    pub async fn buy_with_permit_and_concession(
        &self,
        traveler: &PrivateKeySigner,
        attestor: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        valid_from: u64,
        kind: u8,
        discount_bps: u16,
    ) -> Result<(u64, B256)> {
        let owner = traveler.address();
        let m = PlanMarket::new(self.d.market, &self.provider);
        let concession = PlanMarket::Concession {
            holder: owner,
            kind,
            discountBps: discount_bps,
            expiry: now() + 600,
            nonce: B256::from(rand::random::<[u8; 32]>()),
        };
        // The contract's own digest, so the attestation can never drift from its EIP-712 encoding.
        let digest = m.concessionDigest(concession.clone()).call().await.map_err(revert)?;
        let concession_sig =
            attestor.sign_hash_sync(&digest).map_err(|e| ChainError::Config(e.to_string()))?.as_bytes();
        let (value, deadline, v, r, s) = self.permit(traveler, max_price).await?;
        let permit = PlanMarket::PermitSig { deadline, v, r, s };
        let r = send!(
            self.send_lock,
            m.buyWithPermitAndConcession(
                owner,
                bundle_id,
                valid_from,
                value,
                permit.clone(),
                concession.clone(),
                concession_sig.to_vec().into()
            )
        );
        purchased(&r)
    }

    /// Signs an EIP-2612 permit of `max_price` FARE to the market with the traveler's key.
    async fn permit(&self, traveler: &PrivateKeySigner, max_price: u128) -> Result<(U256, U256, u8, B256, B256)> {
        let owner = traveler.address();
        let f = FareToken::new(self.d.fare, &self.provider);
        let nonce: U256 = f.nonces(owner).call().await.map_err(revert)?;
        let deadline = U256::from(now() + 600);
        let value = U256::from(max_price);
        let permit = Permit { owner, spender: self.d.market, value, nonce, deadline };
        let domain = eip712_domain! {
            name: "Kippu Fare",
            version: "1",
            chain_id: self.d.chain_id,
            verifying_contract: self.d.fare,
        };
        let sig = traveler
            .sign_hash_sync(&permit.eip712_signing_hash(&domain))
            .map_err(|e| ChainError::Config(e.to_string()))?;
        Ok((value, deadline, 27u8 + u8::from(sig.v()), B256::from(sig.r()), B256::from(sig.s())))
    }

    /// What refunding `ticket_id` would return now, and until when (`(0, 0)`: not refundable).
    pub async fn refundable(&self, ticket_id: u64) -> Result<(u128, u64)> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let r = m.refundable(U256::from(ticket_id)).call().await.map_err(revert)?;
        Ok((u128::try_from(r.amount).map_err(|_| ChainError::Rpc("refund overflow".into()))?, r.deadline))
    }

    /// Refunds an unused ticket (as the relayer: FARE goes to the holder); returns the amount.
    pub async fn refund(&self, ticket_id: u64) -> Result<u128> {
        let m = PlanMarket::new(self.d.market, &self.provider);
        let r = send!(self.send_lock, m.refund(U256::from(ticket_id)));
        let e = r
            .inner
            .logs()
            .iter()
            .find_map(|l| PlanMarket::TicketRefunded::decode_log_data(l.data()).ok())
            .ok_or_else(|| ChainError::Rpc("refund mined without TicketRefunded".into()))?;
        u128::try_from(e.amount).map_err(|_| ChainError::Rpc("refund overflow".into()))
    }

    /// Reports a delay for one policy as this account (an oracle). Returns the
    /// voucher id when this vote completed the quorum, `None` when it only
    /// recorded a vote (k-of-n reporting, fewer than k so far).
    pub async fn report_delay(&self, delay_id: B256, policy_id: u64, delay_minutes: u32) -> Result<Option<u64>> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let r = send!(self.send_lock, c.reportDelay(delay_id, U256::from(policy_id), delay_minutes));
        r.inner
            .logs()
            .iter()
            .find_map(|l| DelayInsurance::VoucherIssued::decode_log_data(l.data()).ok())
            .map(|v| u64::try_from(v.voucherId).map_err(|_| ChainError::Rpc("voucher id overflow".into())))
            .transpose()
    }

    /// Sets an insured product's own terms (threshold, voucher, caps).
    pub async fn set_product_terms(&self, product_id: u32, t: &ProductCover) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let terms = DelayInsurance::ProductTerms {
            thresholdMinutes: t.threshold_minutes,
            voucherValue: t.voucher_value,
            voucherOperatorId: t.voucher_operator_id,
            voucherLifetime: t.voucher_lifetime,
            voucherCategory: voucher_category(&t.voucher_kind),
            maxPerTrip: t.max_per_trip,
            maxPerDay: t.max_per_day,
        };
        send!(self.send_lock, c.setProductTerms(product_id, terms));
        Ok(())
    }

    /// The terms a delay report against `policy_id` uses, as the contract sees them:
    /// `(threshold minutes, voucher value, voucher operator, category, max per trip, max per day)`.
    pub async fn terms_for(&self, policy_id: u64) -> Result<(u32, u128, u32, B256, u16, u16)> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        let t = c.termsFor(U256::from(policy_id)).call().await.map_err(revert)?;
        Ok((t.thresholdMinutes, t.voucherValue, t.voucherOperatorId, t.voucherCategory, t.maxPerTrip, t.maxPerDay))
    }

    /// Puts an operator in a voucher category: it then accepts vouchers of that kind.
    pub async fn set_operator_category(&self, operator_id: u32, kind: &str) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        send!(self.send_lock, c.setOperatorCategory(operator_id, voucher_category(kind)));
        Ok(())
    }

    /// Sets how many distinct oracles must report a delay before it pays.
    pub async fn set_quorum(&self, quorum: u8) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        send!(self.send_lock, c.setQuorum(quorum));
        Ok(())
    }

    /// Makes `account` a delay oracle (a reporter with its own key).
    pub async fn grant_oracle(&self, account: Address) -> Result<()> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        send!(self.send_lock, c.grantRole(role("ORACLE_ROLE"), account));
        Ok(())
    }

    /// Sends `wei` of the chain's native coin from the operating account (gas for another key).
    pub async fn fund(&self, to: Address, wei: u128) -> Result<()> {
        let tx = alloy::rpc::types::TransactionRequest::default().to(to).value(U256::from(wei));
        let guard = self.send_lock.lock().await;
        let pending = self.provider.send_transaction(tx).await.map_err(rpc)?;
        drop(guard);
        let receipt = pending.with_timeout(Some(RECEIPT_TIMEOUT)).get_receipt().await.map_err(rpc)?;
        if !receipt.status() {
            return Err(ChainError::TxFailed(format!("{:#x}", receipt.transaction_hash)));
        }
        Ok(())
    }

    /// The same deployment, operated by another key (an independent reporter).
    pub async fn as_account(&self, rpc_url: &str, key: &str) -> Result<Self> {
        Self::attach(&ChainConfig { rpc_url: rpc_url.into(), admin_key: key.into() }, self.d.clone()).await
    }

    /// Redeems a voucher at an operator.
    pub async fn redeem_voucher(&self, voucher_id: u64, operator_id: u32) -> Result<B256> {
        let c = DelayInsurance::new(self.d.insurance, &self.provider);
        Ok(send!(self.send_lock, c.redeem(U256::from(voucher_id), operator_id)).transaction_hash)
    }

    /// Closes the clearing period, paying every operator (vouchers redeemed are paid
    /// out of the insurer's claim first).
    pub async fn close_period(&self) -> Result<B256> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        Ok(send!(self.send_lock, c.closePeriod()).transaction_hash)
    }

    /// Closes the clearing period with netted adjustments `(from, to, amount)` moved
    /// between operators' claims before the payout; returns the transaction and the
    /// period it closed.
    pub async fn settle_period(&self, adjustments: &[(u32, u32, i64)]) -> Result<(B256, u64)> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let transfers: Vec<Clearing::Transfer> = adjustments
            .iter()
            .map(|&(from, to, amount)| Clearing::Transfer { from, to, amount: U256::from(amount.max(0) as u64) })
            .collect();
        let r = send!(self.send_lock, c.settlePeriod(transfers));
        let period = r
            .inner
            .logs()
            .iter()
            .find_map(|l| Clearing::PeriodClosed::decode_log_data(l.data()).ok())
            .map(|e| e.periodId)
            .ok_or_else(|| ChainError::Rpc("settlePeriod emitted no PeriodClosed".into()))?;
        Ok((r.transaction_hash, period))
    }

    /// The insurer operator whose claim pays redeemed vouchers, if one is set.
    pub async fn insurer(&self) -> Result<Option<u32>> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let r = c.insurance().call().await.map_err(revert)?;
        Ok((r.insurance_ != Address::ZERO).then_some(r.insurerId))
    }

    /// Names the insurer whose claim pays redeemed vouchers at each close.
    pub async fn set_insurer(&self, operator_id: u32) -> Result<()> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        send!(self.send_lock, c.setInsurance(self.d.insurance, operator_id));
        Ok(())
    }

    /// Anchors a tap batch's Merkle root; returns the batch id.
    pub async fn anchor_taps(&self, root: B256, count: u32) -> Result<u64> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        let r = send!(self.send_lock, c.anchorTapBatch(root, count));
        r.inner
            .logs()
            .iter()
            .find_map(|l| Clearing::TapBatchAnchored::decode_log_data(l.data()).ok())
            .map(|e| e.batchId)
            .ok_or_else(|| ChainError::Rpc("anchor mined without TapBatchAnchored".into()))
    }

    /// Clearing's own leaf of a tap (to check the off-chain encoding against).
    pub async fn tap_leaf(&self, scan_id_hash: B256, ticket_id: u64, operator_id: u32, at: u64) -> Result<B256> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        c.tapLeaf(scan_id_hash, U256::from(ticket_id), operator_id, at).call().await.map_err(revert)
    }

    /// Asks Clearing whether `leaf` is in anchored batch `batch_id`.
    pub async fn verify_tap(&self, batch_id: u64, leaf: B256, proof: Vec<B256>) -> Result<bool> {
        let c = Clearing::new(self.d.clearing, &self.provider);
        c.verifyTap(batch_id, leaf, proof).call().await.map_err(revert)
    }

    /// Latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.provider.get_block_number().await.map_err(rpc)
    }

    /// What the contracts hold for settlement at block `block`, for reconciliation with
    /// the ledger: Clearing's FARE balance and `totalUnpaid`, each operator's unpaid share,
    /// and the voucher value DelayInsurance owes each operator and in total.
    pub async fn settlement_state(&self, block: u64, operators: &[u32]) -> Result<SettlementState> {
        let at = alloy::eips::BlockId::number(block);
        let f = FareToken::new(self.d.fare, &self.provider);
        let c = Clearing::new(self.d.clearing, &self.provider);
        let ins = DelayInsurance::new(self.d.insurance, &self.provider);
        let small = |v: U256| u128::try_from(v).map_err(|_| ChainError::Rpc("amount overflow".into()));
        let escrow = small(f.balanceOf(self.d.clearing).block(at).call().await.map_err(revert)?)?;
        let total_unpaid = small(c.totalUnpaid().block(at).call().await.map_err(revert)?)?;
        let total_payable = small(ins.totalPayable().block(at).call().await.map_err(revert)?)?;
        let mut unpaid = Vec::new();
        let mut payable = Vec::new();
        for &op in operators {
            unpaid.push((op, small(c.unpaid(op).block(at).call().await.map_err(revert)?)?));
            payable.push((op, small(ins.payableTo(op).block(at).call().await.map_err(revert)?)?));
        }
        Ok(SettlementState { block, escrow, total_unpaid, unpaid, payable, total_payable })
    }

    /// Hash, parent hash and timestamp (POSIX seconds) of block `n`; `None` past the head.
    pub async fn block_header(&self, n: u64) -> Result<Option<(B256, B256, u64)>> {
        let block = self.provider.get_block_by_number(n.into()).await.map_err(rpc)?;
        Ok(block.map(|b| (b.header.hash, b.header.parent_hash, b.header.timestamp)))
    }

    /// Dev chains (anvil): snapshots the chain state; [`Chain::revert_to`] returns to it.
    pub async fn evm_snapshot(&self) -> Result<U256> {
        self.provider.raw_request("evm_snapshot".into(), ()).await.map_err(rpc)
    }

    /// Dev chains (anvil): reverts to a snapshot, dropping every later block.
    pub async fn revert_to(&self, snapshot: U256) -> Result<bool> {
        self.provider.raw_request("evm_revert".into(), (snapshot,)).await.map_err(rpc)
    }

    /// Dev chains (anvil): the whole chain (blocks, receipts, state) as anvil's JSON
    /// state, for [`crate::anvil::AnvilProcess::spawn_with`] to start from.
    pub async fn dump_state(&self) -> Result<Vec<u8>> {
        use std::io::Read as _;
        let hex: String = self.provider.raw_request("anvil_dumpState".into(), ()).await.map_err(rpc)?;
        let raw = alloy::primitives::hex::decode(&hex).map_err(|e| ChainError::Rpc(format!("anvil_dumpState: {e}")))?;
        // anvil gzips the dump; older versions sent it plain.
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(_) => Ok(raw),
        }
    }

    /// Dev chains (anvil): mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) -> Result<()> {
        let _: serde_json::Value =
            self.provider.raw_request("anvil_mine".into(), (U256::from(blocks),)).await.map_err(rpc)?;
        Ok(())
    }

    /// Dev chains (anvil): replaces the last `depth` blocks with as many new, empty ones
    /// (`anvil_reorg`): the transactions in them are gone from the chain.
    pub async fn reorg(&self, depth: u64) -> Result<()> {
        let _: serde_json::Value = self
            .provider
            .raw_request("anvil_reorg".into(), (depth, Vec::<serde_json::Value>::new()))
            .await
            .map_err(rpc)?;
        Ok(())
    }

    /// Kippu's events in `[from, to]`, in chain order.
    pub async fn events(&self, from: u64, to: u64) -> Result<Vec<(EventMeta, ChainEvent)>> {
        let filter = Filter::new()
            .address(vec![self.d.fare, self.d.ticket, self.d.market, self.d.insurance, self.d.clearing])
            .from_block(from)
            .to_block(to);
        let logs = self.provider.get_logs(&filter).await.map_err(rpc)?;
        let mut out: Vec<_> = logs.iter().filter_map(|l| decode_log(&self.d, l)).collect();
        out.sort_by_key(|(m, _)| (m.block_number, m.log_index));
        Ok(out)
    }
}
