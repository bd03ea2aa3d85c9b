"""Screenshots of the live browser on the shipped SAE and the embedded model, taken with Debian's chromium and
checked as they are taken: a search for a concept (across every SAE the site holds), a feature page with both
explanations, its scores and logit-lens tables, test-your-text without the first-token spike, the steer panel's
default strength changing the text (the token diff highlighted), and the no-change notice of a steer too weak to
change anything. Written to tests/artifacts/shipped_*.png.

    make site [LAYERS="15 20 25"] && python bench/browser_shots.py [--site runs/smollm2-135m/site] [--feature 70] \
        [--query song]
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from explain.live import LiveModel
from explain.server import bind, serve_live
from sae.cli import parse_options
from sae.lm import load_lm
from sae.model import TopKSAE

ARTIFACTS = Path(__file__).resolve().parents[1] / "tests" / "artifacts"
TEXT = "The song was released as the second single from the band's debut album in 1994."


@dataclass(kw_only=True)
class Options:
    site: str = "runs/smollm2-135m/site"
    """the built site to photograph"""
    sae: str = "smollm2-135m/blocks.15.resid_post"
    """the SAE the live server loads"""
    feature: int = 70
    """a feature of --sae (the SAE the live server runs)"""
    query: str = "song"
    """what the search screenshot looks for"""


def main() -> None:
    args = parse_options(Options, None, "python bench/browser_shots.py", __doc__)
    from playwright.sync_api import sync_playwright

    sae = TopKSAE.load(args.sae)
    model, tok = load_lm(sae.cfg.model_name)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = serve_live(args.site, LiveModel(model, tok, sae, name=sae.cfg.model_name), port=port)
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url, f = f"http://127.0.0.1:{port}", args.feature
    api = httpx.post(f"{url}/api/activations", json={"text": TEXT, "feature": f}, timeout=60).json()
    kept = [a for a, e in zip(api["acts"], api["excluded"]) if not e]
    excluded = [t for t, e in zip(api["tokens"], api["excluded"]) if e]
    print(f"test your text: {len(api['tokens'])} tokens, excluded {excluded}"
          f"; feature #{f} max over kept tokens {max(kept):.2f} at {api['tokens'][api['acts'].index(max(kept))]!r}")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(f"{url}/index.html?q={args.query}")
        page.wait_for_function("document.querySelectorAll('#rows tr').length > 0")
        top = page.locator("#rows tr").all_inner_texts()[:5]
        print(f"search {args.query!r}, top 5:", *[" | ".join(r.split("\t")[:4]) for r in top], sep="\n  ")
        page.screenshot(path=str(ARTIFACTS / "shipped_search.png"), full_page=False)
        k = page.evaluate("liveSae()")  # the live SAE's position in the site: its pages carry the live parts
        page.goto(f"{url}/" + page.evaluate(f"saeLink({k}, {f})"))
        page.wait_for_selector(".live:not([hidden])")
        page.wait_for_selector("#in-tokens .chip")
        print("fires on:", page.locator("#in-tokens").inner_text().replace("\n", " "))
        print("MI words:", page.locator("#mi").inner_text().replace("\n", " "))
        page.screenshot(path=str(ARTIFACTS / "shipped_feature_both_explanations.png"), full_page=False)
        page.locator("#lpos").scroll_into_view_if_needed()
        print("logit lens:", page.locator("#lpos").inner_text().replace("\n", " "), "|",
              page.locator("#lens-note").inner_text())
        page.screenshot(path=str(ARTIFACTS / "shipped_feature_scores_and_lens.png"), full_page=False)
        page.fill("#tt-text", TEXT)
        page.click("#tt-go")
        page.wait_for_selector("#tt-out .tok")
        page.locator("#tt-out").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "shipped_test_your_text.png"), full_page=False)
        print("default strength:", page.input_value("#st-strength"), "|", page.locator("#st-scale").inner_text())
        page.click("#st-go")
        page.wait_for_selector("#st-steered .tok", timeout=120_000)
        plain, steered = page.locator("#st-plain").inner_text(), page.locator("#st-steered").inner_text()
        print(json.dumps({"unsteered": plain, "steered": steered}, ensure_ascii=False))
        if plain == steered:
            raise SystemExit("the default steer did not change the text")
        changed = page.locator("#st-steered .tok.ins").count()
        if not changed:
            raise SystemExit("the diff highlights no steered token")
        print(f"diff: {changed} steered tokens highlighted |", page.locator("#st-notice").inner_text())
        page.locator("#st-steered").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "shipped_default_steer.png"), full_page=False)
        page.select_option("#st-op", "amplify")  # amplify by 0.001: too weak to change a greedy continuation
        page.fill("#st-strength", "0.001")
        page.click("#st-go")
        page.wait_for_selector("#st-notice:not([hidden])", timeout=120_000)
        notice = page.locator("#st-notice").inner_text()
        print("weak steer:", notice)
        if not notice.startswith("No change at this strength"):
            raise SystemExit("a steer that changed nothing got no notice")
        page.locator("#st-notice").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "shipped_no_change.png"), full_page=False)
        browser.close()
    server.should_exit = True
    print(f"screenshots in {ARTIFACTS}/shipped_*.png")


if __name__ == "__main__":
    main()
