#!/usr/bin/env python3
"""serve_client.py: checks of `megatron-c serve` with Python's own HTTP
client (http.client, stdlib only), for tests/test_serve.sh.

  serve_client.py concurrency HOST PORT CLIENTS PER  many clients at once
  serve_client.py echo HOST PORT FORWARD.safetensors TEXT
                  echo+logprobs of TEXT equal the log-softmax of the
                  logits `megatron-c forward` wrote for it
  serve_client.py slow HOST PORT     a stalled client does not hold the
                  server; malformed and oversized heads get 400 / 431
  serve_client.py full HOST PORT N   N stalled clients fill a server started
                  with --max-connections N: the next one gets 503
Prints "ok: ..." / "FAIL: ..." lines; exits 1 on a failure."""
import http.client
import json
import math
import socket
import struct
import sys
import threading
import time

failures = 0


def ok(msg):
    print("ok: " + msg)


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg)


def request(host, port, method, path, body=None, timeout=120):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    data = None if body is None else json.dumps(body).encode()
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    text = r.read()
    c.close()
    return r.status, text


def concurrency(host, port, clients, per):
    bodies = []
    for i in range(clients * per):
        if i % 2 == 0:
            bodies.append(("PUT", "/api", {"prompts": ["KING %d:" % (i % 5)], "tokens_to_generate": 6,
                                           "top_k": 1, "logprobs": True}))
        else:
            bodies.append(("POST", "/v1/completions", {"prompt": "First Citizen %d" % (i % 5), "max_tokens": 6,
                                                       "temperature": 0, "echo": True, "logprobs": 1}))
    # the serial answers first
    want = {}
    for m, p, b in bodies[:10]:
        s, t = request(host, port, m, p, b)
        key = json.dumps(b, sort_keys=True)
        want[key] = json.loads(t)
        if s != 200:
            fail("serial %s %s: status %d %s" % (m, p, s, t[:200]))
    results, lock = [], threading.Lock()

    def client(k):
        for j in range(per):
            m, p, b = bodies[k * per + j]
            try:
                s, t = request(host, port, m, p, b)
                ans = json.loads(t)
            except Exception as e:  # noqa: BLE001 - any client error is a failure
                s, ans = -1, repr(e)
            with lock:
                results.append((s, b, ans))

    t0 = time.time()
    ts = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    bad = [r for r in results if r[0] != 200]
    if len(results) == clients * per and not bad:
        ok("%d clients x %d requests at once: all answered 200 (%.1f s)" % (clients, per, time.time() - t0))
    else:
        fail("%d of %d concurrent requests failed: %s" % (len(bad), len(results), bad[:2]))
    diff = 0
    for s, b, ans in results:
        w = want[json.dumps(b, sort_keys=True)]
        if s == 200:
            for k in ("text", "segments", "logprobs"):
                if k in w and w[k] != ans.get(k):
                    diff += 1
            if "choices" in w and w["choices"] != ans.get("choices"):
                diff += 1
    if diff == 0:
        ok("every concurrent answer equals the serial answer to the same request")
    else:
        fail("%d concurrent answers differ from the serial ones" % diff)


