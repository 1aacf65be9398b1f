#!/usr/bin/env python3
"""A fake OpenAI-compatible LLM gateway for sqlchat's tests. Standard library only.

    python3 tests/fake_gateway.py --port 0 [--script rules.json] [--tls-cert CERT.pem --tls-key KEY.pem]

The first line on stdout is `listening on 127.0.0.1:PORT`. With --tls-cert/--tls-key it speaks https
(the hang faults need plain http: they peek at the socket to notice a client that went away). It serves `POST /v1/chat/completions`
(and `/chat/completions`) on the loopback interface and is scripted over HTTP, with JSON bodies:

    POST   /_control/reset      forget rules, recorded requests and counts
    POST   /_control/rules      add one rule (an object) or several ({"rules": [...]} or a list)
    GET    /_control/rules      the rules with their use counts
    GET    /_control/requests   every request recorded so far (?purpose=NAME filters)
    DELETE /_control/requests   forget the recorded requests and counts (rules stay)
    GET    /_control/counts     requests per purpose
    GET    /_control/health     {"ok": true}

A rule matches a chat request when all of its given conditions hold:
    purpose   the X-Sqlchat-Purpose header: a name or a list of names
    contains  a substring of the last user message
    regex     a regular expression searched in the last user message (DOTALL)
    model     the request's model
Rules are tried in the order they were added; a rule with `times` (or a `contents` list, which
implies one use per entry) stops matching once used up, and the next rule gets its turn.

What a matching rule replies (one of):
    content   the assistant message text
    contents  a list of texts, one per call
    status    an HTTP status, with optional `body` (a string, or any JSON value) and `headers`
    fault     hang_before_headers | hang_mid_body | drip | reset_mid_body | truncated_json |
              malformed_json | wrong_shape | empty_choices | tool_calls | invalid_utf8 | huge |
              redirect
plus, for any of them:
    delay_ms  wait this long before sending headers
    hang_ms   how long the hang faults last at most (default 300000; they end early when the
              client goes away)
    drip_ms   the pause between bytes for `drip` (default 1000)
    size_mb   the body size for `huge` (default 8)
    repeat    what the content of `huge` repeats (default "x"), e.g. "<think></think>": a valid
              completion whose text is that pattern over and over, about size_mb megabytes of JSON
    location  where `redirect` points (default this server's /_capture/redirected)
    usage     false: a successful reply carries no `usage` object (default true)

With no matching rule, purpose `answer` gets a generic JSON answer and everything else gets a 500
with an OpenAI-style error saying no rule matched, so a test notices the unscripted call.

Every request is recorded: time, path, purpose, Authorization header, model, temperature, messages,
body size, the `usage` sent (null when none), the rule that answered, the status sent, whether the reply finished, and whether (and
when) the client closed the connection before it did.
"""

import argparse
import json
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
FAULTS = {
    "hang_before_headers",
    "hang_mid_body",
    "drip",
    "reset_mid_body",
    "truncated_json",
    "malformed_json",
    "wrong_shape",
    "empty_choices",
    "tool_calls",
    "invalid_utf8",
    "huge",
    "redirect",
}
RULE_KEYS = {
    "purpose", "contains", "regex", "model", "times", "usage",
    "content", "contents", "status", "body", "headers", "fault",
    "delay_ms", "hang_ms", "drip_ms", "size_mb", "repeat", "location", "name",
}
DEFAULT_HANG_MS = 300_000
MAX_REQUEST_BYTES = 64 * 1024 * 1024


class ClientGone(Exception):
    """The client closed the connection before the reply was complete."""


def estimate_tokens(text):
    return (len(text) + 3) // 4


def message_text(message):
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def last_user_message(messages):
    for m in reversed(messages if isinstance(messages, list) else []):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m)
    return ""


def validate_rule(rule):
    if not isinstance(rule, dict):
        raise ValueError("a rule is a JSON object")
    unknown = set(rule) - RULE_KEYS
    if unknown:
        raise ValueError(f"unknown rule keys: {sorted(unknown)}")
    if "fault" in rule and rule["fault"] not in FAULTS:
        raise ValueError(f"unknown fault {rule['fault']!r}; known: {sorted(FAULTS)}")
    if "contents" in rule and not (isinstance(rule["contents"], list) and rule["contents"]):
        raise ValueError("contents must be a non-empty list")
    if "regex" in rule:
        re.compile(rule["regex"])
    if "repeat" in rule and not (isinstance(rule["repeat"], str) and rule["repeat"]):
        raise ValueError("repeat must be a non-empty string")
    replies = [k for k in ("content", "contents", "status", "fault") if k in rule]
    if len(replies) > 1:
        raise ValueError(f"a rule gives one kind of reply, not {replies}")


