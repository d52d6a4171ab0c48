//! Plain data types stored and returned by [`Store`](super::Store).
//!
//! All times are epoch milliseconds, UTC (`i64`).

use serde::{Deserialize, Serialize};

use super::error::{Result, StoreError};

/// An agent as known to the database (passwords stay in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Login / SIP user name.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Skill names used by queue routing (stored as JSON text).
    pub skills: Vec<String>,
    /// Department the agent belongs to.
    pub department: String,
}

/// A customer. Phone numbers are kept in `customer_phones`, see
/// [`Store::upsert_customer`](super::Store::upsert_customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// ERP customer id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Postal address.
    pub address: String,
    /// Sales / service region (used by per-region reports and sampling).
    pub region: String,
    /// Never dial this customer for campaigns.
    pub do_not_call: bool,
    /// Verification state of the contact data: `unverified`, `ok`, `empty`
    /// (空号), `wrong` (错号), `mismatch` (资料不符).
    pub phone_status: String,
    /// First time the customer was stored; kept by later upserts.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A phone number of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerPhone {
    /// Normalised key, see [`normalize_phone`](super::normalize_phone).
    pub phone: String,
    /// The number as it was given.
    pub raw: String,
}

/// Installation or repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkOrderKind {
    /// 安装: callback the day after completion.
    Install,
    /// 维修: callback within 1 to 3 days after completion.
    Repair,
}

impl WorkOrderKind {
    /// Text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Repair => "repair",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "install" => Ok(Self::Install),
            "repair" => Ok(Self::Repair),
            other => Err(corrupt("work_orders.kind", other)),
        }
    }
}

/// A work order from the ERP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrder {
    /// ERP order number (natural key).
    pub order_no: String,
    /// Installation or repair.
    pub kind: WorkOrderKind,
    /// Customer the work was done for (must exist).
    pub customer_id: String,
    /// Product model.
    pub product: String,
    /// Technician who did the work.
    pub technician: String,
    /// Responsible department.
    pub department: String,
    /// Region of the order.
    pub region: String,
    /// When the work was completed; `None` while open.
    pub completed_at: Option<i64>,
    /// Fees charged, in cents (分).
    pub fees_cents: i64,
    /// First time stored; kept by later upserts.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Direction of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Customer dialled the hotline.
    In,
    /// We dialled (callbacks, agent outbound).
    Out,
}

impl Direction {
    /// Text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "in" => Ok(Self::In),
            "out" => Ok(Self::Out),
            other => Err(corrupt("calls.direction", other)),
        }
    }
}

/// What is known when a call arrives (or an outbound call is started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallArrival {
    /// Application-generated call id.
    pub id: String,
    /// In or out.
    pub direction: Direction,
    /// Calling number as presented.
    pub from_number: String,
    /// Called number as presented.
    pub to_number: String,
    /// Customer recognised from the number, if any.
    pub customer_id: Option<String>,
    /// Work order the call is about (callbacks).
    pub work_order: Option<String>,
    /// Callback task that placed the call.
    pub task_id: Option<String>,
    /// Queue, when already known.
    pub queue: Option<String>,
    /// Arrival (inbound) or dial (outbound) time.
    pub arrived_at: i64,
}

/// One hop of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferHop {
    /// When the transfer happened.
    pub at: i64,
    /// Agent who transferred.
    pub from_agent: String,
    /// Target agent or queue.
    pub to: String,
    /// The note handed over with the call.
    pub note: String,
}

/// One phone the server rang for a call (`call_legs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallLeg {
    /// The call.
    pub call_id: String,
    /// Order within the call, from 1.
    pub seq: i64,
    /// Agent id, supervisor id, or `tel:NUMBER`.
    pub party: String,
    /// `offer`, `consult`, `monitor` or `transfer`.
    pub role: String,
    /// When the phone started ringing.
    pub offered_at: i64,
    /// When it answered, if it did.
    pub answered_at: Option<i64>,
    /// When the leg ended.
    pub ended_at: i64,
    /// `connected`, `no_answer`, `busy`, `declined`, `cancelled`, `failed`...
    pub outcome: String,
}

/// What is known when the call ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCompletion {
    /// The call id given at arrival.
    pub id: String,
    /// Customer identified during the call; `None` keeps the stored value.
    pub customer_id: Option<String>,
    /// Work order identified during the call; `None` keeps the stored value.
    pub work_order: Option<String>,
    /// Last queue the call was in; `None` keeps the stored value.
    pub queue: Option<String>,
    /// Agent who (last) talked to the caller.
    pub agent_id: Option<String>,
    /// When an agent (or the customer, outbound) answered.
    pub answered_at: Option<i64>,
    /// When the call ended.
    pub ended_at: i64,
    /// Time in queue.
    pub wait_ms: i64,
    /// Time talking.
    pub talk_ms: i64,
    /// Time on hold.
    pub hold_ms: i64,
    /// IVR nodes / keys visited, in order.
    pub ivr_path: Vec<String>,
    /// SIP cause or reason text, e.g. `"200 BYE"`, `"487"`.
    pub hangup_cause: String,
    /// Who hung up: e.g. `caller`, `agent`, `system`.
    pub hangup_side: String,
    /// Outcome as recorded by the agent or the system.
    pub disposition: String,
    /// Agent notes.
    pub notes: String,
    /// Path of the WAV recording, relative to the recordings directory.
    pub recording: Option<String>,
    /// Transfers, in order.
    pub transfer_chain: Vec<TransferHop>,
}

