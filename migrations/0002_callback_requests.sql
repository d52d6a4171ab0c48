-- Callbacks promised to callers (IVR after hours, "press 1 to be called back"
-- in a long queue): the number to call and the promised time. Unlike
-- callback_tasks (one per completed work order) the caller may be unknown.
CREATE TABLE callback_requests (
    id           TEXT PRIMARY KEY,
    phone        TEXT NOT NULL,
    customer_id  TEXT,
    due_at       BIGINT NOT NULL,
    source_call  TEXT NOT NULL,
    state        TEXT NOT NULL,          -- pending|done|cancelled
    created_at   BIGINT NOT NULL,
    done_at      BIGINT
);
CREATE INDEX callback_requests_state_due ON callback_requests (state, due_at);
CREATE INDEX callback_requests_phone ON callback_requests (phone);
