-- Background asks (sqlchat.submit / result / job_status / cancel_job), run by background workers.

-- One row per submitted question. Not granted to anyone: the functions read and write it on the
-- caller's behalf; a role sees its own jobs (by oid and name together, as memory does), superusers
-- see all. Jobs are not dumped: they are transient, and removed sqlchat.job_retention after they end.
CREATE TABLE sqlchat.job (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role_oid         oid NOT NULL,      -- the role it runs as (current_user at submit)
    role_name        name NOT NULL,
    login_oid        oid NOT NULL,      -- the session user at submit: it must still be able to log in
    login_name       name NOT NULL,     -- (and SET ROLE to the role, when via_set_role) for the job to run
    via_set_role     boolean NOT NULL,  -- the role was chosen with SET ROLE, not by a SECURITY DEFINER function
    question         text NOT NULL,
    session_id       text,
    settings         jsonb,             -- the submitting session's settings; cleared when the job ends
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'done', 'failed', 'cancelled'])),
    queue_round      bigint NOT NULL,   -- jobs are taken by round, then id: one job per role per round
    runs             int NOT NULL DEFAULT 0,  -- runs started (a job whose worker stopped runs again once)
    worker           bigint,            -- the token of the worker running it
    worker_pid       int,
    submitted_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    answer           sqlchat.answer,    -- what ask_full would have returned
    sqlstate         text,              -- the ERROR it raised instead (or why it was cancelled)
    message          text,
    detail           text,
    hint             text
);
CREATE INDEX job_queued_idx ON sqlchat.job (queue_round, id) WHERE state OPERATOR(pg_catalog.=) 'queued';
CREATE INDEX job_role_queued_idx ON sqlchat.job (role_oid, queue_round) WHERE state OPERATOR(pg_catalog.=) 'queued';
CREATE INDEX job_running_idx ON sqlchat.job (worker) WHERE state OPERATOR(pg_catalog.=) 'running';
CREATE INDEX job_finished_idx ON sqlchat.job (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX job_role_idx ON sqlchat.job (role_oid, id);
COMMENT ON TABLE sqlchat.job IS 'sqlchat background asks: questions queued by sqlchat.submit, their state and answer';
REVOKE ALL ON sqlchat.job FROM PUBLIC;

-- The caller's jobs (superusers: everyone's); job_status() runs with the caller's rights.
CREATE VIEW sqlchat.jobs AS SELECT * FROM sqlchat.job_status();
COMMENT ON VIEW sqlchat.jobs IS 'sqlchat background jobs the caller can see: state, times, SQLSTATE and message on failure';
GRANT SELECT ON sqlchat.jobs TO PUBLIC;
