//! Typed errors of the storage layer.

/// Everything the storage layer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("unsupported database URL {url:?}: expected sqlite://PATH, sqlite::memory: or postgres://...")]
    UnsupportedUrl {
        /// The URL with any password replaced by `***`.
        url: String,
    },
    /// The database could not be reached or opened.
    #[error("cannot connect to database {url}: {source}")]
    Connect {
        /// The URL with any password replaced by `***`.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("database migration failed on {url}: {source}")]
    Migrate {
        /// The URL with any password replaced by `***`.
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A row that an update needed does not exist.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// Kind of row, e.g. `"call"`.
        what: &'static str,
        /// Its key.
        id: String,
    },
    /// A stored value could not be read back (bad enum text or JSON).
    #[error("invalid stored value in {column}: {detail}")]
    Corrupt {
        /// Table.column the value came from.
        column: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// JSON encoding of a value failed.
    #[error("JSON encoding failed: {0}")]
    Json(#[from] serde_json::Error),
    /// The writer's queue is full; the op was dropped (and counted).
    #[error("store writer queue is full; record dropped")]
    QueueFull,
    /// The writer task has stopped.
    #[error("store writer has stopped")]
    WriterClosed,
}

/// Result alias of the storage layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The URL with the password (userinfo or `password=` parameter) replaced
/// by `***`, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..]
            .find(['/', '?', '#'])
            .map(|i| auth_start + i)
            .unwrap_or(out.len());
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = &out[auth_start..auth_start + at];
            if let Some(colon) = userinfo.find(':') {
                let pw_start = auth_start + colon + 1;
                let pw_end = auth_start + at;
                out.replace_range(pw_start..pw_end, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", redacted.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/x?sslmode=disable"),
            "postgres://bob:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=p"),
            "postgres://db/x?user=a&password=***"
        );
        assert_eq!(redact_url("sqlite://data/h.db"), "sqlite://data/h.db");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
