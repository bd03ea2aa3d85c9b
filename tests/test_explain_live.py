"""The live browser (explain/live.py) on a tiny model, driven through Debian's chromium."""
import json
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
import torch

from explain.browse import build
from explain.explanations import ExplainConfig, explain_features, write_jsonl
from explain.live import LiveModel
from explain.server import serve_live
from explain.steerability import DEFAULT_ADD_FACTOR
from sae.config import SAEConfig
from sae.data.text import TextSource
from sae.model import TopKSAE
from steering.intervention import AddVector, Scale
from tests.conftest import make_tiny
from tests.test_explain_browse import ARTIFACTS, CHROMIUM, EVIL

HOOK = "blocks.1.resid_post"


@pytest.fixture(scope="module")
def live(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    model = make_tiny("llama", d=32)
    with torch.no_grad():  # peaked next-token distributions, as a trained LM has (a random one is near uniform,
        model.model.norm.weight.mul_(30.0)  # and sampling with shared noise then ignores small logit changes)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point=HOOK, model_name="tiny"))
    windows = TextSource(ctx_len=24).load(tokenizer, max_windows=16)
    records = explain_features(model, tokenizer, sae, windows, ExplainConfig(words=300, top_m=5, top_contexts=4))
    folder = tmp_path_factory.mktemp("live")
    site = build(write_jsonl(records, folder / "explanations.jsonl"), folder / "site", title="tiny SAE")
    tokenizer.padding_side = "left"
    # saved interventions the page may apply (as an AURA or DiffMean file would be): scale layer 0's MLP units
    # and push the residual stream along a fixed direction
    push = [Scale("blocks.0.mlp_act", torch.full((64,), 0.5)), AddVector(HOOK, torch.randn(32), coef=20.0)]
    lm = LiveModel(model, tokenizer, sae, name="tiny", saved={"push": push})
    with serving(site, lm) as url:
        yield Live(url, site, lm)


class Live(NamedTuple):
    url: str
    site: Path
    lm: LiveModel


@contextmanager
def serving(site: Path, lm: LiveModel):
    """The live server for `site` on a free port for the block; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve_live(site, lm, port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def steer_on_page(page, operator: str, strength: str, prompt: str = "The town", new_tokens: str = "12") -> None:
    page.fill("#st-prompt", prompt)
    page.select_option("#st-op", operator)
    page.fill("#st-strength", strength)
    page.fill("#st-n", new_tokens)
    page.click("#st-go")


def json_record(url: str, feature: int) -> dict:
    """A feature's record as the site serves it (its shard file)."""
    shard = httpx.get(f"{url}/features/{feature // 64}.js").text
    return json.loads(shard[shard.index("{}, ") + 4 : shard.rindex(");")])[str(feature)]


def post(url, path, body):
    return httpx.post(f"{url}{path}", json=body, timeout=60)


def test_api_bounds_and_errors_keep_the_server_serving(live):
    url = live.url
    health = httpx.get(f"{url}/api/health").json()
    assert health["d_sae"] == 40 and health["hook_point"] == HOOK
    too_long = post(url, "/api/activations", {"text": "word " * 1000})
    assert too_long.status_code == 422 and "tokens; the limit is 512 tokens" in too_long.json()["detail"]
    too_many = post(url, "/api/steer", {"prompt": "The", "features": [1], "max_new_tokens": 500})
    assert too_many.status_code == 422 and "limit is 64" in too_many.json()["detail"]
    assert post(url, "/api/steer", {"prompt": "The", "features": [99]}).status_code == 422  # no such feature
    assert post(url, "/api/steer", {"prompt": "The", "features": [1], "operator": "rm -rf"}).status_code == 422
    assert httpx.get(f"{url}/api/health").status_code == 200  # still serving
    assert health["saved"] == ["push"]
    only_saved = post(url, "/api/steer", {"prompt": "The town", "saved": "push", "max_new_tokens": 12}).json()
    assert only_saved["steered"] != only_saved["unsteered"] and only_saved["steered_trace"] == []
    assert post(url, "/api/steer", {"prompt": "The", "saved": "aura"}).status_code == 422
    assert "at least one feature" in post(url, "/api/steer", {"prompt": "The"}).json()["detail"]
    near = httpx.get(f"{url}/api/nearest/3").json()
    assert len(near) == 10 and 3 not in [f for f, _ in near]
    assert [c for _, c in near] == sorted((c for _, c in near), reverse=True)


def test_hardened_server_limits_tokens_bodies_hosts_and_strengths(live):
    url = live.url
    # counted in tokens: 1,800 characters the tokenizer splits apart are refused, and quickly
    start = time.perf_counter()
    rare = post(url, "/api/activations", {"text": "\u4e00\u9fa5\u3400" * 600})
    assert rare.status_code == 422 and "the limit is 512 tokens" in rare.json()["detail"]
    assert time.perf_counter() - start < 5
    big = httpx.post(f"{url}/api/activations", json={"text": "a", "junk": "x" * 200_000}, timeout=60)
    assert big.status_code == 413 and "65536 bytes" in big.json()["detail"]
    assert httpx.get(f"{url}/api/health", headers={"Host": "attacker.example"}).status_code == 400  # DNS rebinding
    assert httpx.get(f"{url}/api/health", headers={"Host": "localhost"}).status_code == 200
    for strength, says in ((1e308, "outside ±1000"), ("inf", "finite number"), (None, "strength: ")):
        bad = post(url, "/api/steer", {"prompt": "The", "features": [1], "strength": strength})
        assert bad.status_code == 422 and says in bad.json()["detail"], bad.text
        assert isinstance(bad.json()["detail"], str)  # one readable line for the page, not pydantic's JSON
    assert httpx.get(f"{url}/api/health").status_code == 200


def test_the_port_is_bound_before_the_model_loads_and_the_real_one_is_printed(live, tmp_path):
    import subprocess
    import sys

    from explain.server import bind

    site = live.site
    with bind("127.0.0.1", 0) as held:
        busy = held.getsockname()[1]
        with pytest.raises(ValueError, match=f"127.0.0.1:{busy}.*--port 0 for a free one"):
            bind("127.0.0.1", busy)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "explain.browse", "serve", str(site), "--live", "--port",
                               str(busy)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "another server holds it" in proc.stderr and "serving" not in proc.stdout
        assert time.perf_counter() - start < 30  # no model was loaded first
    free = bind("127.0.0.1", 0)
    assert free.getsockname()[1] > 0
    free.close()


def test_refuses_a_non_loopback_host_unless_asked(live, tokenizer):
    site = live.site
    lm = LiveModel(make_tiny("llama", d=32), tokenizer, TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point=HOOK)))
    with pytest.raises(ValueError, match="Pass --host explicitly"):
        serve_live(site, lm, host="0.0.0.0")
    assert serve_live(site, lm, host="0.0.0.0", allow_remote=True).config.host == "0.0.0.0"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it)")
