//! Real-browser end-to-end tests: the whole platform (anvil, embedded MQTT,
//! SQLite, the web app) driven through headless Chromium over WebDriver, as a
//! traveler on a phone would use it. Needs Debian's `chromium` and
//! `chromium-driver` (`scripts/install-browser.sh` installs them).
//!
//! Environment:
//! - `KIPPU_CHROMEDRIVER`: chromedriver to run (default: `chromedriver` on `PATH`);
//! - `KIPPU_CHROMIUM`: browser binary (default: `/usr/bin/chromium` when it exists);
//! - `KIPPU_UPDATE_SCREENSHOTS=1`: save screenshots to `docs/screenshots/`
//!   instead of a temporary directory.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use kippu_domain::device_pass::DevicePass;
use kippu_domain::staff::Permission;
use kippu_e2e::{config, repo};
use kippu_identity::{deterministic_demo_key, did_pkh};
use serde_json::{json, Value};

#[path = "scenario/settlement.rs"]
mod settlement;

/// How long any wait for the page lasts before the test fails.
const WAIT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
/// A phone-sized viewport: the app is mobile-first.
const WINDOW: (u32, u32) = (412, 915);

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The chromedriver to run; fails with how to install it when there is none.
fn chromedriver_bin() -> PathBuf {
    env_path("KIPPU_CHROMEDRIVER").or_else(|| on_path("chromedriver")).unwrap_or_else(|| {
        panic!(
            "chromedriver not found (set KIPPU_CHROMEDRIVER or put it on PATH): \
             run scripts/install-browser.sh to install Chromium and ChromeDriver"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// chromedriver as a child process in its own process group; dropping it
/// kills the group, so no Chromium outlives a failed test.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    async fn spawn(dir: &Path) -> Self {
        let bin = chromedriver_bin();
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&bin)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}; run scripts/install-browser.sh", bin.display()))
        };
        let mut d = Self { child, port, log };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!(
                    "{} exited with {status}: {}",
                    bin.display(),
                    std::fs::read_to_string(&d.log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} within {WAIT:?}");
            tokio::time::sleep(POLL).await;
        }
        d
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The negative pid names the process group the child leads.
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a group id we created; no memory is touched.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A headless Chromium session against the running app, with waits that fail
/// with the page's URL and text.
struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
    /// Scratch: chromedriver's log and failure screenshots (never the repo).
    tmp: PathBuf,
    // Last: the session is closed (or abandoned) before chromedriver is killed.
    _driver: Driver,
}

