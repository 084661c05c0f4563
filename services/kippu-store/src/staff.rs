//! Organisations, staff accounts, their invitations and sessions, and API tokens.
//! Every secret arrives here already hashed (SHA-256 for random tokens, Argon2id for passwords).

use kippu_domain::staff::parse_scopes;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError};

pub use kippu_domain::model::{ApiToken, Organisation, StaffAccount, StaffPasskeyRow};

const ACCOUNT_COLUMNS: &str =
    "a.id, a.email, a.organisation, a.role, a.password_hash, a.created_at, a.created_by, a.disabled_at";
const TOKEN_COLUMNS: &str =
    "id, organisation, name, scopes, token_hash, created_by, created_at, expires_at, revoked_at, last_used_at";

const PASSKEY_COLUMNS: &str =
    "credential_id, account_id, user_handle, static_state, dynamic_state, created_at, last_used";

fn unhex(s: &str, what: &'static str) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|_| StoreError::Corrupt(what))
}

fn passkey(r: &AnyRow) -> Result<StaffPasskeyRow> {
    Ok(StaffPasskeyRow {
        credential_id: unhex(&r.try_get::<String, _>(0)?, "staff passkey id")?,
        account_id: r.try_get(1)?,
        user_handle: unhex(&r.try_get::<String, _>(2)?, "staff passkey user handle")?,
        static_state: unhex(&r.try_get::<String, _>(3)?, "staff passkey static state")?,
        dynamic_state: unhex(&r.try_get::<String, _>(4)?, "staff passkey dynamic state")?,
        created_at: r.try_get(5)?,
        last_used: r.try_get(6)?,
    })
}

fn organisation(r: &AnyRow) -> Result<Organisation> {
    let kind: String = r.try_get(2)?;
    Ok(Organisation {
        slug: r.try_get(0)?,
        name: r.try_get(1)?,
        kind: kind.parse().map_err(|_| StoreError::Corrupt("organisations.kind"))?,
        created_at: r.try_get(3)?,
    })
}

fn account(r: &AnyRow) -> Result<StaffAccount> {
    let role: String = r.try_get(3)?;
    Ok(StaffAccount {
        id: r.try_get(0)?,
        email: r.try_get(1)?,
        organisation: r.try_get(2)?,
        role: role.parse().map_err(|_| StoreError::Corrupt("staff_accounts.role"))?,
        password_hash: r.try_get(4)?,
        created_at: r.try_get(5)?,
        created_by: r.try_get(6)?,
        disabled_at: r.try_get(7)?,
    })
}

fn token(r: &AnyRow) -> Result<ApiToken> {
    let scopes: String = r.try_get(3)?;
    Ok(ApiToken {
        id: r.try_get(0)?,
        organisation: r.try_get(1)?,
        name: r.try_get(2)?,
        scopes: parse_scopes(&scopes).map_err(|_| StoreError::Corrupt("api_tokens.scopes"))?,
        token_hash: r.try_get(4)?,
        created_by: r.try_get(5)?,
        created_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
        revoked_at: r.try_get(8)?,
        last_used_at: r.try_get(9)?,
    })
}