/// A stored call: arrival fields plus completion fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Call id.
    pub id: String,
    /// In or out.
    pub direction: Direction,
    /// Calling number.
    pub from_number: String,
    /// Called number.
    pub to_number: String,
    /// Customer, if known.
    pub customer_id: Option<String>,
    /// Work order, if any.
    pub work_order: Option<String>,
    /// Callback task, if any.
    pub task_id: Option<String>,
    /// Queue, if any.
    pub queue: Option<String>,
    /// Agent, if any.
    pub agent_id: Option<String>,
    /// Arrival time.
    pub arrived_at: i64,
    /// Answer time.
    pub answered_at: Option<i64>,
    /// End time; `None` while the call is live (or its completion was lost).
    pub ended_at: Option<i64>,
    /// Time in queue.
    pub wait_ms: i64,
    /// Time talking.
    pub talk_ms: i64,
    /// Time on hold.
    pub hold_ms: i64,
    /// IVR path.
    pub ivr_path: Vec<String>,
    /// Hangup cause.
    pub hangup_cause: String,
    /// Hangup side.
    pub hangup_side: String,
    /// Disposition.
    pub disposition: String,
    /// Notes.
    pub notes: String,
    /// Recording path.
    pub recording: Option<String>,
    /// Transfers.
    pub transfer_chain: Vec<TransferHop>,
}

/// A SIP registration binding of an agent's phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Agent (SIP user).
    pub agent_id: String,
    /// Contact URI of the binding.
    pub contact_uri: String,
    /// Where the REGISTER came from, e.g. `udp:10.0.0.5:5060`.
    pub source: String,
    /// `udp`, `tcp`, `ws` or `wss`.
    pub transport: String,
    /// When the binding expires.
    pub expires_at: i64,
    /// Call-ID of the REGISTER.
    pub call_id: String,
    /// CSeq number of the REGISTER.
    pub cseq: i64,
    /// User-Agent header.
    pub user_agent: String,
}

/// Kind of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseKind {
    /// 投诉: 5 working days.
    Complaint,
    /// Dissatisfied / not-as-reported callback result (闭环 tracking).
    Dissatisfied,
}

impl CaseKind {
    /// Text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complaint => "complaint",
            Self::Dissatisfied => "dissatisfied",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "complaint" => Ok(Self::Complaint),
            "dissatisfied" => Ok(Self::Dissatisfied),
            other => Err(corrupt("cases.kind", other)),
        }
    }
}

/// A complaint or dissatisfied case, owned until closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Application-generated id.
    pub id: String,
    /// Customer.
    pub customer_id: String,
    /// Complaint or dissatisfied.
    pub kind: CaseKind,
    /// Responsible department.
    pub department: String,
    /// When it must be handled.
    pub deadline: i64,
    /// Free-form state, e.g. `open`, `investigating`, `resolved`.
    pub state: String,
    /// Owning agent (首问负责制).
    pub owner: Option<String>,
    /// What the customer reported.
    pub description: String,
    /// When opened.
    pub created_at: i64,
    /// When closed; `None` while open.
    pub closed_at: Option<i64>,
}

/// Everything an agent sees about a customer when a call arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerRecord {
    /// The customer.
    pub customer: Customer,
    /// Their phone numbers.
    pub phones: Vec<CustomerPhone>,
    /// Work orders, most recently completed first (open ones first).
    pub work_orders: Vec<WorkOrder>,
    /// Calls, newest first, at most [`RECORD_CALL_LIMIT`](super::RECORD_CALL_LIMIT).
    pub calls: Vec<CallRecord>,
    /// Cases not closed yet, oldest first.
    pub open_cases: Vec<Case>,
}

pub(crate) fn corrupt(column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        column,
        detail: format!("unexpected value {value:?}"),
    }
}

/// A callback promised to a caller: call `phone` back by `due_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    /// Id.
    pub id: String,
    /// Customer, when the caller's number matched one.
    pub customer_id: Option<String>,
    /// Number to call back (as the caller presented it).
    pub phone: String,
    /// Promised time, epoch ms.
    pub due_at: i64,
    /// The call in which it was promised.
    pub source_call: String,
    /// Epoch ms.
    pub created_at: i64,
}
