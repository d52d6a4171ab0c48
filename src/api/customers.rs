//! Customer records: read (agents, supervisors), look up by phone, upsert (admin).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::{Principal, Role};
use super::error::{parse_json, ApiError, ApiResult, P, Q};
use super::ApiState;
use crate::store::{normalize_phone, Customer, CustomerRecord};

/// Phone statuses a customer may have.
pub const PHONE_STATUSES: &[&str] = &["unverified", "ok", "empty", "wrong", "mismatch"];

/// The longest id (customer, order) accepted.
pub const MAX_ID_LEN: usize = 64;

/// `GET /api/customers/{id}`: customer, phones, work orders, calls, open cases.
pub async fn record(
    State(state): State<ApiState>,
    who: Principal,
    P(id): P<String>,
) -> ApiResult<Json<CustomerRecord>> {
    who.require(&[Role::Agent, Role::Supervisor])?;
    state
        .store
        .customer_record(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("customer {id:?} not found")))
}

#[derive(Debug, Deserialize)]
pub struct LookupQuery {
    phone: Option<String>,
}

/// `GET /api/customers?phone=`: the record of the customer with that number.
pub async fn lookup(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<LookupQuery>,
) -> ApiResult<Json<CustomerRecord>> {
    who.require(&[Role::Agent, Role::Supervisor])?;
    let phone = q
        .phone
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("query parameter `phone` is required".into()))?;
    if normalize_phone(&phone).is_empty() {
        return Err(ApiError::BadRequest(format!(
            "phone {phone:?} has no digits"
        )));
    }
    let Some(customer) = state.store.find_by_phone(&phone).await? else {
        return Err(ApiError::NotFound(format!(
            "no customer with phone {phone:?}"
        )));
    };
    state
        .store
        .customer_record(&customer.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no customer with phone {phone:?}")))
}

/// Body of `POST /api/customers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub region: String,
    /// Replaces the customer's numbers.
    #[serde(default)]
    pub phones: Vec<String>,
    /// Kept as stored when absent.
    #[serde(default)]
    pub do_not_call: Option<bool>,
    /// Kept as stored when absent.
    #[serde(default)]
    pub phone_status: Option<String>,
}

/// Check an id from the outside world: non-empty, short, printable.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("{what} is longer than {MAX_ID_LEN} bytes"));
    }
    if id.chars().any(|c| c.is_control() || c == '/') || id != id.trim() {
        return Err(format!(
            "{what} {id:?} must not contain control characters, '/' or surrounding spaces"
        ));
    }
    Ok(())
}

/// `POST /api/customers` (admin): insert or update, replacing the phones.
/// 201 with the record when created, 200 when updated.
pub async fn upsert(
    State(state): State<ApiState>,
    who: Principal,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<CustomerRecord>)> {
    who.require(&[Role::Admin])?;
    let input: CustomerInput = parse_json(&body)?;
    check_id("id", &input.id).map_err(ApiError::Invalid)?;
    if input.name.trim().is_empty() {
        return Err(ApiError::Invalid("name must not be empty".into()));
    }
    for p in &input.phones {
        if normalize_phone(p).is_empty() {
            return Err(ApiError::Invalid(format!("phone {p:?} has no digits")));
        }
    }
    if let Some(s) = &input.phone_status {
        if !PHONE_STATUSES.contains(&s.as_str()) {
            return Err(ApiError::Invalid(format!(
                "phone_status must be one of {PHONE_STATUSES:?}, got {s:?}"
            )));
        }
    }
    let existing = state.store.get_customer(&input.id).await?;
    let now = state.now_ms();
    let customer = Customer {
        id: input.id.clone(),
        name: input.name.trim().to_string(),
        address: input.address,
        region: input.region,
        do_not_call: input
            .do_not_call
            .or(existing.as_ref().map(|c| c.do_not_call))
            .unwrap_or(false),
        phone_status: input
            .phone_status
            .or(existing.as_ref().map(|c| c.phone_status.clone()))
            .unwrap_or_else(|| "unverified".into()),
        created_at: existing.as_ref().map(|c| c.created_at).unwrap_or(now),
        updated_at: now,
    };
    state
        .store
        .upsert_customer(&customer, &input.phones)
        .await?;
    let record = state
        .store
        .customer_record(&customer.id)
        .await?
        .ok_or_else(|| ApiError::Internal("customer vanished after upsert".into()))?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(record)))
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn ids_are_checked() {
        assert!(check_id("id", "C-001").is_ok());
        assert!(check_id("id", "").is_err());
        assert!(check_id("id", " a").is_err());
        assert!(check_id("id", "a/b").is_err());
        assert!(check_id("id", "a\nb").is_err());
        assert!(check_id("id", &"x".repeat(65)).is_err());
    }
}
