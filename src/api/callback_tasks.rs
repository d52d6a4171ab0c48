//! `GET /api/callback-tasks`: the callback tasks (回访任务) the agent desk
//! lists for preview dialing, with the survey's questions so the desk can
//! build its form from the same data the survey dialplan follows
//! ([`QUESTIONS`]).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::{Principal, Role};
use super::calls::parse_limit_up_to;
use super::error::{ApiError, ApiResult, Q};
use super::ApiState;
use crate::campaign::survey::{Question, QUESTIONS};
use crate::store::{CallbackTaskView, TaskOrder};

/// The largest `limit` accepted.
pub const MAX_TASKS: i64 = 500;

#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    /// `open` (pending or dialing; the default) or `all`.
    pub state: Option<String>,
    pub limit: Option<String>,
}

/// What `GET /api/callback-tasks` answers.
#[derive(Debug, Serialize)]
pub struct TaskList {
    /// `[campaign] mode` (survey, progressive, preview); null when no
    /// campaign is configured or it is disabled.
    pub mode: Option<String>,
    pub questions: Vec<QuestionOut>,
    pub tasks: Vec<TaskOut>,
}

#[derive(Debug, Serialize)]
pub struct QuestionOut {
    pub key: &'static str,
    pub prompt: &'static str,
    pub choices: Vec<ChoiceOut>,
}

#[derive(Debug, Serialize)]
pub struct ChoiceOut {
    /// The key the customer presses, and the value the survey takes.
    pub key: u8,
    pub label: &'static str,
}

impl From<&Question> for QuestionOut {
    fn from(q: &Question) -> Self {
        Self {
            key: q.key,
            prompt: q.prompt,
            choices: q
                .choices
                .iter()
                .map(|&(key, label)| ChoiceOut { key, label })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TaskOut {
    pub id: String,
    /// install, repair or second.
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub due_at: i64,
    pub window_start: i64,
    pub window_end: i64,
    pub deadline: i64,
    pub customer: TaskCustomer,
    pub work_order: Option<TaskOrder>,
    pub last_outcome: Option<String>,
    /// The dissatisfied case a second callback follows up.
    pub case_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TaskCustomer {
    pub id: String,
    pub name: String,
    /// The number the dialer calls (normalised digits); empty when none.
    pub phone: String,
    /// The order's region, else the customer's.
    pub region: String,
    pub address: String,
}

impl From<CallbackTaskView> for TaskOut {
    fn from(v: CallbackTaskView) -> Self {
        let t = v.task;
        Self {
            id: t.id,
            kind: t.kind,
            state: t.state,
            attempts: t.attempts,
            due_at: t.due_at,
            window_start: t.window_start,
            window_end: t.window_end,
            deadline: t.deadline,
            customer: TaskCustomer {
                id: t.customer_id,
                name: v.customer_name,
                phone: t.phone,
                region: t.region,
                address: v.customer_address,
            },
            work_order: v.order,
            last_outcome: v.last_outcome,
            case_id: t.case_id,
        }
    }
}

/// `GET /api/callback-tasks?state=open|all&limit=` (agent, supervisor, admin).
pub async fn list(
    State(state): State<ApiState>,
    who: Principal,
    Q(q): Q<TasksQuery>,
) -> ApiResult<Json<TaskList>> {
    who.require(&[Role::Agent, Role::Supervisor, Role::Admin])?;
    let open_only = match q.state.as_deref().map(str::trim) {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state: expected open or all, got {other:?}"
            )))
        }
    };
    let limit = parse_limit_up_to(q.limit.as_deref(), MAX_TASKS)?;
    let tasks = state.store.list_callback_tasks(open_only, limit).await?;
    Ok(Json(TaskList {
        mode: state.campaign_mode.as_deref().map(str::to_string),
        questions: QUESTIONS.iter().map(QuestionOut::from).collect(),
        tasks: tasks.into_iter().map(TaskOut::from).collect(),
    }))
}
