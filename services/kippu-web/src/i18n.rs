//! English and Japanese for the traveler pages.
//!
//! The language of a request is the `kippu_lang` cookie (set by the switch in the header),
//! else the best of `Accept-Language`, else English. A middleware scopes it to the request's
//! task, so templates and handlers ask [`t`] for a text without threading a parameter
//! through every page: `{{ crate::i18n::t("nav.plans") }}`. Every key exists in both
//! languages (a unit test holds the catalogues to that); a missing key shows the key itself,
//! never a blank.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The cookie that remembers a traveler's choice.
pub(crate) const LANG_COOKIE: &str = "kippu_lang";

/// A language Kippu speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    Ja,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ja => "ja",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        match code.trim().to_ascii_lowercase().split('-').next()? {
            "en" => Some(Self::En),
            "ja" => Some(Self::Ja),
            _ => None,
        }
    }

    /// The request's language: the cookie, else `Accept-Language` by quality, else English.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let jar = axum_extra::extract::cookie::CookieJar::from_headers(headers);
        if let Some(l) = jar.get(LANG_COOKIE).and_then(|c| Self::parse(c.value())) {
            return l;
        }
        let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mut best: Option<(f32, Self)> = None;
        for part in accept.split(',') {
            let mut fields = part.split(';');
            let Some(lang) = fields.next().and_then(Self::parse) else { continue };
            let q = fields.find_map(|f| f.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Self::En, |(_, l)| l)
    }
}

tokio::task_local! {
    static LANG: Lang;
}

/// The current request's language (English outside a request).
pub(crate) fn current() -> Lang {
    LANG.try_with(|l| *l).unwrap_or(Lang::En)
}

/// `en` or `ja`, for `<html lang>`.
pub(crate) fn lang() -> &'static str {
    current().code()
}

/// The text for `key` in the current language.
pub(crate) fn t(key: &str) -> &'static str {
    static CATALOGUES: OnceLock<[HashMap<&'static str, &'static str>; 2]> = OnceLock::new();
    let [en, ja] = CATALOGUES.get_or_init(|| [EN.iter().copied().collect(), JA.iter().copied().collect()]);
    let table = if current() == Lang::Ja { ja } else { en };
    table.get(key).or_else(|| en.get(key)).copied().unwrap_or_else(|| {
        tracing::warn!(key, "missing translation");
        // Leaking the key once per miss is bounded by the (static) keys templates use.
        Box::leak(key.to_owned().into_boxed_str())
    })
}

/// [`t`] with `{}` replaced by `arg`.
pub(crate) fn tf(key: &str, arg: impl std::fmt::Display) -> String {
    t(key).replacen("{}", &arg.to_string(), 1)
}

/// [`t`] with each `{name}` replaced by its value, for texts whose parts come in another
/// order in the other language.
pub(crate) fn tn(key: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    args.iter().fold(t(key).to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), &value.to_string()))
}

/// [`tn`] with two named parts, for templates: `tn2("voucher.value_at", "value", v, "operator", o)`.
pub(crate) fn tn2(key: &str, a: &str, av: impl std::fmt::Display, b: &str, bv: impl std::fmt::Display) -> String {
    tn(key, &[(a, &av), (b, &bv)])
}

/// The texts under `prefix` (the prefix cut off) as a JSON object, for a page's script to
/// read from a `data-texts` attribute: scripts speak the page's language without a request.
pub(crate) fn js_texts(prefix: &str) -> String {
    let texts: serde_json::Map<String, serde_json::Value> =
        EN.iter().filter_map(|(k, _)| k.strip_prefix(prefix).map(|short| (short.to_owned(), t(k).into()))).collect();
    serde_json::Value::Object(texts).to_string()
}

/// Runs `f` in `lang`, for what is rendered outside a request's scope (a stream's later
/// items, a refusal made before the language middleware).
pub(crate) fn within<R>(lang: Lang, f: impl FnOnce() -> R) -> R {
    LANG.sync_scope(lang, f)
}

/// Operator and staff pages are English only, whatever the traveler chose.
fn english_only(path: &str) -> bool {
    ["/operators/", "/portal/"].iter().any(|p| path.starts_with(p))
}

/// The middleware: runs the rest of the request in its language.
pub(crate) async fn scope(req: Request, next: Next) -> Response {
    let lang = if english_only(req.uri().path()) { Lang::En } else { Lang::of(req.headers()) };
    LANG.scope(lang, next.run(req)).await
}

/// Every text of the catalogue as `(English, Japanese)`, for tests that look for
/// untranslated English on a Japanese page.
pub fn catalogue_texts() -> impl Iterator<Item = (&'static str, &'static str)> {
    let ja: HashMap<&str, &str> = JA.iter().copied().collect();
    EN.iter().map(move |(k, en)| (*en, ja.get(k).copied().unwrap_or(en)))
}

/// `GET /lang/{code}`: remembers the choice for a year and goes back where the traveler was.
pub(crate) async fn switch(
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
    jar: axum_extra::extract::cookie::CookieJar,
) -> Response {
    let Some(lang) = Lang::parse(&code) else {
        return Redirect::to("/").into_response();
    };
    // Only back to a path on this site: the Referer's path, never its host.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let cookie = axum_extra::extract::cookie::Cookie::build((LANG_COOKIE, lang.code()))
        .path("/")
        .same_site(axum_extra::extract::cookie::SameSite::Lax)
        .max_age(time::Duration::days(365))
        .build();
    (jar.add(cookie), Redirect::to(&back)).into_response()
}

