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
    stats_reset timestamp with time zone,
    log_records_dropped bigint
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

-- ---- teaching (sql/teach.sql, src/teach/): examples, definitions, private columns, feedback ----
CREATE FUNCTION sqlchat.define(
    "term" TEXT,
    "meaning" TEXT
) RETURNS bigint
LANGUAGE c
AS 'MODULE_PATHNAME', 'define_wrapper';

CREATE FUNCTION sqlchat.feedback(
    "turn" bigint,
    "helpful" bool,
    "correction" TEXT DEFAULT NULL
) RETURNS void
LANGUAGE c
AS 'MODULE_PATHNAME', 'feedback_wrapper';

CREATE FUNCTION sqlchat.feedback_list() RETURNS TABLE (
    "turn" bigint,
    "role_name" TEXT,
    "session_id" TEXT,
    "question" TEXT,
    "sql" TEXT,
    "answer" TEXT,
    "helpful" bool,
    "correction" TEXT,
    "given_at" timestamp with time zone,
    "example_id" bigint
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'feedback_list_wrapper';

CREATE FUNCTION sqlchat.private_column_list() RETURNS TABLE (
    "table_name" TEXT,
    "column_name" TEXT,
    "marked_by" TEXT,
    "marked_at" timestamp with time zone
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'private_column_list_wrapper';

CREATE FUNCTION sqlchat.set_private(
    "col_table" regclass,
    "col_name" TEXT,
    "private" bool DEFAULT true
) RETURNS void
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_private_wrapper';

CREATE FUNCTION sqlchat.suggest_questions(
    "n" INT DEFAULT 5
) RETURNS SETOF TEXT
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'suggest_questions_wrapper';

CREATE FUNCTION sqlchat.taught_definitions() RETURNS TABLE (
    "id" bigint,
    "term" TEXT,
    "meaning" TEXT,
    "defined_by" TEXT,
    "defined_at" timestamp with time zone
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'taught_definitions_wrapper';

CREATE FUNCTION sqlchat.taught_examples() RETURNS TABLE (
    "id" bigint,
    "question" TEXT,
    "sql" TEXT,
    "tables" TEXT[],
    "note" TEXT,
    "taught_by" TEXT,
    "taught_at" timestamp with time zone,
    "uses" bigint,
    "last_used_at" timestamp with time zone
)
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'taught_examples_wrapper';

CREATE FUNCTION sqlchat.teach(
    "question" TEXT,
    "sql" TEXT,
    "note" TEXT DEFAULT NULL
) RETURNS bigint
LANGUAGE c
AS 'MODULE_PATHNAME', 'teach_wrapper';

CREATE FUNCTION sqlchat.teach_from_turn(
    "turn" bigint,
    "sql" TEXT DEFAULT NULL
) RETURNS bigint
LANGUAGE c
AS 'MODULE_PATHNAME', 'teach_from_turn_wrapper';

CREATE FUNCTION sqlchat.undefine(
    "id" bigint
) RETURNS void
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'undefine_wrapper';

CREATE FUNCTION sqlchat.unteach(
    "id" bigint
) RETURNS void
STRICT
LANGUAGE c
AS 'MODULE_PATHNAME', 'unteach_wrapper';

CREATE TABLE sqlchat.example (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question      text NOT NULL,
    sql           text NOT NULL,
    note          text,
    reads         jsonb NOT NULL,
    taught_by     name NOT NULL,
    taught_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    uses          bigint NOT NULL DEFAULT 0,
    last_used_at  timestamptz
);
COMMENT ON TABLE sqlchat.example IS 'sqlchat verified examples: questions with the SQL that answers them';

-- Business definitions of terms; a NULL term is a standing instruction sent with every question.
CREATE TABLE sqlchat.definition (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    term        text,
    meaning     text NOT NULL,
    defined_by  name NOT NULL,
    defined_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE sqlchat.definition IS 'sqlchat definitions of business terms and standing instructions';

-- Columns whose values never reach the gateway. A column is found by its name and by its number,
-- so it stays private when renamed, and after a restore whatever the numbers became.
CREATE TABLE sqlchat.private_column (
    table_oid    regclass NOT NULL,
    column_name  name NOT NULL,
    attnum       smallint NOT NULL,
    marked_by    name NOT NULL,
    marked_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_oid, column_name)
);
COMMENT ON TABLE sqlchat.private_column IS 'sqlchat private columns: their values are never sent to the LLM gateway';

-- Feedback on a turn, by the role whose turn it is; a teacher may promote it to an example.
CREATE TABLE sqlchat.feedback (
    turn_id     bigint PRIMARY KEY REFERENCES sqlchat.turn (id) ON DELETE CASCADE,
    helpful     boolean NOT NULL,
    correction  text,
    given_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    example_id  bigint REFERENCES sqlchat.example (id) ON DELETE SET NULL
);
COMMENT ON TABLE sqlchat.feedback IS 'sqlchat feedback on answered turns, for teachers to review';

REVOKE ALL ON sqlchat.example, sqlchat.definition, sqlchat.private_column, sqlchat.feedback FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sqlchat.example', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.example_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.definition', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.definition_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.private_column', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.feedback', '');

CREATE VIEW sqlchat.examples AS SELECT * FROM sqlchat.taught_examples();
COMMENT ON VIEW sqlchat.examples IS 'sqlchat examples the caller may use (every example for superusers and the extension owner)';
GRANT SELECT ON sqlchat.examples TO PUBLIC;

CREATE VIEW sqlchat.definitions AS SELECT * FROM sqlchat.taught_definitions();
COMMENT ON VIEW sqlchat.definitions IS 'sqlchat definitions of terms and standing instructions';
GRANT SELECT ON sqlchat.definitions TO PUBLIC;

CREATE VIEW sqlchat.private_columns AS SELECT * FROM sqlchat.private_column_list();
COMMENT ON VIEW sqlchat.private_columns IS 'sqlchat private columns of the tables the caller may read';
GRANT SELECT ON sqlchat.private_columns TO PUBLIC;

CREATE VIEW sqlchat.feedback_queue AS SELECT * FROM sqlchat.feedback_list();
COMMENT ON VIEW sqlchat.feedback_queue IS 'sqlchat feedback on answered turns: all of it for teachers, their own for others';
GRANT SELECT ON sqlchat.feedback_queue TO PUBLIC;

-- ---- the interaction log (sql/log.sql): the function its policy calls, the table, the policy ----
CREATE FUNCTION sqlchat.log_reads_all() RETURNS bool
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'log_reads_all_wrapper';

-- Every role may SELECT; the row-level security policy shows a role its own rows (by oid and name
-- together, as memory does), and every row to superusers and members of sqlchat.auditor_role.
-- Only the worker writes, as the table's owner. Rows are kept sqlchat.log_retention.
CREATE TABLE sqlchat.log (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asked_at          timestamptz NOT NULL,   -- when the ask began
    role_oid          oid NOT NULL,           -- the role that asked (current_user)
    role_name         name NOT NULL,
    session_id        text,
    question          text,                   -- as sqlchat.log_questions says: the text, NULL, or its hash
    sql               text,                   -- the statement that ran (or was generated)
    engine            text,                   -- llm, offline or verified; NULL when the ask failed
    verified          boolean NOT NULL,
    from_cache        boolean NOT NULL,
    attempts          int NOT NULL,
    llm_calls         int NOT NULL,           -- requests sent to the gateway, retries included
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    tokens_estimated  boolean NOT NULL,       -- some replies had no usage: their tokens are estimated
    gateway_ms        double precision NOT NULL,
    sql_ms            double precision NOT NULL,
    total_ms          double precision NOT NULL,
    steps             jsonb,                  -- [{"step", "ms"}]: catalog, llm:<purpose>, sql...
    sqlstate          text,                   -- the ERROR that ended the ask
    message           text,
    backend_pid       int,
    session_role      name                    -- the session's user: the login role (or SET SESSION AUTHORIZATION's)
);
CREATE INDEX log_asked_at_idx ON sqlchat.log (asked_at);
CREATE INDEX log_role_idx ON sqlchat.log (role_oid, id);
COMMENT ON TABLE sqlchat.log IS 'sqlchat interaction log: one row per ask, kept through ROLLBACK and errors (a role reads its own rows; superusers and sqlchat.auditor_role all)';
REVOKE ALL ON sqlchat.log FROM PUBLIC;
GRANT SELECT ON sqlchat.log TO PUBLIC;
ALTER TABLE sqlchat.log ENABLE ROW LEVEL SECURITY;
CREATE POLICY log_reader ON sqlchat.log FOR SELECT TO PUBLIC
    USING ((SELECT sqlchat.log_reads_all())
           OR (role_oid OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                                WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
               AND role_name OPERATOR(pg_catalog.=) CURRENT_USER));
SELECT pg_catalog.pg_extension_config_dump('sqlchat.log', '');
SELECT pg_catalog.pg_extension_config_dump('sqlchat.log_id_seq', '');