impl Browser {
    async fn start(base: &str) -> Self {
        let tmp = std::env::temp_dir().join(format!("kippu-browser-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&tmp).unwrap();
        let shots = if std::env::var("KIPPU_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            repo().join("docs/screenshots")
        } else {
            tmp.join("screenshots")
        };
        std::fs::create_dir_all(&shots).unwrap();
        let driver = Driver::spawn(&tmp).await;

        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                "--hide-scrollbars",
            ],
            // Desktop Chromium keeps windows at least 500 px wide and takes its
            // (headless) toolbar off the height: emulate the phone's viewport.
            "mobileEmulation": {
                "deviceMetrics": { "width": WINDOW.0, "height": WINDOW.1, "pixelRatio": 1.0, "touch": true },
            },
        });
        let binary =
            env_path("KIPPU_CHROMIUM").or_else(|| Some(PathBuf::from("/usr/bin/chromium")).filter(|p| p.exists()));
        if let Some(b) = binary {
            options["binary"] = json!(b);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session: {e}\nchromedriver log ({}):\n{}",
                    driver.log.display(),
                    std::fs::read_to_string(&driver.log).unwrap_or_default()
                )
            });
        eprintln!("browser: screenshots go to {}", shots.display());
        Self { client, base: base.trim_end_matches('/').to_string(), shots, tmp, _driver: driver }
    }

    /// Signs this browser in to the staff portal as the demo account `email` on its sign-in
    /// page, landing on `next`.
    async fn staff_sign_in(&self, email: &str, next: &str) {
        self.goto(&format!("/portal/signin?next={next}")).await;
        self.type_staff_sign_in(email).await;
        self.wait_for_path(next).await;
    }

    /// Types the demo account `email`'s e-mail and password into the staff sign-in form on
    /// screen and signs in.
    async fn type_staff_sign_in(&self, email: &str) {
        self.fill("email", email).await;
        self.fill("password", kippu::dev::DEV_PORTAL_PASSWORD).await;
        let sign_in = self.wait_for(Locator::Id("portal-signin")).await;
        self.click(&sign_in, "portal sign-in").await;
    }

    async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client.goto(&url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The path (and query) of the page the browser is on.
    async fn path(&self) -> String {
        let u = self.client.current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Where the browser is and what it shows, for failure messages; also
    /// saves a screenshot of it.
    async fn context(&self) -> String {
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_else(|e| format!("<{e}>"));
        let text = self
            .client
            .execute("return document.body ? document.body.innerText : document.documentElement.outerHTML", vec![])
            .await
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| format!("<{e}>"));
        let snippet: String = text.chars().take(1200).collect();
        let shot = self.tmp.join(format!("failure-{}.png", rand::random::<u32>()));
        let saved = match self.client.screenshot().await {
            Ok(png) if std::fs::write(&shot, &png).is_ok() => shot.display().to_string(),
            _ => "none".into(),
        };
        format!("\n  at: {url}\n  screenshot: {saved}\n  page text:\n{snippet}")
    }

    /// Polls `probe` until it yields a value or `WAIT` passes, then fails
    /// with `what` and the page context.
    async fn wait<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {WAIT:?} waiting for {what}{}", self.context().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for a displayed element whose text contains `text` (any text when empty).
    async fn wait_for_text(&self, loc: Locator<'_>, text: &str) -> Element {
        let what = if text.is_empty() { format!("{loc:?}") } else { format!("{loc:?} showing {text:?}") };
        self.wait(&what, || async {
            for e in self.client.find_all(loc).await.ok()? {
                // Errors (a stale element while the page changes) mean "not yet".
                if e.is_displayed().await.unwrap_or(false) && e.text().await.is_ok_and(|t| t.contains(text)) {
                    return Some(e);
                }
            }
            None
        })
        .await
    }

    /// Waits for a displayed element.
    async fn wait_for(&self, loc: Locator<'_>) -> Element {
        self.wait_for_text(loc, "").await
    }

    /// Waits until the script returns something other than null, false or "".
    async fn wait_js(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        self.wait(what, || async {
            match self.client.execute(script, args.clone()).await.ok()? {
                Value::Null | Value::Bool(false) => None,
                Value::String(s) if s.is_empty() => None,
                v => Some(v),
            }
        })
        .await
    }

    /// Waits until the browser is on a page whose path starts with `prefix`.
    async fn wait_for_path(&self, prefix: &str) {
        self.wait(&format!("a page at {prefix}"), || async { self.path().await.starts_with(prefix).then_some(()) })
            .await
    }

    async fn click(&self, e: &Element, what: &str) {
        if let Err(err) = e.click().await {
            panic!("clicking {what}: {err}{}", self.context().await);
        }
    }

    /// Fails when the page is wider than the phone (it would scroll sideways).
    async fn fits_phone(&self, page: &str) {
        let over = self.js("return document.documentElement.scrollWidth - window.innerWidth", vec![]).await;
        if over.as_i64().is_none_or(|px| px > 0) {
            panic!("the {page} page is wider than the phone by {over} px{}", self.context().await);
        }
    }

    /// Runs Deque's axe-core on the page (injected through WebDriver, so the page's CSP does
    /// not apply) and fails on any violation of impact "serious" or "critical".
    async fn axe(&self, page: &str) {
        if self.js("return typeof window.axe", vec![]).await != json!("object") {
            self.js(&format!("{}\n;return typeof window.axe;", axe_source()), vec![]).await;
        }
        // Each violation as "rule (impact): help at node [summary]; …", split by impact.
        let run = "const done = arguments[arguments.length - 1]; \
            const say = (v) => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 5) \
              .map((n) => n.target.join(' ') + ' [' + (n.failureSummary || '').replace(/\\s+/g, ' ') + ']').join('; '); \
            const grave = (v) => v.impact === 'serious' || v.impact === 'critical'; \
            axe.run(document).then((r) => done({ rules: r.passes.length + r.violations.length, \
              grave: r.violations.filter(grave).map(say), other: r.violations.filter((v) => !grave(v)).map(say) })) \
            .catch((e) => done({ rules: 0, grave: ['axe did not run: ' + e], other: [] }));";
        let r = self.client.execute_async(run, vec![]).await.unwrap_or_else(|e| panic!("axe on the {page} page: {e}"));
        assert!(r["rules"].as_u64().is_some_and(|n| n > 20), "axe checked too little on the {page} page: {r}");
        let list =
            |k: &str| -> Vec<String> { serde_json::from_value(r[k].clone()).expect("axe's findings are strings") };
        let (grave, other) = (list("grave"), list("other"));
        if !other.is_empty() {
            eprintln!("browser: axe notes on the {page} page (moderate or minor):\n  {}", other.join("\n  "));
        }
        if !grave.is_empty() {
            panic!("accessibility violations on the {page} page:\n  {}{}", grave.join("\n  "), self.context().await);
        }
    }

    /// Fails when the page, shown in Japanese, holds an English text of the catalogue: in its
    /// text, its labels, or the texts it hands its scripts. `data` (the operators' own names
    /// and descriptions, in the language they wrote them) is taken out first.
    async fn no_english(&self, page: &str, data: &[String]) {
        let shown = self
            .js(
                "const out = [document.title, document.body.textContent]; \
                 for (const el of document.querySelectorAll('*')) for (const a of el.attributes) { \
                   if (['aria-label', 'alt', 'title', 'placeholder', 'data-done', 'data-failed'].includes(a.name) \
                       || a.name.startsWith('data-t-')) out.push(a.value); \
                   if (a.name === 'data-texts') out.push(...Object.values(JSON.parse(a.value))); \
                 } \
                 return out;",
                vec![],
            )
            .await;
        assert_eq!(self.js("return document.documentElement.lang", vec![]).await, json!("ja"), "{page}: lang");
        let shown: Vec<String> = serde_json::from_value::<Vec<String>>(shown)
            .unwrap()
            .into_iter()
            .map(|t| data.iter().fold(t, |t, d| t.replace(d.as_str(), " ")))
            .collect();
        let found: Vec<String> =
            english_pieces().iter().filter(|piece| shown.iter().any(|t| t.contains(piece.as_str()))).cloned().collect();
        if !found.is_empty() {
            panic!("English on the {page} page in Japanese: {found:?}{}", self.context().await);
        }
    }

    /// Presses keys one after another (WebDriver actions, as a keyboard would).
    async fn press(&self, keys: &[char]) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for &k in keys {
            actions = actions.then(KeyAction::Down { value: k }).then(KeyAction::Up { value: k });
        }
        self.client.perform_actions(actions).await.unwrap_or_else(|e| panic!("pressing {keys:?}: {e}"));
    }

    /// Moves the focus with Tab from the top of the page until it is on `#id`; fails when
    /// the element cannot be reached by keyboard.
    async fn tab_to(&self, id: &str) {
        self.js("document.activeElement && document.activeElement.blur()", vec![]).await;
        for _ in 0..40 {
            self.press(&[TAB]).await;
            if self.js("return document.activeElement.id", vec![]).await == json!(id) {
                return;
            }
        }
        panic!("#{id} is not reachable with Tab{}", self.context().await);
    }

    /// Saves what the viewport shows as `<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot {name} is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("browser: screenshot {}", path.display());
    }

    /// Types `text` into the input with id `id`, replacing what was there.
    async fn fill(&self, id: &str, text: &str) {
        let input = self.wait_for(Locator::Id(id)).await;
        input.clear().await.unwrap_or_else(|e| panic!("clearing #{id}: {e}"));
        input.send_keys(text).await.unwrap_or_else(|e| panic!("typing into #{id}: {e}"));
    }

    /// Presses the submit button of the form `form` (a CSS selector).
    async fn submit(&self, form: &str) {
        let button = self.wait_for(Locator::Css(&format!("{form} button[type=submit]"))).await;
        self.click(&button, &format!("{form}'s submit button")).await;
    }

    /// Cuts the browser's network (Chromium's network emulation) or gives it back: the page
    /// sees `navigator.onLine` change and every request fail.
    async fn offline(&self, offline: bool) {
        let cmd = NetworkConditions { offline };
        self.client.issue_cmd(cmd).await.unwrap_or_else(|e| panic!("setting network conditions: {e}"));
    }

    async fn close(self) {
        let Browser { client, _driver, .. } = self;
        client.close().await.expect("closing the browser session");
    }
}

