//! Leases: a named job run by one node at a time when several nodes share
//! the database (the callback dialer: a task must never be dialled twice).
//!
//! A lease is a row `(name, holder, until_ms)`. Taking it is one statement,
//! an upsert whose update only applies when the lease has lapsed or is
//! already ours, so two nodes racing for it cannot both win: PostgreSQL
//! and SQLite both serialise conflicting upserts on the primary key and
//! count an update skipped by its `WHERE` as no row affected. Times are the
//! caller's clock (epoch ms), so nodes' clocks must agree to well within
//! the TTL.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    /// Take, renew or keep the lease `name` for `holder` until `now_ms +
    /// ttl_ms`. True when `holder` holds it afterwards: it was free, lapsed
    /// (`until_ms < now_ms`) or already `holder`'s.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.until_ms < $3 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now_ms)
        .bind(now_ms.saturating_add(ttl_ms.max(0)))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give the lease up so another node takes it at once rather than after
    /// the TTL. False when `holder` did not hold it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Who holds the lease and until when (it may have lapsed), if anyone.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64)>> {
        let row = sqlx::query("SELECT holder, until_ms FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }
}
