//! Organisations: the staff of one organisation reach nothing of another's through any staff
//! route, by page or by API token (a table of every route, checked against the routers'
//! source so a new route cannot be left out); a token is refused outside its scope, once
//! revoked and once expired.

use std::collections::BTreeSet;

use kippu_domain::staff::{OrgKind, Role};
use reqwest::Method;

use crate::support::{accept_invitation, browser, signed_in, Prod};

/// What a route is sent.
#[derive(Clone, Copy, Debug)]
enum Body {
    Empty,
    Form(&'static str),
    Json(&'static str),
    Zip,
}

/// Whose a route's resource is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Owner {
    /// An organisation's, named in the path (`{op}`, `{iss}`, `{org}`).
    Org,
    /// The consortium's as a whole.
    Consortium,
}

use Body::*;
use Owner::*;

/// Every staff route. Placeholders: `{op}` an operator, `{iss}` an issuer, `{org}` any
/// organisation, `{staff}` one of its staff accounts, `{token}` one of its tokens.
const ROUTES: &[(&str, &str, Body, Owner)] = &[
    ("GET", "/operators/{op}/report", Empty, Org),
    ("GET", "/operators/{op}/report.csv", Empty, Org),
    ("GET", "/operators/{op}/report.json", Empty, Org),
    ("GET", "/operators/{op}/events", Empty, Org),
    ("GET", "/operators/{op}/events.csv", Empty, Org),
    ("GET", "/operators/{op}/events.json", Empty, Org),
    ("GET", "/operators/{op}/rides", Empty, Org),
    ("GET", "/operators/{op}/rides.csv", Empty, Org),
    ("GET", "/operators/{op}/rides.json", Empty, Org),
    ("GET", "/operators/{op}/statements/{period}", Empty, Org),
    ("GET", "/operators/{op}/timetable", Empty, Org),
    ("POST", "/operators/{op}/timetable", Zip, Org),
    ("POST", "/operators/{op}/vouchers/redeem", Json(r#"{"code":"KV1.x"}"#), Org),
    ("GET", "/portal/issuers/{iss}", Empty, Org),
    ("POST", "/portal/issuers/{iss}/issue", Form("holder=did%3Apkh%3Aeip155%3A31337%3A0x1111111111111111111111111111111111111111&concession=student&valid_until=2030-01-01"), Org),
    ("POST", "/portal/issuers/{iss}/revoke", Form("id=urn%3Auuid%3Ax"), Org),
    ("GET", "/portal/orgs/{org}/staff", Empty, Org),
    ("POST", "/portal/orgs/{org}/staff", Form("email=mole%40example.org&role=staff"), Org),
    ("POST", "/portal/orgs/{org}/staff/{staff}/role", Form("role=auditor"), Org),
    ("POST", "/portal/orgs/{org}/staff/{staff}/reinvite", Empty, Org),
    ("POST", "/portal/orgs/{org}/staff/{staff}/disable", Empty, Org),
    ("GET", "/portal/orgs/{org}/tokens", Empty, Org),
    ("POST", "/portal/orgs/{org}/tokens", Form("name=mole&days=30&scope=reports%3Aread"), Org),
    ("POST", "/portal/orgs/{org}/tokens/{token}/revoke", Empty, Org),
    ("GET", "/portal/orgs/{org}/audit", Empty, Org),
    ("GET", "/portal/orgs/{org}/audit.csv", Empty, Org),
    ("GET", "/portal/organisations", Empty, Consortium),
    ("POST", "/portal/organisations", Form("slug=mole&name=Mole&kind=operator&email=m%40mole.example"), Consortium),
    ("GET", "/portal/audit", Empty, Consortium),
    ("GET", "/portal/audit.csv", Empty, Consortium),
    ("GET", "/portal/chain-writes", Empty, Consortium),
    ("GET", "/gates", Empty, Consortium),
    ("GET", "/operators/report", Empty, Consortium),
    ("GET", "/operators/insurance", Empty, Consortium),
    ("GET", "/metrics", Empty, Consortium),
];

/// Routes any signed-in member of staff, or anyone, may use: not about an organisation.
/// (A passkey is added to the signed-in person's own account, whatever their organisation.)
const NOT_STAFF_ROUTES: &[&str] = &[
    "/portal",
    "/portal/signin",
    "/portal/signout",
    "/portal/invitations/{secret}",
    "/portal/passkeys/register/start",
    "/portal/passkeys/register/finish",
    "/portal/passkeys/signin/start",
    "/portal/passkeys/signin/finish",
    "/api/presentations/challenge",
    "/api/presentations",
];

/// Paths the staff-facing routers declare (`.route("…"` in their source).
fn declared_routes() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in ["portal/mod.rs", "admin/mod.rs", "scanner/mod.rs"] {
        let path = kippu_e2e::repo().join("services/kippu-web/src").join(file);
        let src = std::fs::read_to_string(&path).unwrap();
        for chunk in src.split(".route(").skip(1) {
            let start = chunk.find('"').unwrap() + 1;
            let end = start + chunk[start..].find('"').unwrap();
            out.insert(chunk[start..end].to_owned());
        }
    }
    out
}

#[test]
fn the_table_names_every_staff_route() {
    let declared = declared_routes();
    let tabled: BTreeSet<String> = ROUTES
        .iter()
        .map(|(_, p, _, _)| p.replace("{op}", "{slug}").replace("{iss}", "{slug}").replace("{org}", "{slug}"))
        .map(|p| p.replace("{staff}", "{id}").replace("{token}", "{id}"))
        .chain(NOT_STAFF_ROUTES.iter().map(|p| (*p).to_owned()))
        .collect();
    let missing: Vec<_> = declared.difference(&tabled).collect();
    assert!(missing.is_empty(), "staff routes missing from the cross-organisation table: {missing:?}");
    let stale: Vec<_> = tabled.difference(&declared).collect();
    assert!(stale.is_empty(), "the table names routes that do not exist: {stale:?}");
}

/// Who sends the requests: a signed-in browser or a machine's token.
enum Actor {
    Session(reqwest::Client),
    Token(String),
}

async fn send(base: &str, actor: &Actor, method: &str, path: &str, body: Body) -> (u16, String) {
    let http = match actor {
        Actor::Session(c) => c.clone(),
        Actor::Token(_) => browser(),
    };
    let mut r = http.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{base}{path}"));
    if let Actor::Token(t) = actor {
        r = r.bearer_auth(t);
    }
    r = match body {
        Empty => r,
        Form(f) => r.header("content-type", "application/x-www-form-urlencoded").body(f),
        Json(j) => r.header("content-type", "application/json").body(j),
        Zip => r.header("content-type", "application/zip").body(b"PK\x03\x04 not really".to_vec()),
    };
    let res = r.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// Operator `metro` (staff, an auditor, a token with every scope an operator has), issuer
/// `university`, insurer `mutual` and a non-admin member of the consortium's staff try every
/// staff route on operator `taxi`'s, issuer `college`'s and the consortium's resources: each
/// is refused with 403 and the reason (401 for the metrics), and nothing of `taxi`'s or
/// `college`'s changed. The same routes on their own organisation open, so the refusals are
/// about whose the resource is.
#[tokio::test]
async fn staff_of_one_organisation_reach_nothing_of_another_through_any_staff_route() {
    let prod = Prod::new("orgs").await;
    let stack = prod.serve().await;
    let base = stack.web_url.clone();
    let _admin = prod.admin(&base).await;
    let store = kippu_store::Store::connect(&prod.cfg.database_url()).await.unwrap();
    let mut people = Vec::new();
    for (slug, name, kind) in [
        ("metro", "Metro", OrgKind::Operator),
        ("taxi", "Taxi", OrgKind::Operator),
        ("university", "University", OrgKind::Issuer),
        ("college", "College", OrgKind::Issuer),
        ("mutual", "Mutual", OrgKind::Insurer),
    ] {
        let email = format!("staff@{slug}.example");
        let link = kippu::staff::org_add(&prod.cfg, &store, slug, name, kind, &email).await.unwrap();
        accept_invitation(&base, &link).await;
        people.push((slug, email));
    }
    for (org, email, role) in
        [("metro", "auditor@metro.example", Role::Auditor), ("kippu", "clerk@kippu.example", Role::Staff)]
    {
        let link = kippu::staff::invite(&prod.cfg, &store, org, email, role).await.unwrap();
        accept_invitation(&base, &link).await;
    }
    let taxi_staff = store.staff_of("taxi").await.unwrap().remove(0);
    let taxi_token =
        kippu::staff::token_issue(&store, "taxi", "scanner", &["vouchers:redeem".into()], 30).await.unwrap();
    let all_operator_scopes: Vec<String> =
        ["reports:read", "timetable:read", "timetable:write", "vouchers:redeem", "audit:read"].map(Into::into).to_vec();
    let metro_token = kippu::staff::token_issue(&store, "metro", "everything", &all_operator_scopes, 30).await.unwrap();
    let taxi_audit = |store: kippu_store::Store| async move {
        let f = kippu_store::AuditFilter { organisation: Some("taxi".into()), ..Default::default() };
        store.audit_search(&f, 1000).await.unwrap().len()
    };
    let taxi_audit_before = taxi_audit(store.clone()).await;
    let orgs_before = store.organisations().await.unwrap().len();

    let actors = [
        ("metro staff", Actor::Session(signed_in(&base, "staff@metro.example").await), false),
        ("metro auditor", Actor::Session(signed_in(&base, "auditor@metro.example").await), false),
        ("metro token", Actor::Token(metro_token.bearer.clone()), false),
        ("university staff", Actor::Session(signed_in(&base, "staff@university.example").await), false),
        ("mutual staff", Actor::Session(signed_in(&base, "staff@mutual.example").await), false),
        // The consortium's own staff (no admin) reach the consortium's pages, not an organisation's.
        ("consortium staff", Actor::Session(signed_in(&base, "clerk@kippu.example").await), true),
    ];
    let fill = |p: &str| {
        p.replace("{op}", "taxi")
            .replace("{iss}", "college")
            .replace("{org}", "taxi")
            .replace("{staff}", &taxi_staff.id)
            .replace("{token}", &taxi_token.token.id)
            .replace("{period}", "1")
    };
    let mut checked = 0;
    for (who, actor, consortium) in &actors {
        for (method, path, body, owner) in ROUTES {
            if *owner == Consortium && (*consortium || (*who == "mutual staff" && *path == "/operators/insurance")) {
                continue;
            }
            let path = fill(path);
            let (status, text) = send(&base, actor, method, &path, *body).await;
            let want: &[u16] = if path == "/metrics" { &[401] } else { &[403] };
            assert!(want.contains(&status), "{who}: {method} {path} answered {status}: {text}");
            if status == 403 {
                assert!(
                    ["another organisation", "can read but not change", "no ", "scopes"]
                        .iter()
                        .any(|w| text.contains(w)),
                    "{who}: {method} {path}: the 403 says why: {text}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked} requests");

    // Nothing of taxi's or college's changed.
    let staff = store.staff_of("taxi").await.unwrap();
    assert_eq!(staff.len(), 1, "no one was invited to taxi");
    assert_eq!((staff[0].role, staff[0].disabled_at), (Role::Staff, None), "role and state unchanged");
    let tokens = store.tokens_of("taxi").await.unwrap();
    assert_eq!((tokens.len(), tokens[0].revoked_at), (1, None), "no token issued or revoked");
    assert!(store.current_timetables().await.unwrap().is_empty(), "no timetable imported");
    assert!(store.issued_by("college").await.unwrap().is_empty(), "no credential issued");
    assert_eq!(store.organisations().await.unwrap().len(), orgs_before, "no organisation added");
    assert_eq!(taxi_audit(store.clone()).await, taxi_audit_before, "no action was taken on taxi");
    let forbidden = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(forbidden.status(), 401);

    // The same routes open for their owners.
    let (metro, university) = (&actors[0].1, &actors[3].1);
    for (actor, path) in [
        (metro, "/operators/metro/report"),
        (metro, "/portal/orgs/metro/staff"),
        (metro, "/portal/orgs/metro/tokens"),
        (metro, "/portal/orgs/metro/audit.csv"),
        (&actors[2].1, "/operators/metro/report.json"),
        (university, "/portal/issuers/university"),
        (&actors[4].1, "/operators/insurance"),
        (&actors[5].1, "/gates"),
    ] {
        let (status, text) = send(&base, actor, "GET", path, Empty).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    stack.shutdown().await;
}

/// A token acts only within its scopes, and is refused once revoked (from the portal) or
/// expired, and when forged; the refusals say which.
#[tokio::test]
async fn a_token_outside_its_scope_revoked_expired_or_forged_is_refused() {
    let prod = Prod::new("tokens").await;
    let stack = prod.serve().await;
    let base = stack.web_url.clone();
    let store = kippu_store::Store::connect(&prod.cfg.database_url()).await.unwrap();
    let link = kippu::staff::org_add(&prod.cfg, &store, "metro", "Metro", OrgKind::Operator, "ops@metro.example")
        .await
        .unwrap();
    accept_invitation(&base, &link).await;
    let ops = signed_in(&base, "ops@metro.example").await;
    // Issued from the portal, shown once.
    let issued = ops
        .post(format!("{base}/portal/orgs/metro/tokens"))
        .header("accept", "application/json")
        .form(&[("name", "reporting"), ("days", "30"), ("scope", "reports:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 201);
    let v: serde_json::Value = issued.json().await.unwrap();
    let (id, token) = (v["id"].as_str().unwrap().to_owned(), v["token"].as_str().unwrap().to_owned());
    let page = ops.get(format!("{base}/portal/orgs/metro/tokens")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&id) && !page.contains(&token), "listed, and the secret is not shown again");
    let stored = store.api_token(&id).await.unwrap().unwrap();
    assert!(!stored.token_hash.contains(&token[20..]), "stored hashed");

    let get = |path: &'static str, bearer: String| {
        let base = base.clone();
        async move {
            let r = browser().get(format!("{base}{path}")).bearer_auth(bearer).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/operators/metro/report.json", token.clone()).await.0, 200);
    // Outside its scope: the timetable, the audit log, voucher redemption.
    let (status, why) = get("/operators/metro/timetable", token.clone()).await;
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("do not include timetable:read"), "{why}");
    let r = browser()
        .post(format!("{base}/operators/metro/vouchers/redeem"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"code": "KV1.x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Forged: the right id, another secret.
    let mut forged = token.clone();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    let (status, why) = get("/operators/metro/report.json", forged).await;
    assert_eq!((status, why.as_str()), (401, "unknown API token"));
    // Revoked from the portal: refused from the next request on.
    let r = ops.post(format!("{base}/portal/orgs/metro/tokens/{id}/revoke")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let (status, why) = get("/operators/metro/report.json", token.clone()).await;
    assert_eq!((status, why.as_str()), (401, "this API token was revoked"));
    // Expired.
    let other = kippu::staff::token_issue(&store, "metro", "old", &["reports:read".into()], 1).await.unwrap();
    assert_eq!(get("/operators/metro/report.json", other.bearer.clone()).await.0, 200);
    let db = sqlx::AnyPool::connect(&prod.cfg.database_url()).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE id = $1").bind(&other.token.id).execute(&db).await.unwrap();
    let (status, why) = get("/operators/metro/report.json", other.bearer).await;
    assert_eq!((status, why.as_str()), (401, "this API token expired"));
    db.close().await;
    // The issue and the revocation are in the organisation's log.
    let f = kippu_store::AuditFilter { organisation: Some("metro".into()), ..Default::default() };
    let entries = store.audit_search(&f, 100).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.record.action.as_str()).collect();
    assert!(actions.contains(&"token.issued") && actions.contains(&"token.revoked"), "{actions:?}");
    stack.shutdown().await;
}