/// chromedriver's `POST /session/{id}/chromium/network_conditions`.
#[derive(Debug)]
struct NetworkConditions {
    offline: bool,
}

impl fantoccini::wd::WebDriverCompatibleCommand for NetworkConditions {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/chromium/network_conditions", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"network_conditions": {"offline": self.offline, "latency": 0,
            "download_throughput": -1, "upload_throughput": -1}});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// chromedriver's `POST /session/{id}/webauthn/authenticator`: a platform authenticator
/// that keeps discoverable credentials and verifies the user (WebDriver's virtual authenticator).
#[derive(Debug)]
struct VirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for VirtualAuthenticator {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/webauthn/authenticator", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({"protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true, "isUserConsenting": true});
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// WebDriver's Tab, Enter and Control keys.
const TAB: char = '\u{e004}';
const ENTER: char = '\u{e007}';
const CONTROL: char = '\u{e009}';

/// axe-core's browser build, installed by `npm ci` in `tests/a11y` (`make node`).
fn axe_source() -> &'static str {
    static AXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AXE.get_or_init(|| {
        let path = repo().join("tests/a11y/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; run `npm ci` in tests/a11y (or `make node`) to install axe-core", path.display())
        })
    })
}

/// The English catalogue's texts, cut at their placeholders, that a Japanese page must not
/// show: pieces of five characters or more that no Japanese text uses (names both languages
/// share, like FARE or Stripe Checkout, are allowed).
fn english_pieces() -> Vec<String> {
    let texts: Vec<(&str, &str)> = kippu_web::catalogue_texts().collect();
    let mut pieces: Vec<String> = Vec::new();
    for (en, _) in &texts {
        let mut cut = String::new();
        let mut in_placeholder = false;
        for c in en.chars() {
            match c {
                '{' => {
                    in_placeholder = true;
                    cut.push('\u{0}');
                }
                '}' => in_placeholder = false,
                c if !in_placeholder => cut.push(c),
                _ => {}
            }
        }
        for piece in cut.split('\u{0}') {
            let piece = piece.trim_matches(|c: char| c.is_whitespace() || "·:#().,;—–-".contains(c));
            if piece.chars().count() >= 5
                && !texts.iter().any(|(_, ja)| ja.contains(piece))
                && !pieces.iter().any(|p| p == piece)
            {
                pieces.push(piece.to_owned());
            }
        }
    }
    pieces
}

/// The text an on-screen QR image carries, read from the pixels the browser shows.
async fn displayed_qr(b: &Browser, img: &Element) -> String {
    let png = img.screenshot().await.unwrap();
    let gray = image::load_from_memory(&png).expect("QR screenshot decodes as an image").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(gray);
    let grids = prepared.detect_grids();
    let Some(grid) = grids.first() else { panic!("no QR code visible in the image{}", b.context().await) };
    let (_, text) = grid.decode().unwrap_or_else(|e| panic!("the QR on screen does not decode: {e:?}"));
    text
}

