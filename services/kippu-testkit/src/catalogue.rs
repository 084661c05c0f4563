//! A small consortium for tests, written the way `kippu catalog apply` writes one: operators,
//! products, delay-cover terms, bundles (with their settlement rule), hosted concession
//! issuers and gates go into the store through its public functions, and what only the chain
//! knows of a product (refund terms) into the [`FakeChain`]. [`Catalogue::demo`] is the demo
//! consortium of `kippu dev` (same ids, names, prices and terms).

use alloy_primitives::{keccak256, Address};
use kippu_domain::model::{Bundle, CoverTerms, GateRow, IssuerRow, Operator, Product};
use kippu_identity::Keystore;
use kippu_store::Store;

use crate::chain::{ChainTerms, FakeChain};
use crate::SetupResult;

/// Metro Rail's operator id.
pub const METRO: u32 = 1;
/// Bull Runner Bus's operator id.
pub const BUS: u32 = 2;
/// City Taxi's operator id.
pub const TAXI: u32 = 3;
/// Kippu Mutual's (the insurer's) operator id.
pub const INSURER: u32 = 4;
/// "Explorer 3 days": metro 3-day pass, bus day pass, taxi ride, 3-day delay cover; 15 % off.
pub const EXPLORER: u32 = 1;
/// "Commuter": 10 metro rides, bus day pass, day cover; 10 % off, settled by usage.
pub const COMMUTER: u32 = 2;
/// Products of the demo catalogue.
pub const METRO_3_DAY: u32 = 101;
/// 10 metro rides (refundable: 80 % within a day).
pub const METRO_10_RIDES: u32 = 102;
/// Bus day pass.
pub const BUS_DAY: u32 = 201;
/// One taxi ride (refundable: 80 % within a day).
pub const TAXI_RIDE: u32 = 301;
/// Delay cover, 3 days.
pub const COVER_3_DAYS: u32 = 401;
/// Delay cover, 1 day.
pub const COVER_1_DAY: u32 = 402;
/// Price of [`EXPLORER`]: (1800 + 600 + 1500 + 300) × 85 %.
pub const EXPLORER_PRICE: u128 = 3_570;
/// Price of [`COMMUTER`]: (2000 + 600 + 150) × 90 %.
pub const COMMUTER_PRICE: u128 = 2_475;

const DAY: i64 = 86_400;

/// A concession issuer Kippu hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerEntry {
    /// Slug (`/issuers/{slug}`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Concessions it is trusted for.
    pub concessions: Vec<String>,
}

/// A whole catalogue.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// Operators (the insurer is one too).
    pub operators: Vec<Operator>,
    /// The operator whose premium claim pays redeemed delay vouchers at each close.
    pub insurer: Option<u32>,
    /// Products, with what only the chain knows of them.
    pub products: Vec<(Product, ChainTerms)>,
    /// Delay-cover terms of insured products.
    pub cover_terms: Vec<CoverTerms>,
    /// Bundles and their settlement rule (`list` or `usage`).
    pub bundles: Vec<(Bundle, String)>,
    /// Hosted concession issuers.
    pub issuers: Vec<IssuerEntry>,
    /// Registered gates.
    pub gates: Vec<GateRow>,
}

/// The payout address the demo gives an operator.
pub fn payee(slug: &str) -> Address {
    Address::from_slice(&keccak256(format!("kippu-demo-payee:{slug}"))[12..])
}

