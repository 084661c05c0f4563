//! Support for Kippu's end-to-end tests (`trip.rs`, `identity.rs`, `browser.rs`):
//! a platform configuration on ephemeral ports, a cookie-keeping HTTP client, staff
//! sign-in and API tokens, and a fresh PostgreSQL database per run for the production-parts
//! variants.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use kippu::Config;
use kippu_domain::staff::Permission;
use serde_json::Value;

/// Unix seconds.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The whole platform on ephemeral ports with a throw-away data directory;
/// SQLite and the embedded broker unless URLs are given.
pub fn config(tag: &str, database_url: Option<String>, mqtt_url: Option<String>) -> Config {
    let d = Config::default();
    Config {
        data_dir: std::env::temp_dir().join(format!(
            "kippu-e2e-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        )),
        web: kippu::config::WebConfig { bind: "127.0.0.1:0".into(), dev_routes: Some(true), ..d.web },
        chain: kippu::config::ChainSection {
            anvil_port: 0,
            anvil_bin: repo().join("contracts/node_modules/.bin/anvil"),
            ..d.chain
        },
        mqtt: kippu::config::MqttConfig { embedded_bind: "127.0.0.1:0".into(), url: mqtt_url, ..d.mqtt },
        stripe: kippu::config::StripeSection { fake_bind: "127.0.0.1:0".into(), ..d.stripe },
        database: kippu::config::DatabaseConfig { url: database_url },
        // Scenarios send their tap batches themselves when they want to see one.
        settlement: kippu::config::SettlementConfig { anchor_secs: 3600, ..d.settlement },
        ..d
    }
}

/// A browser-like HTTP client: keeps cookies, follows redirects.
pub struct Client {
    /// The client.
    pub http: reqwest::Client,
    /// Base URL of the web app.
    pub base: String,
}

impl Client {
    /// A client with an empty cookie jar.
    pub fn new(base: &str) -> Self {
        Self { http: reqwest::Client::builder().cookie_store(true).build().unwrap(), base: base.into() }
    }

    /// `GET /api/me`.
    pub async fn me(&self) -> Value {
        self.http.get(format!("{}/api/me", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// GET a JSON document.
    pub async fn json(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        r.json().await.unwrap_or_else(|e| panic!("{path}: not JSON: {e}"))
    }

    /// GET a page's HTML.
    pub async fn page(&self, path: &str) -> String {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// Presents ticket `ticket`'s current pass (the PNG the app shows) at `gate`; `trip` is the run
    /// an on-board gate's vehicle is working. Returns the verdict once an accepted tap is recorded.
    pub async fn ride(&self, store: &kippu_store::Store, ticket: u64, gate: &str, trip: Option<&str>) -> Value {
        let png = self.http.get(format!("{}/tickets/{ticket}/pass.png", self.base)).send().await.unwrap();
        let png = png.bytes().await.unwrap().to_vec();
        let before = store.taps_of_ticket(ticket).await.unwrap().len();
        let query = trip.map(|t| format!("?trip={t}")).unwrap_or_default();
        let r = self.http.post(format!("{}/gates/{gate}/scan{query}", self.base)).body(png).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        if v["open"] == true {
            for _ in 0..100 {
                if store.taps_of_ticket(ticket).await.unwrap().len() > before {
                    return v;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("tap of ticket {ticket} at {gate} never recorded");
        }
        v
    }

    /// The id of the signed-in traveler's ticket with `operator_id` in plan `plan` (any plan if `None`).
    pub async fn ticket_of(&self, operator_id: u32, plan: Option<u64>) -> u64 {
        let me = self.me().await;
        me["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["operator_id"] == operator_id && plan.is_none_or(|p| t["plan_id"] == p))
            .unwrap_or_else(|| panic!("no ticket of operator {operator_id}: {me}"))["id"]
            .as_u64()
            .unwrap()
    }

    /// Signs this client in to the staff portal as the demo consortium's admin: the operators'
    /// overview, insurance dashboard, gate fleet and metrics are the consortium's.
    pub async fn staff_sign_in(&self) {
        self.staff_sign_in_as(kippu::dev::DEV_ADMIN_EMAIL, "/gates").await;
    }

    /// Signs this client in to the staff portal as the demo account `email` (all share the
    /// demo's password; [`kippu::dev::dev_staff_email`] names an organisation's), landing on `next`.
    pub async fn staff_sign_in_as(&self, email: &str, next: &str) {
        let form = [("email", email), ("password", kippu::dev::DEV_PORTAL_PASSWORD), ("next", next)];
        let (status, url, body) = self.form("/portal/signin", &form).await;
        assert_eq!(status, 200, "staff sign-in as {email}: {body}");
        assert!(url.ends_with(next), "staff sign-in as {email} landed on {url}, not {next}");
    }

    /// POST a form; returns the final status, URL and body.
    pub async fn form(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let r = self.http.post(format!("{}{path}", self.base)).form(form).send().await.unwrap();
        let (status, url) = (r.status().as_u16(), r.url().to_string());
        (status, url, r.text().await.unwrap())
    }
}

/// A new API token of organisation `org` (an operator's, an issuer's slug) with `scopes`, as
/// `kippu token issue` makes one: the bearer value its machines send (`kippu_<id>_<secret>`).
pub async fn staff_token(stack: &kippu::Stack, org: &str, scopes: &[Permission]) -> String {
    let req = kippu_app::staff::TokenRequest { organisation: org, name: "e2e", scopes, days: 30 };
    let issued = kippu_app::staff::issue_token(&stack.store, None, &req, now() as i64).await;
    issued.unwrap_or_else(|e| panic!("a token of {org} with {scopes:?}: {e}")).bearer
}

/// A fresh PostgreSQL database for one run, when `KIPPU_TEST_POSTGRES` and
/// `KIPPU_TEST_MOSQUITTO` are set (`make test` sets them): `(database url,
/// mqtt url, drop guard)`. `None` (and a SKIPPED line) otherwise.
pub async fn production_parts() -> Option<(String, String, DropDatabase)> {
    let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    let (Some(pg), Some(mqtt)) = (var("KIPPU_TEST_POSTGRES"), var("KIPPU_TEST_MOSQUITTO")) else {
        eprintln!(
            "SKIPPED: set KIPPU_TEST_POSTGRES and KIPPU_TEST_MOSQUITTO (make test does) to run the production variant"
        );
        return None;
    };
    let db = kippu_store::scratch::ScratchDatabase::create(&pg, "kippu_e2e").await.expect("postgres reachable");
    Some((db.url.clone(), mqtt, DropDatabase(db)))
}

/// Drops the per-run database; call [`DropDatabase::drop_now`] at the end of a passing run.
pub struct DropDatabase(kippu_store::scratch::ScratchDatabase);

impl DropDatabase {
    /// Drops the database.
    pub async fn drop_now(self) {
        self.0.drop_now().await.unwrap();
    }
}
