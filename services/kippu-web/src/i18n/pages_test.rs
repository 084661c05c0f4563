//! Every traveler page rendered in Japanese must hold no English: neither a text of the
//! English catalogue (a template or handler that skipped [`t`]) nor a run of English words
//! that is in no catalogue at all (text hard-coded in a template).
//!
//! The pages are the real templates, filled by stand-ins for their handlers' structs with
//! Japanese sample data, so whatever English is left came from the template itself or from
//! a server text made with the catalogue's helpers here.

use std::collections::HashSet;

use askama::Template;

use super::{Lang, EN, JA, LANG};

struct TicketView {
    id: u64,
    product: String,
    operator: String,
    validity: String,
    rides: String,
    kind: &'static str,
}

struct VoucherView {
    id: u64,
    value: String,
    operator: String,
    state: String,
}

fn tickets() -> Vec<TicketView> {
    vec![
        TicketView {
            id: 7,
            product: "地下鉄3日券".into(),
            operator: "東西メトロ".into(),
            validity: "2025-04-01 09:00 UTC → 2025-04-04 09:00 UTC".into(),
            rides: super::t("ticket.unlimited").into(),
            kind: "ride",
        },
        TicketView {
            id: 8,
            product: "遅延補償".into(),
            operator: "きっぷ保険".into(),
            validity: "2025-04-01 09:00 UTC → 2025-04-04 09:00 UTC".into(),
            rides: super::tf("ticket.rides_left", 3),
            kind: "insurance",
        },
    ]
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    name: String,
    did: String,
    balance: String,
    tickets: Vec<TicketView>,
    vouchers: Vec<VoucherView>,
    alerts: Vec<kippu_gtfs::ServiceAlert>,
    chain_id: u64,
}

#[derive(Template)]
#[template(path = "voucher.html")]
struct Voucher {
    id: u64,
    value: String,
    operator: String,
    state: String,
    chain_id: u64,
}

#[derive(Template)]
#[template(path = "topup.html")]
struct Topup {
    error: Option<String>,
    chain_id: u64,
}

#[derive(Template)]
#[template(path = "topup_done.html")]
struct TopupDone {
    status: String,
    heading: &'static str,
    message: String,
    balance: String,
    done: bool,
    chain_id: u64,
}

struct WalletView {
    id: String,
    concession: String,
    issuer: String,
    valid_until: String,
    state: String,
    ok: bool,
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct Wallet {
    did: String,
    credentials: Vec<WalletView>,
    notice: Option<String>,
    error: Option<String>,
    chain_id: u64,
}

struct GateButton {
    key: String,
    runs: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "pass.html")]
struct Pass {
    id: u64,
    product: String,
    operator: String,
    rides: String,
    gates: Vec<GateButton>,
    chain_id: u64,
    account: String,
    cards: Vec<String>,
    card_error: Option<String>,
    history: Vec<(String, String)>,
    refund: Option<String>,
}

