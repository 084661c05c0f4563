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

/// The middleware: runs the rest of the request in its language.
pub(crate) async fn scope(req: Request, next: Next) -> Response {
    let lang = Lang::of(req.headers());
    LANG.scope(lang, next.run(req)).await
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
    ("tickets.receipt", "Receipt for plan #{}"),
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
    ("tickets.receipt", "プラン#{}の領収書"),
];

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
        for ((k, en), (_, ja)) in EN.iter().zip(JA) {
            assert_eq!(en.matches("{}").count(), ja.matches("{}").count(), "{k}: placeholders differ");
        }
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
