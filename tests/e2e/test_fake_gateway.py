"""The fake gateway itself: every reply mode, fault and recording feature."""

import http.client
import json
import socket
import threading
import time

import pytest

import harness


def chat(gw, user="How many rows?", purpose="generate_sql", model="fake-model", path="/v1/chat/completions",
         auth="Bearer sk-test", timeout=10, temperature=0.0):
    """POSTs a chat-completions request; returns (status, headers, body bytes)."""
    body = json.dumps({
        "model": model,
        "temperature": temperature,
        "messages": [{"role": "system", "content": "Write SQL."}, {"role": "user", "content": user}],
    })
    headers = {"Content-Type": "application/json"}
    if purpose:
        headers["X-Sqlchat-Purpose"] = purpose
    if auth:
        headers["Authorization"] = auth
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def content_of(body):
    return json.loads(body)["choices"][0]["message"]["content"]


def raw_request(gw, purpose="generate_sql", user="q"):
    """An open socket that has sent one chat request, for reading replies byte by byte."""
    body = json.dumps({"model": "fake-model", "messages": [{"role": "user", "content": user}]}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Sqlchat-Purpose: {purpose}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    s.sendall(head + body)
    return s


def read_until_closed(s):
    chunks = []
    while True:
        data = s.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def read_head(s):
    """Reads until the end of the response headers; returns (status, headers, body bytes so far)."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = s.recv(65536)
        assert chunk, "connection closed before the headers ended"
        raw += chunk
    return split_http(raw)


def split_http(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


# ---- replies ----------------------------------------------------------------------------------------


def test_content_reply_is_a_chat_completion_with_usage(gw):
    gw.rule(purpose="generate_sql", content="SELECT 42")
    status, _, body = chat(gw)
    assert status == 200
    reply = json.loads(body)
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "SELECT 42"}
    assert reply["choices"][0]["finish_reason"] == "stop"
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_both_paths_answer(gw):
    gw.rule(content="SELECT 1")
    assert chat(gw, path="/chat/completions")[0] == 200
    assert chat(gw, path="/v1/chat/completions")[0] == 200
    assert [r["path"] for r in gw.requests()] == ["/chat/completions", "/v1/chat/completions"]


def test_unmatched_answer_gets_a_generic_json_answer(gw):
    status, _, body = chat(gw, purpose="answer")
    assert status == 200
    answer = json.loads(content_of(body))
    assert answer["answer"] and isinstance(answer["followups"], list) and answer["followups"]


@pytest.mark.parametrize("purpose", ["generate_sql", "repair", "summarize", "chart", None])
def test_unmatched_other_purposes_get_a_500_naming_the_miss(gw, purpose):
    status, _, body = chat(gw, purpose=purpose)
    assert status == 500
    error = json.loads(body)["error"]
    assert "no rule matched" in error["message"]


def test_matching_by_purpose_substring_regex_and_model(gw):
    gw.rules([
        {"purpose": "repair", "content": "repair-reply"},
        {"purpose": ["generate_sql"], "contains": "customers", "content": "by-substring"},
        {"purpose": "generate_sql", "regex": r"top \d+ products", "content": "by-regex"},
        {"model": "other-model", "content": "by-model"},
    ])
    assert content_of(chat(gw, user="list customers")[2]) == "by-substring"
    assert content_of(chat(gw, user="the top 5 products")[2]) == "by-regex"
    assert content_of(chat(gw, user="anything", purpose="repair")[2]) == "repair-reply"
    assert content_of(chat(gw, user="anything", model="other-model")[2]) == "by-model"
    assert chat(gw, user="anything")[0] == 500


def test_only_the_last_user_message_is_matched(gw):
    gw.rule(contains="needle", content="found")
    body = json.dumps({"model": "m", "messages": [
        {"role": "user", "content": "needle in an earlier turn"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "the current question"},
    ]})
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=body, headers={"X-Sqlchat-Purpose": "generate_sql"})
    assert conn.getresponse().status == 500
    conn.close()


def test_times_then_fall_through_in_order(gw):
    gw.rule(purpose="generate_sql", times=2, content="first")
    gw.rule(purpose="generate_sql", content="second")
    replies = [content_of(chat(gw)[2]) for _ in range(4)]
    assert replies == ["first", "first", "second", "second"]
    used = {r["id"]: r["used"] for r in gw.rules()}
    assert used == {0: 2, 1: 2}


def test_contents_sequence_one_per_call_then_falls_through(gw):
    gw.rule(purpose="generate_sql", contents=["a", "b", "c"])
    replies = [content_of(chat(gw)[2]) for _ in range(3)]
    assert replies == ["a", "b", "c"]
    assert chat(gw)[0] == 500


def test_delay_before_headers(gw):
    gw.rule(content="slow", delay_ms=300)
    started = time.monotonic()
    assert chat(gw)[0] == 200
    assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500, 502, 503, 504])
def test_scripted_status_with_openai_error_body(gw, status):
    gw.rule(status=status)
    got, _, body = chat(gw)
    assert got == status
    assert "error" in json.loads(body)


def test_429_with_retry_after_then_success(gw):
    gw.rule(times=2, status=429, headers={"Retry-After": "1"}, body={"error": {"message": "slow down"}})
    gw.rule(content="SELECT 1")
    first = chat(gw)
    assert first[0] == 429 and first[1]["Retry-After"] == "1"
    assert json.loads(first[2])["error"]["message"] == "slow down"
    assert chat(gw)[0] == 429
    assert chat(gw)[0] == 200


def test_status_with_plain_text_body(gw):
    gw.rule(status=502, body="<html>Bad Gateway</html>")
    status, _, body = chat(gw)
    assert (status, body) == (502, b"<html>Bad Gateway</html>")


# ---- faults -----------------------------------------------------------------------------------------


def test_hang_before_headers_and_client_disconnect_is_recorded(gw):
    gw.rule(fault="hang_before_headers")
    with pytest.raises(socket.timeout):
        chat(gw, timeout=0.5)
    seen = gw.wait_for(lambda rs: rs and rs[0]["client_disconnected"], timeout=5)
    assert seen[0]["completed"] is False
    assert 400 <= seen[0]["disconnected_after_ms"] < 3000


def test_hang_before_headers_ends_after_hang_ms(gw):
    gw.rule(fault="hang_before_headers", hang_ms=200)
    s = raw_request(gw)
    started = time.monotonic()
    assert read_until_closed(s) == b""
    assert 0.2 <= time.monotonic() - started < 3
    s.close()


def test_hang_mid_body_then_disconnect(gw):
    gw.rule(fault="hang_mid_body")
    s = raw_request(gw)
    s.settimeout(0.5)
    status, headers, body = read_head(s)
    with pytest.raises(socket.timeout):
        while True:
            body += s.recv(65536)
    assert status == 200 and 0 < len(body) < int(headers["content-length"])
    s.close()
    seen = gw.wait_for(lambda rs: rs and rs[0]["client_disconnected"], timeout=5)
    assert seen[0]["completed"] is False


def test_drip_sends_one_byte_at_a_time(gw):
    gw.rule(fault="drip", drip_ms=2)
    s = raw_request(gw)
    s.settimeout(5)
    status, headers, body = read_head(s)
    sizes = [len(body)]
    while sum(sizes) < int(headers["content-length"]):
        chunk = s.recv(65536)
        assert chunk
        sizes.append(len(chunk))
        body += chunk
    s.close()
    assert status == 200
    assert content_of(body) == "SELECT 1"
    # One byte per write: most reads see one or two; on a loaded machine a late read may catch a few.
    small = sum(1 for n in sizes[1:] if n <= 2)
    assert small >= 0.8 * (len(sizes) - 1), sizes


def test_drip_default_is_one_byte_per_second(gw):
    gw.rule(fault="drip")
    s = raw_request(gw)
    s.settimeout(5)
    body = read_head(s)[2]
    while not body:
        body = s.recv(65536)
    started = time.monotonic()
    more = s.recv(65536)
    assert len(body) == 1 and len(more) == 1
    assert time.monotonic() - started >= 0.8
    s.close()
    gw.wait_for(lambda rs: rs and rs[0]["client_disconnected"], timeout=5)


def test_reset_mid_body(gw):
    gw.rule(fault="reset_mid_body")
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        chat(gw)


def test_truncated_json_has_a_matching_length_but_is_cut(gw):
    gw.rule(fault="truncated_json")
    status, headers, body = chat(gw)
    assert status == 200 and int(headers["Content-Length"]) == len(body)
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert body.startswith(b'{"id"')


def test_malformed_json(gw):
    gw.rule(fault="malformed_json")
    status, _, body = chat(gw)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_wrong_shape(gw):
    gw.rule(fault="wrong_shape")
    reply = json.loads(chat(gw)[2])
    assert "choices" not in reply and "error" not in reply


def test_empty_choices(gw):
    gw.rule(fault="empty_choices")
    assert json.loads(chat(gw)[2])["choices"] == []


def test_tool_calls_instead_of_content(gw):
    gw.rule(fault="tool_calls")
    choice = json.loads(chat(gw)[2])["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"]
    assert choice["finish_reason"] == "tool_calls"


def test_invalid_utf8(gw):
    gw.rule(fault="invalid_utf8")
    body = chat(gw)[2]
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")


def test_huge_body(gw):
    gw.rule(fault="huge", size_mb=3)
    status, _, body = chat(gw, timeout=30)
    assert status == 200 and len(body) >= 3 * 1024 * 1024
    assert set(content_of(body)) == {"x"}


def test_huge_body_client_gives_up(gw):
    gw.rule(fault="huge", size_mb=512)
    s = raw_request(gw)
    s.recv(65536)
    s.close()
    seen = gw.wait_for(lambda rs: rs and rs[0]["client_disconnected"], timeout=10)
    assert seen[0]["completed"] is False


def test_redirect_to_a_capture_path_is_recorded_if_followed(gw):
    gw.rule(fault="redirect")
    status, headers, _ = chat(gw)
    assert status == 302
    location = headers["Location"]
    assert location.endswith("/_capture/redirected")
    assert [r["path"] for r in gw.requests()] == ["/v1/chat/completions"]
    # A client that wrongly follows it shows up in the record, with whatever it forwarded.
    path = "/" + location.split("/", 3)[3]
    status, _, _ = chat(gw, path=path, auth="Bearer leaked")
    assert status == 404
    followed = [r for r in gw.requests() if r["path"] == "/_capture/redirected"]
    assert followed and followed[0]["authorization"] == "Bearer leaked"


def test_redirect_to_a_given_location(gw):
    gw.rule(fault="redirect", location="http://127.0.0.1:9/elsewhere")
    assert chat(gw)[1]["Location"] == "http://127.0.0.1:9/elsewhere"


def test_a_hanging_request_does_not_block_others(gw):
    gw.rule(purpose="chart", fault="hang_before_headers", hang_ms=2000)
    gw.rule(purpose="generate_sql", content="SELECT 1")

    def hang():
        with pytest.raises(http.client.RemoteDisconnected):
            chat(gw, purpose="chart", timeout=5)

    hung = threading.Thread(target=hang)
    hung.start()
    gw.wait_for(lambda rs: len(rs) == 1)
    started = time.monotonic()
    assert chat(gw)[0] == 200
    assert time.monotonic() - started < 1
    hung.join()


# ---- recording and control ------------------------------------------------------------------------------


def test_requests_are_recorded_in_full(gw):
    gw.rule(purpose="generate_sql", content="SELECT 1")
    chat(gw, user="how many orders?", temperature=0.3, auth="Bearer sk-abc")
    chat(gw, purpose="answer", auth=None)
    first, second = gw.requests()
    assert first["purpose"] == "generate_sql" and second["purpose"] == "answer"
    assert first["has_authorization"] and first["authorization"] == "Bearer sk-abc"
    assert not second["has_authorization"] and second["authorization"] is None
    assert first["model"] == "fake-model" and first["temperature"] == 0.3
    assert first["messages"][-1] == {"role": "user", "content": "how many orders?"}
    assert first["body_size"] > 50
    assert first["status"] == 200 and first["completed"] and not first["client_disconnected"]
    assert first["rule"] == 0 and second["rule"] is None
    assert first["time"] <= second["time"]
    assert "authorization" not in {k.lower() for k in first["headers"]}


def test_counts_filters_and_clearing(gw):
    gw.rule(purpose="generate_sql", content="SELECT 1")
    for purpose in ("generate_sql", "generate_sql", "answer", None):
        chat(gw, purpose=purpose)
    assert gw.counts() == {"generate_sql": 2, "answer": 1, "(none)": 1}
    assert len(gw.requests(purpose="generate_sql")) == 2
    gw.clear_requests()
    assert gw.requests() == [] and gw.counts() == {}
    assert chat(gw)[0] == 200  # rules survive clearing the record


def test_reset_forgets_rules(gw):
    gw.rule(content="SELECT 1")
    gw.reset()
    assert gw.rules() == [] and chat(gw)[0] == 500


def test_bad_rules_are_refused(gw):
    for bad in ({"fault": "explode"}, {"colour": "red"}, {"regex": "("}, {"content": "a", "status": 500},
                {"contents": []}):
        with pytest.raises(harness.GatewayError, match="HTTP 400"):
            gw.rule(**bad)


def test_bad_request_body_is_a_400(gw):
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=b"not json", headers={"X-Sqlchat-Purpose": "answer"})
    assert conn.getresponse().status == 400
    conn.close()
    assert gw.requests()[0]["status"] == 400


def test_keep_alive_connection_serves_several_requests(gw):
    gw.rule(content="SELECT 1")
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    for _ in range(3):
        conn.request("POST", "/v1/chat/completions", body=json.dumps({"messages": []}),
                     headers={"X-Sqlchat-Purpose": "generate_sql"})
        resp = conn.getresponse()
        assert resp.status == 200 and content_of(resp.read()) == "SELECT 1"
    conn.close()


def test_script_file_preloads_rules(tmp_path):
    script = tmp_path / "rules.json"
    script.write_text(json.dumps({"rules": [{"purpose": "generate_sql", "content": "SELECT 'scripted'"}]}))
    with harness.Gateway(script=script) as gw:
        assert content_of(chat(gw)[2]) == "SELECT 'scripted'"


def non_loopback_address():
    """This host's address on its default route, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_listens_on_loopback_only(gateway):
    address = non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback address to try")
    with socket.socket() as s:
        s.settimeout(1)
        assert s.connect_ex((address, gateway.port)) != 0