const EN: &[(&str, &str)] = &[
    ("nav.plans", "Plans"),
    ("nav.tickets", "Tickets"),
    ("nav.topup", "Top up"),
    ("nav.credentials", "Credentials"),
    ("nav.account", "Account"),
    ("nav.gates", "Gates"),
    ("nav.operators", "Operators"),
    ("nav.other_lang", "日本語"),
    ("nav.other_code", "ja"),
    ("footer", "Kippu · open MaaS ticketing"),
    ("signin.title", "Sign in"),
    ("signin.with_email", "With your e-mail"),
    ("field.email", "E-mail"),
    ("field.password", "Password"),
    ("signin.submit", "Sign in"),
    ("signin.new", "New to Kippu?"),
    ("signin.create", "Create an account"),
    ("signin.create_tail", "— it takes a name, an e-mail and a password."),
    ("signin.wallet", "With your own wallet"),
    ("signin.wallet_text", "Bring an Ethereum wallet and sign a one-time Sign-In with Ethereum (EIP-4361) message. Your key stays in your wallet."),
    ("signin.demo", "Demo travelers"),
    ("signin.demo_text", "Development mode: sign in as a seeded traveler with one click. Their keys live in Kippu's keystore, where they sign a DID challenge without leaving the server."),
    ("signin.as", "Sign in as {}"),
    ("signin.err.wrong", "That e-mail and password do not match an account."),
    ("signin.err.throttled", "Too many attempts. Wait a minute, then try again."),
    ("signin.err.closed", "This account is closed: {}."),
    ("signin.err.locked", "Too many wrong passwords: try again after {}."),
    ("signup.title", "Create an account"),
    ("signup.intro", "Kippu makes you a decentralised identifier (DID) and an account key. The key is kept encrypted in Kippu's keystore and signs only inside the server; you never handle an address."),
    ("signup.fix", "Please fix the fields marked below."),
    ("signup.name", "Your name"),
    ("signup.password_help", "At least 10 characters."),
    ("signup.confirm", "Password again"),
    ("signup.submit", "Create my account"),
    ("signup.have", "Have an account?"),
    ("signup.err.name", "Enter the name to show on your account (up to 60 characters)."),
    ("signup.err.email", "Enter an e-mail address, like name@example.com."),
    ("signup.err.email_spaces", "An e-mail address has no spaces."),
    ("signup.err.short", "Use at least {} characters (a short sentence is easy to remember)."),
    ("signup.err.long", "Use at most {} characters."),
    ("signup.err.confirm", "The two passwords differ."),
    ("signup.err.taken", "An account with this e-mail exists: sign in instead."),
    ("home.hello", "Hello, {}"),
    ("home.did", "Your DID"),
    ("home.balance", "Balance"),
    ("home.signout", "Sign out"),
    ("home.tickets", "Tickets"),
    ("home.no_tickets", "No tickets yet."),
    ("home.buy_plan", "Buy a plan"),
    ("home.vouchers", "Vouchers"),
    ("home.no_vouchers", "No vouchers. Insured plans earn one automatically when a service is late."),
    ("home.alerts", "Service alerts on your routes"),
    ("plans.title", "Trip plans"),
    ("plans.intro", "FARE. A plan is bought in one step; each leg becomes a ticket."),
    ("plans.concession", "Your {} applies: prices below include it."),
    ("plans.buy", "Buy for {} FARE"),
    ("plans.save", "save {}"),
    ("plans.concession_price", "concession price"),
    ("tickets.title", "My tickets"),
    ("tickets.bought", "Plan #{} bought. Your tickets are below."),
    ("tickets.ticket", "ticket #{}"),
    ("tickets.refunded", "Ticket #{} refunded: {} FARE are back in your balance."),
    ("pass.history", "Trip history"),
    ("pass.signed", "Signed on this phone · new code in {s} s · certified until {until}"),
    ("pass.offline", "No signal: the pass keeps working, signed on this phone."),
    ("pass.no_taps", "Not used yet."),
    ("pass.refund_text", "Not used yet, so its fare can come back to your balance."),
    ("pass.refund", "Refund {} FARE"),
    ("pass.setting_up", "Setting up this phone…"),
    ("pass.note", "Signed on this phone every few seconds, with or without signal; a screenshot stops working."),
    ("pass.gates", "Simulated gates: present this pass"),
    ("pass.card", "Contactless card"),
    ("pass.card_text", "Link a Kippu contactless card to this ticket and tap it at the gate instead of showing the pass. The card proves itself to each gate with a key it never reveals, so a copied card number opens nothing."),
    ("pass.card_number", "Card number"),
    ("pass.card_help", "64 characters (0–9, a–f), printed on the back of the card."),
    ("pass.card_link", "Link card"),
    ("pass.card_remove", "Remove (card lost)"),
    ("topup.title", "Top up FARE"),
    ("topup.intro", "Pay by card through Stripe Checkout; FARE is minted to your account once Stripe confirms the payment. 1 FARE = 1 EUR."),
    ("topup.amount", "Amount (EUR)"),
    ("topup.pay", "Pay with card"),
    ("account.title", "Account"),
    ("account.name", "Name"),
    ("account.address", "Account address"),
    ("account.phones", "Phones that sign your passes"),
    ("account.phones_text", "Each phone makes its own key, which never leaves it; your account key certified it when you opened a pass there. Revoke a lost phone and its passes stop opening gates at once."),
    ("account.no_phone", "No phone yet: open a ticket's pass to set this one up."),
    ("account.phone", "Phone"),
    ("account.key", "Key"),
    ("account.since", "Since"),
    ("account.until", "Certified until"),
    ("account.revoked", "revoked"),
    ("account.revoke", "Revoke"),
    ("error.back", "Back to Kippu"),
    ("signin.passkey", "With a passkey"),
    ("signin.passkey_text", "Your phone or computer confirms it is you (fingerprint, face or PIN); nothing to type."),
    ("signin.passkey_button", "Sign in with a passkey"),
    ("passkey.failed_signin", "Passkey sign-in failed: "),
    ("passkey.failed_add", "No passkey was added: "),
    ("passkey.added", "Passkey added: next time, sign in with it."),
    ("account.passkeys", "Passkeys"),
    ("account.passkey_count", "Passkeys on this account: {}"),
    ("account.passkey_text", "A passkey signs you in with your device's fingerprint, face or PIN instead of the password."),
    ("account.add_passkey", "Add a passkey"),
    ("account.passkeys_need_domain", "Passkeys need the app to be reached by a domain name (e.g. http://localhost:8080)."),
    ("receipt.title", "Receipt · plan #{}"),
    ("receipt.bundle", "Bundle"),
    ("receipt.paid", "Paid"),
    ("receipt.valid_from", "Valid from"),
    ("receipt.buyer", "Bought by"),
    ("receipt.tx", "Transaction"),
    ("receipt.block", "block {}"),
    ("receipt.ticket", "Ticket"),
    ("receipt.leg", "Leg"),
    ("receipt.share", "Share (FARE)"),
    ("receipt.note", "Paid in FARE on the consortium chain; each leg's share goes to its operator at the period close."),
    ("tickets.receipt", "Receipt for plan #{}"),    ("home.title", "My Kippu"),
    ("home.alert_routes", "routes {}"),
    ("voucher.title", "Voucher #{}"),
    ("voucher.value_at", "{value} FARE at {operator}"),
    ("voucher.redeemed", "redeemed"),
    ("voucher.expired", "expired"),
    ("voucher.valid_until", "valid until {}"),
    ("voucher.note", "Show this code to the driver. It is signed by your key and renews itself every minute, so a screenshot will not work for long."),
    ("voucher.qr_alt", "Redemption code of voucher #{}"),
    ("voucher.not_yours", "You hold no voucher #{}."),
    ("data.title", "Your data"),
    ("data.intro", "Kippu keeps your name and credentials off chain; the chain only knows your pseudonymous address."),
    ("data.export", "Download everything Kippu holds about you (JSON)"),
    ("data.revoke_summary", "Lost your phone? Revoke your key"),
    ("data.revoke_confirm", "Type {} to confirm"),
    ("data.revoke_button", "Revoke my key"),
    ("data.erase_summary", "Erase my personal data"),
    ("data.erase_confirm", "Type {} to confirm: your account closes; tickets and FARE stay on chain under your address"),
    ("data.erase_button", "Erase"),
    ("data.err.erase_confirm", "Type erase in the box to confirm: this cannot be undone."),
    ("data.err.revoke_confirm", "Type revoke in the box to confirm."),
    ("topup_done.title", "Top-up"),
    ("topup_done.complete", "Top-up complete"),
    ("topup_done.processing", "Top-up processing"),
    ("topup_done.pending", "Top-up pending"),
    ("topup_done.minted", "{} FARE added to your account."),
    ("topup_done.paid", "Payment received; minting your FARE…"),
    ("topup_done.waiting", "Waiting for Stripe to confirm the payment…"),
    ("topup.err.amount", "Enter an amount between {min} and {max} EUR, with at most two decimals."),
    ("topup.err.no_session", "Missing session id."),
    ("topup.err.unknown", "No such top-up."),
    ("cred.title", "Your credentials"),
    ("cred.intro", "Concession credentials prove you are a student, a senior or have a disability without telling operators who you are: only a pseudonymous attestation reaches the chain. Your DID:"),
    ("cred.none", "No credentials yet. Your university or welfare office can issue one to your DID."),
    ("cred.issued_by", "Issued by {issuer} · valid until {until}"),
    ("cred.valid", "valid"),
    ("cred.download", "Download (JSON-LD)"),
    ("cred.add_summary", "Add a credential from another wallet"),
    ("cred.paste", "Paste the credential (JSON)"),
    ("cred.add", "Add"),
    ("cred.added", "Credential added."),
    ("cred.not_json", "That is not JSON: paste the whole credential."),
    ("cred.not_added", "Not added: {}."),
    ("cred.not_yours", "Not added: this credential was issued to {}, not to you."),
    ("cred.not_found", "No such credential in your wallet."),
    ("cred.state.MALFORMED", "not a well-formed credential"),
    ("cred.state.NOT_A_CONCESSION", "not a concession credential"),
    ("cred.state.UNKNOWN_CONCESSION", "an unknown kind of concession"),
    ("cred.state.UNSIGNED", "the credential carries no proof"),
    ("cred.state.BAD_SIGNATURE", "the signature does not match: the credential was altered or not signed by its issuer"),
    ("cred.state.UNTRUSTED_ISSUER", "its issuer is not trusted for this concession"),
    ("cred.state.NOT_YET_VALID", "not valid before {}"),
    ("cred.state.EXPIRED", "expired at {}"),
    ("cred.state.REVOKED", "revoked by its issuer"),
    ("cred.state.STATUS_UNAVAILABLE", "its revocation status could not be checked"),
    ("cred.state.UNRESOLVABLE_DID", "its issuer's DID could not be resolved"),
    ("cred.state.other", "not valid ({})"),
    ("concession.student", "student"),
    ("concession.senior", "senior"),
    ("concession.disability", "disability"),
    ("plans.concession_kind", "{kind} concession, {pct}% off"),
    ("plans.err.short", "This plan costs {price} FARE and you have {balance} FARE: top up first."),
    ("plans.err.not_on_sale", "That plan is not on sale."),
    ("plans.err.request", "This purchase form is damaged: reload the plans page and buy again."),
    ("ticket.delay_cover", "delay cover"),
    ("ticket.unlimited", "unlimited rides"),
    ("ticket.one_ride", "1 ride left"),
    ("ticket.rides_left", "{} rides left"),
    ("ticket.not_yours", "You hold no ticket #{}."),
    ("refund.used", "This ticket has been used, so it cannot be refunded."),
    ("refund.not_refundable", "This ticket's fare is not refundable (or its refund period has ended)."),
    ("card.err.format", "That is not a card number: 64 hexadecimal digits, as printed on the back of the card."),
    ("card.err.taken", "That card is linked to someone else's ticket; they must remove it first."),
    ("card.err.not_card", "That is not a card number."),
    ("card.err.none", "You have no such card."),
    ("key.revoked", "This account's key was revoked on {at} ({reason}): it can no longer sign."),
    ("key.reason.traveler", "revoked by the traveler"),
    ("key.reason.erased", "erased at the traveler's request"),
    ("pass.title", "Pass"),
    ("pass.qr_label", "Rotating QR pass for ticket #{}, signed on this phone"),
    ("pass.run_label", "Run (GTFS trip id) the vehicle is working"),
    ("pass.route", "route {}"),
    ("pass.js.cert_renewing", "This phone’s certificate has expired; renewing it…"),
    ("pass.js.cert_expired", "This phone’s certificate has expired: gates will refuse this pass. Connect to the internet to renew it."),
    ("pass.js.sign_failed", "Could not sign the pass: {}"),
    ("pass.js.needs_signal", "This phone needs signal once to get its pass key certified (then the pass works offline). Connect to the internet: the pass appears by itself."),
    ("pass.js.signed_out", "You are signed out: sign in again so this phone can be certified."),
    ("pass.js.revoked", "This phone’s pass key was revoked. Connect to the internet so it can make and certify a new one."),
    ("pass.js.refused", "Kippu refused to certify this phone. Reload the page to try again; if it persists, check this phone under Account."),
    ("pass.js.server", "Kippu could not certify this phone just now. Try again in a moment."),
    ("pass.js.setup_failed", "This phone could not set up its pass key: {}"),
    ("pass.js.missing", "This page is missing its ticket or account."),
    ("pass.js.no_qr", "The QR encoder did not load; reload the page."),
    ("pass.js.no_crypto", "This browser cannot keep a pass key (WebCrypto and IndexedDB are needed)."),
    ("pass.js.cannot_sign", "This browser cannot sign passes here: {}"),
    ("pass.js.no_pass", "No pass on screen yet."),
    ("pass.js.scanning", "Scanning…"),
    ("pass.js.no_picture", "Could not take a picture of the pass."),
    ("pass.js.open", "OPEN"),
    ("pass.js.rides_left", " · rides left {}"),
    ("pass.js.deny", "DENY · {}"),
    ("pass.js.unreachable", "The simulated gate is out of reach: {}"),
    ("account.action", "Action"),
    ("error.bad_request", "That did not work"),
    ("error.not_found", "Not found"),
    ("error.refused", "Not possible"),
    ("error.forbidden", "Not yours to see or change"),
    ("error.portal", "Your organisation's pages in the staff portal"),
    ("error.internal", "Something went wrong"),
    ("error.try_again", "Please try again in a moment."),
    ("error.busy", "Busy right now"),
    ("error.busy_text", "Too many requests are in progress. Please try again in {} seconds."),
    ("revert.balance", "Not enough FARE for this plan: top up first."),
    ("revert.price", "The price changed; please review the plan again."),
    ("revert.paused", "Sales are paused right now."),
    ("revert.concession", "Your concession could not be applied, so nothing was bought. Please try again in a moment."),
    ("revert.other", "The ticketing contract refused: {}"),
    ("chain.pending", "Pending: this is recorded and being written to the chain, which is slow right now. It takes effect once; look again in a few seconds — do not pay or buy again."),
    ("csrf.title", "Request refused"),
    ("csrf.message", "This form was sent from another site ({}). Open Kippu and try again from its own page."),
    ("csrf.why_site", "the request came from another site"),
    ("csrf.why_origin", "the request's Origin is another site"),
    ("footer.chain", "chain {}"),
];