/// The pass an on-screen QR image carries, read from the pixels the browser shows.
async fn displayed_pass(b: &Browser, img: &Element) -> (String, DevicePass) {
    let text = displayed_qr(b, img).await;
    let pass =
        DevicePass::decode(&text).unwrap_or_else(|e| panic!("the QR on screen is not a device pass ({e:?}): {text}"));
    (text, pass)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traveler_journey_in_browser() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let started = Instant::now();
    chromedriver_bin(); // fail fast, before the stack starts
    let stack = kippu::start(config("browser", None, None)).await.expect("stack starts");
    let b = Browser::start(&stack.web_url).await;
    eprintln!("browser: stack and browser up in {:.1?}", started.elapsed());

    // A newcomer: signed out, the app sends her to sign in, where she creates an account.
    b.goto("/").await;
    b.wait_for_path("/signin").await;
    b.wait_for_text(Locator::Css("h1"), "Sign in").await;
    let viewport = b.js("return [window.innerWidth, window.innerHeight]", vec![]).await;
    assert_eq!(viewport, json!([WINDOW.0, WINDOW.1]), "phone-sized viewport");
    b.fits_phone("sign-in").await;
    b.screenshot("signin").await;
    b.axe("sign-in").await;
    let to_signup = b.wait_for(Locator::Id("to-signup")).await;
    b.click(&to_signup, "Create an account").await;
    b.wait_for_text(Locator::Css("h1"), "Create an account").await;
    // A mistake first: the form says what is wrong and keeps what she typed.
    b.fill("name", "Hana Sato").await;
    b.fill("email", "hana@example.com").await;
    b.fill("password", "short").await;
    b.fill("confirm", "short").await;
    b.submit("#signup").await;
    b.wait_for_text(Locator::Id("password-error"), "at least 10 characters").await;
    assert_eq!(
        b.wait_for(Locator::Id("email")).await.prop("value").await.unwrap().as_deref(),
        Some("hana@example.com")
    );
    b.fits_phone("sign-up").await;
    b.screenshot("signup").await;
    b.axe("sign-up (a field to fix)").await;
    b.fill("password", "hana's long passphrase").await;
    b.fill("confirm", "hana's long passphrase").await;
    b.submit("#signup").await;
    b.wait_for_text(Locator::Css("h1"), "Hello, Hana Sato").await;
    assert_eq!(b.path().await, "/", "signed up lands on home");
    let did = b.wait_for(Locator::Id("did")).await.text().await.unwrap();
    let prefix = format!("did:pkh:eip155:{}:0x", stack.deployment.chain_id);
    assert!(did.starts_with(&prefix), "her DID is shown: {did}");
    let address: alloy::primitives::Address = did[prefix.len() - 2..].parse().expect("DID ends in an address");
    assert_eq!(b.wait_for(Locator::Id("balance")).await.text().await.unwrap(), "0.00");
    b.axe("home (nothing yet)").await;

    // Top up by card: Stripe Checkout (the loopback fake, same wire format), pay, back with FARE.
    let nav = b.wait_for(Locator::Css("header nav a[href='/topup']")).await;
    b.click(&nav, "the Top up link").await;
    b.wait_for_path("/topup").await;
    b.axe("top-up").await;
    // By keyboard alone: Tab to the amount (its focus ring shows, 3:1 against the page at
    // least), type over it, and Enter sends the form.
    b.tab_to("amount").await;
    let ring = b.js("return getComputedStyle(document.activeElement).outlineColor", vec![]).await;
    assert_eq!(ring, json!("rgb(184, 110, 0)"), "the focused field shows the focus ring");
    let select_all = {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: CONTROL })
            .then(KeyAction::Down { value: 'a' })
            .then(KeyAction::Up { value: 'a' })
            .then(KeyAction::Up { value: CONTROL })
    };
    b.client.perform_actions(select_all).await.expect("select all");
    b.press(&['5', '0', ENTER]).await;
    b.wait_for_path("/pay/cs_").await;
    let pay = b.wait_for_text(Locator::Css("button[type=submit]"), "Pay").await;
    b.click(&pay, "Checkout's Pay button").await;
    b.wait_for_path("/topup/done").await;
    b.wait_for_text(Locator::Id("topup-status"), "50.00 FARE added").await;
    let topup_done = b.path().await;
    b.axe("top-up done").await;
    b.goto("/").await;
    b.wait_for_text(Locator::Id("balance"), "50.00").await;

    // Plans, through the nav bar; the Explorer bundle is bought with its own button.
    let nav = b.wait_for(Locator::Css("header nav a[href='/plans']")).await;
    b.click(&nav, "the Plans link").await;
    b.wait_for_text(Locator::Css("h1"), "Trip plans").await;
    assert_eq!(b.wait_for(Locator::Id("balance")).await.text().await.unwrap(), "50.00");
    let explorer =
        b.wait_for(Locator::XPath("//li[contains(@class,'bundle')][.//h2[starts-with(.,'Explorer')]]")).await;
    let legs = explorer.find_all(Locator::Css(".legs li")).await.unwrap();
    assert_eq!(legs.len(), 4, "Explorer has four legs");
    let buy = explorer.find(Locator::Css("form button[type=submit]")).await.unwrap();
    assert_eq!(buy.text().await.unwrap(), "Buy for 35.70 FARE");
    b.fits_phone("plans").await;
    b.screenshot("plans").await;
    b.axe("plans").await;
    b.click(&buy, "the Explorer buy button").await;

    // The tickets page announces the plan and lists a ticket per leg.
    b.wait_for_text(Locator::Css("h1"), "My tickets").await;
    assert!(b.path().await.starts_with("/tickets?bought="), "{}", b.path().await);
    b.wait_for_text(Locator::Css(".flash.ok"), "bought").await;
    let tickets = b.client.find_all(Locator::Css("ul.tickets li.ticket")).await.unwrap();
    let mut lines = Vec::new();
    for t in &tickets {
        lines.push(t.text().await.unwrap());
    }
    assert_eq!(lines.len(), 4, "one ticket per leg: {lines:#?}");
    for want in ["Metro 3-day pass · Metro Rail", "Bus day pass · Bull Runner Bus", "Taxi ride credit · City Taxi"] {
        assert!(lines.iter().any(|l| l.contains(want)), "{want:?} listed: {lines:#?}");
    }
    assert!(lines.iter().any(|l| l.contains("Delay cover") && l.contains("delay cover")), "{lines:#?}");
    b.fits_phone("tickets").await;
    b.screenshot("tickets").await;
    b.axe("tickets").await;
    // The receipt: what was paid against the list price, each leg's share, the transaction.
    let receipt = b.wait_for(Locator::Id("receipt-link")).await;
    b.click(&receipt, "the receipt link").await;
    b.wait_for_text(Locator::Id("paid"), "35.70 FARE").await;
    assert_eq!(b.client.find_all(Locator::Css("tr[data-ticket]")).await.unwrap().len(), 4, "a line per leg");
    let tx = b.wait_for(Locator::Id("tx")).await.text().await.unwrap();
    assert!(tx.starts_with("0x") && tx.len() == 66, "the purchase transaction: {tx}");
    b.fits_phone("receipt").await;
    b.axe("receipt").await;
    let receipt = b.path().await;
    b.client.back().await.unwrap();
    b.wait_for_text(Locator::Css("h1"), "My tickets").await;

    // The metro pass: a QR image that is displayed, is a pass signed by Aiko, and rotates.
    let metro = b.wait_for(Locator::XPath("//li[contains(@class,'ticket')]//a[contains(.,'Metro Rail')]")).await;
    let href = metro.attr("href").await.unwrap().expect("ticket link");
    let ticket_id: u64 =
        href.trim_start_matches("/tickets/").trim_end_matches("/pass").parse().expect("ticket id in link");
    b.click(&metro, "the metro ticket").await;
    b.wait_for_path(&href).await;
    b.wait_for_text(Locator::Css("h1"), "Metro 3-day pass").await;
    b.wait_for_text(Locator::Css(".pass p"), &format!("ticket #{ticket_id}")).await;
    // The phone makes its key, the account certifies it, and the phone signs the pass itself.
    b.wait_for_text(Locator::Id("pass-status"), "Signed on this phone").await;
    let qr = b.wait_for(Locator::Id("qr")).await;
    let (_, _, w, h) = qr.rectangle().await.unwrap();
    assert!(w >= 200.0 && h >= 200.0 && w <= f64::from(WINDOW.0), "QR is shown large and fits the phone: {w}x{h}");
    let (first_text, first) = displayed_pass(&b, &qr).await;
    assert_eq!(first.ticket_id, ticket_id);
    first.verify_device_sig().expect("signed by the phone's device key");
    let chain = stack.deployment.chain_id;
    assert_eq!(
        first.certifier(chain).expect("certificate recovers"),
        address,
        "the device key certified by her account"
    );
    let devices = stack.store.devices_of(&address).await.unwrap();
    assert_eq!(devices.len(), 1, "one phone registered");
    assert_eq!(devices[0].device_key, first.device_key);
    let extractable = b
        .client
        .execute_async(
            "const done = arguments[0]; const o = indexedDB.open('kippu', 1); o.onsuccess = () => { \
             const r = o.result.transaction('device').objectStore('device').getAll(); \
             r.onsuccess = () => done(r.result.length ? String(r.result[0].keys.privateKey.extractable) : ''); };",
            vec![],
        )
        .await
        .expect("reading the stored device key");
    assert_eq!(extractable, json!("false"), "the phone's private key cannot be exported");

    // Rotation: a fresh pass every few seconds, signed on the phone.
    let rotated = "return document.getElementById('qr').dataset.pass !== arguments[0];";
    b.wait_js("the QR to rotate", rotated, vec![json!(first_text)]).await;
    let (second_text, second) = displayed_pass(&b, &qr).await;
    assert_ne!(second_text, first_text, "rotated QR shows a new pass");
    assert_eq!(second.ticket_id, ticket_id);
    assert_eq!(second.certifier(chain).unwrap(), address);

    // Present the pass to the simulated metro gate: it decodes the PNG and the validator opens.
    let gate = b.wait_for(Locator::Css(".gate-btn[data-gate='metro/central/g1']")).await;
    b.click(&gate, "the metro gate button").await;
    let verdict = b.wait_for_text(Locator::Id("verdict"), "OPEN").await;
    assert_eq!(verdict.attr("class").await.unwrap().as_deref(), Some("open"));
    assert!(verdict.text().await.unwrap().starts_with("OPEN"), "{}", verdict.text().await.unwrap());
    b.fits_phone("pass").await;
    b.screenshot("pass").await;
    b.axe("pass").await;

    // She boards Bull Runner run 1 in a tunnel with no signal: the pass page keeps making
    // fresh passes on the phone, and the bus's on-board validator (naming the run) opens for one.
    let tickets = stack.store.tickets_of(&address).await.unwrap();
    let bus = tickets.iter().find(|t| t.operator_id == 2).unwrap().id;
    b.goto(&format!("/tickets/{bus}/pass")).await;
    let run = b.wait_for(Locator::Css("input.run[data-for='bus/bull-runner-7/onboard']")).await;
    assert_eq!(run.prop("value").await.unwrap().as_deref(), Some("1"), "the first run is preselected");
    b.wait_for_text(Locator::Id("pass-status"), "Signed on this phone").await;
    let qr = b.wait_for(Locator::Id("qr")).await;
    b.offline(true).await;
    b.wait_for_text(Locator::Id("net-status"), "No signal").await;
    let before = displayed_pass(&b, &qr).await.0;
    b.wait_js("the QR to rotate with no signal", rotated, vec![json!(before)]).await;
    let (offline_text, offline_pass) = displayed_pass(&b, &qr).await;
    assert_eq!(offline_pass.ticket_id, bus);
    assert_eq!(offline_pass.certifier(chain).unwrap(), address);
    // Even opened afresh with no signal, the page comes back (service worker) and signs on.
    b.wait_js(
        "the page kept for offline use",
        "return document.getElementById('pass').dataset.offlineReady === 'true';",
        vec![],
    )
    .await;
    b.goto(&format!("/tickets/{bus}/pass")).await;
    b.wait_for_text(Locator::Id("pass-status"), "Signed on this phone").await;
    b.wait_for_text(Locator::Id("net-status"), "No signal").await;
    let qr = b.wait_for(Locator::Id("qr")).await;
    let (reopened_text, reopened) = displayed_pass(&b, &qr).await;
    assert_eq!(reopened.ticket_id, bus);
    assert_ne!(reopened_text, offline_text, "a fresh pass after reopening");
    b.fits_phone("pass").await;
    b.screenshot("pass-offline").await;
    b.offline(false).await;
    let png = kippu_web::qr_png(&offline_text).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/gates/bus/bull-runner-7/onboard/scan?trip=1", stack.web_url))
        .body(png)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["open"], json!(true), "the pass signed with no signal opens the on-board validator: {v}");
    for _ in 0..100 {
        if stack.store.taps_of_ticket(bus).await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Home shows the new balance (50.00 - 35.70) and the tickets.
    b.goto("/").await;
    b.wait_for_text(Locator::Css("h1"), "Hello, Hana Sato").await;
    assert_eq!(b.wait_for(Locator::Id("balance")).await.text().await.unwrap(), "14.30");
    assert_eq!(b.client.find_all(Locator::Css("ul.tickets li.ticket")).await.unwrap().len(), 4);
    b.fits_phone("home").await;

    // Her bus trip runs 20 minutes late (a GTFS-Realtime TripUpdate): the delay cover pays a taxi voucher.
    // The home page is open; the voucher must appear on it by itself (pushed, no reload).
    b.js("window.kippuMarker = 'same page'", vec![]).await;
    let feed = kippu_gtfs::encode_trip_updates(kippu_e2e::now() - 5, &[("1".to_string(), None, 20 * 60)]);
    let r = reqwest::Client::new().post(format!("{}/dev/gtfs-rt", stack.web_url)).body(feed).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    b.wait_for_text(Locator::Css("li.voucher"), "Voucher #").await;
    assert_eq!(b.js("return window.kippuMarker", vec![]).await, json!("same page"), "the page was reloaded");
    b.screenshot("home").await;
    b.axe("home").await;

    // The voucher's page: a QR code signed by her key, which the taxi driver's scanner redeems.
    let link = b.wait_for(Locator::Css("li.voucher a")).await;
    let voucher = link.attr("href").await.unwrap().expect("voucher link");
    let voucher_id: u64 = voucher.trim_start_matches("/vouchers/").parse().expect("voucher id in link");
    b.click(&link, "the voucher").await;
    b.wait_for_path(&voucher).await;
    b.wait_for_text(Locator::Css("h1"), &format!("Voucher #{voucher_id}")).await;
    b.wait_for_text(Locator::Css("main p"), "FARE at City Taxi").await;
    let loaded = "const i = document.getElementById('voucher-qr'); return i.complete && i.naturalWidth > 0;";
    b.wait_js("the voucher's QR image", loaded, vec![]).await;
    let img = b.wait_for(Locator::Id("voucher-qr")).await;
    let code = displayed_qr(&b, &img).await;
    let decoded = kippu_domain::voucher::VoucherCode::decode(&code).expect("the QR on screen is a voucher code");
    assert_eq!(decoded.voucher_id, voucher_id);
    b.fits_phone("voucher").await;
    b.axe("voucher").await;
    let scanner = kippu_e2e::staff_token(&stack, "taxi", &[Permission::VouchersRedeem]).await;
    let r = reqwest::Client::new()
        .post(format!("{}/operators/taxi/vouchers/redeem", stack.web_url))
        .bearer_auth(scanner)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["redeemed"], json!(true), "the taxi's scanner redeems the code on screen: {v}");
    b.goto(&voucher).await;
    b.wait_for_text(Locator::Css("main p"), "redeemed").await;
    for (page, path) in [("account", "/account"), ("credentials", "/credentials")] {
        b.goto(path).await;
        b.wait_for(Locator::Css("main h1")).await;
        b.fits_phone(page).await;
        b.axe(page).await;
    }

    // Trip history on the metro ticket; the unused taxi credit is refunded from its page.
    b.goto(&format!("/tickets/{ticket_id}/pass")).await;
    b.wait_for_text(Locator::Css("#history li"), "metro/central/g1").await;
    // A pass never refunds (used or not); a used refundable ticket is refused in tests/accounts.rs.
    assert!(b.client.find(Locator::Id("refund")).await.is_err(), "a pass offers no refund");
    let taxi = stack.store.tickets_of(&address).await.unwrap().iter().find(|t| t.operator_id == 3).unwrap().id;
    b.goto(&format!("/tickets/{taxi}/pass")).await;
    b.wait_for_text(Locator::Id("history"), "Not used yet").await;
    b.submit("#refund").await;
    b.wait_for_text(Locator::Css(".flash.ok"), &format!("Ticket #{taxi} refunded: 10.20 FARE")).await;
    assert_eq!(
        b.client.find_all(Locator::Css("ul.tickets li.ticket")).await.unwrap().len(),
        3,
        "the refunded ticket is gone"
    );
    b.goto("/").await;
    b.wait_for_text(Locator::Id("balance"), "24.50").await;

    // In Japanese: the switch in the header remembers the choice and returns to the same page.
    let switch = b.wait_for(Locator::Id("lang-switch")).await;
    assert_eq!(switch.text().await.unwrap(), "日本語");
    b.click(&switch, "the 日本語 switch").await;
    b.wait_for_text(Locator::Css("h1"), "Hana Satoさん、こんにちは").await;
    b.wait_for_text(Locator::Id("balance"), "24.50").await;
    assert_eq!(b.path().await, "/");
    assert_eq!(b.js("return document.documentElement.lang", vec![]).await, json!("ja"));
    b.wait_for_text(Locator::Css("header nav a[href='/plans']"), "プラン").await;
    b.fits_phone("home in Japanese").await;
    b.screenshot("home-ja").await;
    b.axe("home in Japanese").await;
    // Every traveler page in Japanese: no English text of the catalogue left on it.
    let mut data: Vec<String> = Vec::new();
    for bundle in stack.store.bundles().await.unwrap() {
        data.extend([bundle.name, bundle.description]);
    }
    data.extend(stack.store.products().await.unwrap().into_iter().map(|p| p.name));
    data.extend(stack.store.operators().await.unwrap().into_iter().map(|o| o.name));
    data.retain(|d| !d.is_empty());
    b.no_english("home", &data).await;
    b.goto(&format!("/tickets/{bus}/pass")).await;
    b.wait_for_text(Locator::Id("pass-status"), "この端末で署名済み").await;
    b.no_english("pass", &data).await;
    b.axe("pass in Japanese").await;
    for page in [
        "/plans",
        "/tickets",
        "/topup",
        "/credentials",
        "/account",
        topup_done.as_str(),
        receipt.as_str(),
        voucher.as_str(),
    ] {
        b.goto(page).await;
        b.wait_for(Locator::Css("main h1")).await;
        b.no_english(page, &data).await;
    }
    b.goto("/tickets/999999/pass").await;
    b.wait_for_text(Locator::Css("main h1"), "見つかりません").await;
    b.no_english("not found", &data).await;
    b.goto("/").await;
    let switch = b.wait_for(Locator::Id("lang-switch")).await;
    b.click(&switch, "the English switch").await;
    b.wait_for_text(Locator::Css("h1"), "Hello, Hana Sato").await;

    // The operators' side, for staff: the fleet of gates and the settlement report.
    b.staff_sign_in(kippu::dev::DEV_ADMIN_EMAIL, "/gates").await;
    b.wait_for_text(Locator::Css(".gate"), "metro/central/g1").await;
    b.fits_phone("gates").await;
    b.screenshot("gates").await;
    b.goto("/operators/insurance").await;
    b.wait_for(Locator::Css("#delays-chart svg")).await;
    b.fits_phone("delay insurance dashboard").await;
    b.screenshot("insurance").await;
    b.goto("/operators/report").await;
    b.wait_for(Locator::Css("svg")).await;
    b.fits_phone("operator report").await;
    b.screenshot("report").await;

    // Signing out forgets her on this phone: the pass pages kept for offline use and the
    // device key are gone with the session (Clear-Site-Data: "cache", "storage").
    let kept =
        "return Promise.all([caches.keys(), indexedDB.databases()]).then(([c, d]) => [c, d.map((x) => x.name)]);";
    let before = b.js(kept, vec![]).await;
    assert!(before[0].as_array().is_some_and(|c| !c.is_empty()) && before[1] == json!(["kippu"]), "{before}");
    b.goto("/").await;
    let out = b.wait_for(Locator::Css("form[action='/signout'] button")).await;
    b.click(&out, "Sign out").await;
    b.wait_for_path("/signin").await;
    assert_eq!(b.js(kept, vec![]).await, json!([[], []]), "nothing of hers is left in the browser");

    b.close().await;
    stack.shutdown().await;
    eprintln!("browser: journey done in {:.1?}", started.elapsed());
}

