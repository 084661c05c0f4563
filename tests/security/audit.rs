//! The audit log: staff and command-line actions are recorded with who, what, to what and
//! from where, each row chained to the one before; `kippu audit verify` finds a row edited in
//! the database, and with a head noted earlier, rows cut off the end.

use std::time::Duration;

use crate::support::{accept_invitation, run_kippu, Prod, ADMIN_EMAIL, STAFF_PASSWORD};

#[tokio::test]
async fn an_audit_row_changed_or_cut_in_the_database_is_found() {
    let prod = Prod::new("audit").await;
    let stack = prod.serve().await;
    let file = prod.config_file(&prod.cfg, "kippu.toml");
    let cli = |args: &[&str]| {
        let mut all = vec!["--config".to_owned(), file.to_str().unwrap().to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_kippu(&refs, &[], Duration::from_secs(60)).await
        }
    };
    // `kippu init` invited the first admin, who sets a password and signs in to the portal, once
    // with a wrong one; an operator's gate is added.
    accept_invitation(&stack.web_url, &prod.init.admin_invitation).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signin = |password: &'static str| {
        let http = http.clone();
        let url = format!("{}/portal/signin", stack.web_url);
        async move {
            let form = [("email", ADMIN_EMAIL), ("password", password)];
            http.post(url).form(&form).send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(signin("not the password").await, 401);
    assert_eq!(signin(STAFF_PASSWORD).await, 303);
    let out = prod.dir.join("g9.gate.toml");
    let (code, _, err) =
        cli(&["gate", "add", "metro/central/g9", "--station", "Central", "--out", out.to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{err}");

    let (code, csv, err) = cli(&["audit", "list"]).await;
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[0].contains(",cli,metro,gate.added,metro/central/g9,"), "{csv}");
    let admin = format!("staff:{ADMIN_EMAIL},kippu");
    assert!(rows[1].contains(&format!(",{admin},staff.sign_in,portal,127.0.0.1,")), "{csv}");
    assert!(rows[2].contains(&format!(",{admin},staff.sign_in_failed,portal,127.0.0.1,")), "{csv}");
    assert!(rows[3].contains(&format!(",{admin},staff.invitation_accepted,{ADMIN_EMAIL},127.0.0.1,")), "{csv}");
    assert!(rows[4].contains(&format!(",cli,kippu,staff.added,{ADMIN_EMAIL} (admin),")), "{csv}");

    let (code, text, err) = cli(&["audit", "verify"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(text.starts_with("audit log intact: 5 entries, head 5:"), "{text}");
    let head = text.trim().rsplit(' ').next().unwrap().to_owned();

    // Someone with the database's password deletes the newest row: the chain left is valid,
    // but the head noted before is gone.
    let db = sqlx::AnyPool::connect(&prod.cfg.database_url()).await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE seq = 5").execute(&db).await.unwrap();
    let (code, text, _) = cli(&["audit", "verify"]).await;
    assert_eq!((code, text.starts_with("audit log intact: 4 entries")), (Some(0), true), "{text}");
    let (code, _, err) = cli(&["audit", "verify", "--expect-head", &head]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("audit log BROKEN: entry 5 follows entry 4"), "{err}");

    // … and rewrites who signed in.
    sqlx::query("UPDATE audit_log SET actor = 'staff:someone-else' WHERE seq = 4").execute(&db).await.unwrap();
    let (code, _, err) = cli(&["audit", "verify"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("entry 4 was changed after it was written"), "{err}");
    db.close().await;
    stack.shutdown().await;
}
