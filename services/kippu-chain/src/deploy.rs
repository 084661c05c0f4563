//! Deployment: the five contracts, their wiring, each role to its key, and a record
//! (addresses, role holders, runtime code hashes) that [`verify_deployment`] checks
//! against the node before Kippu trusts it.

use alloy::network::EthereumWallet;
use alloy::primitives::{keccak256, Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use crate::bindings::{Clearing, DelayInsurance, FareToken, PlanMarket, Ticket};
use crate::client::{provider, revert, role, rpc, send_direct, send_value, Sender};
use crate::{connect, Chain, ChainConfig, ChainError, HotKeys, InsuranceTerms, Result, RoleHolders};

/// `DEFAULT_ADMIN_ROLE` of OpenZeppelin's AccessControl.
const ADMIN_ROLE: B256 = B256::ZERO;

/// A deployment: addresses, the keys holding each role, and what the contracts' runtime
/// code hashed to when they were deployed.
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
    /// keccak256 of each contract's runtime code as deployed (read back with `eth_getCode`;
    /// immutables make it differ from the artifact's `deployedBytecode`).
    pub code_hashes: CodeHashes,
    /// Who holds which role.
    pub roles: RoleHolders,
}

/// keccak256 of each contract's runtime code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeHashes {
    /// FareToken.
    pub fare: B256,
    /// Ticket.
    pub ticket: B256,
    /// PlanMarket.
    pub market: B256,
    /// DelayInsurance.
    pub insurance: B256,
    /// Clearing.
    pub clearing: B256,
}

