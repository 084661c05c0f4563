//! A production deployment for the security tests: a fresh anvil, `kippu init` with separate
//! keys, a small catalogue, and `kippu serve` (in-process, or the real binary where the exit
//! code and the ports matter). The only stand-in is the loopback Stripe, because Stripe's API
//! cannot be reached from here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use kippu::Config;
use kippu_chain::anvil::AnvilProcess;
use kippu_payments::fake::{FakeStripe, FakeStripeHandle};

/// anvil's first account: funded, so it can pay for a deployment (after which it holds no role).
pub(crate) const DEPLOYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// A free loopback port (bound and released; the race is acceptable in tests).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether something listens on `port`.
pub(crate) fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// A fresh directory under the system temp dir.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kippu-sec-{tag}-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A Stripe-shaped secret that is on no denylist.
pub(crate) fn stripe_secret(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// The `kippu` binary cargo built next to this test, rebuilt first when it is missing or older
/// than its sources (`cargo test -p kippu-e2e --test security` alone does not build it).
pub(crate) fn kippu_bin() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let bin = dir.join("kippu");
    BUILT.call_once(|| {
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let newest = ["services", "gate-firmware-sim/src", "migrations"]
            .iter()
            .map(|d| newest_mtime(&kippu_e2e::repo().join(d)))
            .max()
            .unwrap();
        if built.is_none_or(|b| b < newest) {
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "-p", "kippu", "--features", "dev", "--locked"])
                .current_dir(kippu_e2e::repo())
                .status()
                .unwrap();
            assert!(status.success(), "building the kippu binary");
        }
    });
    bin
}

fn newest_mtime(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest_mtime(&p)
        } else if p.extension().is_some_and(|x| x == "rs" || x == "sql" || x == "toml") {
            e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH)
        } else {
            continue;
        };
        newest = newest.max(t);
    }
    newest
}

/// A small catalogue: a metro, a taxi and an insurer, a refundable 10-ride product in a bundle.
pub(crate) const CATALOG: &str = r#"
insurer = 9
[[operators]]
id = 1
slug = "metro"
name = "Metro"
kind = "rail"
payee = "0x1111111111111111111111111111111111111111"
[[operators]]
id = 3
slug = "taxi"
name = "Taxi"
kind = "taxi"
payee = "0x3333333333333333333333333333333333333333"
[[operators]]
id = 9
slug = "mutual"
name = "Mutual"
kind = "insurer"
payee = "0x9999999999999999999999999999999999999999"
[[products]]
id = 102
operator = 1
name = "Metro 10 rides"
price = 2000
validity = "rides"
duration_secs = 2592000
rides = 10
refund_bps = 8000
refund_window_secs = 86400
[[products]]
id = 901
operator = 9
name = "Delay cover"
price = 150
validity = "fixed"
duration_secs = 86400
rides = 1
insurance = true
[[cover_terms]]
product = 901
threshold_minutes = 20
voucher_kind = "taxi"
voucher_operator = 3
voucher_value = 800
voucher_lifetime_secs = 259200
[[bundles]]
id = 1
name = "Metro and cover"
description = "Ten metro rides and a day of delay cover."
discount_bps = 1000
products = [102, 901]
[[issuers]]
slug = "university"
name = "University"
concessions = ["student"]
"#;

/// The consortium's first admin, whom `kippu init` invites.
pub(crate) const ADMIN_EMAIL: &str = "root@kippu.example";
/// The password every test's staff choose when they accept their invitation.
pub(crate) const STAFF_PASSWORD: &str = "a long staff password for tests";

