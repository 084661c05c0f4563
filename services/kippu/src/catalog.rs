//! The consortium's catalogue — operators, products, bundles, delay-cover terms, concession
//! issuers — declared in a TOML file and applied with `kippu catalog apply FILE` (the catalogue
//! key lists it on chain, the database follows). Applying the same file twice changes nothing.
//! The demo's seed is such a catalogue too.

use alloy::primitives::Address;
use anyhow::Context;
use kippu_chain::{BundleSpec, Chain, OperatorSpec, ProductCover, ProductSpec, Validity};
use kippu_identity::Keystore;
use kippu_store::{Bundle, CoverTerms, Operator, Product, Store};
use serde::{Deserialize, Serialize};

/// Rides of an unlimited product.
pub const UNLIMITED: u32 = u32::MAX;

/// A whole catalogue.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Operators (the insurer is one too).
    #[serde(default)]
    pub operators: Vec<OperatorEntry>,
    /// The operator whose premium claim pays redeemed delay vouchers at each close.
    #[serde(default)]
    pub insurer: Option<u32>,
    /// Products.
    #[serde(default)]
    pub products: Vec<ProductEntry>,
    /// Delay-cover terms of insured products.
    #[serde(default)]
    pub cover_terms: Vec<CoverEntry>,
    /// Bundles.
    #[serde(default)]
    pub bundles: Vec<BundleEntry>,
    /// Concession issuers Kippu hosts (did:web under the public URL).
    #[serde(default)]
    pub issuers: Vec<IssuerEntry>,
}

/// An operator.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    /// On-chain id.
    pub id: u32,
    /// Slug (lower case, digits, `-`): in URLs, gate keys and topics.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// `rail`, `bus`, `taxi`, `insurer`…; vouchers of a kind are accepted by its operators.
    pub kind: String,
    /// Payout address.
    pub payee: Address,
}

/// A product.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProductEntry {
    /// On-chain id.
    pub id: u32,
    /// Selling operator.
    pub operator: u32,
    /// Display name.
    pub name: String,
    /// List price in FARE minor units.
    pub price: u64,
    /// `fixed` (valid `duration_secs` from the start), `rides` (a number of rides within
    /// `duration_secs`).
    pub validity: String,
    /// Validity length in seconds.
    pub duration_secs: u64,
    /// Rides; absent = unlimited.
    #[serde(default)]
    pub rides: Option<u32>,
    /// Delay insurance?
    #[serde(default)]
    pub insurance: bool,
    /// May the ticket change hands?
    #[serde(default = "yes")]
    pub transferable: bool,
    /// Share refunded for an unused ticket (basis points; 0 = no refunds).
    #[serde(default)]
    pub refund_bps: u16,
    /// How long after purchase a refund is possible (seconds).
    #[serde(default)]
    pub refund_window_secs: u64,
    /// GTFS route ids it is valid on (empty = the operator's whole network).
    #[serde(default)]
    pub routes: Vec<String>,
    /// GTFS fare zones it is valid in (empty = all).
    #[serde(default)]
    pub zones: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Delay-cover terms of one insured product.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CoverEntry {
    /// The insured product.
    pub product: u32,
    /// Minutes late that pay.
    pub threshold_minutes: u32,
    /// Kind of voucher (operators of that kind accept it).
    pub voucher_kind: String,
    /// Operator that issues and always accepts the voucher.
    pub voucher_operator: u32,
    /// Voucher value (minor units).
    pub voucher_value: u64,
    /// Voucher lifetime (seconds).
    pub voucher_lifetime_secs: u64,
    /// Vouchers per delayed run, all holders (0 = no cap).
    #[serde(default)]
    pub max_per_trip: u16,
    /// Vouchers per policy per UTC day (0 = no cap).
    #[serde(default)]
    pub max_per_day: u16,
}

/// A bundle.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    /// On-chain id.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// One line for travelers.
    pub description: String,
    /// Discount (basis points).
    pub discount_bps: u16,
    /// Products, in order.
    pub products: Vec<u32>,
    /// `list` (revenue split by list price) or `usage` (re-apportioned by rides at each close).
    #[serde(default = "list")]
    pub settlement: String,
}

fn list() -> String {
    "list".into()
}

/// A concession issuer Kippu hosts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerEntry {
    /// Slug (its DID is `did:web:<authority>:issuers:<slug>`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Concessions it is trusted for (`student`, `senior`, `disability`).
    pub concessions: Vec<String>,
}

