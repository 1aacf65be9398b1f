#!/usr/bin/env bash
# The demo: sets everything up on a fresh machine, starts a cluster of its own, loads the demo shop
# database and asks it the questions in demo/questions.txt, printing answer, SQL and rows.
# With SQLCHAT_API_BASE (and SQLCHAT_API_KEY, SQLCHAT_MODEL) set, a real LLM gateway writes the SQL;
# without them the built-in offline engine answers what it can.
#   SQLCHAT_DEMO_PORT (default 55432), SQLCHAT_DEMO_DIR (default /tmp/sqlchat-demo), --keep to leave it running.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${SQLCHAT_DEMO_PORT:-55432}
dir=${SQLCHAT_DEMO_DIR:-/tmp/sqlchat-demo}
keep=${1:-}

tools/setup.sh --release
tools/cluster.sh stop "$dir" 2>/dev/null || true
rm -rf "$dir"
# Preloaded, as the README installs it: the sqlchat.* settings are protected from the first command.
tools/cluster.sh start "$dir" "$port" shared_preload_libraries=sqlchat
[ "$keep" = "--keep" ] || trap 'tools/cluster.sh stop "$dir"' EXIT

psql=(psql -X -q -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1)
"${psql[@]}" -d postgres -c "CREATE DATABASE shop"
"${psql[@]}" -d shop -f demo/shop.sql >/dev/null
"${psql[@]}" -d shop -c "CREATE EXTENSION sqlchat"

if [ -n "${SQLCHAT_API_BASE:-}" ]; then
  # The key goes into a file only the server's user reads, never into a setting or the server log.
  key_file="$dir/sqlchat.key"
  printf '%s\n' "${SQLCHAT_API_KEY:-}" > "$key_file"
  chmod 600 "$key_file"
  [ "$(id -u)" = 0 ] && chown postgres "$key_file"
  "${psql[@]}" -d shop -v base="$SQLCHAT_API_BASE" -v key_file="$key_file" -v model="${SQLCHAT_MODEL:-gpt-4o-mini}" <<'SQL'
ALTER SYSTEM SET sqlchat.api_base = :'base';
ALTER SYSTEM SET sqlchat.api_key_file = :'key_file';
ALTER SYSTEM SET sqlchat.model = :'model';
SELECT pg_reload_conf();
SQL
  sleep 1
  echo "== sqlchat demo: questions answered by the LLM gateway at $SQLCHAT_API_BASE (engine auto: offline when confident)"
  engine=auto
else
  echo "== sqlchat demo: no LLM gateway configured (set SQLCHAT_API_BASE, SQLCHAT_API_KEY, SQLCHAT_MODEL to use one);"
  echo "== questions are answered by the built-in offline engine, which declines what it cannot answer with confidence."
  engine=offline
fi

echo
echo "== sqlchat.check_setup(): what in this configuration needs attention"
"${psql[@]}" -d shop -c "SELECT severity, problem, fix FROM sqlchat.check_setup()"

while IFS= read -r question; do
  [ -z "$question" ] && continue
  echo
  echo "Q: $question"
  "${psql[@]}" -d shop -v q="$question" -v engine="$engine" <<'SQL' || true
\pset footer off
SET sqlchat.engine = :'engine';
SELECT answer, coalesce(sql, '(none)') AS sql, coalesce(rows, '[]') AS rows, engine, llm_calls,
       round(elapsed_ms::numeric, 1) AS ms
FROM sqlchat.ask_full(:'q') \gset a_
\echo 'A:' :a_answer
\echo 'SQL:' :a_sql
\echo '(engine' :a_engine '| LLM calls' :a_llm_calls '|' :a_ms 'ms)'
SELECT r::text AS "rows (first 5)" FROM jsonb_array_elements(:'a_rows'::jsonb) WITH ORDINALITY AS t(r, n) WHERE n <= 5 ORDER BY n;
SQL
done < demo/questions.txt
echo
if [ "$keep" = "--keep" ]; then
  echo "The cluster is still running: psql -h 127.0.0.1 -p $port -U postgres shop  (stop: tools/cluster.sh stop $dir)"
fi
