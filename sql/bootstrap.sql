-- Objects the functions depend on; created before them.

COMMENT ON SCHEMA sqlchat IS 'sqlchat: ask your database questions in plain language';

CREATE TYPE sqlchat.answer AS (
    answer      text,             -- the answer in words
    sql         text,             -- the statement that ran (NULL when nothing ran)
    rows        jsonb,            -- result rows as an array of objects (NULL when nothing ran)
    suggestions text[],           -- follow-up questions
    tables      text[],           -- tables given to the model (or read by the offline engine)
    attempts    int,              -- statements tried (1 + repairs)
    llm_calls   int,              -- chat requests made to the gateway
    from_cache  bool,             -- the SQL came from the cache
    elapsed_ms  double precision, -- wall time of the call
    engine      text,             -- 'llm' or 'offline'
    truncated   bool,             -- more rows existed than sqlchat.max_rows
    chart       jsonb             -- a suggested chart for the rows (see sqlchat.suggest_chart)
);
COMMENT ON TYPE sqlchat.answer IS 'The full result of sqlchat.ask_full';
