//! The demo consortium: a metro, a bus operator (running the real USF Bull
//! Runner timetable), a taxi company and an insurer; their products, two
//! bundles, two simulated gates and two demo travelers with custodial keys.

use alloy::primitives::{keccak256, Address};
use kippu_chain::{BundleSpec, Chain, InsuranceTerms, OperatorSpec, ProductCover, ProductSpec, Validity};
use kippu_identity::{deterministic_demo_key, did_pkh, Keystore};
use kippu_store::{Bundle, CoverTerms, GateRow, Operator, Product, Store, Traveler};

/// Operator ids of the demo.
pub const METRO: u32 = 1;
/// Bus operator id.
pub const BUS: u32 = 2;
/// Taxi operator id.
pub const TAXI: u32 = 3;
/// Insurer id.
pub const INSURER: u32 = 4;

const DAY: i64 = 86_400;
const UNLIMITED: u32 = u32::MAX;

/// The demo gates: `(key, operator, station, GTFS stop, on board)`. The library stop's gate
/// stands at Bull Runner stop 102 ("Library LIB"); the bus's on-board validator names the
/// run its vehicle works with each scan instead.
pub const GATES: [(&str, u32, &str, Option<&str>, bool); 3] = [
    ("metro/central/g1", METRO, "Central Station", None, false),
    ("bus/usf-library/g1", BUS, "USF Library stop", Some("102"), false),
    ("bus/bull-runner-7/onboard", BUS, "Bull Runner bus 7 (on board)", None, true),
];

/// Every route of the Bull Runner timetable: the bus products are sold for the whole campus network.
pub const BUS_ROUTES: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

/// Demo travelers: `(label, name, welcome FARE in minor units)`.
pub const TRAVELERS: [(&str, &str, u128); 2] = [("aiko", "Aiko Tanaka", 5_000), ("ben", "Ben Okafor", 0)];

fn payee(label: &str) -> Address {
    Address::from_slice(&keccak256(format!("kippu-demo-payee:{label}"))[12..])
}

fn operators() -> Vec<Operator> {
    vec![
        Operator {
            id: METRO,
            slug: "metro".into(),
            name: "Metro Rail".into(),
            kind: "rail".into(),
            payee: payee("metro"),
        },
        Operator {
            id: BUS,
            slug: "bus".into(),
            name: "Bull Runner Bus".into(),
            kind: "bus".into(),
            payee: payee("bus"),
        },
        Operator { id: TAXI, slug: "taxi".into(), name: "City Taxi".into(), kind: "taxi".into(), payee: payee("taxi") },
        Operator {
            id: INSURER,
            slug: "insurer".into(),
            name: "Kippu Mutual".into(),
            kind: "insurer".into(),
            payee: payee("insurer"),
        },
    ]
}

fn products() -> Vec<Product> {
    let p = |id, operator_id, name: &str, price, days, rides, insurance| Product {
        id,
        operator_id,
        name: name.into(),
        price,
        duration_secs: days * DAY,
        rides,
        insurance,
        routes: if operator_id == BUS { BUS_ROUTES.map(str::to_owned).to_vec() } else { vec![] },
        zones: vec![],
    };
    vec![
        p(101, METRO, "Metro 3-day pass", 1_800, 3, UNLIMITED, false),
        p(102, METRO, "Metro 10 rides", 2_000, 30, 10, false),
        p(201, BUS, "Bus day pass", 600, 1, UNLIMITED, false),
        p(301, TAXI, "Taxi ride credit", 1_500, 7, 1, false),
        p(401, INSURER, "Delay cover, 3 days", 300, 3, 1, true),
        p(402, INSURER, "Delay cover, 1 day", 150, 1, 1, true),
    ]
}

/// What each insured product pays: the 3-day cover follows the deployment's configured terms
/// (so `insurance.*` settings apply), the cheaper day cover pays less, later and more sparingly.
fn cover_terms(base: &InsuranceTerms) -> Vec<CoverTerms> {
    vec![
        CoverTerms {
            product_id: 401,
            threshold_minutes: base.threshold_minutes,
            voucher_kind: "taxi".into(),
            voucher_operator_id: TAXI,
            voucher_value: base.voucher_value as i64,
            voucher_lifetime_secs: base.voucher_lifetime as i64,
            max_per_trip: 0,
            max_per_day: 2,
        },
        CoverTerms {
            product_id: 402,
            threshold_minutes: base.threshold_minutes + 5,
            voucher_kind: "taxi".into(),
            voucher_operator_id: TAXI,
            voucher_value: 800,
            voucher_lifetime_secs: 3 * DAY,
            max_per_trip: 25,
            max_per_day: 1,
        },
    ]
}

fn bundles() -> Vec<Bundle> {
    vec![
        Bundle {
            id: 1,
            name: "Explorer 3 days".into(),
            description: "3 days of metro, a bus day, a taxi ride and delay cover.".into(),
            discount_bps: 1_500,
            product_ids: vec![101, 201, 301, 401],
        },
        Bundle {
            id: 2,
            name: "Commuter".into(),
            description:
                "10 metro rides, a bus day and a day of delay cover; metro and bus share it by the rides taken.".into(),
            discount_bps: 1_000,
            product_ids: vec![102, 201, 402],
        },
    ]
}