impl Deployment {
    /// `(name, address, code hash)` of each contract.
    fn contracts(&self) -> [(&'static str, Address, B256); 5] {
        let h = &self.code_hashes;
        [
            ("fare", self.fare, h.fare),
            ("ticket", self.ticket, h.ticket),
            ("market", self.market, h.market),
            ("insurance", self.insurance, h.insurance),
            ("clearing", self.clearing, h.clearing),
        ]
    }
}

/// Deploys Kippu for production: the contracts, their wiring, every role to its holder in
/// `roles` (admin: DEFAULT_ADMIN_ROLE everywhere and PlanMarket PAUSER_ROLE; minter; relayer;
/// settler; catalog; attestor: PlanMarket CONCESSION_ISSUER_ROLE), then the deployer renounces
/// every role it holds, so its key is worthless afterwards. The deployer must not be one of
/// the holders. When the chain charges gas (gas price > 0; a Besu consortium chain with
/// min-gas-price 0 does not), each hot key gets `fund_hot_keys_wei` from the deployer.
pub async fn deploy(
    rpc_url: &str,
    deployer: &PrivateKeySigner,
    roles: &RoleHolders,
    terms: &InsuranceTerms,
    max_concession_bps: u16,
    fund_hot_keys_wei: u128,
) -> Result<Deployment> {
    let me = deployer.address();
    if roles.all().contains(&me) {
        return Err(ChainError::Config(format!("the deployer {me} must hold no role: it renounces all of its own")));
    }
    if roles.all().contains(&Address::ZERO) {
        return Err(ChainError::Config("a role holder is the zero address".into()));
    }
    let provider = provider(rpc_url, EthereumWallet::from(deployer.clone()))?;
    let sender = Sender::new(me);
    let d = deploy_contracts(&provider, &sender, roles, terms, max_concession_bps).await?;
    renounce(&provider, &sender, &d).await?;
    if fund_hot_keys_wei > 0 && provider.get_gas_price().await.map_err(rpc)? > 0 {
        for to in roles.hot() {
            send_value(&provider, &sender, to, fund_hot_keys_wei).await?;
        }
    }
    tracing::info!(?d, "contracts deployed; the deployer holds no role");
    Ok(d)
}

/// The embedded default and tests: `cfg.admin_key` deploys and holds every role (admin,
/// each hot key, attestor), as one operating key did before roles were split. Nothing is
/// renounced, so admin-only governance (`set_quorum`, `grant_oracle`,
/// `grant_concession_issuer`) works on the returned [`Chain`].
pub async fn deploy_single_key(cfg: &ChainConfig, terms: &InsuranceTerms, max_concession_bps: u16) -> Result<Chain> {
    let key: PrivateKeySigner = cfg.admin_key.parse().map_err(|e| ChainError::Config(format!("admin key: {e}")))?;
    let provider = provider(&cfg.rpc_url, EthereumWallet::from(key.clone()))?;
    let roles = RoleHolders::single(key.address());
    let d = deploy_contracts(&provider, &Sender::new(key.address()), &roles, terms, max_concession_bps).await?;
    tracing::info!(?d, "contracts deployed (one key in every role)");
    connect(&cfg.rpc_url, HotKeys::single(key), d).await
}

/// Checks that the node serves the recorded deployment: the chain id, and for each contract
/// that its runtime code hashes to what was recorded when it was deployed (so a reset chain,
/// another network or code that is not Kippu's is refused before any key signs for it).
pub async fn verify_deployment(rpc_url: &str, d: &Deployment) -> Result<()> {
    let provider = crate::client::read_only(rpc_url)?;
    let found = provider.get_chain_id().await.map_err(rpc)?;
    if found != d.chain_id {
        return Err(ChainError::WrongChain { expected: d.chain_id, found });
    }
    for (contract, address, recorded) in d.contracts() {
        let code = provider.get_code_at(address).await.map_err(rpc)?;
        if code.is_empty() {
            return Err(ChainError::NoCode { contract, address });
        }
        if keccak256(&code) != recorded {
            return Err(ChainError::CodeMismatch { contract, address });
        }
    }
    Ok(())
}

/// Deploys and wires the contracts with `deployer` as their first admin and grants every role
/// in `roles` (an admin grant to the deployer itself is skipped: it holds it already).
async fn deploy_contracts(
    provider: &DynProvider,
    deployer: &Sender,
    roles: &RoleHolders,
    terms: &InsuranceTerms,
    max_concession_bps: u16,
) -> Result<Deployment> {
    let me = deployer.from;
    let chain_id = provider.get_chain_id().await.map_err(rpc)?;
    let deploy_block = provider.get_block_number().await.map_err(rpc)?;
    let fare = FareToken::deploy(provider.clone(), me).await.map_err(revert)?;
    let ticket = Ticket::deploy(provider.clone(), me).await.map_err(revert)?;
    let t = DelayInsurance::Terms {
        thresholdMinutes: terms.threshold_minutes,
        voucherValue: terms.voucher_value,
        voucherOperatorId: terms.voucher_operator_id,
        voucherLifetime: terms.voucher_lifetime,
    };
    let insurance = DelayInsurance::deploy(provider.clone(), me, t).await.map_err(revert)?;
    // Clearing pins DelayInsurance as the only contract whose voucher payables it settles.
    let clearing =
        Clearing::deploy(provider.clone(), me, *fare.address(), *insurance.address()).await.map_err(revert)?;
    let market = PlanMarket::deploy(
        provider.clone(),
        me,
        *fare.address(),
        *ticket.address(),
        *clearing.address(),
        *insurance.address(),
        max_concession_bps,
    )
    .await
    .map_err(revert)?;
    let m = *market.address();

    // contract to contract
    send_direct(provider, deployer, ticket.grantRole(role("MINTER_ROLE"), m).into_transaction_request()).await?;
    send_direct(provider, deployer, clearing.grantRole(role("MARKET_ROLE"), m).into_transaction_request()).await?;
    send_direct(provider, deployer, insurance.grantRole(role("MARKET_ROLE"), m).into_transaction_request()).await?;
    // insured legs are covered through the Ticket contract's own data
    send_direct(provider, deployer, insurance.setTicketContract(*ticket.address()).into_transaction_request()).await?;
    // Clearing pays redeemed vouchers out of the insurer's claim at each close
    send_direct(
        provider,
        deployer,
        insurance.grantRole(role("CLEARING_ROLE"), *clearing.address()).into_transaction_request(),
    )
    .await?;

    // each role to its key
    if roles.admin != me {
        send_direct(provider, deployer, fare.grantRole(ADMIN_ROLE, roles.admin).into_transaction_request()).await?;
        send_direct(provider, deployer, ticket.grantRole(ADMIN_ROLE, roles.admin).into_transaction_request()).await?;
        send_direct(provider, deployer, clearing.grantRole(ADMIN_ROLE, roles.admin).into_transaction_request()).await?;
        send_direct(provider, deployer, insurance.grantRole(ADMIN_ROLE, roles.admin).into_transaction_request())
            .await?;
        send_direct(provider, deployer, market.grantRole(ADMIN_ROLE, roles.admin).into_transaction_request()).await?;
    }
    send_direct(provider, deployer, market.grantRole(role("PAUSER_ROLE"), roles.admin).into_transaction_request())
        .await?;
    send_direct(provider, deployer, fare.grantRole(role("MINTER_ROLE"), roles.minter).into_transaction_request())
        .await?;
    send_direct(provider, deployer, market.grantRole(role("RELAYER_ROLE"), roles.relayer).into_transaction_request())
        .await?;
    send_direct(
        provider,
        deployer,
        insurance.grantRole(role("REDEEMER_ROLE"), roles.relayer).into_transaction_request(),
    )
    .await?;
    send_direct(provider, deployer, clearing.grantRole(role("SETTLER_ROLE"), roles.settler).into_transaction_request())
        .await?;
    send_direct(provider, deployer, clearing.grantRole(role("ANCHOR_ROLE"), roles.settler).into_transaction_request())
        .await?;
    send_direct(provider, deployer, ticket.grantRole(role("VALIDATOR_ROLE"), roles.settler).into_transaction_request())
        .await?;
    send_direct(provider, deployer, insurance.grantRole(role("ORACLE_ROLE"), roles.settler).into_transaction_request())
        .await?;
    send_direct(provider, deployer, market.grantRole(role("CATALOG_ROLE"), roles.catalog).into_transaction_request())
        .await?;
    send_direct(provider, deployer, clearing.grantRole(role("CATALOG_ROLE"), roles.catalog).into_transaction_request())
        .await?;
    send_direct(
        provider,
        deployer,
        insurance.grantRole(role("CATALOG_ROLE"), roles.catalog).into_transaction_request(),
    )
    .await?;
    send_direct(
        provider,
        deployer,
        market.grantRole(role("CONCESSION_ISSUER_ROLE"), roles.attestor).into_transaction_request(),
    )
    .await?;

    // what the node really holds, immutables included
    let code_hashes = CodeHashes {
        fare: code_hash(provider, *fare.address()).await?,
        ticket: code_hash(provider, *ticket.address()).await?,
        market: code_hash(provider, m).await?,
        insurance: code_hash(provider, *insurance.address()).await?,
        clearing: code_hash(provider, *clearing.address()).await?,
    };
    Ok(Deployment {
        chain_id,
        deploy_block,
        fare: *fare.address(),
        ticket: *ticket.address(),
        market: m,
        insurance: *insurance.address(),
        clearing: *clearing.address(),
        code_hashes,
        roles: *roles,
    })
}

async fn code_hash(provider: &DynProvider, address: Address) -> Result<B256> {
    Ok(keccak256(provider.get_code_at(address).await.map_err(rpc)?))
}

/// The deployer gives up DEFAULT_ADMIN_ROLE on all five contracts, the only role
/// [`deploy_contracts`] left it (it is never one of the holders in production).
async fn renounce(provider: &DynProvider, deployer: &Sender, d: &Deployment) -> Result<()> {
    let me = deployer.from;
    send_direct(
        provider,
        deployer,
        FareToken::new(d.fare, provider).renounceRole(ADMIN_ROLE, me).into_transaction_request(),
    )
    .await?;
    send_direct(
        provider,
        deployer,
        Ticket::new(d.ticket, provider).renounceRole(ADMIN_ROLE, me).into_transaction_request(),
    )
    .await?;
    send_direct(
        provider,
        deployer,
        Clearing::new(d.clearing, provider).renounceRole(ADMIN_ROLE, me).into_transaction_request(),
    )
    .await?;
    send_direct(
        provider,
        deployer,
        DelayInsurance::new(d.insurance, provider).renounceRole(ADMIN_ROLE, me).into_transaction_request(),
    )
    .await?;
    send_direct(
        provider,
        deployer,
        PlanMarket::new(d.market, provider).renounceRole(ADMIN_ROLE, me).into_transaction_request(),
    )
    .await?;
    Ok(())
}