def test_live_pages_in_chromium(live):
    from playwright.sync_api import sync_playwright

    url = live.url
    text = "The river flows past the old mill and the town"
    api = post(url, "/api/activations", {"text": text, "feature": 7}).json()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking", "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        ARTIFACTS.mkdir(exist_ok=True)
        # index: the top features of every typed token, each a link to its page
        page.goto(f"{url}/index.html")
        page.wait_for_selector(".live:not([hidden])")
        page.fill("#tt-text", text)
        page.click("#tt-go")
        page.wait_for_selector("#tt-table tr")
        assert page.locator("#tt-table tr").count() == len(api["tokens"])
        assert page.locator("#tt-table a.feature-link").count() > 0
        page.screenshot(path=str(ARTIFACTS / "live_index.png"), full_page=True)
        # feature page: the highlighted token is the one the API says has the feature's largest activation
        page.goto(f"{url}/feature.html?id=7")
        page.wait_for_selector(".live:not([hidden])")
        page.fill("#tt-text", text)
        page.click("#tt-go")
        page.wait_for_selector("#tt-out .tok")
        shown = page.locator("#tt-out .tok").evaluate_all("els => els.map(e => parseFloat(e.dataset.act))")
        assert shown == pytest.approx(api["acts"], abs=1e-4)
        if max(api["acts"]) > 0:
            best = max(range(len(shown)), key=shown.__getitem__)
            bg = page.locator("#tt-out .tok").nth(best).evaluate("e => e.style.background")
            assert bg.startswith("rgb") and api["tokens"][best] == page.locator("#tt-out .tok").nth(best).inner_text()
        # the steer panel's default operator is add (FeatureAdd): its strength is the feature's own measured multiple
        # where its record has a steering curve that wrote its words, else the dev-chosen multiple, × max_act
        rec = json_record(url, 7)
        max_act, curve = rec["max_act"], rec.get("steer_curve") or {}
        times = curve.get("first_writes") or DEFAULT_ADD_FACTOR
        assert page.input_value("#st-op") == "add"
        assert float(page.input_value("#st-strength")) == pytest.approx(times * max_act, rel=5e-3)
        assert "largest activation" in page.locator("#st-scale").inner_text()
        # Inject's: 1 × this feature's largest corpus activation, with the scale said
        page.select_option("#st-op", "inject")
        assert float(page.input_value("#st-strength")) == pytest.approx(max_act, rel=5e-3)
        assert "largest activation on the corpus" in page.locator("#st-scale").inner_text()
        page.select_option("#st-op", "amplify")
        assert page.input_value("#st-strength") == "4"
        assert "decoder directions" in page.locator("#st-scale").inner_text()
        # markup typed into the box is shown as text, never run
        page.fill("#tt-text", EVIL)
        page.click("#tt-go")
        page.wait_for_function("document.querySelector('#tt-out').innerText.includes('script')")
        assert "<script>" in page.locator("#tt-out").inner_text() and page.evaluate("window.__pwned") is None
        # steer at strength 0: the same text as unsteered (same seed); a large Inject changes it
        steer_on_page(page, "amplify", "0")
        page.wait_for_selector("#st-steered .tok")
        assert page.locator("#st-plain").inner_text() == page.locator("#st-steered").inner_text()
        # no change is said, with the next strength to try, and nothing is highlighted as changed
        notice = page.locator("#st-notice")
        assert notice.is_visible() and "No change at this strength" in notice.inner_text()
        assert "Try 1" in notice.inner_text()
        assert page.locator("#st-steered .tok.ins").count() == 0
        page.select_option("#st-op", "inject")
        page.fill("#st-strength", "200")
        page.click("#st-go")
        page.wait_for_function("document.querySelector('#st-plain').innerText !== "
                               "document.querySelector('#st-steered').innerText")
        # the tokens only in the steered text are marked, and the notice counts them
        changed = page.locator("#st-steered .tok.ins").count()
        assert changed > 0 and f"{changed} of" in page.locator("#st-notice").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "steer_diff.png"), full_page=True)
        snippet = page.locator("#st-snippet").text_content()
        assert "iv = Inject.from_sae(sae, [7], m=200.0)" in snippet and "shared_noise_sampling(seed=0)" in snippet
        assert page.locator("#nearest a").count() == 10
        # a saved intervention file alone, chosen on the page
        page.uncheck("#st-self")
        page.select_option("#st-saved", "push")
        page.click("#st-go")  # the previous run's outputs are cleared at once; the notice comes with the answer
        page.wait_for_function("!document.querySelector('#st-notice').hidden")
        assert page.locator("#st-snippet").text_content() == ""  # no features: no snippet
        assert page.locator("#st-plain").inner_text() != page.locator("#st-steered").inner_text()
        page.check("#st-self")
        page.select_option("#st-saved", "")
        # the page that combines several features
        page.goto(f"{url}/steer.html?features=7,3")
        page.wait_for_selector(".live:not([hidden])")
        page.wait_for_selector("#st-chosen:not([hidden])")  # the chosen features' explanations beside the controls
        chosen = page.locator("#st-chosen tbody tr").all_inner_texts()
        assert [row.split("\t")[0] for row in chosen] == ["#7", "#3"]
        summary = " ".join(t.strip() for t, _ in json_record(url, 7)["input_summary"]["tokens"])
        assert summary and chosen[0].split("\t")[1] == summary
        steer_on_page(page, "inject", "200")
        page.wait_for_function("document.querySelector('#st-snippet').textContent.includes('[7, 3]')")
        assert page.locator("#st-plain").inner_text() != page.locator("#st-steered").inner_text()
        page.screenshot(path=str(ARTIFACTS / "live_steer.png"), full_page=True)
        # an oversized request is refused with its reason on the page, and the page keeps working
        page.goto(f"{url}/feature.html?id=7")
        page.wait_for_selector(".live:not([hidden])")
        page.fill("#st-n", "500")
        page.click("#st-go")
        page.wait_for_function("document.querySelector('#st-err').innerText.includes('limit is 64')")
        page.screenshot(path=str(ARTIFACTS / "live_feature.png"), full_page=True)
        browser.close()


