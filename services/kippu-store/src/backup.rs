//! A logical copy of the whole database: every table's rows, in creation order (so a restore
//! inserts parents before the rows that reference them). Portable between SQLite and
//! PostgreSQL: the schema holds only `BIGINT` and `TEXT` columns, carried as JSON integers and
//! strings. The copy is read in one transaction, so it is consistent.

use sqlx::Row;

use crate::{Result, Store, StoreError};

pub use kippu_domain::model::{Dump, TableDump};

fn ident(name: &str) -> Result<&str> {
    // Table and column names come from the catalogue, but they are spliced into SQL: refuse
    // anything that is not a plain identifier.
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(name)
    } else {
        Err(StoreError::Corrupt("table or column name"))
    }
}

impl Store {
    fn is_sqlite(&self) -> bool {
        self.batching == crate::ingest::Batching::SQLITE
    }

    async fn table_names(&self, conn: &mut sqlx::AnyConnection) -> Result<Vec<String>> {
        let sql = if self.is_sqlite() {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND name <> '_sqlx_migrations' ORDER BY rowid"
        } else {
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname <> '_sqlx_migrations'
             ORDER BY c.oid"
        };
        Ok(sqlx::query_scalar(sql).fetch_all(&mut *conn).await?)
    }

    async fn columns(&self, conn: &mut sqlx::AnyConnection, table: &str) -> Result<Vec<(String, bool)>> {
        let rows = if self.is_sqlite() {
            sqlx::query("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                .bind(table)
                .fetch_all(&mut *conn)
                .await?
        } else {
            sqlx::query(
                "SELECT column_name, data_type FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?
        };
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0)?;
                let ty: String = r.try_get(1)?;
                let ty = ty.to_ascii_lowercase();
                Ok((name, ty.contains("int")))
            })
            .collect()
    }

    async fn schema_version(&self, conn: &mut sqlx::AnyConnection) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT CAST(MAX(version) AS BIGINT) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await?)
    }

    /// Copies every table.
    pub async fn dump(&self) -> Result<Dump> {
        let mut tx = self.pool.begin().await?;
        let schema_version = self.schema_version(&mut tx).await?;
        let mut tables = Vec::new();
        for name in self.table_names(&mut tx).await? {
            let cols = self.columns(&mut tx, ident(&name)?).await?;
            let list = cols.iter().map(|(c, _)| ident(c)).collect::<Result<Vec<_>>>()?.join(", ");
            let rows = sqlx::query(&format!("SELECT {list} FROM {name}")).fetch_all(&mut *tx).await?;
            let rows = rows
                .iter()
                .map(|r| {
                    cols.iter()
                        .enumerate()
                        .map(|(i, (_, int))| {
                            Ok(if *int {
                                r.try_get::<Option<i64>, _>(i)?.map_or(serde_json::Value::Null, Into::into)
                            } else {
                                r.try_get::<Option<String>, _>(i)?.map_or(serde_json::Value::Null, Into::into)
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            tables.push(TableDump {
                name,
                columns: cols.iter().map(|(c, _)| c.clone()).collect(),
                integer: cols.iter().map(|(_, i)| *i).collect(),
                rows,
            });
        }
        tx.commit().await?;
        Ok(Dump { schema_version, tables })
    }

    /// Whether every table is empty (a fresh database, fit to restore into).
    pub async fn is_empty(&self) -> Result<bool> {
        let mut conn = self.pool.acquire().await?;
        for name in self.table_names(&mut conn).await? {
            let n: i64 = sqlx::query_scalar(&format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {}", ident(&name)?))
                .fetch_one(&mut *conn)
                .await?;
            if n > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Loads a dump into this (empty, same schema) database, all in one transaction.
    pub async fn restore(&self, dump: &Dump) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if self.schema_version(&mut tx).await? != dump.schema_version {
            return Err(StoreError::Corrupt("backup schema version (restore with the Kippu version that took it)"));
        }
        for t in &dump.tables {
            let name = ident(&t.name)?;
            let cols = t.columns.iter().map(|c| ident(c)).collect::<Result<Vec<_>>>()?;
            let marks = (1..=cols.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("INSERT INTO {name} ({}) VALUES ({marks})", cols.join(", "));
            for row in &t.rows {
                if row.len() != cols.len() {
                    return Err(StoreError::Corrupt("backup row width"));
                }
                let mut q = sqlx::query(&sql);
                for (v, int) in row.iter().zip(&t.integer) {
                    q = match (v, int) {
                        (serde_json::Value::Null, true) => q.bind(None::<i64>),
                        (serde_json::Value::Null, false) => q.bind(None::<String>),
                        (v, true) => q.bind(v.as_i64().ok_or(StoreError::Corrupt("backup integer"))?),
                        (v, false) => q.bind(v.as_str().ok_or(StoreError::Corrupt("backup text"))?.to_owned()),
                    };
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