/// Issue #4's acceptance: a student credential issued in the issuer portal
/// lowers a bundle's price in the browser; revoking it restores the full price.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concession_credential_in_browser() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    chromedriver_bin();
    let stack = kippu::start(config("browser-concession", None, None)).await.expect("stack starts");
    let b = Browser::start(&stack.web_url).await;
    let aiko = deterministic_demo_key("aiko");
    let did = did_pkh(stack.deployment.chain_id, aiko.address());

    b.goto("/signin").await;
    let button = b.wait_for_text(Locator::Css("button[type=submit]"), "Sign in as Aiko Tanaka").await;
    b.click(&button, "Aiko's sign-in button").await;
    b.wait_for_text(Locator::Css(".did"), &did).await;

    b.goto("/plans").await;
    b.wait_for_text(Locator::Id("buy-1"), "Buy for 35.70 FARE").await;
    assert!(b.client.find(Locator::Id("concession")).await.is_err(), "no concession before a credential");

    // University staff sign in to the issuer portal and issue her a student credential.
    b.goto("/portal/issuers/usf").await;
    b.type_staff_sign_in(&kippu::dev::dev_staff_email("usf")).await;
    b.wait_for_text(Locator::Css("h1"), "University of South Florida").await;
    let holder = b.wait_for(Locator::Id("holder")).await;
    holder.send_keys(&did).await.unwrap();
    let issue = b.wait_for(Locator::Id("issue")).await;
    b.fits_phone("issuer portal").await;
    b.click(&issue, "Issue").await;
    b.wait_for_text(Locator::Css(".flash"), "delivered to the traveler").await;
    b.wait_for_text(Locator::Css("table.register"), &did).await;
    b.screenshot("issuer-portal").await;

    // Her wallet holds it, verified; the plans page now shows the student price.
    b.goto("/credentials").await;
    b.wait_for_text(Locator::Css(".credential.ok"), "valid").await;
    b.fits_phone("credentials").await;
    b.screenshot("credentials").await;
    b.axe("credentials (a valid credential)").await;
    b.goto("/plans").await;
    b.wait_for_text(Locator::Id("concession"), "student concession, 30% off").await;
    b.wait_for_text(Locator::Id("buy-1"), "Buy for 24.99 FARE").await;
    b.screenshot("plans-concession").await;

    // The issuer revokes it: the full price is back, and the wallet says why.
    b.goto("/portal/issuers/usf").await;
    let revoke = b.wait_for(Locator::Css("button.revoke")).await;
    b.click(&revoke, "Revoke").await;
    b.wait_for_text(Locator::Css(".flash"), "Revoked").await;
    b.goto("/plans").await;
    b.wait_for_text(Locator::Id("buy-1"), "Buy for 35.70 FARE").await;
    assert!(b.client.find(Locator::Id("concession")).await.is_err(), "revoked credential still discounts");
    b.goto("/credentials").await;
    b.wait_for_text(Locator::Css(".credential.bad"), "revoked by its issuer").await;

    b.close().await;
    stack.shutdown().await;
}

