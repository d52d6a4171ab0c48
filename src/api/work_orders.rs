//! `POST /api/work-orders` (admin): the ERP pushes completed installation and
//! repair orders, one JSON object or an array.
//!
//! Each item is parsed and stored on its own: a bad item is reported as
//! `{"index", "order_no", "error"}` and never blocks the good ones. Orders
//! are upserted by `order_no`, so re-sending a batch updates in place
//! (counted as `updated`). The customer is either referenced by `{"id"}`
//! (it must exist) or described by `{"phone", "name", "address", "region"}`
//! (and optionally `id`): found by id or phone and updated, or created
//! (id `tel-<normalised phone>` when none is given).

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Principal, Role};
use super::customers::check_id;
use super::error::{parse_json, ApiError, ApiResult};
use super::ApiState;
use crate::store::{normalize_phone, Customer, Store, WorkOrder, WorkOrderKind};

/// One order as the ERP sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    pub order_no: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub customer: CustomerRef,
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub technician: String,
    #[serde(default)]
    pub department: String,
    /// Region of the order; default: the customer's region.
    #[serde(default)]
    pub region: Option<String>,
    /// RFC 3339; absent or null while the order is open.
    #[serde(default)]
    pub completed_at: Option<String>,
    /// Yuan, as a number (`120.5`) or a string (`"120.50"`).
    #[serde(default)]
    pub fees: Option<Value>,
}

/// The customer of an order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

/// One refused item.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemError {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_no: Option<String>,
    pub error: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
    pub errors: Vec<ItemError>,
    /// Callback tasks planned for the completed orders (`POST
    /// /api/work-orders`; the CLI counts its own).
    pub tasks_created: usize,
}

/// Yuan (`"120.50"`, `120.5`, `"120"`) to fen, exactly; at most two decimals, not negative.
pub fn parse_fees(v: &Value) -> Result<i64, String> {
    let text = match v {
        Value::Null => return Ok(0),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => {
            return Err(format!(
                "fees: expected yuan as a number or string, got {other}"
            ))
        }
    };
    let bad =
        || format!("fees: expected yuan with at most 2 decimals (e.g. \"120.50\"), got {text:?}");
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (text.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    // `120.5` from a JSON number prints as "120.5"; "120.50" and "120.500" are fine, "120.505" is not.
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 2 {
        return Err(bad());
    }
    let yuan: i64 = whole.parse().map_err(|_| bad())?;
    let mut fen_text = frac_trimmed.to_string();
    while fen_text.len() < 2 {
        fen_text.push('0');
    }
    let fen: i64 = fen_text.parse().map_err(|_| bad())?;
    yuan.checked_mul(100)
        .and_then(|c| c.checked_add(fen))
        .ok_or_else(bad)
}

/// An order after validation, before the customer is resolved.
struct Checked {
    order_no: String,
    kind: WorkOrderKind,
    completed_at: Option<i64>,
    fees_cents: i64,
}

fn check(input: &OrderInput) -> Result<Checked, String> {
    check_id("order_no", &input.order_no)?;
    let kind = match input.kind.as_str() {
        "install" => WorkOrderKind::Install,
        "repair" => WorkOrderKind::Repair,
        other => {
            return Err(format!(
                "type: expected \"install\" or \"repair\", got {other:?}"
            ))
        }
    };
    let completed_at = match input.completed_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    format!(
                        "completed_at: expected RFC 3339 (e.g. 2025-06-01T14:30:00+08:00), got {t:?} ({e})"
                    )
                })?
                .timestamp_millis(),
        ),
    };
    let fees_cents = input
        .fees
        .as_ref()
        .map(parse_fees)
        .transpose()?
        .unwrap_or(0);
    Ok(Checked {
        order_no: input.order_no.clone(),
        kind,
        completed_at,
        fees_cents,
    })
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Find, update or create the order's customer; its id.
async fn resolve_customer(
    store: &Store,
    r: &CustomerRef,
    now: i64,
) -> Result<Customer, ImportError> {
    let id = given(&r.id);
    let phone = given(&r.phone);
    let details = given(&r.name).is_some()
        || given(&r.address).is_some()
        || given(&r.region).is_some()
        || phone.is_some();
    if let Some(id) = &id {
        check_id("customer.id", id).map_err(ImportError::Item)?;
    }
    let key = match &phone {
        Some(p) => {
            let k = normalize_phone(p);
            if k.is_empty() {
                return Err(ImportError::Item(format!(
                    "customer.phone {p:?} has no digits"
                )));
            }
            Some(k)
        }
        None => None,
    };
    let existing = match (&id, &phone) {
        (Some(id), _) => store.get_customer(id).await?,
        (None, Some(p)) => store.find_by_phone(p).await?,
        (None, None) => {
            return Err(ImportError::Item(
                "customer: give {\"id\"} of a known customer or {\"phone\", \"name\", ...}".into(),
            ))
        }
    };
    if !details {
        // A bare reference: the customer must be there already.
        return existing.ok_or_else(|| {
            ImportError::Item(format!(
                "customer {:?} not found; send phone and name to create it",
                id.unwrap_or_default()
            ))
        });
    }
    let mut phones: Vec<String> = match &existing {
        Some(c) => store
            .customer_phones(&c.id)
            .await?
            .into_iter()
            .map(|p| p.raw)
            .collect(),
        None => Vec::new(),
    };
    if let (Some(p), Some(k)) = (&phone, &key) {
        if !phones.iter().any(|raw| normalize_phone(raw) == *k) {
            phones.push(p.clone());
        }
    }
    let customer = match existing {
        Some(c) => Customer {
            name: given(&r.name).unwrap_or(c.name),
            address: given(&r.address).unwrap_or(c.address),
            region: given(&r.region).unwrap_or(c.region),
            updated_at: now,
            ..c
        },
        None => {
            let name = given(&r.name).ok_or_else(|| {
                ImportError::Item("customer.name is required to create a new customer".into())
            })?;
            let new_id = match (id, key) {
                (Some(id), _) => id,
                (None, Some(k)) => format!("tel-{k}"),
                (None, None) => {
                    return Err(ImportError::Item("customer: give an id or a phone".into()))
                }
            };
            Customer {
                id: new_id,
                name,
                address: given(&r.address).unwrap_or_default(),
                region: given(&r.region).unwrap_or_default(),
                do_not_call: false,
                phone_status: "unverified".into(),
                created_at: now,
                updated_at: now,
            }
        }
    };
    store.upsert_customer(&customer, &phones).await?;
    Ok(customer)
}