const JA: &[(&str, &str)] = &[
    ("nav.plans", "プラン"),
    ("nav.tickets", "チケット"),
    ("nav.topup", "チャージ"),
    ("nav.credentials", "証明書"),
    ("nav.account", "アカウント"),
    ("nav.gates", "改札機"),
    ("nav.operators", "事業者"),
    ("nav.other_lang", "English"),
    ("nav.other_code", "en"),
    ("footer", "Kippu · オープンなMaaSチケット"),
    ("signin.title", "ログイン"),
    ("signin.with_email", "メールアドレスでログイン"),
    ("field.email", "メールアドレス"),
    ("field.password", "パスワード"),
    ("signin.submit", "ログイン"),
    ("signin.new", "Kippuは初めてですか？"),
    ("signin.create", "アカウントを作成"),
    ("signin.create_tail", "（お名前・メールアドレス・パスワードだけで作れます）"),
    ("signin.wallet", "ご自身のウォレットで"),
    ("signin.wallet_text", "Ethereumウォレットで一度限りの Sign-In with Ethereum（EIP-4361）メッセージに署名します。鍵はウォレットから出ません。"),
    ("signin.demo", "デモ利用者"),
    ("signin.demo_text", "開発モード：登録済みの利用者としてワンクリックでログインします。鍵はKippuの鍵保管庫にあり、サーバーの外に出ることなくDIDチャレンジに署名します。"),
    ("signin.as", "{}としてログイン"),
    ("signin.err.wrong", "メールアドレスとパスワードが一致するアカウントがありません。"),
    ("signin.err.throttled", "試行回数が多すぎます。1分待ってからもう一度お試しください。"),
    ("signin.err.closed", "このアカウントは閉鎖されています：{}。"),
    ("signin.err.locked", "パスワードの誤りが多すぎます。{} 以降にもう一度お試しください。"),
    ("signup.title", "アカウントを作成"),
    ("signup.intro", "Kippuはあなたの分散型ID（DID）とアカウント鍵を作成します。鍵は暗号化してKippuの鍵保管庫に保管され、サーバー内でのみ署名します。アドレスを扱う必要はありません。"),
    ("signup.fix", "下の印のある項目を修正してください。"),
    ("signup.name", "お名前"),
    ("signup.password_help", "10文字以上。"),
    ("signup.confirm", "パスワード（確認）"),
    ("signup.submit", "アカウントを作成する"),
    ("signup.have", "アカウントをお持ちですか？"),
    ("signup.err.name", "アカウントに表示するお名前を入力してください（60文字以内）。"),
    ("signup.err.email", "name@example.com のようなメールアドレスを入力してください。"),
    ("signup.err.email_spaces", "メールアドレスに空白は使えません。"),
    ("signup.err.short", "{}文字以上にしてください（短い文にすると覚えやすくなります）。"),
    ("signup.err.long", "{}文字以内にしてください。"),
    ("signup.err.confirm", "2つのパスワードが一致しません。"),
    ("signup.err.taken", "このメールアドレスのアカウントは既にあります。ログインしてください。"),
    ("home.hello", "{}さん、こんにちは"),
    ("home.did", "あなたのDID"),
    ("home.balance", "残高"),
    ("home.signout", "ログアウト"),
    ("home.tickets", "チケット"),
    ("home.no_tickets", "チケットはまだありません。"),
    ("home.buy_plan", "プランを購入"),
    ("home.vouchers", "バウチャー"),
    ("home.no_vouchers", "バウチャーはありません。遅延補償付きのプランは、運行が遅れると自動的にバウチャーを受け取ります。"),
    ("home.alerts", "ご利用路線の運行情報"),
    ("plans.title", "旅行プラン"),
    ("plans.intro", "FARE。プランはワンステップで購入でき、各区間がそれぞれチケットになります。"),
    ("plans.concession", "{}が適用されます。下の価格は割引後です。"),
    ("plans.buy", "{} FAREで購入"),
    ("plans.save", "{}お得"),
    ("plans.concession_price", "割引価格"),
    ("tickets.title", "マイチケット"),
    ("tickets.bought", "プラン#{}を購入しました。チケットは下にあります。"),
    ("tickets.ticket", "チケット#{}"),
    ("tickets.refunded", "チケット#{}を払い戻しました。{} FAREが残高に戻りました。"),
    ("pass.history", "利用履歴"),
    ("pass.signed", "この端末で署名済み · {s}秒後に更新 · 証明の有効期限 {until}"),
    ("pass.offline", "電波がありません：パスはこの端末で署名され、そのまま使えます。"),
    ("pass.no_taps", "まだ使われていません。"),
    ("pass.refund_text", "未使用なので、運賃を残高に戻せます。"),
    ("pass.refund", "{} FAREを払い戻す"),
    ("pass.setting_up", "この端末を準備しています…"),
    ("pass.note", "電波がなくても、この端末で数秒ごとに署名し直します。スクリーンショットは使えません。"),
    ("pass.gates", "シミュレーション改札：このパスをかざす"),
    ("pass.card", "ICカード"),
    ("pass.card_text", "KippuのICカードをこのチケットに登録すると、パスを見せる代わりに改札でタッチできます。カードは外に出さない鍵で改札ごとに本物であることを証明するので、カード番号をコピーしても通れません。"),
    ("pass.card_number", "カード番号"),
    ("pass.card_help", "カード裏面に印字された64文字（0–9、a–f）。"),
    ("pass.card_link", "カードを登録"),
    ("pass.card_remove", "削除（紛失）"),
    ("topup.title", "FAREをチャージ"),
    ("topup.intro", "Stripe Checkoutでカード払い。Stripeが支払いを確認すると、FAREがアカウントに発行されます。1 FARE = 1 EUR。"),
    ("topup.amount", "金額（EUR）"),
    ("topup.pay", "カードで支払う"),
    ("account.title", "アカウント"),
    ("account.name", "お名前"),
    ("account.address", "アカウントアドレス"),
    ("account.phones", "パスに署名する端末"),
    ("account.phones_text", "端末はそれぞれ自分の鍵を作り、その鍵は端末から出ません。その端末でパスを開いたとき、アカウント鍵が証明しました。紛失した端末を無効にすると、そのパスでは直ちに改札を通れなくなります。"),
    ("account.no_phone", "端末はまだありません。チケットのパスを開くとこの端末が設定されます。"),
    ("account.phone", "端末"),
    ("account.key", "鍵"),
    ("account.since", "登録日"),
    ("account.until", "証明の有効期限"),
    ("account.revoked", "無効"),
    ("account.revoke", "無効にする"),
    ("error.back", "Kippuに戻る"),
    ("signin.passkey", "パスキーで"),
    ("signin.passkey_text", "スマートフォンやパソコンが本人確認（指紋・顔・PIN）をします。入力は不要です。"),
    ("signin.passkey_button", "パスキーでログイン"),
    ("passkey.failed_signin", "パスキーでのログインに失敗しました："),
    ("passkey.failed_add", "パスキーを追加できませんでした："),
    ("passkey.added", "パスキーを追加しました。次回からパスキーでログインできます。"),
    ("account.passkeys", "パスキー"),
    ("account.passkey_count", "このアカウントのパスキー：{}"),
    ("account.passkey_text", "パスキーを使うと、パスワードの代わりに端末の指紋・顔・PINでログインできます。"),
    ("account.add_passkey", "パスキーを追加"),
    ("account.passkeys_need_domain", "パスキーを使うには、ドメイン名でアプリにアクセスする必要があります（例：http://localhost:8080）。"),
    ("receipt.title", "領収書 · プラン#{}"),
    ("receipt.bundle", "セット"),
    ("receipt.paid", "支払額"),
    ("receipt.valid_from", "有効開始"),
    ("receipt.buyer", "購入者"),
    ("receipt.tx", "トランザクション"),
    ("receipt.block", "ブロック{}"),
    ("receipt.ticket", "チケット"),
    ("receipt.leg", "区間"),
    ("receipt.share", "配分（FARE）"),
    ("receipt.note", "コンソーシアムチェーン上でFAREで支払われました。各区間の配分は期間締めで各事業者に支払われます。"),
    ("tickets.receipt", "プラン#{}の領収書"),    ("home.title", "マイKippu"),
    ("home.alert_routes", "対象路線：{}"),
    ("voucher.title", "バウチャー#{}"),
    ("voucher.value_at", "{operator}で使える{value} FARE"),
    ("voucher.redeemed", "利用済み"),
    ("voucher.expired", "期限切れ"),
    ("voucher.valid_until", "{}まで有効"),
    ("voucher.note", "このコードを運転手に見せてください。あなたの鍵で署名され、毎分新しくなるため、スクリーンショットはすぐに使えなくなります。"),
    ("voucher.qr_alt", "バウチャー#{}の利用コード"),
    ("voucher.not_yours", "バウチャー#{}はお持ちではありません。"),
    ("data.title", "あなたのデータ"),
    ("data.intro", "Kippuはお名前と証明書をチェーンの外で保管します。チェーンが知っているのは仮名のアドレスだけです。"),
    ("data.export", "Kippuが保有するあなたのデータをすべてダウンロード（JSON）"),
    ("data.revoke_summary", "端末をなくしたときは：鍵を無効にする"),
    ("data.revoke_confirm", "確認のため{}と入力してください"),
    ("data.revoke_button", "鍵を無効にする"),
    ("data.erase_summary", "個人データを消去する"),
    ("data.erase_confirm", "確認のため{}と入力してください。アカウントは閉鎖されます。チケットとFAREはあなたのアドレスのままチェーン上に残ります"),
    ("data.erase_button", "消去する"),
    ("data.err.erase_confirm", "確認のため、入力欄に erase と入力してください。この操作は取り消せません。"),
    ("data.err.revoke_confirm", "確認のため、入力欄に revoke と入力してください。"),
    ("topup_done.title", "チャージ"),
    ("topup_done.complete", "チャージ完了"),
    ("topup_done.processing", "チャージ処理中"),
    ("topup_done.pending", "チャージ確認待ち"),
    ("topup_done.minted", "{} FAREをアカウントに追加しました。"),
    ("topup_done.paid", "お支払いを受け付けました。FAREを発行しています…"),
    ("topup_done.waiting", "Stripeによるお支払いの確認を待っています…"),
    ("topup.err.amount", "{min}～{max} EURの金額を、小数点以下2桁までで入力してください。"),
    ("topup.err.no_session", "セッションIDがありません。"),
    ("topup.err.unknown", "該当するチャージはありません。"),
    ("cred.title", "あなたの証明書"),
    ("cred.intro", "割引証明書は、あなたが誰かを事業者に知らせずに、学生・シニア・障がいのある方であることを証明します。チェーンに届くのは仮名の証明だけです。あなたのDID："),
    ("cred.none", "証明書はまだありません。大学や福祉事務所があなたのDIDあてに発行できます。"),
    ("cred.issued_by", "発行元：{issuer} · 有効期限：{until}"),
    ("cred.valid", "有効"),
    ("cred.download", "ダウンロード（JSON-LD）"),
    ("cred.add_summary", "他のウォレットの証明書を追加"),
    ("cred.paste", "証明書（JSON）を貼り付けてください"),
    ("cred.add", "追加"),
    ("cred.added", "証明書を追加しました。"),
    ("cred.not_json", "JSONではありません。証明書全体を貼り付けてください。"),
    ("cred.not_added", "追加できませんでした：{}。"),
    ("cred.not_yours", "追加できませんでした：この証明書はあなたではなく{}あてに発行されています。"),
    ("cred.not_found", "その証明書はウォレットにありません。"),
    ("cred.state.MALFORMED", "証明書の形式が正しくありません"),
    ("cred.state.NOT_A_CONCESSION", "割引の証明書ではありません"),
    ("cred.state.UNKNOWN_CONCESSION", "不明な種類の割引です"),
    ("cred.state.UNSIGNED", "証明書に署名がありません"),
    ("cred.state.BAD_SIGNATURE", "署名が一致しません（証明書が改ざんされたか、発行元の署名ではありません）"),
    ("cred.state.UNTRUSTED_ISSUER", "発行元はこの割引について信頼されていません"),
    ("cred.state.NOT_YET_VALID", "{}までは有効になりません"),
    ("cred.state.EXPIRED", "{}に期限が切れました"),
    ("cred.state.REVOKED", "発行元により取り消されました"),
    ("cred.state.STATUS_UNAVAILABLE", "取り消しの有無を確認できませんでした"),
    ("cred.state.UNRESOLVABLE_DID", "発行元のDIDを解決できませんでした"),
    ("cred.state.other", "無効です（{}）"),
    ("concession.student", "学生"),
    ("concession.senior", "シニア"),
    ("concession.disability", "障がい者"),
    ("plans.concession_kind", "{kind}割引（{pct}%オフ）"),
    ("plans.err.short", "このプランは{price} FAREですが、残高は{balance} FAREです。先にチャージしてください。"),
    ("plans.err.not_on_sale", "そのプランは販売していません。"),
    ("plans.err.request", "購入フォームが壊れています。プランのページを再読み込みして、もう一度購入してください。"),
    ("ticket.delay_cover", "遅延補償"),
    ("ticket.unlimited", "乗り放題"),
    ("ticket.one_ride", "残り1回"),
    ("ticket.rides_left", "残り{}回"),
    ("ticket.not_yours", "チケット#{}はお持ちではありません。"),
    ("refund.used", "このチケットは使用済みのため、払い戻しできません。"),
    ("refund.not_refundable", "このチケットの運賃は払い戻しできません（または払い戻し期間が終わっています）。"),
    ("card.err.format", "カード番号ではありません。カード裏面に印字された16進数64桁を入力してください。"),
    ("card.err.taken", "このカードは他の方のチケットに登録されています。先にその方が登録を削除する必要があります。"),
    ("card.err.not_card", "カード番号ではありません。"),
    ("card.err.none", "そのカードは登録されていません。"),
    ("key.revoked", "このアカウントの鍵は{at}に無効にされたため（{reason}）、署名できません。"),
    ("key.reason.traveler", "ご本人による無効化"),
    ("key.reason.erased", "ご本人の依頼によるデータ消去"),
    ("pass.title", "パス"),
    ("pass.qr_label", "チケット#{}のQRパス（この端末で署名、数秒ごとに更新）"),
    ("pass.run_label", "車両が運行中の便（GTFSトリップID）"),
    ("pass.route", "{}系統"),
    ("pass.js.cert_renewing", "この端末の証明書は期限切れです。更新しています…"),
    ("pass.js.cert_expired", "この端末の証明書は期限切れのため、改札はこのパスを通しません。インターネットに接続して更新してください。"),
    ("pass.js.sign_failed", "パスに署名できませんでした：{}"),
    ("pass.js.needs_signal", "パスの鍵を証明するため、この端末は一度だけ電波が必要です（その後はオフラインでも使えます）。インターネットに接続すると、パスが自動的に表示されます。"),
    ("pass.js.signed_out", "ログアウトしています。この端末を証明するため、もう一度ログインしてください。"),
    ("pass.js.revoked", "この端末のパス鍵は無効にされました。新しい鍵を作って証明するため、インターネットに接続してください。"),
    ("pass.js.refused", "Kippuはこの端末の証明を拒否しました。ページを再読み込みしてもう一度お試しください。解決しない場合は「アカウント」でこの端末を確認してください。"),
    ("pass.js.server", "Kippuは今この端末を証明できませんでした。しばらくしてからもう一度お試しください。"),
    ("pass.js.setup_failed", "この端末でパス鍵を準備できませんでした：{}"),
    ("pass.js.missing", "このページにはチケットまたはアカウントの情報がありません。"),
    ("pass.js.no_qr", "QRコードの生成機能を読み込めませんでした。ページを再読み込みしてください。"),
    ("pass.js.no_crypto", "このブラウザーではパス鍵を保管できません（WebCryptoとIndexedDBが必要です）。"),
    ("pass.js.cannot_sign", "このブラウザーではここでパスに署名できません：{}"),
    ("pass.js.no_pass", "まだ画面にパスが表示されていません。"),
    ("pass.js.scanning", "読み取り中…"),
    ("pass.js.no_picture", "パスの画像を取得できませんでした。"),
    ("pass.js.open", "OPEN · 通過できます"),
    ("pass.js.rides_left", " · 残り{}回"),
    ("pass.js.deny", "DENY · 通過できません · {}"),
    ("pass.js.unreachable", "シミュレーション改札に接続できません：{}"),
    ("account.action", "操作"),
    ("error.bad_request", "うまくいきませんでした"),
    ("error.not_found", "見つかりません"),
    ("error.refused", "お手続きできません"),
    ("error.forbidden", "この操作の権限がありません"),
    ("error.portal", "スタッフポータルの自組織のページへ"),
    ("error.internal", "問題が発生しました"),
    ("error.try_again", "しばらくしてからもう一度お試しください。"),
    ("error.busy", "ただいま混み合っています"),
    ("error.busy_text", "処理中のリクエストが多すぎます。{}秒後にもう一度お試しください。"),
    ("revert.balance", "このプランにはFAREが足りません。先にチャージしてください。"),
    ("revert.price", "価格が変わりました。プランをもう一度ご確認ください。"),
    ("revert.paused", "ただいま販売を一時停止しています。"),
    ("revert.concession", "割引を適用できなかったため、購入は行われていません。しばらくしてからもう一度お試しください。"),
    ("revert.other", "チケットのコントラクトが拒否しました：{}"),
    ("chain.pending", "処理中：記録済みで、チェーンへの書き込みを待っています。一度だけ反映されます。数秒後にもう一度ご確認ください（再度の支払いや購入は不要です）。"),
    ("csrf.title", "リクエストを拒否しました"),
    ("csrf.message", "このフォームは別のサイトから送信されました（{}）。Kippuを開き、Kippuのページからもう一度お試しください。"),
    ("csrf.why_site", "別のサイトからのリクエストです"),
    ("csrf.why_origin", "リクエストのOriginが別のサイトです"),
    ("footer.chain", "チェーン{}"),
];

