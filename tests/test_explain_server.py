"""The live browser's HTTP side (explain/server.py) under load and disconnects, on a tiny model and a real
uvicorn server on loopback."""
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import torch

from explain.live import Limits, LiveModel
from explain.server import make_app
from sae.config import SAEConfig
from sae.model import TopKSAE
from tests.conftest import make_tiny
from tests.test_explain_live import serving

HOOK = "blocks.1.resid_post"


@pytest.fixture()
def slow_server(tokenizer, tmp_path):
    """A live server whose model takes 50 ms per forward, counting its forwards."""
    torch.manual_seed(0)
    model = make_tiny("llama", d=32)
    forwards = []

    def slow(module, args):
        forwards.append(time.perf_counter())
        time.sleep(0.05)

    model.model.layers[0].register_forward_pre_hook(slow)
    lm = LiveModel(model, tokenizer, TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point=HOOK)))
    with running(lm, tmp_path) as port:
        yield f"http://127.0.0.1:{port}/api", lm, forwards


@contextmanager
def running(lm: LiveModel, site):
    """A real uvicorn server for `lm` on a free loopback port (yielded), stopped on exit."""
    (site / "index.html").write_text("<html></html>")
    with serving(site, lm) as url:
        yield int(url.rsplit(":", 1)[1])


def test_a_client_that_disconnects_stops_its_generation(slow_server):
    url, lm, forwards = slow_server
    body = {"prompt": "The town", "features": [3], "operator": "inject", "strength": 5, "max_new_tokens": 64}
    with pytest.raises(httpx.ReadTimeout):  # 65 forwards × 50 ms ≈ 3.3 s if it ran to the end
        httpx.post(f"{url}/steer", json=body, timeout=0.6)
    gone = time.perf_counter()
    assert lm.lock.acquire(timeout=5)  # the model is free again soon after the client left …
    freed = time.perf_counter() - gone
    lm.lock.release()
    assert freed < 1.0 and len(forwards) < 30  # … having stopped early (0.1 s polling + one token)
    r = httpx.post(f"{url}/steer", json={**body, "max_new_tokens": 4}, timeout=30)  # and it serves the next one
    assert r.status_code == 200 and len(r.json()["steered_tokens"]) == 4


def test_a_queued_request_whose_client_left_never_runs(slow_server):
    url, lm, forwards = slow_server
    lm.lock.acquire()  # the model is busy with someone else's request
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/activations", json={"text": "The river"}, timeout=0.4)
    time.sleep(0.3)  # the server has seen the disconnect
    before = len(forwards)
    lm.lock.release()
    time.sleep(0.5)
    assert len(forwards) == before and lm.slots._value == lm.limits.queue  # it never ran; its slot came back


def test_a_full_queue_answers_503_and_health_stays_fast(tokenizer, tmp_path):
    from fastapi.testclient import TestClient

    sae = TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point=HOOK))
    lm = LiveModel(make_tiny("llama", d=32), tokenizer, sae, limits=Limits(queue=1))
    (tmp_path / "index.html").write_text("<html></html>")
    client = TestClient(make_app(tmp_path, lm), base_url="http://127.0.0.1")
    lm.lock.acquire()  # the model is busy: the first request waits on it, holding the only queue slot
    first = threading.Thread(target=lambda: client.post("/api/activations", json={"text": "The town"}))
    first.start()
    for _ in range(100):
        if lm.slots._value == 0:
            break
        time.sleep(0.02)
    busy = client.post("/api/activations", json={"text": "The river"})
    start = time.perf_counter()
    health = client.get("/api/health")
    assert busy.status_code == 503 and "try again" in busy.json()["detail"]
    assert health.status_code == 200 and time.perf_counter() - start < 0.5
    assert health.json()["steer_defaults"]["inject"] == {"times": 1.0, "of": "max_act"}
    lm.lock.release()
    first.join(timeout=30)
    assert client.post("/api/activations", json={"text": "The river"}).status_code == 200  # the slot came back


def test_a_body_that_never_arrives_gets_408_and_bad_values_get_one_readable_line(tokenizer, tmp_path):
    """A client that declares a body and stalls used to hold its connection forever; seed 2**70 gave "Overflow
    when unpacking long long", malformed JSON "9: JSON decode error", and features ["7"] was coerced to 7."""
    lm = LiveModel(make_tiny("llama", d=32), tokenizer, TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point=HOOK)),
                   limits=Limits(body_timeout_s=0.5))
    with running(lm, tmp_path) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            start = time.perf_counter()
            raw.sendall(b"POST /api/steer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 100\r\n\r\n{\"prompt\"")
            answer = b""  # the status line and the body may come in separate packets on a loaded machine
            while b"did not arrive" not in answer and (chunk := raw.recv(4096)):
                answer += chunk
            answer = answer.decode()
            assert answer.startswith("HTTP/1.1 408") and "did not arrive within 0.5 s" in answer
            assert time.perf_counter() - start < 4
        url = f"http://127.0.0.1:{port}/api"
        for body, says in (({"seed": 2**70}, "seed: Input should be less than"), ({"seed": -1}, "seed: "),
                           ({"features": ["7"]}, "features.0: Input should be a valid integer"),
                           ({"features": [1.0]}, "features.0: Input should be a valid integer")):
            bad = httpx.post(f"{url}/steer", json={"prompt": "The", "features": [1],
                                                  **body}, timeout=30)
            assert bad.status_code == 422 and says in bad.json()["detail"], bad.text
        assert httpx.post(f"{url}/activations", json={"text": "The", "feature": "7"}, timeout=30).status_code == 422
        broken = httpx.post(f"{url}/steer", content=b'{"prompt": "The", ', timeout=30,
                            headers={"Content-Type": "application/json"})
        detail = broken.json()["detail"]
        assert broken.status_code == 422 and detail.startswith("the request body is not valid JSON at character")
        assert "send a JSON object" in detail
        ok = httpx.post(f"{url}/steer", json={"prompt": "The", "features": [1], "max_new_tokens": 2, "seed": 2**62},
                        timeout=60)
        assert ok.status_code == 200, ok.text
