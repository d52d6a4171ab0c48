-- hotline schema, first cut.
--
-- Portable on purpose: the same file runs on SQLite and PostgreSQL.
--   * times are BIGINT epoch milliseconds (UTC);
--   * ids are TEXT chosen by the application or natural keys (no SERIAL/AUTOINCREMENT);
--   * booleans are BIGINT 0/1;
--   * JSON is TEXT.
-- Record tables written by the writer task (calls, registrations, surveys,
-- callback_tasks) carry no foreign keys: a call record must never be refused
-- because the customer or order it names was not loaded yet.

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    skills      TEXT NOT NULL DEFAULT '[]',   -- JSON array of skill names
    department  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    address       TEXT NOT NULL DEFAULT '',
    region        TEXT NOT NULL DEFAULT '',
    do_not_call   BIGINT NOT NULL DEFAULT 0,
    phone_status  TEXT NOT NULL DEFAULT 'unverified',  -- unverified|ok|empty|wrong|mismatch
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX customers_region ON customers (region);

-- One normalized number maps to one customer (see store::normalize_phone).
CREATE TABLE customer_phones (
    phone        TEXT PRIMARY KEY,                -- normalized digits
    raw          TEXT NOT NULL,                   -- as given by the ERP / agent
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE
);
CREATE INDEX customer_phones_customer ON customer_phones (customer_id);

CREATE TABLE work_orders (
    order_no      TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('install', 'repair')),
    customer_id   TEXT NOT NULL REFERENCES customers (id),
    product       TEXT NOT NULL DEFAULT '',
    technician    TEXT NOT NULL DEFAULT '',
    department    TEXT NOT NULL DEFAULT '',
    region        TEXT NOT NULL DEFAULT '',
    completed_at  BIGINT,
    fees_cents    BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX work_orders_customer ON work_orders (customer_id, completed_at);
CREATE INDEX work_orders_completed ON work_orders (completed_at);

CREATE TABLE calls (
    id              TEXT PRIMARY KEY,
    direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    from_number     TEXT NOT NULL,
    to_number       TEXT NOT NULL,
    customer_id     TEXT,
    work_order      TEXT,
    task_id         TEXT,
    queue           TEXT,
    agent_id        TEXT,
    arrived_at      BIGINT NOT NULL,
    answered_at     BIGINT,
    ended_at        BIGINT,
    wait_ms         BIGINT NOT NULL DEFAULT 0,
    talk_ms         BIGINT NOT NULL DEFAULT 0,
    hold_ms         BIGINT NOT NULL DEFAULT 0,
    ivr_path        TEXT NOT NULL DEFAULT '[]',   -- JSON array of IVR node ids / keys
    hangup_cause    TEXT NOT NULL DEFAULT '',
    hangup_side     TEXT NOT NULL DEFAULT '',
    disposition     TEXT NOT NULL DEFAULT '',
    notes           TEXT NOT NULL DEFAULT '',
    recording       TEXT,
    transfer_chain  TEXT NOT NULL DEFAULT '[]'    -- JSON array of TransferHop
);
CREATE INDEX calls_customer ON calls (customer_id, arrived_at);
CREATE INDEX calls_arrived ON calls (arrived_at);
CREATE INDEX calls_agent ON calls (agent_id, arrived_at);
CREATE INDEX calls_task ON calls (task_id);

CREATE TABLE registrations (
    agent_id     TEXT NOT NULL,
    contact_uri  TEXT NOT NULL,
    source       TEXT NOT NULL,    -- transport address the REGISTER came from, e.g. udp:10.0.0.5:5060
    transport    TEXT NOT NULL,    -- udp|tcp|ws|wss
    expires_at   BIGINT NOT NULL,
    call_id      TEXT NOT NULL,
    cseq         BIGINT NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (agent_id, contact_uri)
);
CREATE INDEX registrations_expires ON registrations (expires_at);

CREATE TABLE callback_tasks (
    id            TEXT PRIMARY KEY,
    work_order    TEXT,
    customer_id   TEXT NOT NULL,
    kind          TEXT NOT NULL,          -- e.g. install|repair|second
    window_start  BIGINT NOT NULL,
    window_end    BIGINT NOT NULL,
    deadline      BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    state         TEXT NOT NULL,          -- e.g. pending|dialing|done|failed|cancelled
    owner         TEXT,
    due_at        BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX callback_tasks_state_due ON callback_tasks (state, due_at);
CREATE INDEX callback_tasks_work_order ON callback_tasks (work_order);
CREATE INDEX callback_tasks_customer ON callback_tasks (customer_id);

CREATE TABLE callback_attempts (
    id          TEXT PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES callback_tasks (id) ON DELETE CASCADE,
    call_id     TEXT,
    started_at  BIGINT NOT NULL,
    outcome     TEXT
);
CREATE INDEX callback_attempts_task ON callback_attempts (task_id, started_at);

CREATE TABLE surveys (
    call_id       TEXT PRIMARY KEY,
    attitude      BIGINT,        -- 1..5
    cleaned       BIGINT,        -- 0/1
    fees_ok       BIGINT,        -- 0/1
    satisfaction  BIGINT,        -- 1 (很不满意) .. 5 (非常满意)
    remarks       TEXT NOT NULL DEFAULT ''
);

CREATE TABLE cases (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    kind         TEXT NOT NULL CHECK (kind IN ('complaint', 'dissatisfied')),
    department   TEXT NOT NULL DEFAULT '',
    deadline     BIGINT NOT NULL,
    state        TEXT NOT NULL,       -- open|investigating|resolved|closed
    owner        TEXT,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    closed_at    BIGINT
);
CREATE INDEX cases_customer ON cases (customer_id, closed_at);
CREATE INDEX cases_state_deadline ON cases (state, deadline);

CREATE TABLE case_events (
    id       TEXT PRIMARY KEY,
    case_id  TEXT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    text     TEXT NOT NULL
);
CREATE INDEX case_events_case ON case_events (case_id, at);
