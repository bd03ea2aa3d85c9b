"""Live-browser latency on the embedded model (2 CPU cores here): test-your-text for a 64-token text and a
steered + unsteered pair of 32 new tokens, through the HTTP API of a running server (median of `--repeats`).

    python bench/live.py [--sae smollm2-135m/blocks.15.resid_post] [--repeats 5]
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

# bench/explain.py would shadow the explain package when this runs as `python bench/live.py`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402

from explain.live import LiveModel  # noqa: E402
from explain.server import serve_live  # noqa: E402
from sae.lm import load_lm  # noqa: E402
from sae.model import TopKSAE  # noqa: E402

TEXT = ("The committee met on Tuesday to discuss the new budget for the city library, which had been closed for "
        "repairs since the storm damaged its roof last spring, and several residents asked when it would reopen.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sae", default="smollm2-135m/blocks.15.resid_post")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    sae = TopKSAE.load(args.sae)
    model, tok = load_lm(sae.cfg.model_name)
    text = tok.decode(tok(TEXT * 2, add_special_tokens=False).input_ids[:64])
    site = Path(tempfile.mkdtemp())
    (site / "index.html").write_text("<!doctype html>")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_live(site, LiveModel(model, tok, sae, name=sae.cfg.model_name), port=port)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/api"

    def timed(path, body) -> float:
        start = time.perf_counter()
        r = httpx.post(f"{url}/{path}", json=body, timeout=120)
        r.raise_for_status()
        return time.perf_counter() - start

    text_body = {"text": text, "feature": 100}
    steer_body = {"prompt": "I think that", "features": [100], "operator": "inject", "strength": 20,
                  "max_new_tokens": 32}
    timed("activations", text_body), timed("steer", steer_body)  # warm-up
    a = [timed("activations", text_body) for _ in range(args.repeats)]
    s = [timed("steer", steer_body) for _ in range(args.repeats)]
    n_tok = len(tok(text, add_special_tokens=False).input_ids)
    print(f"test your text, {n_tok} tokens: median {statistics.median(a):.3f} s (min {min(a):.3f}, max {max(a):.3f})")
    print(f"steered + unsteered, 32 new tokens each: median {statistics.median(s):.3f} s "
          f"(min {min(s):.3f}, max {max(s):.3f})")
    server.should_exit = True


if __name__ == "__main__":
    main()