def read_safetensors(path, name):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    head = json.loads(data[8:8 + n])
    t = head[name]
    a, b = t["data_offsets"]
    raw = data[8 + n + a:8 + n + b]
    vals = struct.unpack("<%df" % (len(raw) // 4), raw)
    return t["shape"], vals


def echo(host, port, st, text):
    s, t = request(host, port, "POST", "/v1/completions",
                   {"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 3})
    if s != 200:
        fail("echo request: %d %s" % (s, t[:300]))
        return
    ch = json.loads(t)["choices"][0]
    lp = ch["logprobs"]
    if ch["text"] != text:
        fail("echo text %r != prompt %r" % (ch["text"], text))
    s2, t2 = request(host, port, "POST", "/tokenize", {"prompt": text})
    ids = json.loads(t2)["tokens"]
    (T, V), logits = read_safetensors(st, "logits.0")
    if T != len(ids) or len(lp["token_logprobs"]) != T:
        fail("lengths: forward %d, tokenize %d, echo %d" % (T, len(ids), len(lp["token_logprobs"])))
        return
    if lp["token_logprobs"][0] is not None or lp["top_logprobs"][0] is not None:
        fail("the first token has a log-probability: %r" % lp["token_logprobs"][0])
    worst = 0.0
    greedy_ok = True
    for i in range(1, T):
        row = logits[(i - 1) * V:i * V]
        m = max(row)
        lse = m + math.log(sum(math.exp(x - m) for x in row))
        want = row[ids[i]] - lse
        worst = max(worst, abs(want - lp["token_logprobs"][i]))
        top = max(range(V), key=lambda j: (row[j], -j))
        best = max(lp["top_logprobs"][i].values())
        if abs(best - (row[top] - lse)) > 1e-5:
            greedy_ok = False
    if worst < 1e-5:
        ok("echo log-probabilities of %d tokens equal forward's logits (max diff %.2e)" % (T - 1, worst))
    else:
        fail("echo log-probabilities differ from forward's by %.3e" % worst)
    if greedy_ok:
        ok("echo top_logprobs hold forward's most likely token at every position")
    else:
        fail("echo top_logprobs disagree with forward's argmax")


def raw(host, port, data, wait=10.0):
    s = socket.create_connection((host, port), timeout=wait)
    s.sendall(data)
    out = b""
    try:
        while True:
            k = s.recv(65536)
            if not k:
                break
            out += k
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def slow(host, port):
    stall = socket.create_connection((host, port))
    stall.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n")  # and then nothing
    t0 = time.time()
    s, t = request(host, port, "GET", "/health", timeout=10)
    dt = time.time() - t0
    if s == 200 and dt < 5:
        ok("a stalled client does not hold the server (/health in %.2f s)" % dt)
    else:
        fail("with a stalled client /health took %.2f s, status %d" % (dt, s))
    stall.close()
    r = raw(host, port, b"HELLO\r\n\r\n")
    ok("malformed request line: 400") if r.startswith(b"HTTP/1.1 400") else fail("malformed line: %r" % r[:80])
    r = raw(host, port, b"GET /health HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n")
    ok("oversized head: 431") if r.startswith(b"HTTP/1.1 431") else fail("oversized head: %r" % r[:80])
    r = raw(host, port, b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    ok("chunked body: 411") if r.startswith(b"HTTP/1.1 411") else fail("chunked: %r" % r[:80])
    r = raw(host, port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"prompt\"", wait=3)
    ok("a body cut short: no answer, no crash") if r == b"" or r.startswith(b"HTTP/1.1 408") \
        else fail("truncated body answered %r" % r[:80])
    r = raw(host, port, b"GET http://example HTTP/1.1\r\n\r\n")
    ok("an absolute URL without a path: 200") if r.startswith(b"HTTP/1.1 200") else fail("absolute URL: %r" % r[:80])
    s, t = request(host, port, "GET", "/health")
    ok("still up after the bad requests") if s == 200 else fail("server down after bad requests")


def full(host, port, slots):
    stalled = [socket.create_connection((host, port)) for _ in range(slots)]
    for c in stalled:
        c.sendall(b"GET /health HTTP/1.1\r\n")
    time.sleep(0.3)
    s, t = request(host, port, "GET", "/health", timeout=10)
    ok("every slot held: 503") if s == 503 else fail("with %d slots held: status %d" % (slots, s))
    for c in stalled:
        c.close()
    time.sleep(0.3)
    s, t = request(host, port, "GET", "/health", timeout=10)
    ok("slots freed: 200 again") if s == 200 else fail("after the slots freed: status %d" % s)


def main():
    cmd, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "concurrency":
        concurrency(host, port, int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "echo":
        echo(host, port, sys.argv[4], sys.argv[5])
    elif cmd == "slow":
        slow(host, port)
    elif cmd == "full":
        full(host, port, int(sys.argv[4]))
    else:
        sys.exit("unknown command " + cmd)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
