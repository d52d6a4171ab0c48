-- The callback dialer (issue 5): everything a callback task's state machine
-- needs to survive a restart, attempts as numbered rows written before the
-- dial, survey context, and the closed loop of dissatisfied cases.
-- Portable as 0001: one ADD COLUMN per statement, BIGINT epoch ms, TEXT ids.

-- callback_tasks: the full campaign::Task beside the columns of 0001.
ALTER TABLE callback_tasks ADD COLUMN errors BIGINT NOT NULL DEFAULT 0;
ALTER TABLE callback_tasks ADD COLUMN errors_in_row BIGINT NOT NULL DEFAULT 0;
ALTER TABLE callback_tasks ADD COLUMN declined BIGINT NOT NULL DEFAULT 0;
ALTER TABLE callback_tasks ADD COLUMN first_attempt_at BIGINT;
ALTER TABLE callback_tasks ADD COLUMN last_outcome TEXT;
ALTER TABLE callback_tasks ADD COLUMN fail_reason TEXT;
-- A second callback (kind 'second') follows up this dissatisfied case.
ALTER TABLE callback_tasks ADD COLUMN case_id TEXT;
ALTER TABLE callback_tasks ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

-- callback_attempts: id is TASK#N, so attempt N of a task exists once; it is
-- committed (outcome NULL) before the INVITE goes out.
ALTER TABLE callback_attempts ADD COLUMN attempt BIGINT NOT NULL DEFAULT 0;
ALTER TABLE callback_attempts ADD COLUMN ended_at BIGINT;
ALTER TABLE callback_attempts ADD COLUMN sip_status BIGINT;

-- surveys: which task and order the answers belong to, and whether all four
-- questions were answered. attitude and satisfaction are 1..5, 5 best
-- (attitude: 满意 5, 一般 3, 不满意 1).
ALTER TABLE surveys ADD COLUMN task_id TEXT;
ALTER TABLE surveys ADD COLUMN customer_id TEXT;
ALTER TABLE surveys ADD COLUMN work_order TEXT;
ALTER TABLE surveys ADD COLUMN answered_at BIGINT;
ALTER TABLE surveys ADD COLUMN completed BIGINT NOT NULL DEFAULT 0;
CREATE INDEX surveys_task ON surveys (task_id);

-- cases opened by a dissatisfied callback: the order, its region (weekly
-- exception summary), who answered, the call, and when the fix was reported.
ALTER TABLE cases ADD COLUMN work_order TEXT;
ALTER TABLE cases ADD COLUMN region TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN interviewee TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN source_call TEXT;
ALTER TABLE cases ADD COLUMN fixed_at BIGINT;
CREATE INDEX cases_kind_created ON cases (kind, created_at);
