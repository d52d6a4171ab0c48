//! A throw-away PostgreSQL schema per storage test, so the same test bodies
//! run on SQLite and PostgreSQL side by side. Included by the storage tests
//! as `mod pg;` (this folder is not a test of its own).
#![allow(dead_code)]

use std::time::Duration;

use sqlx::{Connection, Executor};

/// A fresh schema on the test PostgreSQL: (url with its search_path, base
/// url, schema), or None when skipped (`HOTLINE_SKIP_POSTGRES=1`).
pub async fn postgres_url(prefix: &str) -> Option<(String, String, String)> {
    if std::env::var("HOTLINE_SKIP_POSTGRES").as_deref() == Ok("1") {
        return None;
    }
    let base = std::env::var("HOTLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    let mut conn = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&base))
        .await
        .expect("PostgreSQL did not answer (HOTLINE_SKIP_POSTGRES=1 skips)")
        .expect("PostgreSQL unreachable (HOTLINE_SKIP_POSTGRES=1 skips)");
    let schema = format!("{prefix}_{:016x}", rand::random::<u64>());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .expect("create schema");
    conn.close().await.ok();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    Some((url, base, schema))
}

pub async fn drop_schema(base: &str, schema: &str) {
    if let Ok(mut c) = sqlx::PgConnection::connect(base).await {
        let _ = c
            .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await;
    }
}
