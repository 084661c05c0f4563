//! kippu-chain against a real anvil (`contracts/node_modules/.bin/anvil`, from `npm ci`):
//! a deployment with separate keys and its verification, what each key can and cannot
//! do, rides on chain blocking refunds, idempotent ride batches and period closes, and
//! contract refusals coming back as typed [`ContractRejection`]s. Each test starts its own anvil.

use std::path::PathBuf;

use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use kippu_chain::anvil::{AnvilProcess, DEV_ADMIN_KEY};
use kippu_chain::bindings::{PlanMarket, Ticket};
use kippu_chain::{
    connect, deploy, deploy_single_key, verify_deployment, BundleSpec, Chain, ChainConfig, ChainError,
    ContractRejection, Deployment, HotKeys, InsuranceTerms, OperatorSpec, ProductSpec, RideRefusal, RoleHolders,
    Validity, MAX_RIDES_PER_TX,
};

/// anvil's second dev account (funded), the cold admin here.
const ADMIN_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const CHAIN_ID: u64 = 31337;
const FUND_WEI: u128 = 10u128.pow(18);
const BUNDLE: u32 = 100;
const PRODUCT: u32 = 10;
const OPERATOR: u32 = 1;

fn anvil_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contracts/node_modules/.bin/anvil")
}

fn terms() -> InsuranceTerms {
    InsuranceTerms { threshold_minutes: 15, voucher_value: 500, voucher_operator_id: 1, voucher_lifetime: 30 * 86_400 }
}

/// A production-style deployment: anvil's first key deploys, a second is the cold admin,
/// four fresh hot keys and a fresh attestor.
struct Net {
    anvil: AnvilProcess,
    deployer: PrivateKeySigner,
    admin: PrivateKeySigner,
    keys: HotKeys,
    attestor: PrivateKeySigner,
    d: Deployment,
}

impl Net {
    async fn start() -> Self {
        let anvil =
            AnvilProcess::spawn(&anvil_bin(), 0, CHAIN_ID, None).await.expect("anvil (run npm ci in contracts/)");
        let deployer: PrivateKeySigner = DEV_ADMIN_KEY.parse().unwrap();
        let admin: PrivateKeySigner = ADMIN_KEY.parse().unwrap();
        let keys = HotKeys {
            minter: PrivateKeySigner::random(),
            relayer: PrivateKeySigner::random(),
            settler: PrivateKeySigner::random(),
            catalog: PrivateKeySigner::random(),
        };
        let attestor = PrivateKeySigner::random();
        let roles = RoleHolders::new(admin.address(), attestor.address(), &keys);
        let d = deploy(&anvil.url(), &deployer, &roles, &terms(), 5000, FUND_WEI).await.unwrap();
        Self { anvil, deployer, admin, keys, attestor, d }
    }

    fn url(&self) -> String {
        self.anvil.url()
    }

    async fn chain(&self) -> Chain {
        connect(&self.url(), self.keys.clone(), self.d.clone()).await.unwrap()
    }

    fn reader(&self) -> DynProvider {
        ProviderBuilder::new().connect_http(self.url().parse().unwrap()).erased()
    }

    async fn has_role(&self, contract: Address, role: B256, who: Address) -> bool {
        // every contract has OpenZeppelin's AccessControl.hasRole; any binding encodes it
        PlanMarket::new(contract, self.reader()).hasRole(role, who).call().await.unwrap()
    }

    /// An operator, a refundable 2-ride product and a one-product bundle (catalog key).
    async fn list(&self, chain: &Chain) {
        chain.set_operator(&OperatorSpec { id: OPERATOR, payee: Address::repeat_byte(0x0b) }).await.unwrap();
        chain
            .list_product(&ProductSpec {
                id: PRODUCT,
                operator_id: OPERATOR,
                zone: 0,
                price: 300,
                validity: Validity::Fixed,
                duration: 86_400,
                activation_window: 0,
                rides: 2,
                insurance: false,
                transferable: true,
                refund_bps: 10_000,
                refund_window: 86_400,
            })
            .await
            .unwrap();
        chain.list_bundle(&BundleSpec { id: BUNDLE, product_ids: vec![PRODUCT], discount_bps: 0 }).await.unwrap();
    }