/// Staff read an operator's settlement report: from the open overview through the portal's
/// sign-in to the report, a chart column to the events behind it, and a printable statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_report_in_browser() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    chromedriver_bin();
    let stack = kippu::start(config("browser-reports", None, None)).await.expect("stack starts");
    settlement::two_days_of_settlement(&stack).await;
    let b = Browser::start(&stack.web_url).await;

    // The overview and the reports are for staff: the overview asks to sign in, then opens.
    b.goto("/operators/report").await;
    b.wait_for_path("/portal/signin").await;
    b.type_staff_sign_in(kippu::dev::DEV_ADMIN_EMAIL).await;
    b.wait_for_path("/operators/report").await;
    let details = b.wait_for(Locator::Css("tr[data-operator='2'] a.details")).await;
    b.click(&details, "the bus's report link").await;
    let title = b.wait_for_text(Locator::Css("h1.report-title"), "Settlement report").await;
    assert!(title.text().await.unwrap().starts_with("Bull Runner Bus"));
    assert_eq!(b.path().await, "/operators/bus/report");
    b.wait_for_text(Locator::Css("[data-figure='revenue'] a"), "31.50").await;
    b.wait_for(Locator::Css("#revenue-chart svg")).await;
    b.wait_for_text(Locator::Id("reconciles"), "equals what is owed now").await;
    b.fits_phone("operator report").await;
    b.screenshot("operator-report").await;

    // A column of the revenue chart opens the events behind it: each with its transaction.
    let column = b.wait_for(Locator::Css("#revenue-chart svg a")).await;
    b.click(&column, "the first revenue column").await;
    b.wait_for_path("/operators/bus/events?kind=LegSold,TicketRefunded&day=").await;
    let rows = b.client.find_all(Locator::Css("#events tr[data-event]")).await.unwrap();
    assert_eq!(rows.len(), 4, "four bus legs were sold on the first day");
    b.wait_for_text(Locator::Id("owed"), "+21.00").await;
    b.fits_phone("events").await;

    // The taxi's first statement: revenue, a refund, a voucher and the payout (its share and
    // the 7.80 of the voucher the insurer's premiums covered), reconciled.
    b.goto("/operators/taxi/statements/1").await;
    b.wait_for_text(Locator::Css("h1"), "Settlement statement · period 1").await;
    b.wait_for_text(Locator::Css("tr[data-line='closing']"), "7.20").await;
    b.wait_for_text(Locator::Id("reconciles"), "Reconciles: 0.00 + 25.50 − 10.20 + 15.00 − 23.10 = 7.20").await;
    b.fits_phone("statement").await;
    b.screenshot("statement").await;

    b.close().await;
    stack.shutdown().await;
}