def test_test_your_text_leaves_out_what_training_left_out(live, tokenizer):
    """Special tokens and attention-sink outliers are flagged, get no top features, and (page) set no colour."""
    url = live.url
    r = post(url, "/api/activations", {"text": f"The town {tokenizer.eos_token} had a river"}).json()
    at = r["tokens"].index(tokenizer.eos_token)
    assert r["excluded"][at] and r["top"][at] == [] and sum(r["excluded"]) == 1
    assert all(r["top"][i] for i, e in enumerate(r["excluded"]) if not e)  # the others keep their features
    model = make_tiny("llama", d=32)
    strict = LiveModel(model, tokenizer, TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point=HOOK)),
                       outlier_factor=1.0)  # every token above its text's median norm counts as an outlier
    out = strict.activations("The town had a river and a mill by the bridge")
    n = len(out["tokens"])
    assert 0 < sum(out["excluded"]) < n and all(not t for t, e in zip(out["top"], out["excluded"]) if e)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it)")
def test_in_a_site_of_several_saes_the_live_parts_follow_the_served_sae(live, tmp_path):
    from playwright.sync_api import sync_playwright

    expl = live.site.parent / "explanations.jsonl"  # the same records as two SAEs', the server runs the second
    site = build([("tiny/blocks.0.resid_post", expl), ("tiny/blocks.1.resid_post", expl)], tmp_path / "site")
    with serving(site, live.lm) as url, sync_playwright() as p:
        page = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]).new_page()
        page.goto(f"{url}/feature.html?id=3")  # the other SAE's page: no live parts, and it says which SAE is live
        page.wait_for_function("document.querySelector('#live-meta').textContent.length > 0")
        assert "runs tiny/blocks.1.resid_post" in page.inner_text("#live-meta") and page.is_hidden(".card.live")
        page.goto(f"{url}/feature.html?id=3&sae=1")
        page.wait_for_selector(".card.live:not([hidden]) #st-go")  # the served SAE's page: the live parts
        page.goto(f"{url}/index.html")
        page.fill("#tt-text", "The town")  # waits for the live card to show
        page.click("#tt-go")
        page.wait_for_selector("#tt-table a.feature-link")
        links = page.locator("#tt-table a.feature-link").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        assert links and all(h.endswith("&sae=1") for h in links)  # test-your-text links the served SAE's pages
