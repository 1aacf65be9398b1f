"""What tools/eval.py and tools/bench.py share: a private cluster with the installed extension
pointed at the fake gateway, the public data loaded into it, asking through `sqlchat.ask_full`,
statistics and the description of the machine the figures come from."""

import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

import harness  # noqa: E402

ASK_COLUMNS = "answer, sql, rows, tables, attempts, llm_calls, from_cache, elapsed_ms, engine"
STATEMENT_TIMEOUT = "120s"


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---- data -------------------------------------------------------------------------------------------


def data_dir(given=None):
    """--data, else $SQLCHAT_EVAL_DIR, else <repo>/../shared/eval; exits when absent."""
    path = Path(given) if given else harness.eval_dir()
    if path is None or not path.is_dir():
        sys.exit("eval data not found: pass --data DIR or set SQLCHAT_EVAL_DIR (default <repo>/../shared/eval)")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def defog_files(data, db_name):
    files = [data / "defog" / "sql" / f"{db_name}.sql"]
    comments = data / "defog" / "comments" / f"{db_name}.sql"
    if comments.exists():
        files.append(comments)
    return files


def table_key(name):
    """A table name as compared with gold tables: unquoted, lower case."""
    return name.replace('"', "").lower()


def short_table(name):
    return table_key(name).rsplit(".", 1)[-1]


def recall_precision(offered, gold, key=table_key):
    offered = {key(t) for t in offered or []}
    gold = {key(t) for t in gold or []}
    if not gold:
        return None, None
    hit = len(offered & gold)
    return hit / len(gold), (hit / len(offered) if offered else 0.0)


# ---- statistics -------------------------------------------------------------------------------------


def percentile(values, share):
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def rate(part, whole):
    return round(part / whole, 4) if whole else None


def rounded(value, digits=2):
    return None if value is None else round(value, digits)


def message_tokens(messages):
    """Prompt tokens as the gateway estimates them (4 characters a token)."""
    total = 0
    for m in messages or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            total += (len(content) + 3) // 4
        elif isinstance(content, list):
            total += sum((len(p.get("text", "")) + 3) // 4 for p in content if isinstance(p, dict))
    return total


def question_pattern(question):
    """A regex finding the question in a prompt whatever whitespace the prompt puts inside it."""
    return r"\s+".join(re.escape(word) for word in question.split())


# ---- processes --------------------------------------------------------------------------------------


@contextmanager
def environment(settings=None):
    """A private cluster and the fake gateway, the cluster's sqlchat settings pointing at it (LLM
    cache off, so every ask does its full work); both stopped at the end whatever happens."""
    gateway = harness.Gateway()
    cluster = None
    try:
        cluster = harness.Cluster()
        if not cluster.extension_available():
            sys.exit("the sqlchat extension is not installed in the system PostgreSQL: run tools/setup.sh")
        cluster.set_system({
            "sqlchat.api_base": gateway.api_base,
            "sqlchat.api_key": harness.API_KEY,
            "sqlchat.model": harness.MODEL,
            "sqlchat.enable_cache": "off",
            **(settings or {}),
        })
        yield cluster, gateway
    finally:
        if cluster is not None:
            cluster.stop()
        gateway.stop()


def load_database(cluster, name, files, template=None, extension=True):
    """Creates `name` (from `template` when given), runs the files and CREATE EXTENSION sqlchat."""
    started = time.monotonic()
    with cluster.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    for path in files:
        cluster.psql_file(name, path)
    if extension:
        harness.create_extension(cluster, name)
    log(f"  loaded {name} in {time.monotonic() - started:.1f} s")
    return name


def run_sql_file_ignoring_errors(cluster, dbname, path):
    """psql -f without ON_ERROR_STOP (for files with statements known to fail); returns the error count."""
    result = subprocess.run(
        [str(harness.PGBIN / "psql"), "-X", "-q", "-d", cluster.conninfo(dbname), "-f", str(path)],
        capture_output=True, text=True, timeout=1200,
    )
    return result.stderr.count("ERROR:")


def connect(cluster, dbname, engine=None):
    conn = cluster.connect(dbname)
    conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    if engine:
        conn.execute("SELECT set_config('sqlchat.engine', %s, false)", (engine,))
    return conn


def ask_full(conn, question):
    """(row of sqlchat.ask_full or None, 'SQLSTATE: message' or None, wall ms)."""
    started = time.monotonic()
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT {ASK_COLUMNS} FROM sqlchat.ask_full(%s)", (question,))
            row, error = cur.fetchone(), None
    except psycopg.Error as e:
        row, error = None, f"{e.sqlstate or 'XX000'}: {str(e).strip().splitlines()[0][:300]}"
    return row, error, (time.monotonic() - started) * 1000.0


# ---- the machine ------------------------------------------------------------------------------------


def machine(cluster=None):
    info = {"nproc": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    if cluster is not None:
        with cluster.connect() as conn:
            info["postgresql"] = conn.execute("SELECT version()").fetchone()[0]
            info["sqlchat"] = conn.execute(
                "SELECT default_version FROM pg_available_extensions WHERE name = 'sqlchat'"
            ).fetchone()[0]
    return info


def machine_line(info):
    return (
        f"{info.get('cpu', '?')}, {info.get('nproc')} CPUs, {info.get('memory_gb', '?')} GB; "
        f"{(info.get('postgresql') or '?').split(' on ')[0]}; sqlchat {info.get('sqlchat', '?')}"
    )


def results_dir():
    """$SQLCHAT_RESULTS_DIR, else <repo>/results."""
    path = Path(os.environ.get("SQLCHAT_RESULTS_DIR") or REPO / "results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


def number(value):
    return "n/a" if value is None else f"{value:g}"


def pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}%"