#[cfg(test)]
mod pages_test;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_the_same_keys_once() {
        let keys = |c: &[(&'static str, &'static str)]| -> Vec<&'static str> {
            let mut k: Vec<&str> = c.iter().map(|(k, _)| *k).collect();
            k.sort_unstable();
            let n = k.len();
            k.dedup();
            assert_eq!(n, k.len(), "duplicate key");
            k
        };
        assert_eq!(keys(EN), keys(JA));
        for (k, v) in EN.iter().chain(JA) {
            assert!(!v.trim().is_empty(), "{k} is blank");
        }
        // `{}` in order, `{name}` in any order: the same ones in both languages.
        let placeholders = |v: &str| -> Vec<String> {
            let mut p: Vec<String> =
                v.split('{').skip(1).filter_map(|rest| rest.split_once('}')).map(|(name, _)| name.to_owned()).collect();
            p.sort();
            p
        };
        let ja: HashMap<&str, &str> = JA.iter().copied().collect();
        for (k, en) in EN {
            assert_eq!(placeholders(en), placeholders(ja[k]), "{k}: placeholders differ");
        }
    }

    #[tokio::test]
    async fn named_placeholders_and_script_texts() {
        LANG.scope(Lang::Ja, async {
            assert_eq!(
                tn("voucher.value_at", &[("value", &"7.80"), ("operator", &"City Taxi")]),
                "City Taxiで使える7.80 FARE"
            );
            let texts: serde_json::Value = serde_json::from_str(&js_texts("pass.js.")).unwrap();
            assert_eq!(texts["scanning"], "読み取り中…");
            assert!(texts.get("pass.js.scanning").is_none(), "keys lose their prefix");
        })
        .await;
        assert_eq!(tn("voucher.value_at", &[("value", &"7.80"), ("operator", &"City Taxi")]), "7.80 FARE at City Taxi");
        assert!(
            english_only("/operators/bus/report") && english_only("/portal/issuers/usf") && !english_only("/plans")
        );
    }

    #[test]
    fn language_from_cookie_then_accept_language() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert_eq!(Lang::of(&h(&[])), Lang::En);
        assert_eq!(Lang::of(&h(&[("accept-language", "ja-JP,ja;q=0.9,en;q=0.8")])), Lang::Ja);
        assert_eq!(Lang::of(&h(&[("accept-language", "fr-FR, en;q=0.5, ja;q=0.7")])), Lang::Ja);
        assert_eq!(Lang::of(&h(&[("accept-language", "fr-FR, de")])), Lang::En);
        assert_eq!(Lang::of(&h(&[("accept-language", "ja"), ("cookie", "kippu_lang=en")])), Lang::En);
        assert_eq!(Lang::of(&h(&[("cookie", "kippu_lang=ja")])), Lang::Ja);
    }

    #[tokio::test]
    async fn texts_follow_the_scoped_language() {
        assert_eq!(t("nav.plans"), "Plans");
        LANG.scope(Lang::Ja, async {
            assert_eq!(t("nav.plans"), "プラン");
            assert_eq!(tf("home.hello", "花子"), "花子さん、こんにちは");
        })
        .await;
        assert_eq!(t("no.such.key"), "no.such.key");
    }
}