/// A client like a browser: keeps cookies, does not follow redirects.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Accepts an invitation link (as printed by `kippu init`, `kippu org add`, the portal) on the
/// server at `base`: opens the form, sets [`STAFF_PASSWORD`].
pub(crate) async fn accept_invitation(base: &str, link: &str) {
    let path = &link[link.find("/portal/invitations/").expect("an invitation link")..];
    let http = browser();
    let form = http.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(form.status(), 200, "the invitation opens");
    let done = http
        .post(format!("{base}{path}"))
        .form(&[("password", STAFF_PASSWORD), ("confirm", STAFF_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303, "the password is set: {}", done.text().await.unwrap_or_default());
}

/// A browser signed in to the portal at `base` as `email`.
pub(crate) async fn signed_in(base: &str, email: &str) -> reqwest::Client {
    let http = browser();
    let r = http
        .post(format!("{base}/portal/signin"))
        .form(&[("email", email), ("password", STAFF_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{email} signs in: {}", r.text().await.unwrap_or_default());
    http
}

/// A production deployment: anvil, `kippu init`, the catalogue, a loopback Stripe.
pub(crate) struct Prod {
    /// The chain.
    pub anvil: AnvilProcess,
    /// Data directory.
    pub dir: PathBuf,
    /// A configuration `kippu serve` accepts.
    pub cfg: Config,
    /// What `kippu init` reported.
    pub init: kippu::init::Initialised,
    /// The web port `cfg` binds.
    pub web_port: u16,
    /// Stand-in for api.stripe.com, delivering webhooks to `web_port` (kept alive here).
    pub _stripe: FakeStripeHandle,
}

impl Prod {
    /// Deploys and configures; nothing is served yet.
    pub(crate) async fn new(tag: &str) -> Self {
        // Any rebuild of the binary happens now, before anything runs on this runtime.
        kippu_bin();
        let anvil = AnvilProcess::spawn(&kippu_e2e::repo().join("contracts/node_modules/.bin/anvil"), 0, 31337, None)
            .await
            .expect("anvil starts");
        let dir = temp_dir(tag);
        let web_port = free_port();
        let secret_key = stripe_secret("sk_test_");
        let webhook_secret = stripe_secret("whsec_");
        let stripe = FakeStripe::start(
            "127.0.0.1:0".parse().unwrap(),
            format!("http://127.0.0.1:{web_port}/webhooks/stripe"),
            webhook_secret.clone(),
            secret_key.clone(),
        )
        .await
        .unwrap();
        let mut cfg = Config { data_dir: dir.clone(), ..Config::default() };
        cfg.web.bind = format!("127.0.0.1:{web_port}");
        cfg.chain.rpc_url = Some(anvil.url());
        cfg.database.url = Some(format!("sqlite://{}", dir.join("kippu.db").display()));
        cfg.mqtt.embedded_bind = format!("127.0.0.1:{}", free_port());
        cfg.mqtt.credential_recheck_secs = 1;
        cfg.stripe.api_base = Some(stripe.base_url().to_string());
        cfg.stripe.secret_key = secret_key;
        cfg.stripe.webhook_secret = webhook_secret;
        cfg.settlement.anchor_secs = 1;
        let deployer = dir.join("deployer.key");
        std::fs::write(&deployer, DEPLOYER_KEY).unwrap();
        let opts = kippu::init::InitOptions {
            deployer_key_file: deployer,
            admin: None,
            fund_hot_keys_wei: 10u128.pow(20),
            voucher_operator_id: 0,
            mqtt_hosts: vec![],
            admin_email: ADMIN_EMAIL.into(),
        };
        let init = kippu::init::init(&cfg, &opts).await.expect("kippu init");
        let catalog: kippu::catalog::Catalog = toml::from_str(CATALOG).unwrap();
        let ops = kippu::ops::Ops::open(&cfg).await.expect("a fresh deployment passes the checks");
        catalog.apply(&ops.chain, &ops.store, &ops.keystore, &ops.authority()).await.expect("catalogue applied");
        Self { anvil, dir, cfg, init, web_port, _stripe: stripe }
    }

    /// The consortium's admin, signed in at `base` (their invitation accepted first).
    pub(crate) async fn admin(&self, base: &str) -> reqwest::Client {
        accept_invitation(base, &self.init.admin_invitation).await;
        signed_in(base, ADMIN_EMAIL).await
    }

    /// `kippu serve`, in this process.
    pub(crate) async fn serve(&self) -> kippu::Stack {
        kippu::serve::serve(self.cfg.clone()).await.expect("kippu serve starts")
    }

    /// The keystore and secrets `kippu init` sealed.
    pub(crate) fn secrets(&self) -> kippu::secrets::Secrets {
        let ks = kippu::serve::master_key(&self.cfg).unwrap();
        kippu::secrets::Secrets::load(&self.cfg.secrets_path(), &ks).unwrap()
    }

    /// Writes `cfg` as a TOML file for the binary.
    pub(crate) fn config_file(&self, cfg: &Config, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, toml::to_string(cfg).unwrap()).unwrap();
        path
    }
}

/// Runs the `kippu` binary with `args` and `env` (no inherited `KIPPU_*`), waiting at most
/// `timeout`. Returns `(exit code, stdout, stderr)`.
pub(crate) async fn run_kippu(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> (Option<i32>, String, String) {
    let mut cmd = tokio::process::Command::new(kippu_bin());
    cmd.args(args).env("RUST_LOG", "warn").kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("KIPPU_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(timeout, cmd.output()).await.expect("kippu finished in time").unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A random traveler key.
pub(crate) fn traveler() -> PrivateKeySigner {
    PrivateKeySigner::random()
}
