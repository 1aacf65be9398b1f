"""Processes and clients the end-to-end tests share: the fake gateway, a private PostgreSQL
cluster, databases loaded from SQL files. Used by conftest.py; importable from test modules."""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

REPO = Path(__file__).resolve().parents[2]
GATEWAY_SCRIPT = REPO / "tests" / "fake_gateway.py"
CLUSTER_SCRIPT = REPO / "tools" / "cluster.sh"
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
MISSING_EXTENSION = "could not open extension control file"
# What the cluster's sqlchat settings say during the tests.
API_KEY = "sk-fake-e2e-0123456789"
MODEL = "fake-model"


def eval_dir():
    """The public eval data: $SQLCHAT_EVAL_DIR, else <repo>/../shared/eval; None when absent."""
    configured = os.environ.get("SQLCHAT_EVAL_DIR")
    path = Path(configured) if configured else REPO.parent / "shared" / "eval"
    return path if path.is_dir() else None


def results_dir():
    path = Path(os.environ.get("SQLCHAT_RESULTS_DIR", "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port():
    """A free TCP port on 127.0.0.1, from $SQLCHAT_E2E_PORTS (`LOW-HIGH`) when set."""
    wanted = os.environ.get("SQLCHAT_E2E_PORTS")
    candidates = [0]
    if wanted:
        low, high = (int(p) for p in wanted.split("-", 1))
        candidates = list(range(low, high + 1))
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in {wanted}")


# ---- fake gateway ---------------------------------------------------------------------------------


class GatewayError(Exception):
    pass


class Gateway:
    """A running tests/fake_gateway.py and a small client for its control endpoints."""

    def __init__(self, script=None, tls=None):
        """tls: (cert, key[, ca]) PEM paths to serve https; the control endpoints then use https too,
        trusting ca (else cert)."""
        cmd = [sys.executable, str(GATEWAY_SCRIPT), "--port", "0"]
        if script:
            cmd += ["--script", str(script)]
        if tls:
            cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not match:
            self.stop()
            raise GatewayError(f"fake gateway did not start: {line!r} {self.process.stderr.read()!r}")
        self.port = int(match.group(1))
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.ssl_context = None
        if tls:
            self.ssl_context = ssl.create_default_context(cafile=str(tls[2] if len(tls) > 2 else tls[0]))
        self.api_base = f"{self.base_url}/v1"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream:
                stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _call(self, method, path, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise GatewayError(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}") from e

    def reset(self):
        self._call("POST", "/_control/reset", {})

    def rule(self, **spec):
        """Adds one rule (see fake_gateway.py for the keys); returns its id."""
        return self._call("POST", "/_control/rules", spec)["ids"][0]

    def rules(self, rules=None):
        """Adds several rules when given a list; returns the rules with their use counts."""
        if rules is not None:
            self._call("POST", "/_control/rules", {"rules": rules})
        return self._call("GET", "/_control/rules")

    def requests(self, purpose=None):
        suffix = f"?purpose={urllib.request.quote(purpose)}" if purpose else ""
        return self._call("GET", "/_control/requests" + suffix)

    def clear_requests(self):
        self._call("DELETE", "/_control/requests")

    def counts(self):
        return self._call("GET", "/_control/counts")

    def wait_for(self, predicate, timeout=10.0, interval=0.02):
        """Polls the recorded requests until predicate(requests) is true; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests()
            if predicate(seen):
                return seen
            if time.monotonic() > deadline:
                raise GatewayError(f"condition not met within {timeout}s; requests: {len(seen)}")
            time.sleep(interval)


# ---- PostgreSQL -------------------------------------------------------------------------------------


class ExtensionMissing(Exception):
    """CREATE EXTENSION sqlchat failed because the extension is not installed."""


def library_installed():
    """Whether sqlchat's shared library is in the server's library directory."""
    pkglibdir = subprocess.run([str(PGBIN / "pg_config"), "--pkglibdir"], capture_output=True, text=True)
    return pkglibdir.returncode == 0 and (Path(pkglibdir.stdout.strip()) / "sqlchat.so").exists()


class Cluster:
    """A private PostgreSQL cluster started with tools/cluster.sh in a temporary directory, with
    sqlchat in shared_preload_libraries as the README installs it (when the library is installed
    and `preload` is true)."""

    superuser = "postgres"

    def __init__(self, preload=True, settings=(), env=None):
        """settings: extra `name=value` server options; env: extra environment variables of the
        server process (e.g. RUST_BACKTRACE)."""
        if not (PGBIN / "initdb").exists():
            raise FileNotFoundError(f"PostgreSQL binaries not found in {PGBIN} (set PGBIN)")
        self.dir = Path(tempfile.mkdtemp(prefix="sqlchat-e2e-"))
        self.port = free_port()
        self.started = False
        self.preloaded = preload and library_installed()
        options = ["shared_preload_libraries=sqlchat"] if self.preloaded else []
        options += list(settings)
        try:
            # A developer's RUST_BACKTRACE would make every ERROR raised through Rust symbolise a
            # backtrace (about 100 ms in a debug build): keep the server's environment as in production.
            server_env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
            server_env.update(env or {})
            subprocess.run(
                ["bash", str(CLUSTER_SCRIPT), "start", str(self.dir), str(self.port), *options],
                check=True,
                capture_output=True,
                text=True,
                timeout=180,
                env=server_env,
            )
            self.started = True
        except subprocess.CalledProcessError as e:
            log = self.server_log()
            self.stop()
            raise RuntimeError(f"cluster did not start: {e.stderr}\n{log}") from e

    def server_log(self):
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        if self.started:
            subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop", str(self.dir)], capture_output=True, timeout=120)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, dbname="postgres", user=None, password=None):
        parts = {"host": "127.0.0.1", "port": self.port, "dbname": dbname, "user": user or self.superuser}
        if password:
            parts["password"] = password
        return conninfo.make_conninfo(**parts)

    def connect(self, dbname="postgres", user=None, autocommit=True, **kwargs):
        return psycopg.connect(self.conninfo(dbname, user), autocommit=autocommit, **kwargs)

    def psql_file(self, dbname, path):
        """Runs a SQL file with psql, stopping at the first error."""
        result = subprocess.run(
            [str(PGBIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(dbname), "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql -f {path} failed in {dbname}: {result.stderr[-2000:]}")

    def extension_available(self):
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'sqlchat'").fetchone() is not None

    def create_database(self, name, sql_files=(), extension=True):
        """Creates (or recreates) a database, loads the files in order, then CREATE EXTENSION sqlchat."""
        if extension and not self.extension_available():
            raise ExtensionMissing(f'extension "sqlchat" is not available ({MISSING_EXTENSION})')
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for path in sql_files:
            self.psql_file(name, path)
        if extension:
            create_extension(self, name)
        return name

    def set_system(self, settings):
        """ALTER SYSTEM SET each setting (None resets it), reload, and wait until new sessions have
        read the new configuration."""
        with self.connect() as conn:
            loaded_before = conn.execute("SELECT pg_conf_load_time()").fetchone()[0]
            # ALTER SYSTEM only accepts settings this session knows: load the library that defines
            # them (so its checks apply), else make placeholders.
            if any(n.startswith("sqlchat.") for n in settings) and self.extension_available():
                try:
                    conn.execute("LOAD 'sqlchat'")
                except psycopg.Error:
                    pass
            for name in settings:
                if conn.execute("SELECT current_setting(%s, true)", (name,)).fetchone()[0] is None:
                    conn.execute("SELECT set_config(%s, '', false)", (name,))
            for name, value in settings.items():
                ident = sql.Identifier(*name.split("."))
                if value is None:
                    conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(ident))
                else:
                    conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(ident, sql.Literal(str(value))))
            conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while True:
            with self.connect() as conn:
                if conn.execute("SELECT pg_conf_load_time()").fetchone()[0] > loaded_before:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not reload its configuration within 10 s")
            time.sleep(0.05)


def gateway_wait_event(conn):
    """The wait event a backend shows while sqlchat waits for the gateway: its own name where
    PostgreSQL lets extensions name one (17 and later), else PostgreSQL's generic one."""
    version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()[0]
    return "SqlchatGateway" if version >= 170000 else "Extension"


def create_extension(cluster, dbname):
    try:
        with cluster.connect(dbname) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS sqlchat")
    except psycopg.Error as e:
        if MISSING_EXTENSION in str(e):
            raise ExtensionMissing(str(e).strip()) from e
        raise


def write_results(name, figures):
    """Saves measured figures as <results dir>/<name>.json."""
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return path