/// Passkeys: a traveler adds one on the account page and, signed out, signs in with it alone.
/// WebAuthn needs a domain, so this stack is reached as `localhost` (a virtual authenticator
/// stands in for the phone's fingerprint reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkey_sign_in_in_browser() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    chromedriver_bin();
    let port = free_port();
    let mut cfg = config("browser-passkey", None, None);
    cfg.web.bind = format!("127.0.0.1:{port}");
    cfg.web.public_url = Some(format!("http://localhost:{port}"));
    let stack = kippu::start(cfg).await.expect("stack starts");
    let b = Browser::start(&stack.web_url).await;
    b.client.issue_cmd(VirtualAuthenticator).await.expect("virtual authenticator added");

    b.goto("/signup").await;
    b.fill("name", "Kenji Mori").await;
    b.fill("email", "kenji@example.com").await;
    b.fill("password", "kenji's long passphrase").await;
    b.fill("confirm", "kenji's long passphrase").await;
    b.submit("#signup").await;
    b.wait_for_text(Locator::Css("h1"), "Hello, Kenji Mori").await;

    b.goto("/account").await;
    b.wait_for_text(Locator::Id("passkey-count"), "Passkeys on this account: 0").await;
    let add = b.wait_for(Locator::Id("add-passkey")).await;
    b.click(&add, "Add a passkey").await;
    b.wait_for_text(Locator::Id("passkey-count"), "Passkeys on this account: 1").await;
    b.fits_phone("account").await;
    b.screenshot("account").await;
    b.axe("account (a passkey)").await;

    // Signed out: the passkey alone signs him in, no e-mail or password typed.
    b.goto("/").await;
    let out = b.wait_for(Locator::Css("form[action='/signout'] button")).await;
    b.click(&out, "Sign out").await;
    b.wait_for_path("/signin").await;
    let with_passkey = b.wait_for(Locator::Id("passkey-signin")).await;
    b.click(&with_passkey, "Sign in with a passkey").await;
    b.wait_for_text(Locator::Css("h1"), "Hello, Kenji Mori").await;
    assert_eq!(b.path().await, "/");

    b.close().await;
    stack.shutdown().await;
}

