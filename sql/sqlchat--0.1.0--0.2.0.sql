-- sqlchat 0.1.0 to 0.2.0. Never edit a step after its release: later changes get a step of their own.
-- Whatever this changes must leave the extension exactly as a fresh install of 0.2.0 creates it
-- (tests/e2e/test_upgrade.py compares the two).
\echo Use "ALTER EXTENSION sqlchat UPDATE TO '0.2.0'" to load this file. \quit

-- ask_full's result: the query's columns in order, and the fields of taught examples.
ALTER TYPE sqlchat.answer
    ADD ATTRIBUTE columns jsonb,
    ADD ATTRIBUTE verified boolean,
    ADD ATTRIBUTE example_id bigint;

-- Memory and cache rows belong to a role by oid and name together. A row gets the oid of the role
-- that has its name at the upgrade; rows of roles dropped before it are removed, since no role
-- could ever read them again.
ALTER TABLE sqlchat.turn ADD COLUMN role_oid oid;
ALTER TABLE sqlchat.session_summary ADD COLUMN role_oid oid;
ALTER TABLE sqlchat.cache ADD COLUMN role_oid oid;
UPDATE sqlchat.turn t SET role_oid = r.oid
    FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) t.role_name;
UPDATE sqlchat.session_summary s SET role_oid = r.oid
    FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) s.role_name;
UPDATE sqlchat.cache c SET role_oid = r.oid
    FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) c.role_name;
DO $$
DECLARE
    turns bigint;
    summaries bigint;
    cached bigint;
BEGIN
    DELETE FROM sqlchat.turn WHERE role_oid IS NULL;
    GET DIAGNOSTICS turns = ROW_COUNT;
    DELETE FROM sqlchat.session_summary WHERE role_oid IS NULL;
    GET DIAGNOSTICS summaries = ROW_COUNT;
    DELETE FROM sqlchat.cache WHERE role_oid IS NULL;
    GET DIAGNOSTICS cached = ROW_COUNT;
    -- A WARNING: extension scripts run with client_min_messages at WARNING at least.
    IF turns OPERATOR(pg_catalog.<>) 0 OR summaries OPERATOR(pg_catalog.<>) 0 OR cached OPERATOR(pg_catalog.<>) 0 THEN
        RAISE WARNING 'sqlchat: removed the rows of roles dropped before the upgrade: % turns, % summaries, % cached statements',
            turns, summaries, cached;
    END IF;
END
$$;
ALTER TABLE sqlchat.turn ALTER COLUMN role_oid SET NOT NULL;
ALTER TABLE sqlchat.session_summary ALTER COLUMN role_oid SET NOT NULL;
ALTER TABLE sqlchat.cache ALTER COLUMN role_oid SET NOT NULL;
DROP INDEX sqlchat.turn_session_idx;
CREATE INDEX turn_session_idx ON sqlchat.turn (role_oid, session_id, id);
ALTER TABLE sqlchat.session_summary
    DROP CONSTRAINT session_summary_pkey,
    ADD PRIMARY KEY (role_oid, role_name, session_id);

