//! What the store's integration tests share: each runs its scenario on a fresh SQLite file and,
//! when `KIPPU_TEST_POSTGRES` names a server, on a fresh PostgreSQL database.

/// Defines the tests `sqlite` and `postgres`, each running `$run(url)` (an async fn taking the
/// database URL) on a fresh database of its kind; `$tag` names the scratch files and database.
macro_rules! on_sqlite_and_postgres {
    ($tag:literal, $run:path) => {
        #[tokio::test]
        async fn sqlite() {
            sqlx::any::install_default_drivers();
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            let dir = std::env::temp_dir().join(format!("kippu-{}-{}-{nanos}", $tag, std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            $run(&format!("sqlite://{}", dir.join("test.db").display())).await;
            std::fs::remove_dir_all(dir).ok();
        }

        #[tokio::test]
        async fn postgres() {
            let Some(server) = std::env::var("KIPPU_TEST_POSTGRES").ok().filter(|v| !v.is_empty()) else {
                eprintln!("KIPPU_TEST_POSTGRES unset: the PostgreSQL run is skipped");
                return;
            };
            let db = kippu_store::scratch::ScratchDatabase::create(&server, concat!("kippu_", $tag))
                .await
                .expect("postgres reachable");
            $run(&db.url).await;
            db.drop_now().await.unwrap();
        }
    };
}
pub(crate) use on_sqlite_and_postgres;