impl Store {
    /// Adds an organisation; `false` if its slug is taken.
    pub async fn add_organisation(&self, o: &Organisation) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO organisations (slug, name, kind, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (slug) DO NOTHING",
        )
        .bind(&o.slug)
        .bind(&o.name)
        .bind(o.kind.as_str())
        .bind(o.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// One organisation.
    pub async fn organisation(&self, slug: &str) -> Result<Option<Organisation>> {
        sqlx::query("SELECT slug, name, kind, created_at FROM organisations WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(organisation)
            .transpose()
    }

    /// Every organisation, by slug.
    pub async fn organisations(&self) -> Result<Vec<Organisation>> {
        sqlx::query("SELECT slug, name, kind, created_at FROM organisations ORDER BY slug")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(organisation)
            .collect()
    }

    /// Adds a staff account with its one-time invitation, together; `false` (nothing added)
    /// if the e-mail has an account already.
    pub async fn add_staff(&self, a: &StaffAccount, invitation_hash: &str, invitation_expires: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO staff_accounts (id, email, organisation, role, password_hash, created_at, created_by, disabled_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) ON CONFLICT (email) DO NOTHING",
        )
        .bind(&a.id)
        .bind(&a.email)
        .bind(&a.organisation)
        .bind(a.role.as_str())
        .bind(a.password_hash.clone())
        .bind(a.created_at)
        .bind(&a.created_by)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO staff_invitations (token_hash, account_id, expires_at, used_at) VALUES ($1, $2, $3, NULL)",
        )
        .bind(invitation_hash)
        .bind(&a.id)
        .bind(invitation_expires)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A fresh invitation for an existing account (a lost link, a forgotten password): earlier
    /// unused ones stop working.
    pub async fn reinvite_staff(&self, account_id: &str, invitation_hash: &str, expires: i64, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE staff_invitations SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL")
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO staff_invitations (token_hash, account_id, expires_at, used_at) VALUES ($1, $2, $3, NULL)",
        )
        .bind(invitation_hash)
        .bind(account_id)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account an unused, unexpired invitation is for.
    pub async fn invitation(&self, invitation_hash: &str, now: i64) -> Result<Option<StaffAccount>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM staff_invitations i JOIN staff_accounts a ON a.id = i.account_id
             WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2 AND a.disabled_at IS NULL"
        );
        sqlx::query(&sql)
            .bind(invitation_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account)
            .transpose()
    }

    /// Uses an invitation up and sets the account's password, in one transaction: of two
    /// simultaneous uses of one link, one wins. Ends the account's other sessions (a reset
    /// password signs everyone out). `None` if the invitation is unknown, used or expired.
    pub async fn accept_invitation(
        &self,
        invitation_hash: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<StaffAccount>> {
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query(
            "UPDATE staff_invitations SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
             RETURNING account_id",
        )
        .bind(invitation_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = used else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id: String = row.try_get(0)?;
        let changed = sqlx::query("UPDATE staff_accounts SET password_hash = $2 WHERE id = $1 AND disabled_at IS NULL")
            .bind(&id)
            .bind(password_hash)
            .execute(&mut *tx)
            .await?;
        if changed.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query("DELETE FROM staff_sessions WHERE account_id = $1").bind(&id).execute(&mut *tx).await?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM staff_accounts a WHERE a.id = $1");
        let a = account(&sqlx::query(&sql).bind(&id).fetch_one(&mut *tx).await?)?;
        tx.commit().await?;
        Ok(Some(a))
    }

    /// The account an e-mail signs in with.
    pub async fn staff_by_email(&self, email: &str) -> Result<Option<StaffAccount>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM staff_accounts a WHERE a.email = $1");
        sqlx::query(&sql).bind(email).fetch_optional(&self.pool).await?.as_ref().map(account).transpose()
    }

    /// One account by id.
    pub async fn staff_account(&self, id: &str) -> Result<Option<StaffAccount>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM staff_accounts a WHERE a.id = $1");
        sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?.as_ref().map(account).transpose()
    }

    /// An organisation's staff, by e-mail.
    pub async fn staff_of(&self, organisation: &str) -> Result<Vec<StaffAccount>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM staff_accounts a WHERE a.organisation = $1 ORDER BY a.email");
        sqlx::query(&sql).bind(organisation).fetch_all(&self.pool).await?.iter().map(account).collect()
    }

    /// Changes an account's role; `false` if it has no such account.
    pub async fn set_staff_role(&self, organisation: &str, id: &str, role: kippu_domain::staff::Role) -> Result<bool> {
        let done = sqlx::query("UPDATE staff_accounts SET role = $3 WHERE id = $1 AND organisation = $2")
            .bind(id)
            .bind(organisation)
            .bind(role.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Disables an account and ends its sessions; `false` if it has no such enabled account.
    pub async fn disable_staff(&self, organisation: &str, id: &str, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE staff_accounts SET disabled_at = $3 WHERE id = $1 AND organisation = $2 AND disabled_at IS NULL",
        )
        .bind(id)
        .bind(organisation)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM staff_sessions WHERE account_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Opens a staff session.
    pub async fn open_staff_session(&self, token_hash: &str, account_id: &str, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO staff_sessions (token_hash, account_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(account_id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The enabled account behind a live session.
    pub async fn staff_session(&self, token_hash: &str, now: i64) -> Result<Option<StaffAccount>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM staff_sessions s JOIN staff_accounts a ON a.id = s.account_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL"
        );
        sqlx::query(&sql).bind(token_hash).bind(now).fetch_optional(&self.pool).await?.as_ref().map(account).transpose()
    }

    /// Ends a staff session (and forgets expired ones).
    pub async fn end_staff_session(&self, token_hash: &str, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a new API token.
    pub async fn issue_token(&self, t: &ApiToken) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)"
        ))
        .bind(&t.id)
        .bind(&t.organisation)
        .bind(&t.name)
        .bind(kippu_domain::staff::scopes_text(&t.scopes))
        .bind(&t.token_hash)
        .bind(&t.created_by)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A token by its public id.
    pub async fn api_token(&self, id: &str) -> Result<Option<ApiToken>> {
        sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(token)
            .transpose()
    }

    /// An organisation's tokens, newest first.
    pub async fn tokens_of(&self, organisation: &str) -> Result<Vec<ApiToken>> {
        sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE organisation = $1 ORDER BY created_at DESC, id"
        ))
        .bind(organisation)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(token)
        .collect()
    }

    /// Revokes one of an organisation's tokens; `false` if it has no such live token.
    pub async fn revoke_token(&self, organisation: &str, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND organisation = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(organisation)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Notes that a token opened a request (at most once a minute per token, to spare writes).
    pub async fn token_used(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(id)
        .bind(now)
        .bind(now - 60)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a staff account's new passkey; `false` if its credential id is taken.
    pub async fn insert_staff_passkey(&self, p: &StaffPasskeyRow) -> Result<bool> {
        let done = sqlx::query(&format!(
            "INSERT INTO staff_passkeys ({PASSKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)
             ON CONFLICT (credential_id) DO NOTHING"
        ))
        .bind(hex::encode(&p.credential_id))
        .bind(&p.account_id)
        .bind(hex::encode(&p.user_handle))
        .bind(hex::encode(&p.static_state))
        .bind(hex::encode(&p.dynamic_state))
        .bind(p.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A staff passkey by credential id.
    pub async fn staff_passkey(&self, credential_id: &[u8]) -> Result<Option<StaffPasskeyRow>> {
        sqlx::query(&format!("SELECT {PASSKEY_COLUMNS} FROM staff_passkeys WHERE credential_id = $1"))
            .bind(hex::encode(credential_id))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(passkey)
            .transpose()
    }

    /// A staff account's passkeys, oldest first.
    pub async fn staff_passkeys_of(&self, account_id: &str) -> Result<Vec<StaffPasskeyRow>> {
        sqlx::query(&format!("SELECT {PASSKEY_COLUMNS} FROM staff_passkeys WHERE account_id = $1 ORDER BY created_at"))
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(passkey)
            .collect()
    }

    /// Records a sign-in with a staff passkey: its new counter and flags.
    pub async fn staff_passkey_used(&self, credential_id: &[u8], dynamic_state: &[u8], now: i64) -> Result<()> {
        sqlx::query("UPDATE staff_passkeys SET dynamic_state = $2, last_used = $3 WHERE credential_id = $1")
            .bind(hex::encode(credential_id))
            .bind(hex::encode(dynamic_state))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
