#!/usr/bin/env python3
"""Load benchmark for `slm serve`: 1, 4 and 8 concurrent streaming clients.

Starts the server (or uses --url), then for each concurrency N runs N client
threads, each sending --requests streamed completions one after another
(max_tokens tokens each, ignore_eos so every request generates all of them).
The rounds of all concurrencies are interleaved and repeated (--repeat), so a
machine whose load changes affects them alike. Prints a markdown table: the
median over repeats of the aggregate generated tokens/s (over a round's wall
time), its ratio to one stream, and p50/p99 time to first token (TTFT) and
inter-token latency (ITL, between consecutive streamed tokens) over all rounds.

Standard library only. Example (the README's table):
  build/slm gen-model --preset 110m --vocab 512 --type Q4_0 --out /tmp/m.gguf
  bench/serve_load.py --model /tmp/m.gguf --tokenizer ../shared/data/models/stories260K/tok512.bin
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def one_request(host, port, body):
    """Streams one completion; returns (ttft, [itl...], completion_tokens).
    Events are split, not parsed (only the last, with usage, is), so the client
    takes little CPU from the server on a small machine."""
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    ttft, last, itl, n_tok, buf = None, None, [], 0, b""
    while True:
        data = resp.read1(65536)
        if not data:
            break
        now = time.perf_counter()
        buf += data
        *events, buf = buf.split(b"\n\n")
        for ev in events:
            if ev == b"data: [DONE]":
                continue
            if b'"usage"' in ev or b'"error"' in ev:
                chunk = json.loads(ev[6:])
                if "error" in chunk:
                    raise RuntimeError(chunk["error"]["message"])
                n_tok = chunk["usage"]["completion_tokens"]
            elif b'"text":""' not in ev:  # a token's text
                if ttft is None:
                    ttft = now - t0
                else:
                    itl.append(now - last)
                last = now
    conn.close()
    return ttft, itl, n_tok


def run_round(host, port, n_streams, n_requests, max_tokens, cache_prompt, ttfts, itls):
    tokens, errors = [0], []
    lock = threading.Lock()
    start = threading.Barrier(n_streams)

    def client(i):
        start.wait()
        for r in range(n_requests):
            body = {"prompt": f"Once upon a time, story {i}.{r}:", "max_tokens": max_tokens,
                    "temperature": 0.8, "seed": 1000 * i + r, "stream": True, "ignore_eos": True,
                    "cache_prompt": cache_prompt}
            try:
                ttft, itl, n = one_request(host, port, body)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))
                return
            with lock:
                if ttft is not None:
                    ttfts.append(ttft)
                itls.extend(itl)
                tokens[0] += n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return tokens[0] / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model to serve (not needed with --url)")
    ap.add_argument("--tokenizer", help="tokenizer file for a model without one")
    ap.add_argument("--slm", default="build/slm", help="slm binary (default build/slm)")
    ap.add_argument("--url", help="use a running server, e.g. http://127.0.0.1:8080")
    ap.add_argument("--streams", default="1,4,8", help="concurrencies to run (default 1,4,8)")
    ap.add_argument("--requests", type=int, default=3, help="requests per stream (default 3)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens per request (default 64)")
    ap.add_argument("--threads", type=int, default=2, help="server threads (default 2)")
    ap.add_argument("--kv-type", help="server KV cache type, f32 or f16 (default: the server's, f16)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per concurrency, interleaved (default 3)")
    ap.add_argument("--repack", action="store_true", help="start the server with --repack")
    ap.add_argument("--no-cache-prompt", action="store_true",
                    help="send cache_prompt: false (every prompt computed in full, none of it taken from a slot)")
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    a = ap.parse_args()
    streams = [int(s) for s in a.streams.split(",")]

    server = None
    if a.url:
        host, port = a.url.split("//")[-1].rstrip("/").split(":")
        port = int(port)
    else:
        if not a.model:
            ap.error("give --model (or --url)")
        host, port = "127.0.0.1", free_port()
        cmd = [a.slm, "serve", a.model, "--port", str(port), "--parallel", str(max(streams)), "-t", str(a.threads),
               "--ctx", str(max(256, a.max_tokens + 64))]
        if a.kv_type:
            cmd += ["--kv-type", a.kv_type]
        if a.tokenizer:
            cmd += ["--tokenizer", a.tokenizer]
        if a.repack:
            cmd += ["--repack"]
        server = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://{host}:{port}/health", timeout=1)
                break
            except OSError:
                if server and server.poll() is not None:
                    sys.exit(f"serve_load: the server exited with {server.returncode}")
                time.sleep(0.1)
        one_request(host, port, {"prompt": "warm up", "max_tokens": 8, "stream": True})
        tps = {n: [] for n in streams}
        ttfts = {n: [] for n in streams}
        itls = {n: [] for n in streams}
        for _ in range(a.repeat):
            for n in streams:
                tps[n].append(run_round(host, port, n, a.requests, a.max_tokens, not a.no_cache_prompt, ttfts[n], itls[n]))
        rows = [{"streams": n, "tps": percentile(tps[n], 50), "tps_all": tps[n],
                 "ttft_p50": percentile(ttfts[n], 50), "ttft_p99": percentile(ttfts[n], 99),
                 "itl_p50": percentile(itls[n], 50), "itl_p99": percentile(itls[n], 99)} for n in streams]
    finally:
        if server:
            server.terminate()
            server.wait(timeout=60)
    base = rows[0]["tps"] / rows[0]["streams"]
    if a.json:
        for r in rows:
            print(json.dumps(r))
        return
    print("| streams | aggregate tok/s | rounds' range | vs 1 stream | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['streams']} | {r['tps']:.1f} | {min(r['tps_all']):.0f}-{max(r['tps_all']):.0f} | "
              f"{r['tps'] / base:.2f}x | {1e3 * r['ttft_p50']:.0f} | "
              f"{1e3 * r['ttft_p99']:.0f} | {1e3 * r['itl_p50']:.1f} | {1e3 * r['itl_p99']:.1f} |")


if __name__ == "__main__":
    main()