/// The staff portal on a phone: the consortium's admin adds an organisation and gets its first
/// member's one-time link; that member sets a password through it, signs in, issues a scanner
/// token (shown once) and is refused another organisation's report with the reason; the admin
/// reads the audit log. Each page fits the phone and is screenshotted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_portal_in_browser() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    chromedriver_bin();
    let stack = kippu::start(config("browser-portal", None, None)).await.expect("stack starts");
    let b = Browser::start(&stack.web_url).await;

    b.staff_sign_in(kippu::dev::DEV_ADMIN_EMAIL, "/portal").await;
    b.wait_for_text(Locator::Id("portal-links"), "Organisations").await;
    b.fits_phone("portal home").await;
    b.screenshot("portal-home").await;
    b.goto("/portal/organisations").await;
    b.fill("org-name", "Harbour Ferry").await;
    b.fill("org-slug", "ferry").await;
    let kind = b.wait_for(Locator::Id("org-kind")).await;
    kind.select_by_value("operator").await.unwrap();
    b.fill("org-email", "ops@ferry.example").await;
    let add = b.wait_for(Locator::Id("add-organisation")).await;
    b.click(&add, "Add and invite").await;
    let link = b.wait_for(Locator::Id("invitation-link")).await.text().await.unwrap();
    b.wait_for_text(Locator::Css("table.register"), "Harbour Ferry").await;
    b.fits_phone("organisations").await;
    b.screenshot("portal-organisations").await;

    // The new member of staff, on their own phone (signed out here first).
    b.goto("/portal").await;
    let sign_out = b.wait_for(Locator::Id("portal-signout")).await;
    b.click(&sign_out, "Sign out").await;
    b.wait_for_path("/portal/signin").await;
    let path = &link[link.find("/portal/invitations/").expect("an invitation link")..];
    b.goto(path).await;
    b.wait_for_text(Locator::Css("main"), "ops@ferry.example").await;
    b.fits_phone("invitation").await;
    b.fill("password", "ferry's long password").await;
    b.fill("confirm", "ferry's long password").await;
    let set = b.wait_for(Locator::Id("set-password")).await;
    b.click(&set, "Set my password").await;
    b.wait_for_path("/portal/signin").await;
    b.fill("email", "ops@ferry.example").await;
    b.fill("password", "ferry's long password").await;
    let sign_in = b.wait_for(Locator::Id("portal-signin")).await;
    b.click(&sign_in, "portal sign-in").await;
    b.wait_for_path("/portal").await;
    b.wait_for_text(Locator::Id("portal-links"), "Harbour Ferry: API tokens").await;

    // A scanner token: the secret is shown once.
    b.goto("/portal/orgs/ferry/tokens").await;
    b.fill("token-name", "deck scanner 1").await;
    let scope = b.wait_for(Locator::Css("input[name=scope][value='vouchers:redeem']")).await;
    b.click(&scope, "the vouchers:redeem scope").await;
    let issue = b.wait_for(Locator::Id("issue-token")).await;
    b.click(&issue, "Issue").await;
    let secret = b.wait_for(Locator::Id("token-secret")).await.text().await.unwrap();
    assert!(secret.starts_with("kippu_"), "{secret}");
    b.wait_for_text(Locator::Css("table.register"), "deck scanner 1").await;
    b.fits_phone("tokens").await;
    b.screenshot("portal-tokens").await;
    b.goto("/portal/orgs/ferry/tokens").await;
    b.wait_for_text(Locator::Css("table.register"), "vouchers:redeem").await;
    assert!(!b.client.source().await.unwrap().contains(&secret), "the secret is shown once");

    // Another operator's report: refused, saying why.
    b.goto("/operators/taxi/report").await;
    b.wait_for_text(Locator::Css("main"), "another organisation").await;
    b.fits_phone("forbidden").await;
    b.screenshot("forbidden").await;

    // The admin reads what happened.
    b.goto("/portal").await;
    let sign_out = b.wait_for(Locator::Id("portal-signout")).await;
    b.click(&sign_out, "Sign out").await;
    b.wait_for_path("/portal/signin").await;
    b.staff_sign_in(kippu::dev::DEV_ADMIN_EMAIL, "/portal/audit?organisation=ferry").await;
    b.wait_for_text(Locator::Id("audit"), "token.issued").await;
    b.wait_for_text(Locator::Id("audit"), "staff.invitation_accepted").await;
    b.fits_phone("audit log").await;
    b.screenshot("portal-audit").await;

    // ...and how the platform's chain writes stand (the demo's, sent through the outbox).
    b.goto("/portal").await;
    let outbox = b.wait_for(Locator::Css("a[href='/portal/chain-writes']")).await;
    b.click(&outbox, "Chain writes").await;
    b.wait_for_path("/portal/chain-writes").await;
    b.wait_for_text(Locator::Id("chain-write-counts"), "Confirmed").await;
    b.fits_phone("chain writes").await;
    b.axe("chain writes").await;
    b.screenshot("portal-chain-writes").await;

    b.close().await;
    stack.shutdown().await;
}