    /// A traveler with FARE (minter key) buys the bundle (relayer key); returns the ticket id.
    async fn buy(&self, chain: &Chain) -> u64 {
        let traveler = PrivateKeySigner::random();
        chain.mint_fare(traveler.address(), 1_000, B256::random()).await.unwrap();
        let next = Ticket::new(self.d.ticket, self.reader()).nextTicketId().call().await.unwrap();
        chain.buy_with_permit(B256::random(), &traveler, BUNDLE, 300, 0).await.unwrap();
        u64::try_from(next).unwrap()
    }

    async fn rides_left(&self, ticket: u64) -> u32 {
        Ticket::new(self.d.ticket, self.reader()).ticketData(U256::from(ticket)).call().await.unwrap().ridesLeft
    }

    async fn now(&self) -> u64 {
        self.reader().get_block_by_number(Default::default()).await.unwrap().unwrap().header.timestamp
    }
}

fn role(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

fn assert_unauthorized<T: std::fmt::Debug>(r: kippu_chain::Result<T>) {
    match r {
        Err(ChainError::Rejected(ContractRejection::Unauthorized { .. })) => {}
        other => panic!("expected an access-control revert, got {other:?}"),
    }
}

#[tokio::test]
async fn deploy_gives_each_key_exactly_its_roles_and_the_deployer_none() {
    let net = Net::start().await;
    let d = &net.d;
    verify_deployment(&net.url(), d).await.unwrap();
    assert_eq!(d.roles, RoleHolders::new(net.admin.address(), net.attestor.address(), &net.keys));

    let (admin, k) = (net.admin.address(), &net.keys);
    let expected: Vec<(Address, B256, Address)> = vec![
        (d.fare, B256::ZERO, admin),
        (d.fare, role("MINTER_ROLE"), k.minter.address()),
        (d.ticket, B256::ZERO, admin),
        (d.ticket, role("MINTER_ROLE"), d.market),
        (d.ticket, role("VALIDATOR_ROLE"), k.settler.address()),
        (d.clearing, B256::ZERO, admin),
        (d.clearing, role("MARKET_ROLE"), d.market),
        (d.clearing, role("SETTLER_ROLE"), k.settler.address()),
        (d.clearing, role("ANCHOR_ROLE"), k.settler.address()),
        (d.clearing, role("CATALOG_ROLE"), k.catalog.address()),
        (d.insurance, B256::ZERO, admin),
        (d.insurance, role("MARKET_ROLE"), d.market),
        (d.insurance, role("CLEARING_ROLE"), d.clearing),
        (d.insurance, role("ORACLE_ROLE"), k.settler.address()),
        (d.insurance, role("REDEEMER_ROLE"), k.relayer.address()),
        (d.insurance, role("CATALOG_ROLE"), k.catalog.address()),
        (d.market, B256::ZERO, admin),
        (d.market, role("PAUSER_ROLE"), admin),
        (d.market, role("RELAYER_ROLE"), k.relayer.address()),
        (d.market, role("CATALOG_ROLE"), k.catalog.address()),
        (d.market, role("CONCESSION_ISSUER_ROLE"), net.attestor.address()),
    ];
    let accounts = [
        net.deployer.address(),
        admin,
        k.minter.address(),
        k.relayer.address(),
        k.settler.address(),
        k.catalog.address(),
        net.attestor.address(),
        d.market,
        d.clearing,
    ];
    for (contract, r, holder) in &expected {
        for who in accounts {
            assert_eq!(net.has_role(*contract, *r, who).await, who == *holder, "{contract} role {r} of {who}");
        }
    }
    // anvil charges gas: each hot key was funded once
    let reader = net.reader();
    for hot in [k.minter.address(), k.relayer.address(), k.settler.address(), k.catalog.address()] {
        assert_eq!(reader.get_balance(hot).await.unwrap(), U256::from(FUND_WEI));
    }
}

#[tokio::test]
async fn verify_refuses_a_tampered_record() {
    let net = Net::start().await;
    let url = net.url();

    let mut d = net.d.clone();
    d.code_hashes.market = B256::repeat_byte(7);
    match verify_deployment(&url, &d).await {
        Err(ChainError::CodeMismatch { contract, address }) => assert_eq!((contract, address), ("market", d.market)),
        other => panic!("expected CodeMismatch, got {other:?}"),
    }

    let mut d = net.d.clone();
    d.chain_id = 1;
    match verify_deployment(&url, &d).await {
        Err(ChainError::WrongChain { expected, found }) => assert_eq!((expected, found), (1, CHAIN_ID)),
        other => panic!("expected WrongChain, got {other:?}"),
    }

    let mut d = net.d.clone();
    d.clearing = Address::repeat_byte(0x42);
    match verify_deployment(&url, &d).await {
        Err(ChainError::NoCode { contract, address }) => assert_eq!((contract, address), ("clearing", d.clearing)),
        other => panic!("expected NoCode, got {other:?}"),
    }

    // another contract's code at a recorded address is a mismatch too
    let mut d = net.d.clone();
    d.ticket = net.d.fare;
    assert!(matches!(verify_deployment(&url, &d).await, Err(ChainError::CodeMismatch { contract: "ticket", .. })));
}

#[tokio::test]
async fn each_hot_key_does_its_job_and_no_other() {
    let net = Net::start().await;
    let chain = net.chain().await;
    net.list(&chain).await; // catalog
    let ticket = net.buy(&chain).await; // minter, relayer
    chain.anchor_taps(B256::repeat_byte(1), 1).await.unwrap(); // settler

    // the same calls from the wrong keys: each hot key sits in another's seat
    let k = &net.keys;
    let swapped = HotKeys {
        minter: k.relayer.clone(),
        relayer: k.minter.clone(),
        settler: k.catalog.clone(),
        catalog: k.settler.clone(),
    };
    let wrong = connect(&net.url(), swapped, net.d.clone()).await.unwrap();
    assert_unauthorized(wrong.mint_fare(Address::repeat_byte(9), 1, B256::random()).await);
    let traveler = PrivateKeySigner::random();
    chain.mint_fare(traveler.address(), 1_000, B256::random()).await.unwrap();
    assert_unauthorized(wrong.buy_with_permit(B256::random(), &traveler, BUNDLE, 300, 0).await); // the minter cannot relay
    match wrong.refund(ticket).await {
        Err(ChainError::Rejected(ContractRejection::NotTicketHolder { ticket: t, caller })) => {
            assert_eq!((t, caller), (ticket, k.minter.address()))
        }
        other => panic!("expected NotTicketHolder, got {other:?}"),
    }
    assert_unauthorized(wrong.anchor_taps(B256::repeat_byte(2), 1).await);
    assert_unauthorized(wrong.record_rides(B256::repeat_byte(3), &[(ticket, net.now().await)]).await);
    assert_unauthorized(wrong.close_period(1).await);
    assert_unauthorized(wrong.list_bundle(&BundleSpec { id: 7, product_ids: vec![PRODUCT], discount_bps: 0 }).await);

    // the catalogue registers operators but cannot re-point a payee (the admin's call)
    assert_unauthorized(chain.set_operator(&OperatorSpec { id: OPERATOR, payee: Address::repeat_byte(0x66) }).await);

    // governance needs the cold admin's key, which the hot connection does not hold
    for r in [chain.set_quorum(2).await, chain.grant_oracle(Address::repeat_byte(5)).await] {
        match r {
            Err(ChainError::MissingKey { role, address }) => {
                assert_eq!((role, address), ("admin", net.admin.address()))
            }
            other => panic!("expected MissingKey, got {other:?}"),
        }
    }
    // and the deployer's key can no longer do anything
    let deployer = connect(&net.url(), HotKeys::single(net.deployer.clone()), net.d.clone()).await.unwrap();
    assert_unauthorized(deployer.mint_fare(Address::repeat_byte(9), 1, B256::random()).await);
    assert_unauthorized(deployer.list_bundle(&BundleSpec { id: 8, product_ids: vec![PRODUCT], discount_bps: 0 }).await);
    assert_eq!(chain.admin(), net.keys.settler.address());
}

#[tokio::test]
async fn a_recorded_ride_blocks_the_refund_and_a_replay_changes_nothing() {
    let net = Net::start().await;
    let chain = net.chain().await;
    net.list(&chain).await;
    let ridden = net.buy(&chain).await;
    let unused = net.buy(&chain).await;
    let root = B256::repeat_byte(0xab);
    let at = net.now().await;

    let out = chain.record_rides(root, &[(ridden, at)]).await.unwrap();
    assert!(out.tx.is_some());
    assert_eq!((out.recorded, out.refused.len(), out.already_recorded), (1, 0, false));
    assert_eq!(net.rides_left(ridden).await, 1);
    assert!(chain.rides_recorded(root).await.unwrap());

    // the relayer (and so the holder's refund button) cannot refund a ridden ticket
    match chain.refund(ridden).await {
        Err(ChainError::Rejected(ContractRejection::TicketAlreadyUsed { ticket })) => assert_eq!(ticket, ridden),
        other => panic!("expected TicketAlreadyUsed, got {other:?}"),
    }
    assert!(chain.refund(unused).await.unwrap() > 0);

    // the same batch again (a lost receipt, a second sender): reported, not counted
    let again = chain.record_rides(root, &[(ridden, at)]).await.unwrap();
    assert_eq!(again, kippu_chain::RidesOutcome { tx: None, recorded: 0, refused: vec![], already_recorded: true });
    assert_eq!(net.rides_left(ridden).await, 1);

    // refusals come back decoded, in time order
    let out = chain.record_rides(B256::repeat_byte(0xac), &[(ridden, at + 3_600), (999, at), (ridden, at)]).await;
    let out = out.unwrap();
    assert_eq!(out.recorded, 1);
    assert_eq!(out.refused, vec![(999, RideRefusal::UnknownTicket), (ridden, RideRefusal::InFuture)]);
    assert_eq!(net.rides_left(ridden).await, 0);
    let out = chain.record_rides(B256::repeat_byte(0xad), &[(ridden, at), (unused, at)]).await.unwrap();
    assert_eq!(out.refused, vec![(ridden, RideRefusal::NoRidesLeft), (unused, RideRefusal::UnknownTicket)]);
}

#[tokio::test]
async fn a_batch_holds_one_to_the_contracts_max_rides() {
    let net = Net::start().await;
    let chain = net.chain().await;
    let contract_max = Ticket::new(net.d.ticket, net.reader()).MAX_RIDES().call().await.unwrap();
    assert_eq!(U256::from(MAX_RIDES_PER_TX), contract_max);

    let at = net.now().await;
    let full: Vec<(u64, u64)> = (0..MAX_RIDES_PER_TX as u64).map(|i| (10_000 + i, at)).collect(); // never minted
    let out = chain.record_rides(B256::repeat_byte(0x5a), &full).await.unwrap();
    assert_eq!(out.refused.len(), MAX_RIDES_PER_TX);
    assert!(out.refused.iter().all(|&(_, why)| why == RideRefusal::UnknownTicket));

    let mut over = full.clone();
    over.push((1, at));
    for (rides, n) in [(&over[..], MAX_RIDES_PER_TX + 1), (&[][..], 0)] {
        match chain.record_rides(B256::repeat_byte(0x5b), rides).await {
            Err(ChainError::InvalidRideBatch { rides, max }) => assert_eq!((rides, max), (n, MAX_RIDES_PER_TX)),
            other => panic!("expected InvalidRideBatch, got {other:?}"),
        }
    }
    assert!(!chain.rides_recorded(B256::repeat_byte(0x5b)).await.unwrap());
}

#[tokio::test]
async fn a_period_close_names_its_period() {
    let net = Net::start().await;
    let chain = net.chain().await;
    assert_eq!(chain.current_period().await.unwrap(), 1);
    chain.close_period(1).await.unwrap();
    let wrong = |given, current| ContractRejection::WrongPeriod { given, current };
    match chain.close_period(1).await {
        Err(e) => {
            assert_eq!(e.rejection(), Some(&wrong(1, 2)));
            // logs keep the Solidity error's name and the periods
            assert_eq!(e.to_string(), "contract refused: WrongPeriod: period 1 is not the current period 2");
        }
        other => panic!("expected WrongPeriod, got {other:?}"),
    }
    let (_, closed) = chain.settle_period(2, &[]).await.unwrap();
    assert_eq!(closed, 2);
    assert_eq!(chain.settle_period(2, &[]).await.unwrap_err().rejection(), Some(&wrong(2, 3)));
    assert_eq!(chain.close_period(9).await.unwrap_err().rejection(), Some(&wrong(9, 3)));
    assert_eq!(chain.current_period().await.unwrap(), 3);
}

/// What a traveler's purchase, a top-up and a refund can run into comes back as the
/// contract's own refusal, with its arguments, including errors raised by a contract the
/// called one calls (FareToken's balance check under PlanMarket's purchase).
#[tokio::test]
async fn refusals_come_back_as_typed_rejections() {
    let net = Net::start().await;
    let chain = net.chain().await;
    net.list(&chain).await;
    let rejection = |r: kippu_chain::Result<_>| -> ContractRejection {
        match r {
            Err(ChainError::Rejected(r)) => r,
            other => panic!("expected a contract refusal, got {other:?}"),
        }
    };

    // a second mint of one card payment
    let traveler = PrivateKeySigner::random();
    let payment = B256::repeat_byte(0x11);
    chain.mint_fare(traveler.address(), 1_000, payment).await.unwrap();
    let r = rejection(chain.mint_fare(traveler.address(), 1_000, payment).await.map(drop));
    assert_eq!(r, ContractRejection::PaymentAlreadyMinted { payment_ref: payment });

    // a bundle that is not on sale, and a price above what the traveler agreed to
    assert_eq!(rejection(chain.quote(7).await.map(drop)), ContractRejection::UnknownBundle { bundle: 7 });
    let r = rejection(chain.buy_with_permit(B256::random(), &traveler, BUNDLE, 299, 0).await.map(drop));
    assert_eq!(r, ContractRejection::PriceAboveMax { price: U256::from(300), max_price: U256::from(299) });

    // no FARE: the market's transfer fails in FareToken
    let poor = PrivateKeySigner::random();
    let r = rejection(chain.buy_with_permit(B256::random(), &poor, BUNDLE, 300, 0).await.map(drop));
    assert_eq!(
        r,
        ContractRejection::InsufficientBalance {
            account: poor.address(),
            balance: U256::ZERO,
            needed: U256::from(300)
        }
    );

    // concessions: above the deployment's maximum (5000 bps), or signed by a non-issuer
    let r =
        chain.buy_with_permit_and_concession(B256::random(), &traveler, &net.attestor, BUNDLE, 300, 0, 1, 5001).await;
    assert_eq!(rejection(r.map(drop)), ContractRejection::ConcessionAboveMax { discount_bps: 5001, max_bps: 5000 });
    let stranger = PrivateKeySigner::random();
    let r = chain.buy_with_permit_and_concession(B256::random(), &traveler, &stranger, BUNDLE, 300, 0, 1, 1000).await;
    assert_eq!(rejection(r.map(drop)), ContractRejection::UntrustedConcessionIssuer { signer: stranger.address() });

    // a refunded ticket is burnt: refunding it again fails in Ticket
    let ticket = net.buy(&chain).await;
    assert!(chain.refund(ticket).await.unwrap() > 0);
    assert_eq!(rejection(chain.refund(ticket).await.map(drop)), ContractRejection::NonexistentToken { token: ticket });
}

#[tokio::test]
async fn single_key_mode_keeps_governance() {
    let anvil = AnvilProcess::spawn(&anvil_bin(), 0, CHAIN_ID, None).await.unwrap();
    let cfg = ChainConfig { rpc_url: anvil.url(), admin_key: DEV_ADMIN_KEY.into() };
    let chain = deploy_single_key(&cfg, &terms(), 5000).await.unwrap();
    let key: PrivateKeySigner = DEV_ADMIN_KEY.parse().unwrap();
    assert_eq!(chain.deployment().roles, RoleHolders::single(key.address()));
    verify_deployment(&cfg.rpc_url, chain.deployment()).await.unwrap();
    chain.set_quorum(2).await.unwrap();
    chain.grant_oracle(Address::repeat_byte(5)).await.unwrap();
    chain.grant_concession_issuer(Address::repeat_byte(6)).await.unwrap();
    // and the day-to-day roles
    chain.set_operator(&OperatorSpec { id: 1, payee: Address::repeat_byte(0x0b) }).await.unwrap();
    chain.mint_fare(Address::repeat_byte(9), 1, B256::random()).await.unwrap();
    chain.close_period(1).await.unwrap();
    let attached = Chain::attach(&cfg, chain.deployment().clone()).await.unwrap();
    attached.set_quorum(1).await.unwrap();
}
