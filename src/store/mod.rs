//! Storage: customers, work orders, call records, registrations, callback
//! tasks and cases, on SQLite (embedded default) or PostgreSQL (several nodes).
//!
//! # One SQL text, one set of migrations: `AnyPool`
//!
//! [`Store`] wraps a [`sqlx::AnyPool`] rather than an enum over
//! `SqlitePool`/`PgPool`. Every statement in this module is a single runtime
//! string (`sqlx::query*`, never the compile-time macros) written with
//! `$1..$N` placeholders, which both drivers accept: PostgreSQL natively, and
//! sqlx-sqlite binds a `$N` parameter to the N-th bound value by *number*, so a
//! parameter may be repeated or appear out of order (tested in
//! `tests/storage.rs`). With an enum every query would be written (or
//! macro-expanded) twice with two sets of row types; with `Any` there is one
//! code path and the backends differ only in [`Store::connect`]. The price is
//! `Any`'s small type set — `i64`, `String`, `Option`s of them — which is
//! exactly what the portable schema uses anyway: times are BIGINT epoch
//! milliseconds (UTC), ids are TEXT chosen by the application or natural keys,
//! booleans are BIGINT 0/1, JSON is TEXT.
//!
//! Migrations are the files in `migrations/` at the crate root, embedded with
//! `include_str!` in [`MIGRATIONS`] and run by sqlx's own migrator (its
//! `_sqlx_migrations` table, checksums and PostgreSQL advisory lock), which
//! works through `AnyConnection` on both backends. They are listed by hand
//! rather than with `sqlx::migrate!` because the macro does not notice a *new*
//! file on stable Rust; a test checks the list matches the directory.
//!
//! # Off the hot path
//!
//! Call tasks never await the database: they hand [`WriteOp`]s to
//! [`StoreWriter`], which batches them into transactions and retries while
//! the database is slow or away. Reads (customer record on arrival) and
//! writes that must be durable before an action (callback attempts) use the
//! `Store` methods directly.

mod api_queries;
mod campaign;
pub use api_queries::CallbackTaskRow;
pub use campaign::{
    attempt_id, AttemptStart, CallbackTaskView, CampaignTaskRow, CaseEventRow, CaseRow, CaseUpdate,
    ExceptionRow, FinishAttempt, SurveyRow, TaskOrder, TaskProgress,
};
mod error;
mod lease;
mod phone;
mod queries;
mod reports;
mod types;
mod writer;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection, Executor, SqlSafeStr};

pub use api_queries::{CallFilter, CallbackRequestRow};
pub use error::{redact_url, Result, StoreError};
pub use phone::{normalize_phone, PHONE_KEY_DIGITS};
pub use queries::RECORD_CALL_LIMIT;
pub use reports::{CallbackCallRow, CallbackTaskReportRow, ComplaintRow, InboundCounts};
pub use types::*;
pub use writer::{StoreWriter, WriteOp, WriterConfig, WriterStats};

/// The embedded migrations: (version, description, SQL). Keep in step with
/// the files in `migrations/` (checked by a test).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "callback_requests",
        include_str!("../../migrations/0002_callback_requests.sql"),
    ),
    (
        3,
        "campaign",
        include_str!("../../migrations/0003_campaign.sql"),
    ),
    (
        4,
        "call_legs",
        include_str!("../../migrations/0004_call_legs.sql"),
    ),
    (
        5,
        "leases",
        include_str!("../../migrations/0005_leases.sql"),
    ),
];

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file or in-memory database.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Tuning for [`Store::connect_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size (an in-memory SQLite database always uses 1).
    pub max_connections: u32,
    /// How long a query waits for a connection, including connecting.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a statement waits for a lock held by another connection.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Handle to the database; cheap to clone (shares the pool).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .finish()
    }
}

impl Store {
    /// Connect and apply the migrations, with [`StoreOptions::default`].
    ///
    /// `url` is `sqlite://PATH` (relative) or `sqlite:///abs/PATH` — the file is
    /// created if missing, opened in WAL mode with foreign keys on and a busy
    /// timeout — or `sqlite::memory:` (tests), or `postgres://user@host/db`
    /// (append `?options=-csearch_path%3Dschema` to use another schema).
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_with(url, StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit options.
    pub async fn connect_with(url: &str, opts: StoreOptions) -> Result<Store> {
        let store = Self::connect_lazy(url, opts)?;
        let connect_err = |source| StoreError::Connect {
            url: store.url.clone(),
            source,
        };
        let mut conn = store.pool.acquire().await.map_err(connect_err)?;
        if store.backend == Backend::Sqlite {
            // Persistent in the file; set once here rather than per connection
            // because switching needs an exclusive lock.
            conn.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(connect_err)?;
        }
        drop(conn);
        store.migrate().await?;
        Ok(store)
    }

    /// Build the pool without connecting or migrating: the first query
    /// connects. For a [`StoreWriter`] that must start even while the
    /// database is away; the schema must already be in place.
    pub fn connect_lazy(url: &str, opts: StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let redacted = redact_url(url);
        let lower = url.to_ascii_lowercase();
        let backend = if lower.starts_with("sqlite:") {
            Backend::Sqlite
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl { url: redacted });
        };
        let mut url = url.to_string();
        let mut pool_opts = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.acquire_timeout);
        if backend == Backend::Sqlite {
            let in_memory = lower.starts_with("sqlite::memory:") || lower.contains("mode=memory");
            if in_memory {
                // sqlx's Any driver re-parses the URL for every connection and
                // `:memory:` gives each a new database: keep exactly one
                // connection open for the life of the pool.
                pool_opts = pool_opts
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else if !lower.contains("mode=") {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str("mode=rwc");
            }
            let busy_ms = opts.sqlite_busy_timeout.as_millis().min(i32::MAX as u128) as i64;
            pool_opts = pool_opts.after_connect(move |conn: &mut AnyConnection, _meta| {
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {busy_ms}"
                    )))
                    .await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            });
        }
        let pool = pool_opts
            .connect_lazy(&url)
            .map_err(|source| StoreError::Connect {
                url: redacted.clone(),
                source,
            })?;
        Ok(Store {
            pool,
            backend,
            url: redacted,
        })
    }

    /// Apply the embedded migrations not applied yet (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, desc, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(desc),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: self.url.clone(),
                source,
            })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying pool, for queries this module does not offer yet.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Check the database answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Close all connections (waits for checked-out ones).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
