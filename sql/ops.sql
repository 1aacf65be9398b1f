-- Operations: quota definitions and the views over the statistics and quotas.

-- Quotas per role in this database (role_oid 0: the default quota); set with sqlchat.set_quota().
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

-- Every role may read the view: it shows a role its own rows, and every row to superusers and
-- members of pg_read_all_stats.
CREATE VIEW sqlchat.stats AS SELECT * FROM sqlchat.stats_snapshot();
COMMENT ON VIEW sqlchat.stats IS 'sqlchat statistics per database and role (since the server started or sqlchat.stats_reset())';
GRANT SELECT ON sqlchat.stats TO PUBLIC;

CREATE VIEW sqlchat.quotas AS SELECT * FROM sqlchat.quota_usage();
COMMENT ON VIEW sqlchat.quotas IS 'sqlchat quotas and their use this hour and day (superusers)';
GRANT SELECT ON sqlchat.quotas TO PUBLIC;