/// Lists the catalogue on chain and in the database, and creates the demo travelers.
pub async fn seed(
    chain: &Chain,
    store: &Store,
    keystore: &Keystore,
    base_terms: &InsuranceTerms,
) -> anyhow::Result<()> {
    for o in operators() {
        chain.set_operator(&OperatorSpec { id: o.id, payee: o.payee }).await?;
        store.upsert_operator(&o).await?;
    }
    // Redeemed delay vouchers are paid out of the insurer's premium claim at each close.
    chain.set_insurer(INSURER).await?;
    for p in products() {
        chain
            .list_product(&ProductSpec {
                id: p.id,
                operator_id: p.operator_id,
                zone: 0,
                price: p.price as u128,
                validity: if p.rides == UNLIMITED || p.insurance { Validity::Fixed } else { Validity::Rides },
                duration: p.duration_secs as u64,
                activation_window: 0,
                rides: p.rides,
                insurance: p.insurance,
                transferable: true,
                // Unused ride tickets refund 80 % within a day of purchase; passes and cover do not refund.
                refund_bps: if p.rides != UNLIMITED && !p.insurance { 8_000 } else { 0 },
                refund_window: DAY as u64,
            })
            .await?;
        store.upsert_product(&p).await?;
    }
    // Taxi vouchers are accepted by any operator in the taxi category, not only City Taxi.
    chain.set_operator_category(TAXI, "taxi").await?;
    for t in cover_terms(base_terms) {
        chain
            .set_product_terms(
                t.product_id,
                &ProductCover {
                    threshold_minutes: t.threshold_minutes,
                    voucher_value: t.voucher_value as u128,
                    voucher_operator_id: t.voucher_operator_id,
                    voucher_lifetime: t.voucher_lifetime_secs as u64,
                    voucher_kind: t.voucher_kind.clone(),
                    max_per_trip: t.max_per_trip,
                    max_per_day: t.max_per_day,
                },
            )
            .await?;
        store.upsert_cover_terms(&t).await?;
    }
    for b in bundles() {
        chain
            .list_bundle(&BundleSpec { id: b.id, product_ids: b.product_ids.clone(), discount_bps: b.discount_bps })
            .await?;
        store.upsert_bundle(&b).await?;
    }
    // A commuter's metro rides and bus day share its price by the rides taken: the
    // operator that carried the traveler more is paid more at the period's close.
    store.set_bundle_settlement(2, "usage").await?;
    // The bus operator's real timetable, through the same import operators use.
    let timetable = kippu_gtfs::import_timetable(crate::stack::TIMETABLE)?;
    let summary = serde_json::to_string(&timetable.summary)?;
    {
        use base64::Engine as _;
        let feed = base64::engine::general_purpose::STANDARD.encode(crate::stack::TIMETABLE);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        store.save_timetable("bus", &summary, &feed, now).await?;
    }
    for (key, operator_id, station, stop, on_board) in GATES {
        store
            .upsert_gate(&GateRow {
                gate_key: key.into(),
                operator_id,
                station: station.into(),
                stop_id: stop.map(str::to_owned),
                on_board,
            })
            .await?;
    }
    let chain_id = chain.deployment().chain_id;
    for (i, (label, name, welcome)) in TRAVELERS.iter().enumerate() {
        let key = deterministic_demo_key(label);
        let address = key.address();
        let sealed = keystore.seal(&key)?;
        store
            .upsert_traveler(&Traveler {
                address,
                did: did_pkh(chain_id, address),
                display_name: (*name).into(),
                sealed_key: Some(sealed.to_string()),
                created_at: i as i64,
            })
            .await?;
        let welcome_ref = keccak256(format!("kippu-demo-welcome:{label}:{:#x}", chain.deployment().fare));
        if *welcome > 0 && !chain.payment_minted(welcome_ref).await? {
            chain.mint_fare(address, *welcome, welcome_ref).await?;
        }
    }
    Ok(())
}

/// Demo concession issuers Kippu hosts: `(slug, name, concessions it is trusted for)`.
pub const ISSUERS: [(&str, &str, &[&str]); 2] = [
    ("usf", "University of South Florida, Student Services", &["student"]),
    ("tampa-welfare", "City of Tampa Welfare Office", &["senior", "disability"]),
];

/// Hosts the demo issuers (fresh Ed25519 keys, sealed) and puts them on the trust list.
pub async fn seed_issuers(store: &Store, keystore: &Keystore, authority: &str) -> anyhow::Result<()> {
    let existing: Vec<String> = store.issuers().await?.into_iter().map(|i| i.slug).collect();
    for (slug, name, concessions) in ISSUERS {
        let did = kippu_credentials::did_web(authority, &["issuers", slug]);
        if !existing.iter().any(|s| s == slug) {
            let key = kippu_credentials::IssuerKey::generate();
            let sealed_seed = keystore.seal_seed(&did, key.seed())?;
            store
                .insert_issuer(&kippu_store::IssuerRow {
                    slug: slug.into(),
                    did: did.clone(),
                    name: name.into(),
                    sealed_seed,
                })
                .await?;
        }
        for c in concessions {
            store.trust(&did, c).await?;
        }
    }
    Ok(())
}