struct DeviceView {
    key: String,
    short: String,
    label: String,
    since: String,
    until: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct Account {
    name: String,
    did: String,
    address: String,
    email: Option<String>,
    devices: Vec<DeviceView>,
    passkeys: usize,
    passkeys_available: bool,
    chain_id: u64,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    message: String,
    chain_id: u64,
    portal: bool,
}

#[derive(Template)]
#[template(path = "tickets.html")]
struct Tickets {
    tickets: Vec<TicketView>,
    notice: Option<String>,
    bought: Option<u64>,
    chain_id: u64,
}

struct BundleView {
    id: u32,
    name: String,
    description: String,
    legs: Vec<String>,
    price: String,
    list: String,
    saving: String,
    concession_price: Option<String>,
    request: String,
}

#[derive(Template)]
#[template(path = "plans.html")]
struct Plans {
    bundles: Vec<BundleView>,
    concession: Option<String>,
    balance: String,
    error: Option<String>,
    chain_id: u64,
}

struct TravelerCard {
    address: String,
    name: String,
    did: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct Signin {
    travelers: Vec<TravelerCard>,
    error: Option<String>,
    email: String,
    passkeys: bool,
    chain_id: u64,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct Signup {
    errors: Vec<(&'static str, String)>,
    name: String,
    email: String,
    chain_id: u64,
}

impl Signup {
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct Receipt {
    plan_id: u64,
    bundle: String,
    paid: String,
    valid_from: String,
    buyer: String,
    tx_hash: String,
    block: i64,
    legs: Vec<(u64, String, String, String)>,
    chain_id: u64,
}

/// The English-looking words of the sample data above (names, addresses, codes).
const SAMPLE_WORDS: &[&str] = &["hana", "example", "Chrome", "Safari", "metro", "central", "onboard", "urn", "uuid"];

const DID: &str = "did:pkh:eip155:31337:0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const ADDRESS: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

/// Every traveler page, as `(name, html)`, rendered in the current language.
fn traveler_pages() -> Vec<(&'static str, String)> {
    use super::{t, tf, tn2};
    let vouchers = || {
        vec![VoucherView {
            id: 3,
            value: "7.80".into(),
            operator: "みなとタクシー".into(),
            state: tf("voucher.valid_until", "2025-04-08 09:00 UTC"),
        }]
    };
    let alert = kippu_gtfs::ServiceAlert {
        id: "a1".into(),
        header: "大雪のため運休".into(),
        description: "代替バスを運行します".into(),
        routes: vec!["A".into()],
        cause: "WEATHER".into(),
        effect: "NO_SERVICE".into(),
        active: vec![],
        trips: vec![],
        stops: vec![],
    };
    let pages: Vec<(&'static str, Result<String, askama::Error>)> = vec![
        (
            "home",
            Home {
                name: "佐藤花子".into(),
                did: DID.into(),
                balance: "24.50".into(),
                tickets: tickets(),
                vouchers: vouchers(),
                alerts: vec![alert],
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "home (nothing yet)",
            Home {
                name: "佐藤花子".into(),
                did: DID.into(),
                balance: "0.00".into(),
                tickets: vec![],
                vouchers: vec![],
                alerts: vec![],
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "voucher",
            Voucher {
                id: 3,
                value: "7.80".into(),
                operator: "みなとタクシー".into(),
                state: t("voucher.redeemed").into(),
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "topup",
            Topup { error: Some(tn2("topup.err.amount", "min", "1.00", "max", "500.00")), chain_id: 31337 }.render(),
        ),
        (
            "topup done",
            TopupDone {
                status: "processing".into(),
                heading: t("topup_done.processing"),
                message: t("topup_done.paid").into(),
                balance: "0.00".into(),
                done: false,
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "credentials",
            Wallet {
                did: DID.into(),
                credentials: vec![
                    WalletView {
                        id: "urn:uuid:1".into(),
                        concession: crate::views::concession_name("student"),
                        issuer: "南フロリダ大学".into(),
                        valid_until: "2026-03-31".into(),
                        state: t("cred.valid").into(),
                        ok: true,
                    },
                    WalletView {
                        id: "urn:uuid:2".into(),
                        concession: crate::views::concession_name("senior"),
                        issuer: "福祉事務所".into(),
                        valid_until: "2026-03-31".into(),
                        state: t("cred.state.REVOKED").into(),
                        ok: false,
                    },
                ],
                notice: Some(t("cred.added").into()),
                error: Some(tf("cred.not_added", t("cred.state.UNSIGNED"))),
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "credentials (empty)",
            Wallet { did: DID.into(), credentials: vec![], notice: None, error: None, chain_id: 31337 }.render(),
        ),
        (
            "pass",
            Pass {
                id: 7,
                product: "地下鉄3日券".into(),
                operator: "東西メトロ".into(),
                rides: tf("ticket.rides_left", 2),
                gates: vec![
                    GateButton { key: "metro/central/g1".into(), runs: vec![] },
                    GateButton { key: "bus/b7/onboard".into(), runs: vec![("1".into(), "A".into())] },
                ],
                chain_id: 31337,
                account: ADDRESS.into(),
                cards: vec!["12".repeat(32)],
                card_error: Some(t("card.err.format").into()),
                history: vec![],
                refund: Some("10.20".into()),
            }
            .render(),
        ),
        (
            "pass (used)",
            Pass {
                id: 7,
                product: "地下鉄3日券".into(),
                operator: "東西メトロ".into(),
                rides: t("ticket.delay_cover").into(),
                gates: vec![],
                chain_id: 31337,
                account: ADDRESS.into(),
                cards: vec![],
                card_error: None,
                history: vec![("2025-04-01 09:00 UTC".into(), "metro/central/g1".into())],
                refund: None,
            }
            .render(),
        ),
        (
            "account",
            Account {
                name: "佐藤花子".into(),
                did: DID.into(),
                address: ADDRESS.into(),
                email: Some("hana@example.com".into()),
                devices: vec![
                    DeviceView {
                        key: "12".repeat(32),
                        short: "12121212".into(),
                        label: "Chrome".into(),
                        since: "2025-04-01".into(),
                        until: "2025-05-01".into(),
                        revoked: false,
                    },
                    DeviceView {
                        key: "34".repeat(32),
                        short: "34343434".into(),
                        label: "Safari".into(),
                        since: "2025-03-01".into(),
                        until: "2025-04-01".into(),
                        revoked: true,
                    },
                ],
                passkeys: 1,
                passkeys_available: true,
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "account (no passkeys here)",
            Account {
                name: "佐藤花子".into(),
                did: DID.into(),
                address: ADDRESS.into(),
                email: None,
                devices: vec![],
                passkeys: 0,
                passkeys_available: false,
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "error",
            ErrorPage { title: t("error.refused"), message: t("refund.used").into(), chain_id: 31337, portal: false }
                .render(),
        ),
        (
            "tickets",
            Tickets { tickets: tickets(), notice: Some(tf("tickets.bought", 4)), bought: Some(4), chain_id: 31337 }
                .render(),
        ),
        ("tickets (none)", Tickets { tickets: vec![], notice: None, bought: None, chain_id: 31337 }.render()),
        (
            "plans",
            Plans {
                bundles: vec![
                    BundleView {
                        id: 1,
                        name: "周遊セット".into(),
                        description: "地下鉄・バス・タクシー".into(),
                        legs: vec!["地下鉄3日券 · 東西メトロ (21.00 FARE)".into()],
                        price: "35.70".into(),
                        list: "42.00".into(),
                        saving: "6.30".into(),
                        concession_price: None,
                        request: format!("0x{}", "11".repeat(32)),
                    },
                    BundleView {
                        id: 2,
                        name: "通勤セット".into(),
                        description: "地下鉄・バス".into(),
                        legs: vec![],
                        price: "30.00".into(),
                        list: "32.00".into(),
                        saving: "2.00".into(),
                        concession_price: Some("21.00".into()),
                        request: format!("0x{}", "22".repeat(32)),
                    },
                ],
                concession: Some(tn2(
                    "plans.concession_kind",
                    "kind",
                    crate::views::concession_name("student"),
                    "pct",
                    30,
                )),
                balance: "50.00".into(),
                error: Some(tn2("plans.err.short", "price", "35.70", "balance", "0.00")),
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "sign in",
            Signin {
                travelers: vec![TravelerCard { address: ADDRESS.into(), name: "田中愛子".into(), did: DID.into() }],
                error: Some(t("signin.err.wrong").into()),
                email: "hana@example.com".into(),
                passkeys: true,
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "sign up",
            Signup {
                errors: vec![("password", tf("signup.err.short", 10)), ("email", t("signup.err.email").into())],
                name: "佐藤花子".into(),
                email: "hana".into(),
                chain_id: 31337,
            }
            .render(),
        ),
        (
            "receipt",
            Receipt {
                plan_id: 4,
                bundle: "周遊セット".into(),
                paid: "35.70".into(),
                valid_from: "2025-04-01 09:00 UTC".into(),
                buyer: format!("佐藤花子 ({DID})"),
                tx_hash: format!("0x{}", "12".repeat(32)),
                block: 12,
                legs: vec![(7, "地下鉄3日券".into(), "東西メトロ".into(), "21.00".into())],
                chain_id: 31337,
            }
            .render(),
        ),
    ];
    pages.into_iter().map(|(name, html)| (name, html.unwrap_or_else(|e| panic!("{name} renders: {e}")))).collect()
}

/// HTML's character references: the named ones askama writes and numeric ones.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let c = match &rest[1..end] {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "amp" => Some('&'),
                r => r
                    .strip_prefix("#x")
                    .or_else(|| r.strip_prefix("#X"))
                    .map(|h| u32::from_str_radix(h, 16))
                    .or_else(|| r.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a person meets on the page: its text, the attributes read out or shown (labels, alt,
/// titles, placeholders) and the texts it hands its scripts (`data-t-*`, `data-texts`,
/// `data-done`, `data-failed`).
fn shown_texts(html: &str) -> Vec<String> {
    const SHOWN: &[&str] = &["aria-label", "alt", "title", "placeholder", "data-done", "data-failed", "value"];
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push(unescape(&rest[..open]));
        let Some(close) = rest[open..].find('>') else { break };
        let tag = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        // Attributes: name="value" (askama quotes every value it writes).
        let mut attrs = tag;
        while let Some(eq) = attrs.find("=\"") {
            let name = attrs[..eq].rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
            let Some(end) = attrs[eq + 2..].find('"') else { break };
            let value = unescape(&attrs[eq + 2..eq + 2 + end]);
            attrs = &attrs[eq + 2 + end + 1..];
            // A hidden input's value and a button's `value` are not read out; an input's typed value is data.
            if name == "data-texts" {
                let texts: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&value).unwrap_or_else(|e| panic!("data-texts is JSON ({e}): {value}"));
                out.extend(texts.values().filter_map(|v| v.as_str().map(str::to_owned)));
            } else if name.starts_with("data-t-") || (SHOWN.contains(&name) && !tag.contains("type=\"hidden\"")) {
                out.push(value);
            }
        }
    }
    out.push(unescape(rest));
    out
}

/// Runs of two or more English words (letters only, spaces between) in `text`.
fn english_runs(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphabetic() || c == ' ' || c == '\''))
        .map(str::trim)
        .filter(|run| run.split_whitespace().filter(|w| w.len() >= 2).count() >= 2)
        .map(str::to_owned)
        .collect()
}

/// The English catalogue's texts, cut at their placeholders, that a Japanese page must not
/// show: each piece long enough to mean something and used in no Japanese text (so names
/// both languages share, like FARE or Stripe Checkout, are allowed).
fn english_pieces() -> Vec<(&'static str, String)> {
    let ja: Vec<&str> = JA.iter().map(|(_, v)| *v).collect();
    let mut seen = HashSet::new();
    let mut pieces = Vec::new();
    for (key, en) in EN {
        let mut text = String::new();
        let mut in_placeholder = false;
        for c in en.chars() {
            match c {
                '{' => {
                    in_placeholder = true;
                    text.push('\u{0}');
                }
                '}' => in_placeholder = false,
                c if !in_placeholder => text.push(c),
                _ => {}
            }
        }
        for piece in text.split('\u{0}') {
            let piece = piece.trim_matches(|c: char| c.is_whitespace() || "·:#().,;—–-".contains(c));
            if piece.chars().count() >= 5 && !ja.iter().any(|j| j.contains(piece)) && seen.insert(piece.to_owned()) {
                pieces.push((*key, piece.to_owned()));
            }
        }
    }
    pieces
}

#[tokio::test]
async fn traveler_pages_in_japanese_hold_no_english() {
    let pages = LANG.scope(Lang::Ja, async { traveler_pages() }).await;
    let pieces = english_pieces();
    assert!(pieces.len() > 100, "the check looks for the English catalogue ({} pieces)", pieces.len());
    let ja: Vec<&str> = JA.iter().map(|(_, v)| *v).collect();
    let mut found = Vec::new();
    for (page, html) in &pages {
        assert!(html.contains("<html lang=\"ja\">"), "{page}: <html lang> is not ja");
        let texts = shown_texts(html);
        for text in &texts {
            for (key, piece) in &pieces {
                if text.contains(piece.as_str()) {
                    found.push(format!("{page}: {key} ({piece:?}) in {text:?}"));
                }
            }
            // English in no catalogue: hard-coded in the template. Terms the Japanese texts
            // themselves use (Sign-In with Ethereum, Stripe Checkout, …) are fine.
            for run in english_runs(text) {
                if !ja.iter().any(|j| j.contains(&run)) {
                    found.push(format!("{page}: English {run:?} in {text:?}"));
                }
            }
            // A lone English word too, unless Japanese texts use it or it is sample data.
            for word in text.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| w.len() >= 4) {
                if !SAMPLE_WORDS.contains(&word) && !ja.iter().any(|j| j.contains(word)) {
                    found.push(format!("{page}: English word {word:?} in {text:?}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "English on Japanese traveler pages:\n{}", found.join("\n"));

    // The check itself: the same pages in English are caught.
    let english = traveler_pages();
    let (_, home) = english.iter().find(|(p, _)| *p == "home").unwrap();
    let texts = shown_texts(home);
    assert!(texts.iter().any(|t| t.contains("Your data")), "the English home page is seen as English");
    assert!(texts.iter().any(|t| !english_runs(t).is_empty()));
}

#[test]
fn the_checker_sees_english_in_text_labels_and_script_texts() {
    let html = r#"<p>日本語 <span aria-label="Rotating QR pass">x</span></p><i data-texts="{&quot;a&quot;:&quot;Scanning now&quot;}"></i><input type="hidden" name="d" value="not shown here">"#;
    let texts = shown_texts(html);
    assert!(texts.contains(&"Rotating QR pass".to_owned()), "{texts:?}");
    assert!(texts.contains(&"Scanning now".to_owned()), "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("not shown")), "{texts:?}");
    assert_eq!(english_runs("OPEN · 通過できます"), Vec::<String>::new());
    assert_eq!(english_runs("確認のため revoke と入力"), Vec::<String>::new());
    assert_eq!(english_runs("7.80 FARE at City Taxi"), vec!["FARE at City Taxi".to_owned()]);
}
