"""Shared by the gateway-fault tests and tools/bench_faults.py: one gateway call under a fault,
cancels timed from the moment they are sent, and the health probes of a backend (threads, fds,
RSS) and of the server (crash lines in the log)."""

import socket
import threading
import time
from pathlib import Path

import psycopg

import harness

TABLE_SQL = "CREATE TABLE IF NOT EXISTS widgets (id int PRIMARY KEY, name text, price numeric)"
SESSION_SETTINGS = {
    "sqlchat.engine": "llm",
    "sqlchat.enable_cache": "off",
    "sqlchat.request_retries": "0",
}
CRASH_MARKERS = ("terminated by signal", "was terminated by", "server process (PID", "all server processes terminated")


def prepare(conn, settings=None):
    """Session settings for fault calls (engine llm, cache off, no retries unless given)."""
    merged = dict(SESSION_SETTINGS)
    merged.update(settings or {})
    for name, value in merged.items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
    return conn


class Outcome:
    def __init__(self):
        self.value = None
        self.error = None
        self.sqlstate = None
        self.ended = None

    @property
    def message(self):
        return str(self.error) if self.error else ""


def call(conn, question="how many widgets are there?", savepoint=True):
    """generate_sql inside BEGIN + SAVEPOINT; returns an Outcome and leaves the transaction open."""
    out = Outcome()
    if savepoint:
        conn.execute("BEGIN")
        conn.execute("SAVEPOINT before_call")
    try:
        out.value = conn.execute("SELECT sqlchat.generate_sql(%s)", (question,)).fetchone()[0]
    except psycopg.Error as e:
        out.error = e
        out.sqlstate = e.sqlstate
    out.ended = time.monotonic()
    return out


def finish(conn, out):
    """Proves the caller's transaction is usable: ROLLBACK TO SAVEPOINT (after an error), a query,
    COMMIT."""
    if out.error is not None:
        conn.execute("ROLLBACK TO SAVEPOINT before_call")
    assert conn.execute("SELECT 41 + 1").fetchone()[0] == 42
    conn.execute("COMMIT")


def call_in_thread(conn, question="how many widgets are there?"):
    out = Outcome()
    done = threading.Event()

    def run():
        r = call(conn, question)
        out.__dict__.update(r.__dict__)
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return out, done, t


def wait_pending(gw, n=1, timeout=10):
    """Waits until the gateway has recorded n chat requests (the call is in flight)."""
    return gw.wait_for(lambda rs: len([r for r in rs if r["path"].endswith("chat/completions")]) >= n, timeout=timeout)


def wait_backend_state(admin, pid, wanted="active", timeout=10):
    """Waits until the backend sleeps in sqlchat's latch wait."""
    wait_event = harness.gateway_wait_event(admin)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute("SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row and row[0] == wanted and row[1] == wait_event:
            return
        time.sleep(0.005)
    raise AssertionError(f"backend {pid} never waited in {wait_event}")


def cancel_and_time(admin, pid, out, done, how="cancel"):
    """Sends pg_cancel_backend (or pg_terminate_backend); seconds from sending it to the client's error."""
    fn = "pg_cancel_backend" if how == "cancel" else "pg_terminate_backend"
    sent = time.monotonic()
    admin.execute(f"SELECT {fn}(%s)", (pid,))
    assert done.wait(15), "the call did not end after the signal"
    return out.ended - sent


def proc_status(pid):
    """Threads, open fds and RSS (kB) of a backend, read from /proc (needs root or the same user)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "threads": int(fields["Threads"].strip()),
        "rss_kb": int(fields["VmRSS"].split()[0]),
        "fds": len(list(Path(f"/proc/{pid}/fd").iterdir())),
    }


def wait_threads(pid, wanted=1, timeout=2.0):
    """The backend's thread count once helpers have ended (they end within a grace period)."""
    deadline = time.monotonic() + timeout
    while True:
        n = proc_status(pid)["threads"]
        if n <= wanted or time.monotonic() > deadline:
            return n
        time.sleep(0.01)


def crash_lines(log_text):
    return [line for line in log_text.splitlines() if any(m in line for m in CRASH_MARKERS)]


class BlackholeListener:
    """A listening socket whose accept queue is full, so further connects hang in SYN-SENT (the
    kernel drops their SYNs): a connect hang on loopback."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        # Fill the queue: connects that complete but are never accepted.
        for _ in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
        time.sleep(0.05)

    def close(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


class SilentServer:
    """Accepts TCP connections and never sends a byte (a TLS handshake that hangs); records
    when each client goes away."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.closed_by_client = 0
        self.stopping = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.hold, args=(conn,), daemon=True).start()

    def hold(self, conn):
        with conn:
            try:
                while conn.recv(65536):
                    pass
                self.closed_by_client += 1
            except OSError:
                self.closed_by_client += 1

    def close(self):
        self.stopping = True
        self.sock.close()


HANGS = ["hang_before_headers", "hang_mid_body", "drip", "backoff", "connect", "tls_handshake"]


def setup_hang(kind, gw, conn, closers, wait_s=1.0):
    """Makes the next generate_sql call of `conn` hang in the way `kind` names. Returns a function
    telling whether the peer saw the client go away after a cancel, or None where the peer cannot
    tell (a 429 back-off, a connect that never completes). Servers it starts are closed by the
    functions it appends to `closers`."""
    if kind in ("hang_before_headers", "hang_mid_body", "drip"):
        gw.rule(purpose="generate_sql", fault=kind, drip_ms=1000)

        def gateway_saw_close():
            try:
                gw.wait_for(lambda rs: rs and rs[-1]["client_disconnected"], timeout=wait_s)
                return True
            except harness.GatewayError:
                return False

        return gateway_saw_close
    if kind == "backoff":
        gw.rule(purpose="generate_sql", status=429, headers={"Retry-After": "30"})
        prepare(conn, {"sqlchat.request_retries": 2})
        return None
    if kind == "connect":
        hole = BlackholeListener()
        closers.append(hole.close)
        prepare(conn, {"sqlchat.api_base": f"http://127.0.0.1:{hole.port}/v1"})
        return None
    if kind == "tls_handshake":
        silent = SilentServer()
        closers.append(silent.close)
        prepare(conn, {"sqlchat.api_base": f"https://127.0.0.1:{silent.port}/v1"})

        def server_saw_close():
            deadline = time.monotonic() + wait_s
            while silent.closed_by_client < 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            return silent.closed_by_client >= 1

        return server_saw_close
    raise ValueError(f"unknown hang: {kind}")