class State:
    """Rules, recorded requests and counts, shared by all handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.rules = []
        self.requests = []
        self.counts = {}

    def reset(self):
        with self.lock:
            self.rules = []
            self.requests = []
            self.counts = {}

    def clear_requests(self):
        with self.lock:
            self.requests = []
            self.counts = {}

    def add_rules(self, rules):
        for r in rules:
            validate_rule(r)
        with self.lock:
            ids = []
            for r in rules:
                limit = r.get("times")
                if limit is None and "contents" in r:
                    limit = len(r["contents"])
                rule = {"id": len(self.rules), "spec": r, "limit": limit, "used": 0}
                rule["compiled"] = re.compile(r["regex"], re.S) if "regex" in r else None
                self.rules.append(rule)
                ids.append(rule["id"])
            return ids

    def rules_view(self):
        with self.lock:
            return [{"id": r["id"], "rule": r["spec"], "used": r["used"], "limit": r["limit"]} for r in self.rules]

    def take_rule(self, purpose, model, user_text):
        """The first rule that matches, with the index of this use; its use is counted at once."""
        with self.lock:
            for rule in self.rules:
                spec = rule["spec"]
                if rule["limit"] is not None and rule["used"] >= rule["limit"]:
                    continue
                want = spec.get("purpose")
                if want is not None and purpose not in (want if isinstance(want, list) else [want]):
                    continue
                if "model" in spec and spec["model"] != model:
                    continue
                if "contains" in spec and spec["contains"] not in user_text:
                    continue
                if rule["compiled"] is not None and not rule["compiled"].search(user_text):
                    continue
                use = rule["used"]
                rule["used"] += 1
                return rule, use
            return None, 0

    def record(self, entry):
        with self.lock:
            entry["seq"] = len(self.requests)
            self.requests.append(entry)
            key = entry.get("purpose") or "(none)"
            self.counts[key] = self.counts.get(key, 0) + 1
            return entry

    def update(self, entry, **fields):
        with self.lock:
            entry.update(fields)

    def requests_view(self, purpose=None):
        with self.lock:
            return [dict(e) for e in self.requests if purpose is None or e.get("purpose") == purpose]


def completion(content, model, prompt_tokens, extra_message=None, usage=True):
    message = {"role": "assistant", "content": content}
    if extra_message:
        message.update(extra_message)
    completion_tokens = estimate_tokens(content or "")
    body = {
        "id": f"chatcmpl-fake-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


def error_body(message, kind="invalid_request_error", code=None):
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


DEFAULT_ANSWER = {
    "answer": "Here is what the query returned.",
    "followups": ["Can you break this down further?", "How does this compare with last year?"],
}


class Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY each reply waits for the
    # client's delayed ACK (about 40 ms), which would be charged to sqlchat in every timing.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "fake-gateway/1"
    state: State = None  # set on the subclass made by make_server

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    # ---- plumbing -------------------------------------------------------------------------

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def send_json(self, status, value, headers=None):
        self.send_bytes(status, json.dumps(value).encode(), headers=headers)

    def send_bytes(self, status, body, headers=None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.write(body)

    def write(self, data):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as e:
            raise ClientGone() from e

    def client_closed(self):
        """True when the client has shut its side of the connection (EOF or reset)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (ConnectionResetError, OSError):
            return True

    def wait(self, ms):
        """Sleep up to `ms`, ending early (ClientGone) when the client leaves."""
        deadline = time.monotonic() + ms / 1000.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.state.stopping.is_set():
                return
            if self.client_closed():
                raise ClientGone()
            time.sleep(min(0.01, left))

    # ---- routing ----------------------------------------------------------------------------

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urlsplit(self.path)
        try:
            if url.path.startswith("/_control/"):
                self.control(method, url.path[len("/_control/"):], parse_qs(url.query))
            elif method == "POST" and url.path in CHAT_PATHS:
                self.chat(url.path)
            elif method == "GET" and url.path in ("/v1/models", "/models"):
                self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            else:
                self.other(method, url.path)
        except ClientGone:
            self.close_connection = True

    def control(self, method, name, query):
        st = self.state
        try:
            body = self.read_body()
            payload = json.loads(body) if body else None
            if name == "health":
                return self.send_json(200, {"ok": True})
            if name == "reset" and method == "POST":
                st.reset()
                return self.send_json(200, {"ok": True})
            if name == "rules" and method == "POST":
                rules = payload.get("rules") if isinstance(payload, dict) and "rules" in payload else payload
                rules = rules if isinstance(rules, list) else [rules]
                return self.send_json(200, {"ids": st.add_rules(rules)})
            if name == "rules" and method == "GET":
                return self.send_json(200, st.rules_view())
            if name == "requests" and method == "GET":
                purpose = query.get("purpose", [None])[0]
                return self.send_json(200, st.requests_view(purpose))
            if name == "requests" and method == "DELETE":
                st.clear_requests()
                return self.send_json(200, {"ok": True})
            if name == "counts" and method == "GET":
                with st.lock:
                    return self.send_json(200, dict(st.counts))
            return self.send_json(404, {"error": f"no control endpoint {method} /_control/{name}"})
        except (ValueError, re.error) as e:
            return self.send_json(400, {"error": str(e)})

    def other(self, method, path):
        """Anything else (such as a followed redirect) is recorded and answered 404."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_REQUEST_BYTES)) if length else b""
        self.state.record(self.base_record(path, method, body))
        self.send_json(404, error_body(f"fake gateway: no route {method} {path}", code="not_found"))

    def base_record(self, path, method, body):
        auth = self.headers.get("Authorization")
        return {
            "time": time.time(),
            "method": method,
            "path": path,
            "purpose": self.headers.get("X-Sqlchat-Purpose"),
            "has_authorization": auth is not None,
            "authorization": auth,
            "headers": {k: v for k, v in self.headers.items() if k.lower() != "authorization"},
            "body_size": len(body),
            "model": None,
            "temperature": None,
            "messages": None,
            "rule": None,
            "usage": None,
            "status": None,
            "completed": False,
            "client_disconnected": False,
            "disconnected_after_ms": None,
        }

    # ---- chat completions ---------------------------------------------------------------------

    def chat(self, path):
        started = time.monotonic()
        try:
            raw = self.read_body()
        except ValueError as e:
            self.close_connection = True
            return self.send_json(413, error_body(str(e)))
        entry = self.state.record(self.base_record(path, "POST", raw))
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as e:
            self.state.update(entry, status=400, completed=True)
            return self.send_json(400, error_body(f"fake gateway: bad request body: {e}"))
        messages = request.get("messages") if isinstance(request.get("messages"), list) else []
        prompt_tokens = sum(estimate_tokens(message_text(m)) for m in messages)
        model = request.get("model")
        self.state.update(entry, model=model, temperature=request.get("temperature"), messages=messages)

        rule, use = self.state.take_rule(entry["purpose"], model, last_user_message(messages))
        try:
            status = self.reply(rule, use, entry, model, prompt_tokens)
            self.state.update(entry, status=status, completed=True)
        except ClientGone:
            self.state.update(
                entry,
                client_disconnected=True,
                disconnected_after_ms=round((time.monotonic() - started) * 1000.0, 1),
            )
            raise

    def reply(self, rule, use, entry, model, prompt_tokens):
        """Sends the reply a rule (or the default) asks for; returns the HTTP status sent."""
        if rule is None:
            if entry["purpose"] == "answer":
                body = completion(json.dumps(DEFAULT_ANSWER), model, prompt_tokens)
                self.state.update(entry, usage=body.get("usage"))
                self.send_json(200, body)
                return 200
            msg = f"fake gateway: no rule matched this request (purpose={entry['purpose']!r})"
            self.send_json(500, error_body(msg, kind="server_error", code="no_rule_matched"))
            return 500
        spec = rule["spec"]
        self.state.update(entry, rule=rule["id"])  # visible while the reply is still pending
        if spec.get("delay_ms"):
            self.wait(float(spec["delay_ms"]))
        if "fault" in spec:
            return self.fault(spec, model, prompt_tokens)
        if "status" in spec:
            status = int(spec["status"])
            body = spec.get("body")
            if body is None:
                body = error_body(f"fake gateway: scripted status {status}", kind="scripted_error", code=status)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_bytes(status, data, headers=spec.get("headers"))
            return status
        if "contents" in spec:
            content = spec["contents"][min(use, len(spec["contents"]) - 1)]
        else:
            content = spec.get("content", "")
        body = completion(content, model, prompt_tokens, usage=spec.get("usage", True))
        self.state.update(entry, usage=body.get("usage"))
        self.send_json(200, body, headers=spec.get("headers"))
        return 200

    def fault(self, spec, model, prompt_tokens):
        kind = spec["fault"]
        hang_ms = float(spec.get("hang_ms", DEFAULT_HANG_MS))
        full = json.dumps(completion("SELECT 1", model, prompt_tokens)).encode()
        half = full[: len(full) // 2]
        if kind == "hang_before_headers":
            self.wait(hang_ms)
            self.close_connection = True
            return 0
        if kind in ("hang_mid_body", "reset_mid_body", "drip"):
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(full)))
            self.end_headers()
            if kind == "drip":
                pause = float(spec.get("drip_ms", 1000))
                for i in range(len(full)):
                    if i:
                        self.wait(pause)
                    self.write(full[i : i + 1])
                return 200
            self.write(half)
            if kind == "hang_mid_body":
                self.wait(hang_ms)
                return 200
            # An RST instead of a FIN: linger on, timeout 0.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return 200
        if kind == "truncated_json":
            self.close_connection = True
            self.send_bytes(200, half)
            return 200
        if kind == "malformed_json":
            self.send_bytes(200, b'{"id": "chatcmpl-fake", "choices": [{"message": {"content": "SELECT 1"}, }]')
            return 200
        if kind == "wrong_shape":
            self.send_json(200, {"result": {"text": "SELECT 1"}, "status": "ok"})
            return 200
        if kind == "empty_choices":
            body = completion("", model, prompt_tokens)
            body["choices"] = []
            self.send_json(200, body)
            return 200
        if kind == "tool_calls":
            call = {
                "id": "call_fake",
                "type": "function",
                "function": {"name": "run_sql", "arguments": json.dumps({"sql": "SELECT 1"})},
            }
            body = completion(None, model, prompt_tokens, extra_message={"tool_calls": [call]})
            body["choices"][0]["finish_reason"] = "tool_calls"
            self.send_json(200, body)
            return 200
        if kind == "invalid_utf8":
            body = json.dumps(completion("SELECT 'MARK'", model, prompt_tokens)).encode()
            self.send_bytes(200, body.replace(b"MARK", b"\xff\xfe\xc3("))
            return 200
        if kind == "huge":
            return self.huge(float(spec.get("size_mb", 8)), spec.get("repeat", "x"), model, prompt_tokens)
        if kind == "redirect":
            host, port = self.server.server_address[:2]
            location = spec.get("location") or f"http://{host}:{port}/_capture/redirected"
            self.send_bytes(302, b"", headers={"Location": location})
            return 302
        raise AssertionError(kind)

    def huge(self, size_mb, repeat, model, prompt_tokens):
        """A valid completion whose content repeats `repeat` over about `size_mb` megabytes of the
        body (counted as the JSON-escaped text), streamed in chunks."""
        unit = json.dumps(repeat)[1:-1].encode()
        count = max(1, int(size_mb * 1024 * 1024) // len(unit))
        head, tail = json.dumps(completion("@@", model, prompt_tokens)).encode().split(b"@@")
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(head) + count * len(unit) + len(tail)))
        self.end_headers()
        self.write(head)
        per_chunk = max(1, 65536 // len(unit))
        chunk = unit * per_chunk
        left = count
        while left > 0:
            n = min(left, per_chunk)
            self.write(chunk if n == per_chunk else unit * n)
            left -= n
        self.write(tail)
        return 200


def make_server(port, state):
    handler = type("BoundHandler", (Handler,), {"state": state})
    # A listen backlog of 5 (the default) drops SYNs when many sessions connect at once, and each
    # dropped SYN costs the client a 1 s retransmit that would be charged to sqlchat.
    server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256})
    server = server_class(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def load_script(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    rules = data.get("rules", []) if isinstance(data, dict) else data
    if not isinstance(rules, list):
        raise ValueError(f"{path}: expected a list of rules or {{\"rules\": [...]}}")
    return rules


def interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible gateway for sqlchat tests.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--script", help="JSON file of rules to load at start")
    parser.add_argument("--tls-cert", help="PEM certificate: serve https")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args(argv)

    state = State()
    if args.script:
        state.add_rules(load_script(args.script))
    server = make_server(args.port, state)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    # SIGTERM ends serve_forever like Ctrl-C, so the socket is closed on the way out.
    signal.signal(signal.SIGTERM, interrupt)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        state.stopping.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
