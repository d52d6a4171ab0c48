//! `hotline import work-orders FILE.csv`: completed orders from the ERP's CSV
//! export into customers, work orders and their callback tasks.
//!
//! Rows go through the same import as `POST /api/work-orders` (one path for
//! customers and orders); each completed order then gets its callback task,
//! planned by the seed's rules (install: the day after; repair: days 1-3;
//! calling hours, holidays, do-not-call, coverage). Idempotent: re-importing
//! updates orders and never duplicates a task.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::campaign::{parse_csv_bytes, plan_checked, CallbackRules, OrderKind, WorkOrderRow};
use crate::store::{CallbackTaskRow, Store, WorkOrderKind};

/// What an import did, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportOutcome {
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
    pub tasks_created: usize,
    pub tasks_skipped: usize,
    /// `line N: field: message` for every refused row.
    pub errors: Vec<String>,
}

const BATCH: usize = 500;

/// The JSON item the API's import takes, from one CSV row.
fn to_item(row: &WorkOrderRow) -> Value {
    let mut customer = json!({
        "phone": row.phone,
        "name": row.customer_name,
        "address": row.address,
        "region": row.region,
    });
    if let Some(id) = &row.customer_id {
        customer["id"] = json!(id);
    }
    json!({
        "order_no": row.order_no,
        "type": row.kind.as_str(),
        "customer": customer,
        "product": row.product,
        "technician": row.technician,
        "department": row.department,
        "region": row.region,
        "completed_at": row.completed_at.to_rfc3339(),
        "fees": format!("{}.{:02}", row.fees_cents / 100, row.fees_cents % 100),
    })
}

/// Import a CSV file; `progress` hears (done, total) after each batch.
pub async fn import_work_orders(
    store: &Store,
    path: &Path,
    rules: &CallbackRules,
    now_ms: i64,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<ImportOutcome> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let report = parse_csv_bytes(&bytes, |region| rules.zone_for(region))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = ImportOutcome {
        rows: report.rows.len() + report.errors.len(),
        ..ImportOutcome::default()
    };
    for e in &report.errors {
        out.errors.push(format!(
            "{}:{}: {}: {}",
            path.display(),
            e.line,
            e.field,
            e.message
        ));
    }
    out.failed = report.errors.len();
    let total = report.rows.len();
    for (chunk_no, chunk) in report.rows.chunks(BATCH).enumerate() {
        let summary = crate::api::work_orders::import_batch(
            store,
            chunk.iter().map(to_item).collect(),
            now_ms,
        )
        .await;
        out.created += summary.created;
        out.updated += summary.updated;
        out.failed += summary.failed;
        let failed: std::collections::HashSet<usize> =
            summary.errors.iter().map(|e| e.index).collect();
        for e in &summary.errors {
            out.errors.push(format!(
                "{}: order {}: {}",
                path.display(),
                e.order_no.as_deref().unwrap_or("?"),
                e.error
            ));
        }
        for (i, row) in chunk.iter().enumerate() {
            if failed.contains(&i) {
                continue;
            }
            match plan_task(store, row, rules, now_ms).await? {
                true => out.tasks_created += 1,
                false => out.tasks_skipped += 1,
            }
        }
        progress((chunk_no * BATCH + chunk.len()).min(total), total);
    }
    Ok(out)
}

/// Plan and store the callback task of an order already stored, as
/// `POST /api/work-orders` does after storing it: from the stored order and
/// its customer (do-not-call). False when the order is unknown, not
/// completed, not due a callback or already has its task.
pub async fn plan_stored_order(
    store: &Store,
    order_no: &str,
    rules: &CallbackRules,
    now_ms: i64,
) -> anyhow::Result<bool> {
    let Some(order) = store.get_work_order(order_no).await? else {
        return Ok(false);
    };
    let Some(completed_at) = order
        .completed_at
        .and_then(chrono::DateTime::from_timestamp_millis)
    else {
        return Ok(false);
    };
    let customer = store.get_customer(&order.customer_id).await?;
    let row = WorkOrderRow {
        order_no: order.order_no,
        kind: match order.kind {
            WorkOrderKind::Install => OrderKind::Install,
            WorkOrderKind::Repair => OrderKind::Repair,
        },
        customer_id: Some(order.customer_id),
        customer_name: customer
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        phone: String::new(),
        address: customer
            .as_ref()
            .map(|c| c.address.clone())
            .unwrap_or_default(),
        region: order.region,
        product: order.product,
        technician: order.technician,
        department: order.department,
        completed_at,
        fees_cents: order.fees_cents,
        do_not_call: customer.is_some_and(|c| c.do_not_call),
    };
    plan_task(store, &row, rules, now_ms).await
}

/// Plan and store the callback task of one stored order; false when it is
/// not due one (do-not-call, not sampled) or already has one.
async fn plan_task(
    store: &Store,
    row: &WorkOrderRow,
    rules: &CallbackRules,
    now_ms: i64,
) -> anyhow::Result<bool> {
    let Ok(plan) = plan_checked(row, rules) else {
        return Ok(false);
    };
    let Some(order) = store.get_work_order(&row.order_no).await? else {
        return Ok(false);
    };
    let task = CallbackTaskRow {
        id: format!("wo-{}", row.order_no),
        work_order: row.order_no.clone(),
        customer_id: order.customer_id,
        kind: row.kind.as_str().to_string(),
        window_start: plan.window_start.timestamp_millis(),
        window_end: plan.window_end.timestamp_millis(),
        deadline: plan.deadline.timestamp_millis(),
        due_at: plan.first_due.timestamp_millis(),
        created_at: now_ms,
    };
    Ok(store.insert_callback_task_once(&task).await?)
}

/// A one-line progress bar on stderr.
pub fn print_progress(done: usize, total: usize) {
    let width = 30;
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    eprint!(
        "\r[{}{}] {done}/{total}",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
    if done >= total {
        eprintln!();
    }
}
