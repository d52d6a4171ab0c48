-- One row per phone the server rang for a call: an agent offered the call,
-- a consulted agent, a supervisor listening in, an outside number the call
-- was transferred to. Times are epoch milliseconds, like everywhere else.
CREATE TABLE call_legs (
    call_id      TEXT NOT NULL,
    seq          BIGINT NOT NULL,        -- order within the call, from 1
    party        TEXT NOT NULL,          -- agent id, supervisor id, or tel:NUMBER
    role         TEXT NOT NULL,          -- offer|consult|monitor|transfer
    offered_at   BIGINT NOT NULL,
    answered_at  BIGINT,
    ended_at     BIGINT NOT NULL,
    outcome      TEXT NOT NULL,          -- connected|no_answer|busy|declined|cancelled|failed|...
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX call_legs_party ON call_legs (party, offered_at);