impl Catalogue {
    /// The demo consortium: Metro Rail, Bull Runner Bus, City Taxi and Kippu Mutual; six
    /// products, two bundles, two issuers (`usf`, `tampa-welfare`) and three gates.
    pub fn demo() -> Self {
        let op = |id, slug: &str, name: &str, kind: &str| Operator {
            id,
            slug: slug.into(),
            name: name.into(),
            kind: kind.into(),
            payee: payee(slug),
        };
        let product =
            |id: u32, operator_id: u32, name: &str, price: i64, days: i64, rides: Option<u32>, insurance: bool| {
                let ride_product = rides.is_some() && !insurance;
                (
                    Product {
                        id,
                        operator_id,
                        name: name.into(),
                        price,
                        duration_secs: days * DAY,
                        rides: rides.unwrap_or(u32::MAX),
                        insurance,
                        routes: if operator_id == BUS {
                            ["A", "B", "C", "D", "E", "F"].map(str::to_owned).to_vec()
                        } else {
                            vec![]
                        },
                        zones: vec![],
                    },
                    // Unused ride tickets refund 80 % within a day; passes and cover do not refund.
                    ChainTerms {
                        transferable: true,
                        refund_bps: if ride_product { 8_000 } else { 0 },
                        refund_window_secs: DAY as u64,
                    },
                )
            };
        let gate = |key: &str, operator_id, station: &str, stop: Option<&str>, on_board| GateRow {
            gate_key: key.into(),
            operator_id,
            station: station.into(),
            stop_id: stop.map(str::to_owned),
            on_board,
        };
        Self {
            operators: vec![
                op(METRO, "metro", "Metro Rail", "rail"),
                op(BUS, "bus", "Bull Runner Bus", "bus"),
                op(TAXI, "taxi", "City Taxi", "taxi"),
                op(INSURER, "insurer", "Kippu Mutual", "insurer"),
            ],
            insurer: Some(INSURER),
            products: vec![
                product(METRO_3_DAY, METRO, "Metro 3-day pass", 1_800, 3, None, false),
                product(METRO_10_RIDES, METRO, "Metro 10 rides", 2_000, 30, Some(10), false),
                product(BUS_DAY, BUS, "Bus day pass", 600, 1, None, false),
                product(TAXI_RIDE, TAXI, "Taxi ride credit", 1_500, 7, Some(1), false),
                product(COVER_3_DAYS, INSURER, "Delay cover, 3 days", 300, 3, Some(1), true),
                product(COVER_1_DAY, INSURER, "Delay cover, 1 day", 150, 1, Some(1), true),
            ],
            cover_terms: vec![
                CoverTerms {
                    product_id: COVER_3_DAYS,
                    threshold_minutes: 15,
                    voucher_kind: "taxi".into(),
                    voucher_operator_id: TAXI,
                    voucher_value: 1_500,
                    voucher_lifetime_secs: 7 * DAY,
                    max_per_trip: 0,
                    max_per_day: 2,
                },
                CoverTerms {
                    product_id: COVER_1_DAY,
                    threshold_minutes: 20,
                    voucher_kind: "taxi".into(),
                    voucher_operator_id: TAXI,
                    voucher_value: 800,
                    voucher_lifetime_secs: 3 * DAY,
                    max_per_trip: 25,
                    max_per_day: 1,
                },
            ],
            bundles: vec![
                (
                    Bundle {
                        id: EXPLORER,
                        name: "Explorer 3 days".into(),
                        description: "3 days of metro, a bus day, a taxi ride and delay cover.".into(),
                        discount_bps: 1_500,
                        product_ids: vec![METRO_3_DAY, BUS_DAY, TAXI_RIDE, COVER_3_DAYS],
                    },
                    "list".into(),
                ),
                (
                    Bundle {
                        id: COMMUTER,
                        name: "Commuter".into(),
                        description: "10 metro rides, a bus day and a day of delay cover; metro and bus share it by the rides taken.".into(),
                        discount_bps: 1_000,
                        product_ids: vec![METRO_10_RIDES, BUS_DAY, COVER_1_DAY],
                    },
                    "usage".into(),
                ),
            ],
            issuers: vec![
                IssuerEntry {
                    slug: "usf".into(),
                    name: "University of South Florida, Student Services".into(),
                    concessions: vec!["student".into()],
                },
                IssuerEntry {
                    slug: "tampa-welfare".into(),
                    name: "City of Tampa Welfare Office".into(),
                    concessions: vec!["senior".into(), "disability".into()],
                },
            ],
            gates: vec![
                gate("metro/central/g1", METRO, "Central Station", None, false),
                gate("bus/usf-library/g1", BUS, "USF Library stop", Some("102"), false),
                gate("bus/bull-runner-7/onboard", BUS, "Bull Runner bus 7 (on board)", None, true),
            ],
        }
    }

    /// Writes the catalogue into `store` and lists what only the chain keeps on `chain`, as
    /// `kippu catalog apply` does; issuers get `did:web` DIDs under `authority` and keys
    /// derived from their slug (sealed by `keystore`). Applying it twice changes nothing.
    pub async fn apply(
        &self,
        store: &Store,
        chain: &FakeChain,
        keystore: &Keystore,
        authority: &str,
    ) -> SetupResult<()> {
        for o in &self.operators {
            store.upsert_operator(o).await?;
        }
        if let Some(i) = self.insurer {
            chain.set_insurer(i).await;
        }
        for (p, terms) in &self.products {
            store.upsert_product(p).await?;
            chain.set_product_terms(p.id, *terms).await;
        }
        for t in &self.cover_terms {
            store.upsert_cover_terms(t).await?;
        }
        for (b, settle_by) in &self.bundles {
            store.upsert_bundle(b).await?;
            store.set_bundle_settlement(b.id, settle_by).await?;
        }
        let existing: Vec<String> = store.issuers().await?.into_iter().map(|i| i.slug).collect();
        for i in &self.issuers {
            let did = kippu_credentials::did_web(authority, &["issuers", &i.slug]);
            if !existing.contains(&i.slug) {
                // A key of its own per issuer, the same in every run (snapshots show its DID document).
                let key =
                    kippu_credentials::IssuerKey::from_seed(keccak256(format!("kippu-testkit issuer:{}", i.slug)).0);
                let sealed_seed = keystore.seal_seed(&did, key.seed())?;
                store
                    .insert_issuer(&IssuerRow {
                        slug: i.slug.clone(),
                        did: did.clone(),
                        name: i.name.clone(),
                        sealed_seed,
                    })
                    .await?;
            }
            for c in &i.concessions {
                store.trust(&did, c).await?;
            }
        }
        for g in &self.gates {
            store.upsert_gate(g).await?;
        }
        Ok(())
    }

    /// An operator by slug.
    pub fn operator(&self, slug: &str) -> Option<&Operator> {
        self.operators.iter().find(|o| o.slug == slug)
    }
}
