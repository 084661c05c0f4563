//! Traveler accounts over HTTP against the whole platform: sign-up with every field
//! checked, Argon2id password sign-in with its rate limit, cross-site forms refused, the
//! security headers, and a phone's device key certified by the account key — its passes
//! open a gate until the phone is revoked, which also signs the phone out.

use std::time::Duration;

use alloy::primitives::Address;
use ed25519_dalek::SigningKey;
use kippu_domain::device_pass::{cert_digest, Device};
use kippu_domain::pass::window_at;
use kippu_e2e::{config, now, Client};
use serde_json::Value;

async fn signup(c: &Client, name: &str, email: &str, password: &str, confirm: &str) -> (u16, String, String) {
    c.form("/signup", &[("name", name), ("email", email), ("password", password), ("confirm", confirm)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_up_sign_in_and_a_certified_phone() {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let stack = kippu::start(config("accounts", None, None)).await.expect("stack starts");
    let c = Client::new(&stack.web_url);

    // Every field says what is wrong, and what was typed is kept.
    let (status, _, page) = signup(&c, "", "not-an-email", "short", "other").await;
    assert_eq!(status, 422);
    for msg in ["Enter the name", "Enter an e-mail address", "at least 10 characters", "The two passwords differ"] {
        assert!(page.contains(msg), "missing {msg:?}");
    }
    assert!(page.contains("value=\"not-an-email\""), "the e-mail typed is kept");
    assert!(page.contains("aria-invalid=\"true\""), "fields are marked invalid for screen readers");

    // Sign-up: a DID and an address nobody typed, a session.
    let password = "a long enough passphrase";
    let (status, url, home) = signup(&c, "Aiko", " Aiko@Example.com ", password, password).await;
    assert_eq!(status, 200, "{home}");
    assert!(url.ends_with('/'), "{url}");
    assert!(home.contains("Hello, Aiko"), "{home}");
    let me = c.me().await;
    let address: Address = me["address"].as_str().unwrap().parse().unwrap();
    let account = c.page("/account").await;
    assert!(account.contains("aiko@example.com"), "e-mail stored normalized");
    assert!(account.contains(&format!("did:pkh:eip155:{}:", stack.deployment.chain_id)), "{account}");
    let t = stack.store.traveler(&address).await.unwrap().unwrap();
    assert!(t.sealed_key.as_deref().is_some_and(|k| k.starts_with("ks1.")), "custodial key sealed in the keystore");
    let (_, hash) = stack.store.password_login("aiko@example.com").await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(password), "only an Argon2id hash is kept");

    // The same e-mail again is refused with a way out.
    let other = Client::new(&stack.web_url);
    let (status, _, page) = signup(&other, "Someone", "aiko@example.com", password, password).await;
    assert_eq!(status, 422);
    assert!(page.contains("sign in instead"), "{page}");

    // Sign out, then sign in: a wrong password says so without saying which half was wrong.
    c.form("/signout", &[]).await;
    let (status, _, page) =
        c.form("/signin/password", &[("email", "aiko@example.com"), ("password", "wrong guess!")]).await;
    assert_eq!(status, 401);
    assert!(page.contains("do not match an account"), "{page}");
    let (status, _, page) =
        c.form("/signin/password", &[("email", "nobody@example.com"), ("password", password)]).await;
    assert_eq!((status, page.contains("do not match an account")), (401, true), "unknown e-mail: the same answer");
    let (status, _, home) = c.form("/signin/password", &[("email", "AIKO@example.com"), ("password", password)]).await;
    assert_eq!(status, 200);
    assert!(home.contains("Hello, Aiko"));
    // Her phone signs in too: a second session of the same account (lost later on).
    let lost = Client::new(&stack.web_url);
    let (status, _, home) =
        lost.form("/signin/password", &[("email", "aiko@example.com"), ("password", password)]).await;
    assert_eq!((status, home.contains("Hello, Aiko")), (200, true), "{home}");

    // Guessing is throttled: five attempts per e-mail, then one a minute, right or wrong.
    let guesser = Client::new(&stack.web_url);
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (s, _, _) = guesser
            .form("/signin/password", &[("email", "aiko@example.com"), ("password", &format!("guess {i}"))])
            .await;
        statuses.push(s);
    }
    let (s, _, page) = guesser.form("/signin/password", &[("email", "aiko@example.com"), ("password", password)]).await;
    assert!(statuses.iter().all(|s| *s == 401) || statuses.contains(&429), "{statuses:?}");
    assert_eq!(s, 429, "even the right password waits once throttled");
    assert!(page.contains("Too many attempts"), "{page}");

    // A form posted from another site is refused; the same form from the app is not.
    let r = c.http.post(format!("{}/signout", c.base)).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("another site"));
    let r = c
        .http
        .post(format!("{}/tickets/1/cards", c.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[("card", "00")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(c.me().await["address"], me["address"], "still signed in: the forged sign-out did nothing");

    // Security headers on pages.
    let r = c.http.get(format!("{}/account", c.base)).send().await.unwrap();
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(h["x-frame-options"], "DENY");
    // Signing out forgets the device too: the offline passes (Cache Storage) and the phone's
    // key (IndexedDB), which "cache" alone leaves behind.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = no_redirects.post(format!("{}/signout", c.base)).send().await.unwrap();
    let clear = r.headers()["clear-site-data"].to_str().unwrap();
    assert!(clear.contains("\"cache\"") && clear.contains("\"storage\""), "{clear}");

    // Passkeys need a domain (WebAuthn's relying party ID): served from an IP, they say so.
    let r = c.http.post(format!("{}/passkeys/signin/start", c.base)).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("domain name"));

    // Japanese, from the browser's Accept-Language or the switch in the header (a cookie).
    let ja = c.http.get(format!("{}/signup", c.base)).header("accept-language", "ja-JP,ja;q=0.9,en;q=0.5").send().await;
    let ja = ja.unwrap().text().await.unwrap();
    assert!(ja.contains("<html lang=\"ja\">") && ja.contains("アカウントを作成"), "{ja}");
    let jp = Client::new(&stack.web_url);
    let r = jp.http.get(format!("{}/lang/ja", jp.base)).header("referer", format!("{}/signup", jp.base)).send().await;
    let r = r.unwrap();
    assert!(r.url().path().ends_with("/signup"), "back where the switch was pressed: {}", r.url());
    let (status, _, page) = signup(&jp, "", "x", "short", "short").await;
    assert_eq!(status, 422);
    assert!(page.contains("10文字以上にしてください") && page.contains("お名前を入力してください"), "{page}");
    let (_, _, page) =
        jp.form("/signin/password", &[("email", "aiko@example.com"), ("password", "nope nope nope")]).await;
    assert!(page.contains("試行回数が多すぎます") || page.contains("一致するアカウントがありません"), "{page}");

    // Demo one-click sign-in is a development route only (this stack runs with them on).
    // A phone's device key: certified by the account key, its passes open a gate.
    let top_up = c.form("/topup", &[("amount", "150")]).await;
    assert!(top_up.1.contains("/pay/cs_"), "{top_up:?}");
    let paid = c.http.post(&top_up.1).send().await.unwrap();
    assert!(paid.url().path().starts_with("/topup/done"));
    let (_, url, _) = c.form("/plans/1/buy", &[]).await;
    assert!(url.contains("bought="), "{url}");
    let explorer: u64 = url.rsplit("bought=").next().unwrap().parse().unwrap();
    let metro = c.ticket_of(1, Some(explorer)).await;
    let (_, url, _) = c.form("/plans/2/buy", &[]).await;
    let commuter: u64 = url.rsplit("bought=").next().unwrap().parse().expect("the Commuter plan bought");
    let ten_rides = c.ticket_of(1, Some(commuter)).await;

    // The phone (the second session) makes its key and has the account certify it.
    let phone = SigningKey::from_bytes(&rand::random());
    let public = phone.verifying_key().to_bytes();
    let r = lost
        .http
        .post(format!("{}/api/device", lost.base))
        .json(&serde_json::json!({"public_key": alloy::hex::encode(public)}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let cert: Value = r.json().await.unwrap();
    let expiry = cert["cert_expiry"].as_u64().unwrap();
    assert!(expiry > now() + 7 * 86_400, "{cert}");
    let sig: [u8; 65] = alloy::hex::decode(cert["cert_sig"].as_str().unwrap()).unwrap().try_into().unwrap();
    let recovered = alloy::primitives::Signature::from_raw(&sig)
        .unwrap()
        .recover_address_from_prehash(&cert_digest(stack.deployment.chain_id, &public, expiry))
        .unwrap();
    assert_eq!(recovered, address, "the account key certified the phone");
    let device = Device::new(phone.to_bytes(), expiry, sig);
    let scan = |text: String| {
        let http = c.http.clone();
        let url = format!("{}/gates/metro/central/g1/scan", c.base);
        async move {
            let png = kippu_web::qr_png(&text).unwrap();
            http.post(url).body(png).send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let v = scan(device.pass(metro, window_at(now()), rand::random()).encode()).await;
    assert_eq!(v["open"], true, "{v}");

    // A used ticket keeps its fare. The metro pass never refunds, so this is shown on the
    // Commuter's 10 rides, which do (80 % back) while unused.
    let offer = c.page(&format!("/tickets/{ten_rides}/pass")).await;
    assert!(offer.contains("id=\"refund\""), "unused, the 10 rides offer a refund: {offer}");
    let v = scan(device.pass(ten_rides, window_at(now()), rand::random()).encode()).await;
    assert_eq!(v["open"], true, "{v}");
    for _ in 0..100 {
        if !stack.store.taps_of_ticket(ten_rides).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!c.page(&format!("/tickets/{ten_rides}/pass")).await.contains("id=\"refund\""), "used: no offer");
    let before = c.me().await["balance"].as_u64().unwrap();
    let (status, _, page) = c.form(&format!("/tickets/{ten_rides}/refund"), &[]).await;
    assert_eq!(status, 422);
    assert!(page.contains("has been used"), "{page}");
    assert_eq!(c.me().await["balance"].as_u64().unwrap(), before, "nothing came back");

    // The unused taxi credit is refunded, once. The receipt stays as it was at the sale.
    let receipt = |page: String| page[page.find("<h1>").unwrap()..page.find("</table>").unwrap()].to_owned();
    let sold = receipt(c.page(&format!("/plans/{explorer}/receipt")).await);
    assert_eq!(sold.matches("data-ticket=").count(), 4, "{sold}");
    let taxi = c.ticket_of(3, None).await;
    let (status, url, page) = c.form(&format!("/tickets/{taxi}/refund"), &[]).await;
    assert_eq!(status, 200);
    assert!(url.contains(&format!("refunded={taxi}")), "{url}");
    assert!(page.contains(&format!("Ticket #{taxi} refunded: 10.20 FARE")), "{page}");
    assert_eq!(c.me().await["balance"].as_u64().unwrap(), before + 1020);
    let (status, _, _) = c.form(&format!("/tickets/{taxi}/refund"), &[]).await;
    assert_eq!(status, 404, "refunded: no longer hers");
    assert_eq!(c.me().await["balance"].as_u64().unwrap(), before + 1020, "refunded once");
    let mut taxi_credit = stack.store.products().await.unwrap().into_iter().find(|p| p.id == 301).unwrap();
    taxi_credit.price *= 2;
    stack.store.upsert_product(&taxi_credit).await.unwrap();
    assert_eq!(receipt(c.page(&format!("/plans/{explorer}/receipt")).await), sold, "refund and price change");

    // The banners on the tickets page believe no link: the amount is the one booked.
    let banner = |page: &str| page.contains("class=\"flash ok\"");
    let page = c.page(&format!("/tickets?refunded={taxi}&amount=999.00")).await;
    assert!(page.contains("refunded: 10.20 FARE") && !page.contains("999"), "{page}");
    assert!(!banner(&c.page(&format!("/tickets?refunded={ten_rides}&amount=10.00")).await), "never refunded");
    assert!(!banner(&c.page("/tickets?refunded=1%20or%201&amount=1000").await));
    assert!(!banner(&c.page("/tickets?bought=999999").await), "no such plan");
    let bad = c.http.post(format!("{}/api/device", c.base)).json(&serde_json::json!({"public_key": "12"})).send().await;
    assert_eq!(bad.unwrap().status(), 400);
    let account = c.page("/account").await;
    let row = format!("data-device=\"{}\"", alloy::hex::encode(public));
    assert!(account.contains(&row), "the phone is listed");
    let status: Value = c.json(&format!("/api/device/{}", alloy::hex::encode(public))).await;
    assert_eq!(status["state"], "certified");

    // The phone is lost: revoked on the account page, its next pass is refused at once.
    let (status, _, _) = c.form("/account/devices/revoke", &[("device", &alloy::hex::encode(public))]).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v = scan(device.pass(metro, window_at(now()), rand::random()).encode()).await;
    assert_eq!(v["reason"], "DEVICE_REVOKED", "{v}");
    let status: Value = c.json(&format!("/api/device/{}", alloy::hex::encode(public))).await;
    assert_eq!(status["state"], "revoked");
    let again = c
        .http
        .post(format!("{}/api/device", c.base))
        .json(&serde_json::json!({"public_key": alloy::hex::encode(public)}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 422, "a revoked key is not certified again");
    // Nor can the lost phone make a new key and have it certified: revoking it from the
    // account page ended its session, and it has no pass to fetch either.
    let fresh = SigningKey::from_bytes(&rand::random()).verifying_key().to_bytes();
    let r = lost
        .http
        .post(format!("{}/api/device", lost.base))
        .json(&serde_json::json!({"public_key": alloy::hex::encode(fresh)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/signin", "the lost phone is signed out");
    assert!(stack.store.device(&fresh).await.unwrap().is_none(), "no key certified for the lost phone");
    let r = lost.http.get(format!("{}/tickets/{metro}/pass.png", lost.base)).send().await.unwrap();
    assert_eq!(r.url().path(), "/signin");
    assert_ne!(r.headers()["content-type"], "image/png");
    assert_eq!(c.me().await["address"], me["address"], "the session that revoked it stays");

    // Her data, exported: the e-mail, the phones with their labels and the passkeys, but
    // no secret (password hash, sealed key).
    let data = c.page("/me/data").await;
    let json: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(json["password_login"]["email"], "aiko@example.com", "{json}");
    let phones = json["devices"].as_array().unwrap();
    assert_eq!(phones.len(), 1, "{json}");
    assert_eq!(phones[0]["public_key"], alloy::hex::encode(public));
    assert!(phones[0]["label"].as_str().is_some_and(|l| !l.is_empty()) && phones[0]["revoked_at"].is_i64());
    assert_eq!(json["passkeys"], serde_json::json!([]));
    assert!(!data.contains("$argon2") && !data.contains("ks1."), "no secrets: {data}");

    // One client may not spray passwords over many e-mails: an X-Forwarded-For it writes
    // itself makes no new client, and no header is no way around the limit either.
    let mut throttled = false;
    for i in 0..40 {
        let r = c
            .http
            .post(format!("{}/signin/password", c.base))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .form(&[("email", format!("user{i}@example.com").as_str()), ("password", "a guess of theirs")])
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "the client is throttled whatever X-Forwarded-For says");
    // Nor mint accounts in bulk.
    let mut throttled = false;
    for i in 0..20 {
        let (status, _, page) = signup(&other, "Bulk", &format!("bulk{i}@example.com"), "short", "short").await;
        if status == 429 {
            assert!(page.contains("Too many attempts"), "{page}");
            throttled = true;
            break;
        }
    }
    assert!(throttled, "sign-ups are throttled per client");

    stack.shutdown().await;
}
