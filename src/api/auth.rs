//! Logins, bearer tokens and roles.
//!
//! Agents log in with their `[[agents]]` id and SIP password (role `agent`);
//! `[[users]]` adds supervisors and administrators. A login returns a random
//! 32-byte token (hex) that expires `api.token_ttl_secs` after login and is
//! sent as `Authorization: Bearer TOKEN` (or `?token=` on the WebSocket,
//! which browsers cannot give headers). [`Auth`] owns the token table: a
//! mutex-protected map, touched once per HTTP request, never per packet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::ApiState;
use crate::clock::Clock;
use crate::config::Config;

/// What a logged-in user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees their own calls, recordings and tasks; customer records.
    Agent,
    /// Sees everything: every call and recording, queues, agents, callbacks.
    Supervisor,
    /// Configuration: customer upsert and work-order import.
    Admin,
}

impl Role {
    /// Parse a `[[users]]` role (`supervisor` or `admin`).
    pub fn parse_user_role(s: &str) -> Option<Role> {
        match s {
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// Who is making a request (the extractor of every authenticated handler).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// When the token expires (epoch ms).
    pub expires_at_ms: u64,
}

impl Principal {
    /// 403 unless the principal has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this needs the role {} (you are {})",
                names.join(" or "),
                self.role.as_str()
            )))
        }
    }

    /// True for a supervisor (who may act on any agent's behalf).
    pub fn is_supervisor(&self) -> bool {
        self.role == Role::Supervisor
    }
}

/// Why a login or a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("missing token: send Authorization: Bearer TOKEN (from POST /api/login)")]
    MissingToken,
    #[error("invalid or expired token; log in again")]
    InvalidToken,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

struct Account {
    name: String,
    password: String,
    role: Role,
}

struct Session {
    principal: Principal,
}

/// Accounts from the configuration and the live tokens.
pub struct Auth {
    accounts: HashMap<String, Account>,
    tokens: Mutex<HashMap<String, Session>>,
    ttl_ms: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("accounts", &self.accounts.len())
            .field("ttl_ms", &self.ttl_ms)
            .finish()
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
    pub token: String,
    pub principal: Principal,
}

impl Auth {
    /// Accounts of `[[agents]]` (role agent) and `[[users]]`.
    pub fn from_config(config: &Config, clock: Arc<dyn Clock>) -> Self {
        let mut accounts = HashMap::new();
        for a in &config.agents {
            accounts.insert(
                a.id.clone(),
                Account {
                    name: a.name.clone(),
                    password: a.password.clone(),
                    role: Role::Agent,
                },
            );
        }
        for u in &config.users {
            // Validated by the config loader; an unknown role never gets an account.
            if let Some(role) = Role::parse_user_role(&u.role) {
                accounts.insert(
                    u.id.clone(),
                    Account {
                        name: u.name.clone(),
                        password: u.password.clone(),
                        role,
                    },
                );
            }
        }
        Self {
            accounts,
            tokens: Mutex::new(HashMap::new()),
            ttl_ms: config.api.token_ttl_secs.saturating_mul(1000),
            clock,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Check the password and issue a token.
    pub fn login(&self, id: &str, password: &str) -> Result<Login, AuthError> {
        let account = self.accounts.get(id);
        // Compare even for an unknown id, so timing does not reveal which ids exist.
        let expected = account.map(|a| a.password.as_bytes()).unwrap_or(b"\0");
        let ok = constant_time_eq(expected, password.as_bytes());
        let Some(account) = account.filter(|_| ok) else {
            metrics::counter!("hotline_api_logins_total", "result" => "refused").increment(1);
            return Err(AuthError::BadCredentials);
        };
        let now = self.clock.now_ms();
        let token = hex::encode(rand::random::<[u8; 32]>());
        let principal = Principal {
            id: id.to_string(),
            name: account.name.clone(),
            role: account.role,
            expires_at_ms: now.saturating_add(self.ttl_ms),
        };
        let mut table = self.table();
        table.retain(|_, s| s.principal.expires_at_ms > now);
        table.insert(
            token.clone(),
            Session {
                principal: principal.clone(),
            },
        );
        metrics::counter!("hotline_api_logins_total", "result" => "ok").increment(1);
        Ok(Login { token, principal })
    }

    /// The principal a token belongs to, if it is live.
    pub fn check(&self, token: &str) -> Result<Principal, AuthError> {
        let now = self.clock.now_ms();
        let mut table = self.table();
        match table.get(token) {
            Some(s) if s.principal.expires_at_ms > now => Ok(s.principal.clone()),
            Some(_) => {
                table.remove(token);
                Err(AuthError::InvalidToken)
            }
            None => Err(AuthError::InvalidToken),
        }
    }

    /// Forget a token; `true` if it was live.
    pub fn logout(&self, token: &str) -> bool {
        self.table().remove(token).is_some()
    }

    /// Name of a configured agent or user.
    pub fn name_of(&self, id: &str) -> Option<&str> {
        self.accounts.get(id).map(|a| a.name.as_str())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in b.iter().enumerate() {
        let y = a.get(i % a.len().max(1)).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?;
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token.trim())
}

impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let token = bearer_token(parts)?;
        Ok(state.auth.check(token)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct TestClock(AtomicU64);
    impl Clock for TestClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn login_check_expire_logout() {
        let clock = Arc::new(TestClock(AtomicU64::new(1_000)));
        let auth = Auth::from_config(&Config::builtin(), clock.clone());
        assert_eq!(
            auth.login("1001", "nope").unwrap_err(),
            AuthError::BadCredentials
        );
        assert_eq!(
            auth.login("ghost", "x").unwrap_err(),
            AuthError::BadCredentials
        );
        assert_eq!(
            auth.login("1001", "").unwrap_err(),
            AuthError::BadCredentials
        );
        let l = auth.login("1001", "hotline1001").unwrap();
        assert_eq!(l.token.len(), 64);
        assert_eq!(l.principal.role, Role::Agent);
        assert_eq!(auth.check(&l.token).unwrap().id, "1001");
        let s = auth.login("s1", "hotline-s1").unwrap();
        assert_eq!(s.principal.role, Role::Supervisor);
        assert_eq!(
            auth.login("admin", "hotline-admin").unwrap().principal.role,
            Role::Admin
        );
        clock.0.store(1_000 + 12 * 3600 * 1000, Ordering::SeqCst);
        assert_eq!(auth.check(&l.token).unwrap_err(), AuthError::InvalidToken);
        clock.0.store(1_000, Ordering::SeqCst);
        assert!(auth.logout(&s.token));
        assert!(auth.check(&s.token).is_err());
        assert!(!auth.logout(&s.token));
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(!constant_time_eq(b"a", b""));
    }
}