#[derive(Debug, thiserror::Error)]
enum ImportError {
    /// The item is wrong; reported, others go on.
    #[error("{0}")]
    Item(String),
    /// The database failed; also reported per item.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

/// Store one item; `true` when the order is new.
async fn import_one(store: &Store, item: Value, now: i64) -> Result<bool, ImportError> {
    let input: OrderInput =
        serde_json::from_value(item).map_err(|e| ImportError::Item(e.to_string()))?;
    let checked = check(&input).map_err(ImportError::Item)?;
    let customer = resolve_customer(store, &input.customer, now).await?;
    let previous = store.get_work_order(&checked.order_no).await?;
    let order = WorkOrder {
        order_no: checked.order_no,
        kind: checked.kind,
        customer_id: customer.id.clone(),
        product: input.product,
        technician: input.technician,
        department: input.department,
        region: given(&input.region).unwrap_or(customer.region),
        completed_at: checked.completed_at,
        fees_cents: checked.fees_cents,
        created_at: previous.as_ref().map(|w| w.created_at).unwrap_or(now),
        updated_at: now,
    };
    store.upsert_work_order(&order).await?;
    Ok(previous.is_none())
}

/// Import a batch (already parsed as JSON): every item on its own.
pub async fn import_batch(store: &Store, items: Vec<Value>, now: i64) -> ImportSummary {
    let mut summary = ImportSummary::default();
    for (index, item) in items.into_iter().enumerate() {
        let order_no = item
            .get("order_no")
            .and_then(Value::as_str)
            .map(str::to_string);
        match import_one(store, item, now).await {
            Ok(true) => summary.created += 1,
            Ok(false) => summary.updated += 1,
            Err(e) => {
                if let ImportError::Store(e) = &e {
                    tracing::warn!(error = %e, index, "work order not stored");
                }
                summary.failed += 1;
                summary.errors.push(ItemError {
                    index,
                    order_no,
                    error: e.to_string(),
                });
            }
        }
    }
    metrics::counter!("hotline_work_orders_imported_total", "result" => "created")
        .increment(summary.created as u64);
    metrics::counter!("hotline_work_orders_imported_total", "result" => "updated")
        .increment(summary.updated as u64);
    metrics::counter!("hotline_work_orders_imported_total", "result" => "failed")
        .increment(summary.failed as u64);
    summary
}

/// `POST /api/work-orders`.
pub async fn import(
    State(state): State<ApiState>,
    who: Principal,
    body: Bytes,
) -> ApiResult<Json<ImportSummary>> {
    who.require(&[Role::Admin])?;
    let items = match parse_json::<Value>(&body)? {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(ApiError::BadRequest(format!(
                "expected a work order object or an array of them, got {}",
                json_kind(&other)
            )))
        }
    };
    let now = state.now_ms();
    let order_nos: Vec<Option<String>> = items
        .iter()
        .map(|i| {
            i.get("order_no")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let mut summary = import_batch(&state.store, items, now).await;
    // Each stored, completed order gets its callback task (planned by the
    // rules; never a second one on re-import).
    for (index, order_no) in order_nos.iter().enumerate() {
        let Some(order_no) = order_no else { continue };
        if summary.errors.iter().any(|e| e.index == index) {
            continue;
        }
        match crate::import::plan_stored_order(&state.store, order_no, &state.callback_rules, now)
            .await
        {
            Ok(true) => summary.tasks_created += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, order_no, "callback task not planned"),
        }
    }
    Ok(Json(summary))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fees_are_exact_fen() {
        assert_eq!(parse_fees(&json!("120.50")).unwrap(), 12050);
        assert_eq!(parse_fees(&json!(120.5)).unwrap(), 12050);
        assert_eq!(parse_fees(&json!(120)).unwrap(), 12000);
        assert_eq!(parse_fees(&json!("0.07")).unwrap(), 7);
        assert_eq!(parse_fees(&json!(0.1)).unwrap(), 10);
        assert_eq!(parse_fees(&json!("120.500")).unwrap(), 12050);
        assert_eq!(parse_fees(&json!(null)).unwrap(), 0);
        for bad in [
            json!("-1"),
            json!(-1),
            json!("1.005"),
            json!("abc"),
            json!("1."),
            json!(".5"),
            json!(true),
            json!(1e300),
            json!(""),
        ] {
            assert!(parse_fees(&bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn batch_with_a_bad_item_and_reimport() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let batch = json!([
            {"order_no": "W1", "type": "install", "customer": {"phone": "138 0000 1111", "name": "陈先生", "region": "华东"},
             "product": "KFR-35GW", "technician": "赵师傅", "completed_at": "2025-06-01T14:30:00+08:00", "fees": "120.50"},
            {"order_no": "W2", "type": "upgrade", "customer": {"phone": "13800001111"}},
            {"order_no": "W3", "type": "repair", "customer": {"id": "tel-13800001111"}, "fees": 35},
            {"order_no": "W4", "type": "repair", "customer": {"id": "nobody"}}
        ]);
        let Value::Array(items) = batch else {
            unreachable!()
        };
        let s = import_batch(&store, items.clone(), 1_000).await;
        assert_eq!((s.created, s.updated, s.failed), (2, 0, 2), "{s:?}");
        assert_eq!(s.errors[0].index, 1);
        assert!(s.errors[0].error.contains("type"), "{s:?}");
        assert_eq!(s.errors[1].index, 3);
        let w1 = store.get_work_order("W1").await.unwrap().unwrap();
        assert_eq!(w1.fees_cents, 12050);
        assert_eq!(w1.region, "华东");
        assert_eq!(w1.customer_id, "tel-13800001111");
        let s = import_batch(&store, items, 2_000).await;
        assert_eq!((s.created, s.updated, s.failed), (0, 2, 2), "{s:?}");
        let w1b = store.get_work_order("W1").await.unwrap().unwrap();
        assert_eq!((w1b.created_at, w1b.updated_at), (1_000, 2_000));
        let c = store.find_by_phone("13800001111").await.unwrap().unwrap();
        assert_eq!(c.name, "陈先生");
    }
}
