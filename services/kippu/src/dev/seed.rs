//! The demo consortium: a metro, a bus operator (running the real USF Bull Runner timetable), a
//! taxi company and an insurer; their products, two bundles, three simulated gates and two demo
//! travelers with custodial keys. The catalogue goes through the same [`Catalog::apply`] an
//! operator's `kippu catalog apply` does.

use alloy::primitives::{keccak256, Address};
use kippu_chain::Chain;
use kippu_identity::{deterministic_demo_key, did_pkh, Keystore};
use kippu_store::{GateRow, Store, Traveler};

use crate::catalog::{BundleEntry, Catalog, CoverEntry, IssuerEntry, OperatorEntry, ProductEntry};

/// The bundled timetable of the demo bus operator.
pub const TIMETABLE: &[u8] = include_bytes!("data/bullrunner-gtfs.zip");

/// Operator ids of the demo.
pub const METRO: u32 = 1;
/// Bus operator id.
pub const BUS: u32 = 2;
/// Taxi operator id.
pub const TAXI: u32 = 3;
/// Insurer id.
pub const INSURER: u32 = 4;

const DAY: u64 = 86_400;

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

/// The demo's catalogue. `threshold`, `voucher_value` and `voucher_lifetime` are the configured
/// insurance terms, which the 3-day cover follows (so `insurance.*` settings apply); the cheaper
/// day cover pays less, later and more sparingly.
pub fn catalog(threshold: u32, voucher_value: u64, voucher_lifetime: u64) -> Catalog {
    let op = |id, slug: &str, name: &str, kind: &str| OperatorEntry {
        id,
        slug: slug.into(),
        name: name.into(),
        kind: kind.into(),
        payee: payee(slug),
    };
    let product =
        |id: u32, operator: u32, name: &str, price: u64, days: u64, rides: Option<u32>, insurance: bool| ProductEntry {
            id,
            operator,
            name: name.into(),
            price,
            // Passes and cover are valid for their days; ride products for their rides within them.
            validity: if rides.is_some() && !insurance { "rides".into() } else { "fixed".into() },
            duration_secs: days * DAY,
            rides,
            insurance,
            transferable: true,
            // Unused ride tickets refund 80 % within a day of purchase; passes and cover do not refund.
            refund_bps: if rides.is_some() && !insurance { 8_000 } else { 0 },
            refund_window_secs: DAY,
            routes: if operator == BUS { BUS_ROUTES.map(str::to_owned).to_vec() } else { vec![] },
            zones: vec![],
        };
    Catalog {
        operators: vec![
            op(METRO, "metro", "Metro Rail", "rail"),
            op(BUS, "bus", "Bull Runner Bus", "bus"),
            op(TAXI, "taxi", "City Taxi", "taxi"),
            op(INSURER, "insurer", "Kippu Mutual", "insurer"),
        ],
        // Redeemed delay vouchers are paid out of the insurer's premium claim at each close.
        insurer: Some(INSURER),
        products: vec![
            product(101, METRO, "Metro 3-day pass", 1_800, 3, None, false),
            product(102, METRO, "Metro 10 rides", 2_000, 30, Some(10), false),
            product(201, BUS, "Bus day pass", 600, 1, None, false),
            product(301, TAXI, "Taxi ride credit", 1_500, 7, Some(1), false),
            product(401, INSURER, "Delay cover, 3 days", 300, 3, Some(1), true),
            product(402, INSURER, "Delay cover, 1 day", 150, 1, Some(1), true),
        ],
        cover_terms: vec![
            CoverEntry {
                product: 401,
                threshold_minutes: threshold,
                voucher_kind: "taxi".into(),
                voucher_operator: TAXI,
                voucher_value,
                voucher_lifetime_secs: voucher_lifetime,
                max_per_trip: 0,
                max_per_day: 2,
            },
            CoverEntry {
                product: 402,
                threshold_minutes: threshold + 5,
                voucher_kind: "taxi".into(),
                voucher_operator: TAXI,
                voucher_value: 800,
                voucher_lifetime_secs: 3 * DAY,
                max_per_trip: 25,
                max_per_day: 1,
            },
        ],
        bundles: vec![
            BundleEntry {
                id: 1,
                name: "Explorer 3 days".into(),
                description: "3 days of metro, a bus day, a taxi ride and delay cover.".into(),
                discount_bps: 1_500,
                products: vec![101, 201, 301, 401],
                settlement: "list".into(),
            },
            // A commuter's metro rides and bus day share its price by the rides taken: the
            // operator that carried the traveler more is paid more at the period's close.
            BundleEntry {
                id: 2,
                name: "Commuter".into(),
                description:
                    "10 metro rides, a bus day and a day of delay cover; metro and bus share it by the rides taken."
                        .into(),
                discount_bps: 1_000,
                products: vec![102, 201, 402],
                settlement: "usage".into(),
            },
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
    }
}

/// The demo's organisations and staff: the consortium's admin and auditor, one member of
/// staff per operator, issuer and the insurer, all with the demo's public password.
async fn seed_staff(store: &Store) -> anyhow::Result<()> {
    use kippu_app::staff::{accept_invitation, add_staff_with_password, catalogue_organisations, first_admin};
    use kippu_domain::staff::{Role, CONSORTIUM};
    let now = crate::clock::now();
    let pw = super::DEV_PORTAL_PASSWORD;
    let admin = first_admin(store, super::DEV_ADMIN_EMAIL, now).await?;
    accept_invitation(store, &admin.secret, pw, now).await?;
    add_staff_with_password(store, CONSORTIUM, super::DEV_AUDITOR_EMAIL, Role::Auditor, pw, now)
        .await
        .map_err(anyhow::Error::msg)?;
    for o in catalogue_organisations(&store.operators().await?, &store.issuers().await?, now) {
        store.add_organisation(&o).await?;
        add_staff_with_password(store, &o.slug, &super::dev_staff_email(&o.slug), Role::Staff, pw, now)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// Seeds the demo: the catalogue, the bus timetable, the gates and the travelers.
pub async fn seed(
    chain: &Chain,
    store: &Store,
    keystore: &Keystore,
    catalog: &Catalog,
    authority: &str,
) -> anyhow::Result<()> {
    catalog.apply(chain, store, keystore, authority).await?;
    // The bus operator's real timetable, through the same import operators use.
    let timetable = kippu_gtfs::import_timetable(TIMETABLE)?;
    let summary = serde_json::to_string(&timetable.summary)?;
    {
        use base64::Engine as _;
        let feed = base64::engine::general_purpose::STANDARD.encode(TIMETABLE);
        store.save_timetable("bus", &summary, &feed, crate::clock::now()).await?;
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
    seed_staff(store).await?;
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
