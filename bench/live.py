"""Live-browser latency on the embedded model (2 CPU cores here), through the HTTP API of a server on loopback.

    python bench/live.py [--sae smollm2-135m/blocks.15.resid_post] [--repeats 5]
        test-your-text for a 64-token text and a steered + unsteered pair of 32 new tokens (median of --repeats)
    python bench/live.py --load [--out reports/explain/2026-12-06-live-load]
        a bounded load test: 8 clients × 40 test-your-text, then 4 concurrent steers, then the 2,000-character
        CJK text (7,992 tokens) to both endpoints, with /api/health polled every 0.1 s throughout: p50/p95 per
        phase, status codes, and the slowest health answer
"""
from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from explain.live import LiveModel
from explain.server import serve_live
from sae.cli import parse_options
from sae.files import write_manifest, write_text
from sae.lm import load_lm
from sae.model import TopKSAE
from sae.tables import markdown_table

TEXT = ("The committee met on Tuesday to discuss the new budget for the city library, which had been closed for "
        "repairs since the storm damaged its roof last spring, and several residents asked when it would reopen.")


CJK = "".join(chr(0x20000 + i) for i in range(2000))  # CJK Extension B: ~4 tokens per character


def start_server(sae, model, tok):
    """A live server on a free loopback port (a throwaway site); returns (server, API url)."""
    site = Path(tempfile.mkdtemp())
    (site / "index.html").write_text("<!doctype html>")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_live(site, LiveModel(model, tok, sae, name=sae.cfg.model_name), port=port)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}/api"


def latency(url: str, text: str, repeats: int, tok) -> None:
    def timed(path, body) -> float:
        start = time.perf_counter()
        r = httpx.post(f"{url}/{path}", json=body, timeout=120)
        r.raise_for_status()
        return time.perf_counter() - start

    text_body = {"text": text, "feature": 100}
    steer_body = {"prompt": "I think that", "features": [100], "operator": "inject", "strength": 20,
                  "max_new_tokens": 32}
    timed("activations", text_body), timed("steer", steer_body)  # warm-up
    a = [timed("activations", text_body) for _ in range(repeats)]
    s = [timed("steer", steer_body) for _ in range(repeats)]
    n_tok = len(tok(text, add_special_tokens=False).input_ids)
    print(f"test your text, {n_tok} tokens: median {statistics.median(a):.3f} s (min {min(a):.3f}, max {max(a):.3f})")
    print(f"steered + unsteered, 32 new tokens each: median {statistics.median(s):.3f} s "
          f"(min {min(s):.3f}, max {max(s):.3f})")


def load(url: str, text: str) -> list[dict]:
    """The three phases with health polled throughout; one row per phase."""
    health, done = [], threading.Event()

    def poll():
        with httpx.Client() as c:
            while not done.is_set():
                t = time.perf_counter()
                c.get(f"{url}/health", timeout=30).raise_for_status()
                health[-1].append(time.perf_counter() - t)
                time.sleep(0.1)

    def phase(name: str, requests: list[list[tuple[str, dict]]]) -> dict:
        """Each inner list is one client's requests, sent one after another; clients run concurrently."""
        times, codes = [], Counter()

        def client(reqs):
            with httpx.Client() as c:
                for path, body in reqs:
                    t = time.perf_counter()
                    r = c.post(f"{url}/{path}", json=body, timeout=600)
                    times.append(time.perf_counter() - t)
                    codes[r.status_code] += 1

        health.append([])
        threads = [threading.Thread(target=client, args=(reqs,)) for reqs in requests]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        p50, p95 = (float(np.quantile(times, q)) for q in (0.5, 0.95))
        h = health[-1] or [float("nan")]
        return {"phase": name, "requests": len(times), "status": " ".join(f"{k}×{v}" for k, v in sorted(codes.items())),
                "p50 s": p50, "p95 s": p95, "wall s": wall, "health polls": len(health[-1]),
                "health p50 s": float(np.median(h)), "health max s": max(h)}

    health.append([])
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    tt = [("activations", {"text": text})] * 40
    steer = ("steer", {"prompt": "I think that", "features": [100], "operator": "inject", "strength": 50,
                       "max_new_tokens": 32})
    rows = [phase("8 clients × 40 test-your-text (64 tokens)", [tt] * 8),
            phase("4 concurrent steers (32 new tokens, steered + unsteered)", [[steer]] * 4),
            phase("CJK text, 2,000 characters = 7,992 tokens: activations + steer",
                  [[("activations", {"text": CJK})], [("steer", {**steer[1], "prompt": CJK})]])]
    done.set()
    poller.join()
    return rows


@dataclass(kw_only=True)
class Options:
    sae: str = "smollm2-135m/blocks.15.resid_post"
    """the SAE the live server loads"""
    repeats: int = 5
    """requests timed per measure (the median is kept)"""
    load: bool = False
    """run the load test instead of the latency bench"""
    out: str | None = None
    """with --load: report folder (results.md, manifest.json; default: print only)"""


def main() -> None:
    args = parse_options(Options, None, "python bench/live.py", __doc__)
    sae = TopKSAE.load(args.sae)
    model, tok = load_lm(sae.cfg.model_name)
    text = tok.decode(tok(TEXT * 2, add_special_tokens=False).input_ids[:64])
    server, url = start_server(sae, model, tok)
    try:
        if not args.load:
            return latency(url, text, args.repeats, tok)
        print(f"the CJK text is {len(tok(CJK, add_special_tokens=False).input_ids)} tokens", flush=True)
        rows = load(url, text)
        table = markdown_table(rows)
        print(table)
        if args.out:
            write_text(Path(args.out) / "results.md", f"# Live browser under load\n\n{table}\n")
            write_manifest(args.out, " ".join(["python", *sys.argv]), vars(args))
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
