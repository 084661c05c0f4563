//! Kippu's SQL store. One code path for SQLite (the embedded default) and
//! PostgreSQL (production) through sqlx's `Any` driver, with one portable
//! migration set in `migrations/`. Queries use `$n` placeholders, which both
//! backends accept, and integers only (amounts in FARE minor units).

use alloy_primitives::{Address, B256};
use kippu_domain::events::ChainEvent;
use kippu_domain::validation::Tap;
use kippu_domain::TicketState;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

mod accounts;
mod audit;
mod backup;
mod cards;
mod identity;
mod ingest;
mod insurance;
mod leases;
mod outbox;
mod port;
mod production;
mod reports;
mod rows;
pub mod scratch;
mod settlement;
mod staff;
mod throttle;
pub use accounts::{DeviceRow, PasskeyRow, PlanReceipt};
pub use audit::AuditFilter;
pub use backup::{Dump, TableDump};
pub use cards::CardBindingRow;
pub use identity::{IssuedCredential, IssuerRow, WalletCredential};
pub use insurance::{CoverTerms, InsuredPlan, PlanTap, RouteDelays, TimetableRow, VoucherStats};
pub use kippu_domain::outbox::RecordedWrite;
pub use production::{CredentialRow, OpenBatch};
pub use reports::*;
pub use rows::*;
pub use settlement::{OperatorClose, PeriodClose, PeriodCloseRow};
pub use staff::{ApiToken, Organisation, StaffAccount, StaffPasskeyRow};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A URL that is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database url {0:?} (use sqlite:// or postgres://)")]
    UnsupportedUrl(String),
    /// A stored value that does not parse (corrupt row).
    #[error("corrupt value in column {0}")]
    Corrupt(&'static str),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// How the ledger's multi-row statements are written for this database.
    batching: ingest::Batching,
}

fn addr(a: &Address) -> String {
    format!("{a:#x}")
}

fn parse_addr(s: &str) -> Result<Address> {
    s.parse().map_err(|_| StoreError::Corrupt("address"))
}

impl Store {
    /// Connects (creating an SQLite file if needed) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (url, max) = if url.starts_with("sqlite:") {
            // SQLite takes one writer at a time; a small pool avoids lock churn.
            let u =
                if url.contains('?') || url.contains(":memory:") { url.to_owned() } else { format!("{url}?mode=rwc") };
            (u, 4)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (url.to_owned(), 16)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // Per connection, so every pooled connection waits for the writer lock
                        // instead of failing. WAL with NORMAL sync survives a process crash; an
                        // OS crash may lose the last commits, which the ledger follower re-reads
                        // from the chain (its checkpoint is lost with them), and chain-side
                        // effects (minting, redemption) are idempotent by reference.
                        sqlx::query("PRAGMA busy_timeout=5000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA synchronous=NORMAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if sqlite {
            sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await?;
        }
        MIGRATOR.run(&pool).await?;
        let batching = if sqlite { ingest::Batching::SQLITE } else { ingest::Batching::POSTGRES };
        Ok(Self { pool, batching })
    }

    /// The underlying pool, for adapters with their own queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    // ---- catalogue -------------------------------------------------------

    /// Inserts or updates an operator.
    pub async fn upsert_operator(&self, o: &Operator) -> Result<()> {
        sqlx::query(
            "INSERT INTO operators (id, slug, name, kind, payee) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET slug = excluded.slug, name = excluded.name, kind = excluded.kind, payee = excluded.payee",
        )
        .bind(i64::from(o.id))
        .bind(&o.slug)
        .bind(&o.name)
        .bind(&o.kind)
        .bind(addr(&o.payee))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All operators by id.
    pub async fn operators(&self) -> Result<Vec<Operator>> {
        let rows =
            sqlx::query("SELECT id, slug, name, kind, payee FROM operators ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Operator {
                    id: r.try_get::<i64, _>(0)? as u32,
                    slug: r.try_get(1)?,
                    name: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    payee: parse_addr(&r.try_get::<String, _>(4)?)?,
                })
            })
            .collect()
    }

    /// Inserts or updates a product.
    pub async fn upsert_product(&self, p: &Product) -> Result<()> {
        sqlx::query(
            "INSERT INTO products (id, operator_id, name, price, duration_secs, rides, insurance, routes, zones) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET operator_id = excluded.operator_id, name = excluded.name, price = excluded.price,
             duration_secs = excluded.duration_secs, rides = excluded.rides, insurance = excluded.insurance,
             routes = excluded.routes, zones = excluded.zones",
        )
        .bind(i64::from(p.id))
        .bind(i64::from(p.operator_id))
        .bind(&p.name)
        .bind(p.price)
        .bind(p.duration_secs)
        .bind(i64::from(p.rides))
        .bind(i64::from(p.insurance))
        .bind(p.routes.join(" "))
        .bind(p.zones.join(" "))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All products by id.
    pub async fn products(&self) -> Result<Vec<Product>> {
        let rows = sqlx::query(
            "SELECT id, operator_id, name, price, duration_secs, rides, insurance, routes, zones FROM products ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Product {
                    id: r.try_get::<i64, _>(0)? as u32,
                    operator_id: r.try_get::<i64, _>(1)? as u32,
                    name: r.try_get(2)?,
                    price: r.try_get(3)?,
                    duration_secs: r.try_get(4)?,
                    rides: r.try_get::<i64, _>(5)? as u32,
                    insurance: r.try_get::<i64, _>(6)? != 0,
                    routes: words(&r.try_get::<String, _>(7)?),
                    zones: words(&r.try_get::<String, _>(8)?),
                })
            })
            .collect()
    }

    /// Inserts or updates a bundle.
    pub async fn upsert_bundle(&self, b: &Bundle) -> Result<()> {
        let ids = b.product_ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        sqlx::query(
            "INSERT INTO bundles (id, name, description, discount_bps, product_ids) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
             discount_bps = excluded.discount_bps, product_ids = excluded.product_ids",
        )
        .bind(i64::from(b.id))
        .bind(&b.name)
        .bind(&b.description)
        .bind(i64::from(b.discount_bps))
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets how a bundle's revenue is settled among its operators at period close:
    /// `list` (as booked at sale), `usage` (by rides) or `distance`.
    pub async fn set_bundle_settlement(&self, bundle_id: u32, rule: &str) -> Result<()> {
        if !matches!(rule, "list" | "usage" | "distance") {
            return Err(StoreError::Corrupt("bundles.settle_by: list, usage or distance"));
        }
        sqlx::query("UPDATE bundles SET settle_by = $2 WHERE id = $1")
            .bind(i64::from(bundle_id))
            .bind(rule)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How a bundle is settled at period close (`list`, `usage` or `distance`).
    pub async fn bundle_settlement(&self, bundle_id: u32) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT settle_by FROM bundles WHERE id = $1")
            .bind(i64::from(bundle_id))
            .fetch_optional(&self.pool)
            .await?)
    }

    /// All bundles by id.
    pub async fn bundles(&self) -> Result<Vec<Bundle>> {
        let rows = sqlx::query("SELECT id, name, description, discount_bps, product_ids FROM bundles ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let ids: String = r.try_get(4)?;
                Ok(Bundle {
                    id: r.try_get::<i64, _>(0)? as u32,
                    name: r.try_get(1)?,
                    description: r.try_get(2)?,
                    discount_bps: r.try_get::<i64, _>(3)? as u16,
                    product_ids: ids
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse().map_err(|_| StoreError::Corrupt("bundles.product_ids")))
                        .collect::<Result<_>>()?,
                })
            })
            .collect()
    }

    /// Registers a gate.
    pub async fn upsert_gate(&self, g: &GateRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO gates (gate_key, operator_id, station, stop_id, on_board) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (gate_key) DO UPDATE SET operator_id = excluded.operator_id, station = excluded.station,
             stop_id = excluded.stop_id, on_board = excluded.on_board",
        )
        .bind(&g.gate_key)
        .bind(i64::from(g.operator_id))
        .bind(&g.station)
        .bind(&g.stop_id)
        .bind(i64::from(g.on_board))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All registered gates.
    pub async fn gates(&self) -> Result<Vec<GateRow>> {
        let rows = sqlx::query("SELECT gate_key, operator_id, station, stop_id, on_board FROM gates ORDER BY gate_key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(gate_from_row).collect()
    }

    /// One registered gate.
    pub async fn gate(&self, gate_key: &str) -> Result<Option<GateRow>> {
        let row =
            sqlx::query("SELECT gate_key, operator_id, station, stop_id, on_board FROM gates WHERE gate_key = $1")
                .bind(gate_key)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(gate_from_row).transpose()
    }

    // ---- travelers and sessions -------------------------------------------

    /// Adds a traveler, or refreshes its name and key if the address exists.
    pub async fn upsert_traveler(&self, t: &Traveler) -> Result<()> {
        sqlx::query(
            "INSERT INTO travelers (address, did, display_name, sealed_key, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (address) DO UPDATE SET display_name = excluded.display_name, sealed_key = excluded.sealed_key",
        )
        .bind(addr(&t.address))
        .bind(&t.did)
        .bind(&t.display_name)
        .bind(t.sealed_key.clone())
        .bind(t.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// All travelers.
    pub async fn travelers(&self) -> Result<Vec<Traveler>> {
        let rows = sqlx::query(
            "SELECT address, did, display_name, sealed_key, created_at FROM travelers ORDER BY created_at, address",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(traveler_from_row).collect()
    }

    /// One traveler by address.
    pub async fn traveler(&self, address: &Address) -> Result<Option<Traveler>> {
        let row =
            sqlx::query("SELECT address, did, display_name, sealed_key, created_at FROM travelers WHERE address = $1")
                .bind(addr(address))
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(traveler_from_row).transpose()
    }

    /// Opens a session.
    pub async fn create_session(&self, token: &str, address: &Address, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token, address, expires_at) VALUES ($1, $2, $3)")
            .bind(token)
            .bind(addr(address))
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The address behind a live session token.
    pub async fn session(&self, token: &str, now: i64) -> Result<Option<Address>> {
        let row = sqlx::query("SELECT address FROM sessions WHERE token = $1 AND expires_at > $2")
            .bind(token)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| parse_addr(&r.try_get::<String, _>(0)?)).transpose()
    }

    /// Ends a session.
    pub async fn delete_session(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token = $1").bind(token).execute(&self.pool).await?;
        Ok(())
    }

    // ---- chain events and the ledger -------------------------------------

    /// Next block the named follower should read, if it has a checkpoint.
    pub async fn cursor(&self, name: &str) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT next_block FROM chain_cursor WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?.map(|n| n as u64))
    }

    /// Moves a follower's checkpoint (operators re-reading history; tests simulating a crash).
    pub async fn set_cursor(&self, cursor: &str, next_block: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO chain_cursor (name, next_block) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET next_block = excluded.next_block",
        )
        .bind(cursor)
        .bind(next_block as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Plans booked (read model).
    pub async fn plans_count(&self) -> Result<usize> {
        let n: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM plans").fetch_one(&self.pool).await?;
        Ok(n as usize)
    }

    /// The blocks a follower read, newest first, at most `limit`: `(number, hash)`.
    pub async fn indexed_blocks(&self, cursor: &str, limit: i64) -> Result<Vec<(u64, B256)>> {
        let rows = sqlx::query(
            "SELECT block_number, block_hash FROM indexed_blocks WHERE cursor = $1 ORDER BY block_number DESC LIMIT $2",
        )
        .bind(cursor)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let hash: String = r.try_get(1)?;
                Ok((r.try_get::<i64, _>(0)? as u64, hash.parse().map_err(|_| StoreError::Corrupt("indexed_blocks"))?))
            })
            .collect()
    }

    /// Undoes everything a follower booked above block `fork_block` (the newest block
    /// still on the chain): its events, their postings, the blocks it read; the read
    /// models (plans, tickets, policies, vouchers) are rebuilt from the events that
    /// remain, and the checkpoint moves back to `fork_block + 1`. One transaction, so
    /// a crash leaves either the old state or the rolled-back one. Returns the number
    /// of events removed.
    pub async fn roll_back(&self, cursor: &str, fork_block: u64, now: i64) -> Result<usize> {
        let mut tx = self.pool.begin().await?;
        let above = fork_block as i64;
        let removed: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM chain_events WHERE block_number > $1")
                .bind(above)
                .fetch_one(&mut *tx)
                .await?;
        let first_stale: Option<i64> =
            sqlx::query_scalar("SELECT MIN(block_number) FROM indexed_blocks WHERE cursor = $1 AND block_number > $2")
                .bind(cursor)
                .bind(above)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "DELETE FROM ledger_postings WHERE event_key IN (SELECT event_key FROM chain_events WHERE block_number > $1)",
        )
        .bind(above)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM chain_events WHERE block_number > $1").bind(above).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM indexed_blocks WHERE cursor = $1 AND block_number > $2")
            .bind(cursor)
            .bind(above)
            .execute(&mut *tx)
            .await?;
        if removed > 0 {
            for table in ["vouchers", "policies", "tickets", "plans"] {
                sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
            }
            let rows = sqlx::query("SELECT event_key, payload FROM chain_events ORDER BY block_number, log_index")
                .fetch_all(&mut *tx)
                .await?;
            let mut replay = Vec::with_capacity(rows.len());
            for r in &rows {
                let key: String = r.try_get(0)?;
                let payload: String = r.try_get(1)?;
                let ev: ChainEvent =
                    serde_json::from_str(&payload).map_err(|_| StoreError::Corrupt("chain_events.payload"))?;
                replay.push((key, ev));
            }
            let replay: Vec<(&str, &ChainEvent)> = replay.iter().map(|(k, e)| (k.as_str(), e)).collect();
            ingest::book_read_models(&mut tx, self.batching, &replay).await?;
        }
        sqlx::query(
            "INSERT INTO chain_cursor (name, next_block) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET next_block = excluded.next_block",
        )
        .bind(cursor)
        .bind(above + 1)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO reorgs (cursor, detected_at, fork_block, first_stale_block, removed_events) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (cursor, detected_at, first_stale_block) DO NOTHING",
        )
        .bind(cursor)
        .bind(now)
        .bind(above)
        .bind(first_stale.unwrap_or(above + 1))
        .bind(removed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed as usize)
    }

    /// A consistent snapshot (one statement) of the ledger for reconciliation: the
    /// follower's next block and the balances of `accounts` (debits positive).
    pub async fn ledger_snapshot(
        &self,
        cursor: &str,
        accounts: &[String],
    ) -> Result<(Option<u64>, Vec<(String, i64)>)> {
        if accounts.is_empty() {
            return Ok((self.cursor(cursor).await?, vec![]));
        }
        let list = (0..accounts.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT (SELECT next_block FROM chain_cursor WHERE name = $1), a.account,
                    CAST(COALESCE((SELECT SUM(p.amount) FROM ledger_postings p WHERE p.account = a.account), 0) AS BIGINT)
             FROM (SELECT DISTINCT account FROM ledger_postings WHERE account IN ({list})) a"
        );
        let mut q = sqlx::query(&sql).bind(cursor);
        for a in accounts {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let next = match rows.first() {
            Some(r) => r.try_get::<Option<i64>, _>(0)?.map(|n| n as u64),
            None => self.cursor(cursor).await?,
        };
        let balances = rows.iter().map(|r| Ok((r.try_get(1)?, r.try_get(2)?))).collect::<Result<_>>()?;
        Ok((next, balances))
    }

    /// Records a reconciliation (`differences` as JSON, `[]` when all agreed).
    pub async fn record_reconciliation(&self, at: i64, block: u64, differences: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO reconciliations (checked_at, block_number, differences) VALUES ($1, $2, $3)
             ON CONFLICT (checked_at, block_number) DO UPDATE SET differences = excluded.differences",
        )
        .bind(at)
        .bind(block as i64)
        .bind(differences)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest reconciliation: `(checked at, block, differences JSON)`.
    pub async fn latest_reconciliation(&self) -> Result<Option<(i64, u64, String)>> {
        let row = sqlx::query(
            "SELECT checked_at, block_number, differences FROM reconciliations ORDER BY checked_at DESC, block_number DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64, r.try_get(2)?))).transpose()
    }

    /// Reorgs handled: `(detected at, fork block, events removed)`, newest first.
    pub async fn reorgs(&self, cursor: &str) -> Result<Vec<(i64, u64, i64)>> {
        let rows = sqlx::query(
            "SELECT detected_at, fork_block, removed_events FROM reorgs WHERE cursor = $1 ORDER BY detected_at DESC, fork_block DESC",
        )
        .bind(cursor)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64, r.try_get(2)?))).collect()
    }

    /// Balance of one ledger account (debits positive).
    pub async fn account_balance(&self, account: &str) -> Result<i64> {
        let row =
            sqlx::query("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_postings WHERE account = $1")
                .bind(account)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get(0)?)
    }

    /// Sum over every posting; zero unless the ledger is broken.
    pub async fn ledger_imbalance(&self) -> Result<i64> {
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_postings")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    // ---- read models -----------------------------------------------------

    /// Tickets held by a traveler, newest first.
    pub async fn tickets_of(&self, holder: &Address) -> Result<Vec<TicketRow>> {
        let rows = sqlx::query(&format!("{TICKET_SELECT} WHERE t.holder = $1 ORDER BY t.plan_id DESC, t.id"))
            .bind(addr(holder))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// One ticket.
    pub async fn ticket(&self, id: u64) -> Result<Option<TicketRow>> {
        let row =
            sqlx::query(&format!("{TICKET_SELECT} WHERE t.id = $1")).bind(id as i64).fetch_optional(&self.pool).await?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    /// All tickets as validator state (rides left = issued rides minus recorded taps).
    pub async fn ticket_states(&self) -> Result<Vec<TicketState>> {
        let rows = sqlx::query(&format!("{TICKET_SELECT} ORDER BY t.id")).fetch_all(&self.pool).await?;
        rows.iter().map(|r| ticket_from_row(r).map(|t| t.state())).collect()
    }

    /// Vouchers of a traveler, newest first.
    pub async fn vouchers_of(&self, holder: &Address) -> Result<Vec<VoucherRow>> {
        let rows = sqlx::query(
            "SELECT id, policy_id, holder, value, operator_id, expiry, delay_id, redeemed_by FROM vouchers WHERE holder = $1 ORDER BY id DESC",
        )
        .bind(addr(holder))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(voucher_from_row).collect()
    }

    /// One voucher by id.
    pub async fn voucher(&self, id: u64) -> Result<Option<VoucherRow>> {
        let row = sqlx::query(
            "SELECT id, policy_id, holder, value, operator_id, expiry, delay_id, redeemed_by FROM vouchers WHERE id = $1",
        )
        .bind(id as i64)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(voucher_from_row).transpose()
    }

    /// Policies covering `now`.
    pub async fn active_policies(&self, now: i64) -> Result<Vec<PolicyRow>> {
        let rows = sqlx::query("SELECT policy_id, holder, valid_from, valid_until FROM policies WHERE valid_from <= $1 AND valid_until > $1 ORDER BY policy_id")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicyRow {
                    policy_id: r.try_get::<i64, _>(0)? as u64,
                    holder: parse_addr(&r.try_get::<String, _>(1)?)?,
                    valid_from: r.try_get(2)?,
                    valid_until: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Records a delay claim; true when it is to be reported: new, or left `pending` by a
    /// run that failed before the chain answered (the contract refuses a second payout, so
    /// retrying a pending claim is safe). False once a claim has an outcome.
    pub async fn claim_delay(
        &self,
        delay_id: &str,
        policy_id: u64,
        trip_id: &str,
        minutes: u32,
        reason: &str,
    ) -> Result<bool> {
        sqlx::query(
            "INSERT INTO delay_claims (delay_id, policy_id, trip_id, delay_minutes, status, reason) VALUES ($1, $2, $3, $4, 'pending', $5)
             ON CONFLICT (delay_id, policy_id) DO NOTHING",
        )
        .bind(delay_id)
        .bind(policy_id as i64)
        .bind(trip_id)
        .bind(i64::from(minutes))
        .bind(reason)
        .execute(&self.pool)
        .await?;
        let status: String =
            sqlx::query_scalar("SELECT status FROM delay_claims WHERE delay_id = $1 AND policy_id = $2")
                .bind(delay_id)
                .bind(policy_id as i64)
                .fetch_one(&self.pool)
                .await?;
        Ok(status == "pending")
    }

    /// Marks a delay claim's outcome.
    pub async fn set_claim_status(&self, delay_id: &str, policy_id: u64, status: &str) -> Result<()> {
        sqlx::query("UPDATE delay_claims SET status = $3 WHERE delay_id = $1 AND policy_id = $2")
            .bind(delay_id)
            .bind(policy_id as i64)
            .bind(status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a tap; false when the scan id was already recorded (a re-sent tap).
    pub async fn record_tap(&self, tap: &Tap) -> Result<bool> {
        Ok(self.record_taps(std::slice::from_ref(tap)).await? == 1)
    }

    /// Records taps in one transaction (a validator's batch); returns how many were new.
    /// Taps already on record (same scan id: a gate re-sent or forwarded it) are skipped.
    pub async fn record_taps(&self, taps: &[Tap]) -> Result<u64> {
        let rows = taps
            .iter()
            .map(|t| {
                vec![
                    ingest::Val::S(t.scan_id.clone()),
                    ingest::Val::I(t.ticket_id as i64),
                    ingest::Val::I(i64::from(t.operator_id)),
                    ingest::Val::S(t.gate.clone()),
                    ingest::Val::I(t.at as i64),
                    ingest::Val::OptS(t.trip.as_ref().map(|r| r.id.clone())),
                    ingest::Val::OptS(t.trip.as_ref().and_then(|r| r.date.clone())),
                ]
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        let new = ingest::insert_rows(
            &mut tx,
            self.batching,
            "INSERT INTO taps (scan_id, ticket_id, operator_id, gate_key, at, trip_id, trip_date) VALUES",
            "ON CONFLICT (scan_id) DO NOTHING",
            rows,
        )
        .await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Taps not yet anchored on chain, oldest first, at most `limit`. A tap whose ticket
    /// the ledger no longer holds (a reorg dropped its purchase) is held back rather than
    /// anchored or deleted: if the purchase is mined again the tap counts, and until then
    /// [`Store::orphaned_taps`] reports it.
    pub async fn unanchored_taps(&self, limit: i64) -> Result<Vec<TapRow>> {
        let rows = sqlx::query(
            "SELECT scan_id, ticket_id, operator_id, gate_key, at FROM taps
             WHERE batch_id IS NULL AND EXISTS (SELECT 1 FROM tickets k WHERE k.id = taps.ticket_id)
             ORDER BY at, scan_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tap_from_row).collect()
    }

    /// Unanchored taps whose ticket the ledger does not hold (its purchase was reorged
    /// away, or not yet booked): held back from anchoring.
    pub async fn orphaned_taps(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM taps
             WHERE batch_id IS NULL AND NOT EXISTS (SELECT 1 FROM tickets k WHERE k.id = taps.ticket_id)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records that these taps are anchored in `batch_id`.
    pub async fn mark_anchored(&self, scan_ids: &[String], batch_id: u64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in scan_ids {
            sqlx::query("UPDATE taps SET batch_id = $2 WHERE scan_id = $1 AND batch_id IS NULL")
                .bind(id)
                .bind(batch_id as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Taps of one ticket, newest first.
    pub async fn taps_of_ticket(&self, ticket_id: u64) -> Result<Vec<TapRow>> {
        let rows = sqlx::query(
            "SELECT scan_id, ticket_id, operator_id, gate_key, at FROM taps WHERE ticket_id = $1 ORDER BY at DESC",
        )
        .bind(ticket_id as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tap_from_row).collect()
    }

    // ---- payments ----------------------------------------------------------

    /// Records a new Checkout Session.
    pub async fn create_payment(&self, session_id: &str, traveler: &Address, amount: i64, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO payments (session_id, traveler, amount, status, created_at) VALUES ($1, $2, $3, 'open', $4)",
        )
        .bind(session_id)
        .bind(addr(traveler))
        .bind(amount)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers a webhook event id; false if it was seen before (a duplicate delivery).
    pub async fn first_webhook_delivery(&self, event_id: &str, now: i64) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO webhook_events (event_id, received_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Moves a payment from `open` to `paid`; returns the payment only on the
    /// first transition, so concurrent deliveries mint at most once.
    pub async fn mark_paid(&self, session_id: &str) -> Result<Option<Payment>> {
        let n = sqlx::query("UPDATE payments SET status = 'paid' WHERE session_id = $1 AND status = 'open'")
            .bind(session_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.payment(session_id).await
    }

    /// Records the mint transaction of a payment.
    pub async fn mark_minted(&self, session_id: &str, tx_hash: &str) -> Result<()> {
        sqlx::query("UPDATE payments SET status = 'minted', tx_hash = $2 WHERE session_id = $1")
            .bind(session_id)
            .bind(tx_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One payment.
    pub async fn payment(&self, session_id: &str) -> Result<Option<Payment>> {
        let row =
            sqlx::query("SELECT session_id, traveler, amount, status, tx_hash FROM payments WHERE session_id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(Payment {
                session_id: r.try_get(0)?,
                traveler: parse_addr(&r.try_get::<String, _>(1)?)?,
                amount: r.try_get(2)?,
                status: r.try_get(3)?,
                tx_hash: r.try_get(4)?,
            })
        })
        .transpose()
    }

    // ---- reports -----------------------------------------------------------

    /// Each operator's revenue share, legs sold, rides and vouchers redeemed,
    /// straight from the ledger and read models.
    pub async fn operator_report(&self) -> Result<Vec<OperatorReport>> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.kind,
                CAST(COALESCE((SELECT SUM(-p.amount) FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key
                    WHERE p.account = 'operator:' || CAST(o.id AS TEXT) AND e.kind = 'LegSold'), 0) AS BIGINT),
                CAST((SELECT COUNT(*) FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key
                    WHERE p.account = 'operator:' || CAST(o.id AS TEXT) AND e.kind = 'LegSold') AS BIGINT),
                CAST((SELECT COUNT(*) FROM taps x WHERE x.operator_id = o.id) AS BIGINT),
                CAST(COALESCE((SELECT SUM(-p.amount) FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key
                    WHERE p.account = 'operator:' || CAST(o.id AS TEXT) AND e.kind = 'VoucherRedeemed'), 0) AS BIGINT),
                CAST(COALESCE((SELECT SUM(p.amount) FROM ledger_postings p JOIN chain_events e ON e.event_key = p.event_key
                    WHERE p.account = 'operator:' || CAST(o.id AS TEXT) AND e.kind = 'Payout'), 0) AS BIGINT)
             FROM operators o ORDER BY o.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OperatorReport {
                    operator_id: r.try_get::<i64, _>(0)? as u32,
                    name: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    revenue: r.try_get(3)?,
                    legs: r.try_get(4)?,
                    rides: r.try_get(5)?,
                    vouchers_redeemed: r.try_get(6)?,
                    paid_out: r.try_get(7)?,
                })
            })
            .collect()
    }
}

const TICKET_SELECT: &str =
    "SELECT t.id, t.holder, t.plan_id, t.operator_id, t.product_id, t.valid_from, t.valid_until, t.rides, t.share,
    CAST((SELECT COUNT(*) FROM taps x WHERE x.ticket_id = t.id) AS BIGINT) FROM tickets t";

fn traveler_from_row(r: &AnyRow) -> Result<Traveler> {
    Ok(Traveler {
        address: parse_addr(&r.try_get::<String, _>(0)?)?,
        did: r.try_get(1)?,
        display_name: r.try_get(2)?,
        sealed_key: r.try_get(3)?,
        created_at: r.try_get(4)?,
    })
}

fn ticket_from_row(r: &AnyRow) -> Result<TicketRow> {
    Ok(TicketRow {
        id: r.try_get::<i64, _>(0)? as u64,
        holder: parse_addr(&r.try_get::<String, _>(1)?)?,
        plan_id: r.try_get::<i64, _>(2)? as u64,
        operator_id: r.try_get::<i64, _>(3)? as u32,
        product_id: r.try_get::<i64, _>(4)? as u32,
        valid_from: r.try_get(5)?,
        valid_until: r.try_get(6)?,
        rides: r.try_get::<i64, _>(7)? as u32,
        share: r.try_get(8)?,
        taps: r.try_get(9)?,
    })
}

fn gate_from_row(r: &AnyRow) -> Result<GateRow> {
    Ok(GateRow {
        gate_key: r.try_get(0)?,
        operator_id: r.try_get::<i64, _>(1)? as u32,
        station: r.try_get(2)?,
        stop_id: r.try_get(3)?,
        on_board: r.try_get::<i64, _>(4)? != 0,
    })
}

fn tap_from_row(r: &AnyRow) -> Result<TapRow> {
    Ok(TapRow {
        scan_id: r.try_get(0)?,
        ticket_id: r.try_get::<i64, _>(1)? as u64,
        operator_id: r.try_get::<i64, _>(2)? as u32,
        gate_key: r.try_get(3)?,
        at: r.try_get(4)?,
    })
}

fn voucher_from_row(r: &AnyRow) -> Result<VoucherRow> {
    Ok(VoucherRow {
        id: r.try_get::<i64, _>(0)? as u64,
        policy_id: r.try_get::<i64, _>(1)? as u64,
        holder: parse_addr(&r.try_get::<String, _>(2)?)?,
        value: r.try_get(3)?,
        operator_id: r.try_get::<i64, _>(4)? as u32,
        expiry: r.try_get(5)?,
        delay_id: r.try_get(6)?,
        redeemed_by: r.try_get::<Option<i64>, _>(7)?.map(|v| v as u32),
    })
}

/// Space-separated ids as a list.
fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}