impl Catalog {
    /// Reads a catalogue file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let c: Self = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        c.validate()?;
        Ok(c)
    }

    /// Consistency before anything is sent: every reference resolves, every value is in range.
    pub fn validate(&self) -> anyhow::Result<()> {
        let op = |id: u32| self.operators.iter().any(|o| o.id == id);
        for o in &self.operators {
            anyhow::ensure!(
                kippu_domain::topics::GatePath::new(&o.slug, "s", "g").is_some(),
                "operator {}: slug {:?} must be letters, digits, '-' or '_'",
                o.id,
                o.slug
            );
        }
        for p in &self.products {
            anyhow::ensure!(op(p.operator), "product {}: no operator {}", p.id, p.operator);
            anyhow::ensure!(
                matches!(p.validity.as_str(), "fixed" | "rides"),
                "product {}: validity must be fixed or rides",
                p.id
            );
            anyhow::ensure!(p.refund_bps <= 10_000, "product {}: refund_bps above 10000", p.id);
        }
        for c in &self.cover_terms {
            anyhow::ensure!(
                self.products.iter().any(|p| p.id == c.product && p.insurance),
                "cover terms: product {} is not an insurance product of this catalogue",
                c.product
            );
            anyhow::ensure!(op(c.voucher_operator), "cover terms of {}: no operator {}", c.product, c.voucher_operator);
        }
        for b in &self.bundles {
            anyhow::ensure!(!b.products.is_empty(), "bundle {}: no products", b.id);
            for p in &b.products {
                anyhow::ensure!(self.products.iter().any(|x| x.id == *p), "bundle {}: no product {p}", b.id);
            }
            anyhow::ensure!(
                matches!(b.settlement.as_str(), "list" | "usage"),
                "bundle {}: settlement list or usage",
                b.id
            );
        }
        if let Some(i) = self.insurer {
            anyhow::ensure!(op(i), "insurer: no operator {i}");
        }
        Ok(())
    }

    /// Lists everything on chain (catalogue key) and in the database. Idempotent.
    pub async fn apply(
        &self,
        chain: &Chain,
        store: &Store,
        keystore: &Keystore,
        authority: &str,
    ) -> anyhow::Result<()> {
        self.validate()?;
        for o in &self.operators {
            chain.set_operator(&OperatorSpec { id: o.id, payee: o.payee }).await?;
            store
                .upsert_operator(&Operator {
                    id: o.id,
                    slug: o.slug.clone(),
                    name: o.name.clone(),
                    kind: o.kind.clone(),
                    payee: o.payee,
                })
                .await?;
            if o.kind != "insurer" {
                // Vouchers of a kind (e.g. taxi) are accepted by any operator of that kind.
                chain.set_operator_category(o.id, &o.kind).await?;
            }
        }
        if let Some(i) = self.insurer {
            chain.set_insurer(i).await?;
        }
        for p in &self.products {
            let rides = p.rides.unwrap_or(UNLIMITED);
            chain
                .list_product(&ProductSpec {
                    id: p.id,
                    operator_id: p.operator,
                    zone: 0,
                    price: u128::from(p.price),
                    validity: if p.validity == "rides" { Validity::Rides } else { Validity::Fixed },
                    duration: p.duration_secs,
                    activation_window: 0,
                    rides,
                    insurance: p.insurance,
                    transferable: p.transferable,
                    refund_bps: p.refund_bps,
                    refund_window: p.refund_window_secs,
                })
                .await?;
            store
                .upsert_product(&Product {
                    id: p.id,
                    operator_id: p.operator,
                    name: p.name.clone(),
                    price: i64::try_from(p.price)?,
                    duration_secs: i64::try_from(p.duration_secs)?,
                    rides,
                    insurance: p.insurance,
                    routes: p.routes.clone(),
                    zones: p.zones.clone(),
                })
                .await?;
        }
        for t in &self.cover_terms {
            chain
                .set_product_terms(
                    t.product,
                    &ProductCover {
                        threshold_minutes: t.threshold_minutes,
                        voucher_value: u128::from(t.voucher_value),
                        voucher_operator_id: t.voucher_operator,
                        voucher_lifetime: t.voucher_lifetime_secs,
                        voucher_kind: t.voucher_kind.clone(),
                        max_per_trip: t.max_per_trip,
                        max_per_day: t.max_per_day,
                    },
                )
                .await?;
            store
                .upsert_cover_terms(&CoverTerms {
                    product_id: t.product,
                    threshold_minutes: t.threshold_minutes,
                    voucher_kind: t.voucher_kind.clone(),
                    voucher_operator_id: t.voucher_operator,
                    voucher_value: i64::try_from(t.voucher_value)?,
                    voucher_lifetime_secs: i64::try_from(t.voucher_lifetime_secs)?,
                    max_per_trip: t.max_per_trip,
                    max_per_day: t.max_per_day,
                })
                .await?;
        }
        for b in &self.bundles {
            chain
                .list_bundle(&BundleSpec { id: b.id, product_ids: b.products.clone(), discount_bps: b.discount_bps })
                .await?;
            store
                .upsert_bundle(&Bundle {
                    id: b.id,
                    name: b.name.clone(),
                    description: b.description.clone(),
                    discount_bps: b.discount_bps,
                    product_ids: b.products.clone(),
                })
                .await?;
            store.set_bundle_settlement(b.id, &b.settlement).await?;
        }
        let existing: Vec<String> = store.issuers().await?.into_iter().map(|i| i.slug).collect();
        for i in &self.issuers {
            let did = kippu_credentials::did_web(authority, &["issuers", &i.slug]);
            if !existing.contains(&i.slug) {
                let key = kippu_credentials::IssuerKey::generate();
                let sealed_seed = keystore.seal_seed(&did, key.seed())?;
                store
                    .insert_issuer(&kippu_store::IssuerRow {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_catalogue_parses_and_validates() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/catalog.example.toml");
        let c = Catalog::from_file(&path).unwrap();
        assert!(!c.operators.is_empty() && !c.bundles.is_empty());
    }

    #[test]
    fn a_dangling_reference_is_refused_before_anything_is_sent() {
        let mut c: Catalog = toml::from_str(
            "[[operators]]\nid = 1\nslug = \"metro\"\nname = \"M\"\nkind = \"rail\"\npayee = \"0x0000000000000000000000000000000000000001\"\n\
             [[products]]\nid = 10\noperator = 1\nname = \"P\"\nprice = 100\nvalidity = \"fixed\"\nduration_secs = 60\n",
        )
        .unwrap();
        c.validate().unwrap();
        c.bundles.push(BundleEntry {
            id: 1,
            name: "B".into(),
            description: String::new(),
            discount_bps: 0,
            products: vec![11],
            settlement: list(),
        });
        assert!(c.validate().unwrap_err().to_string().contains("no product 11"));
    }
}