-- New functions: check_setup, and the operations' (statistics, metrics, quotas, explain).
CREATE FUNCTION sqlchat.check_setup() RETURNS TABLE (
    severity text,
    problem text,
    fix text
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_setup_wrapper';

CREATE FUNCTION sqlchat.explain(question text, session_id text DEFAULT NULL) RETURNS jsonb
LANGUAGE c
AS 'MODULE_PATHNAME', 'explain_wrapper';

CREATE FUNCTION sqlchat.metrics() RETURNS text
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'metrics_wrapper';

CREATE FUNCTION sqlchat.quota_usage() RETURNS TABLE (
    role_name text,
    quota_of text,
    asks_per_hour bigint,
    tokens_per_day bigint,
    asks_this_hour bigint,
    tokens_today bigint,
    asks_reset_at timestamp with time zone,
    tokens_reset_at timestamp with time zone
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'quota_usage_wrapper';

CREATE FUNCTION sqlchat.set_quota(role_name text, asks_per_hour int, tokens_per_day bigint) RETURNS void
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_quota_wrapper';

CREATE FUNCTION sqlchat.stats_reset() RETURNS void
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'stats_reset_wrapper';

CREATE FUNCTION sqlchat.stats_snapshot() RETURNS TABLE (
    datname text,
    rolname text,
    asks bigint,
    answers_llm bigint,
    answers_offline bigint,
    answers_verified bigint,
    answers_cache bigint,
    errors bigint,
    errors_by_class jsonb,
    llm_requests jsonb,
    llm_failures bigint,
    prompt_tokens bigint,
    completion_tokens bigint,
    prompt_tokens_estimated bigint,
    completion_tokens_estimated bigint,
    gateway_ms double precision,
    sql_ms double precision,
    total_ms double precision,
    latency_ms_histogram jsonb,
    stats_reset timestamp with time zone
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'stats_snapshot_wrapper';

-- Operations (sql/ops.sql): quotas per role, and the views over statistics and quotas.
CREATE TABLE sqlchat.quota (
    role_oid        oid PRIMARY KEY,
    role_name       name NOT NULL,
    asks_per_hour   int CHECK (asks_per_hour OPERATOR(pg_catalog.>=) 0),
    tokens_per_day  bigint CHECK (tokens_per_day OPERATOR(pg_catalog.>=) 0),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE sqlchat.quota IS 'sqlchat quotas per role: asks per hour and tokens per day';
REVOKE ALL ON sqlchat.quota FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sqlchat.quota', '');

CREATE VIEW sqlchat.stats AS SELECT * FROM sqlchat.stats_snapshot();
COMMENT ON VIEW sqlchat.stats IS 'sqlchat statistics per database and role (since the server started or sqlchat.stats_reset())';
GRANT SELECT ON sqlchat.stats TO PUBLIC;

CREATE VIEW sqlchat.quotas AS SELECT * FROM sqlchat.quota_usage();
COMMENT ON VIEW sqlchat.quotas IS 'sqlchat quotas and their use this hour and day (superusers)';
GRANT SELECT ON sqlchat.quotas TO PUBLIC;

-- Background asks (sql/jobs.sql): submit, result, job_status and cancel_job, the job table and the
-- jobs view.
CREATE FUNCTION sqlchat.cancel_job(job bigint) RETURNS bool
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'cancel_job_wrapper';

CREATE FUNCTION sqlchat.job_status(job bigint DEFAULT NULL) RETURNS TABLE (
    job bigint,
    state text,
    role text,
    question text,
    session_id text,
    submitted_at timestamp with time zone,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    runs int,
    sqlstate text,
    message text,
    worker_pid int
)
LANGUAGE c
AS 'MODULE_PATHNAME', 'job_status_wrapper';

CREATE FUNCTION sqlchat.result(job bigint, wait_ms int DEFAULT 0) RETURNS sqlchat.answer
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'result_wrapper';

CREATE FUNCTION sqlchat.submit(question text, session_id text DEFAULT NULL) RETURNS bigint
LANGUAGE c
AS 'MODULE_PATHNAME', 'submit_wrapper';

CREATE TABLE sqlchat.job (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role_oid         oid NOT NULL,
    role_name        name NOT NULL,
    login_oid        oid NOT NULL,
    login_name       name NOT NULL,
    via_set_role     boolean NOT NULL,
    question         text NOT NULL,
    session_id       text,
    settings         jsonb,
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'done', 'failed', 'cancelled'])),
    queue_round      bigint NOT NULL,
    runs             int NOT NULL DEFAULT 0,
    worker           bigint,
    worker_pid       int,
    submitted_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    answer           sqlchat.answer,
    sqlstate         text,
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

CREATE VIEW sqlchat.jobs AS SELECT * FROM sqlchat.job_status();
COMMENT ON VIEW sqlchat.jobs IS 'sqlchat background jobs the caller can see: state, times, SQLSTATE and message on failure';
GRANT SELECT ON sqlchat.jobs TO PUBLIC;
