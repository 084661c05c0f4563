//! Throw-away PostgreSQL databases for tests that run against a real server.

use sqlx::AnyPool;

use crate::{Result, StoreError};

/// A database created for one test run on a PostgreSQL server, dropped by [`Self::drop_now`]
/// (left behind when a test fails, to look at).
pub struct ScratchDatabase {
    admin: AnyPool,
    name: String,
    /// Where the new database is.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` on the server `server_url` (a URL naming any database there).
    pub async fn create(server_url: &str, prefix: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let i = server_url.rfind('/').ok_or_else(|| StoreError::UnsupportedUrl(server_url.to_owned()))?;
        let name = format!("{prefix}_{:08x}", rand::random::<u32>());
        let admin = AnyPool::connect(server_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await?;
        Ok(Self { admin, url: format!("{}/{name}", &server_url[..i]), name })
    }

    /// Drops the database, closing whatever connections are still open to it.
    pub async fn drop_now(self) -> Result<()> {
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).execute(&self.admin).await?;
        Ok(())
    }
}
