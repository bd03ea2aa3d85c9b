import json
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from explain.browse import build, serve
from explain.explanations import ExplainConfig, explain_features, write_jsonl
from explain.input_side import input_summary
from sae.config import SAEConfig
from sae.data.text import TextSource
from sae.model import TopKSAE
from tests.conftest import make_tiny

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EVIL = "<script>window.__pwned = 1</script>"


@pytest.fixture(scope="module")
def explanations(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    model = make_tiny("llama", d=32)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point="blocks.1.resid_post"))
    windows = TextSource(ctx_len=24).load(tokenizer, max_windows=16)
    cfg = ExplainConfig(words=300, top_m=5, top_contexts=4)
    records = list(explain_features(model, tokenizer, sae, windows, cfg))
    # Corpus text can hold markup: plant a context token that would run if inserted as HTML.
    records[3]["top_contexts"].insert(0, {"tokens": ["before ", EVIL, " after"], "acts": [0.1, 2.0, 0.0], "peak": 1})
    records[3]["mi_words"][0] = ["zebra", 0.5]
    # a top context peaking on a word no explanation holds: search must still find it (top-context tokens)
    records[5]["top_contexts"].append({"tokens": [" the", " songbird", " sang"], "acts": [0.0, 1.5, 0.2], "peak": 1})
    del records[6]["input_summary"]  # as in a file written before input summaries: build makes it
    # search ranking: one word planted where the feature fires (10), in MI words (11), in the logit lens (12)
    records[10]["input_summary"] = {"tokens": [[" lighthouse", 0.6]], "ngrams": []}
    records[11]["mi_words"][0] = ["lighthouse", 0.4]
    records[12]["logit_tokens"]["pos"][0] = " lighthouse"
    return write_jsonl(records, tmp_path_factory.mktemp("expl") / "explanations.jsonl")


def test_records_have_every_field(explanations):
    recs = [json.loads(line) for line in explanations.read_text().splitlines()]
    assert [r["feature"] for r in recs] == list(range(40))
    for r in recs:
        assert {"mi_words", "logit_tokens", "topact_tokens", "top_contexts", "frequency", "histogram"} <= set(r)
        assert r["feature"] == 6 or set(r["input_summary"]) == {"tokens", "ngrams"}
        assert len(r["mi_words"]) == 5 and len(r["histogram"]["counts"]) == 20
        for c in r["top_contexts"]:
            assert len(c["tokens"]) == len(c["acts"]) and 0 <= c["peak"] < len(c["tokens"])


def test_build_errors(tmp_path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no feature records"):
        build(empty, tmp_path / "site")
    with pytest.raises(FileNotFoundError, match="build it first"):
        serve(tmp_path / "nothing")
    for missing in ([("tiny/blocks.1.resid_post", tmp_path / "none.jsonl")], [("tiny/blocks.1.resid_post", "")]):
        with pytest.raises(FileNotFoundError, match="No explanations file .*python -m explain --sae NAME"):
            build(missing, tmp_path / "site2")
    assert not (tmp_path / "site2").exists()  # nothing written
    with pytest.raises(ValueError, match="No explanations file given"):
        build([], tmp_path / "site3")


@contextmanager
def served_site(explanations, tmp_path, title="tiny SAE"):
    """The site built from `explanations` (one file, or several), served on a free port; yields its URL."""
    server = serve(build(explanations, tmp_path / "site", title=title), port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it)")
def test_browser_search_feature_page_and_escaping(explanations, tmp_path):
    from playwright.sync_api import sync_playwright

    with served_site(explanations, tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(f"{url}/index.html")
        assert page.locator("#rows tr").count() == 40
        assert page.locator(".live").first.is_hidden()  # no API behind a static site: the live parts hide
        page.fill("#q", "zebra")
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 1")
        page.click("a.feature-link")
        page.wait_for_selector("#contexts .ctx")
        assert page.url.endswith("feature.html?id=3")
        assert page.locator(".tok.peak").count() >= 1
        bg = page.locator("#contexts .ctx").first.locator(".tok.peak").evaluate("e => e.style.background")
        assert bg.startswith("rgb")  # the peak token is highlighted by its activation
        assert EVIL in page.locator("#contexts .ctx").first.inner_text()  # shown as text …
        assert page.evaluate("window.__pwned") is None  # … and never executed
        assert page.locator("#hist svg rect").count() == 20
        ticks = page.locator("#hist svg text.tick").all_text_contents()  # axes with ticks and units
        rec3 = json.loads(explanations.read_text().splitlines()[3])
        assert ticks[0] == "0.00" and float(ticks[4]) == pytest.approx(rec3["max_act"], rel=1e-2)
        assert "activation (SAE units)" in page.locator("#hist svg").inner_html()
        top = rec3["top_contexts"][0]
        assert page.locator("#contexts .ctx .actval").first.inner_text() == f"{top['acts'][top['peak']]:.2f}"
        # both explanations, each labelled for its side; the input summary is the record's
        rec = json.loads(explanations.read_text().splitlines()[3])
        assert "input side" in page.locator("h3", has_text="Fires on").inner_text()
        assert "output side" in page.locator("h3", has_text="MI words").inner_text()
        chips = page.locator("#in-tokens .chip").all_inner_texts()
        assert [c.rsplit(" ", 1)[0] for c in chips] == [json.dumps(t) for t, _ in rec["input_summary"]["tokens"]]
        assert "not what it reads" in page.locator("#quality").inner_text()
        # the logit lens as promote/suppress tables with the record's logits, and a note when most are word pieces
        for side in ("pos", "neg"):
            tokens = [json.dumps(t, ensure_ascii=False) for t in rec["logit_tokens"][side]]
            assert page.locator(f"#l{side} td .chip").all_inner_texts() == tokens
            shown = [float(v) for v in page.locator(f"#l{side} td.num").all_inner_texts()]
            assert shown == pytest.approx(rec["logit_values"][side], abs=0.006)
        pieces = [t for t in rec["logit_tokens"]["pos"] if not re.fullmatch(r" [A-Za-z]{2,}", t)]
        assert page.locator("#lens-note").is_visible() == (len(pieces) * 2 >= len(rec["logit_tokens"]["pos"]) > 0)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "feature_page.png"), full_page=True)
        # search covers top-context tokens ("songbird" is in no explanation), and a record without an input
        # summary got one at build
        page.goto(f"{url}/index.html?q=songbird")
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 1")
        assert page.locator("#rows a.feature-link").inner_text() == "#5"
        shard = (tmp_path / "site" / "features" / "0.js").read_text()
        shard = json.loads(shard[shard.index("{}, ") + 4 : shard.rindex(");")])
        assert shard["6"]["input_summary"] == input_summary(shard["6"]["top_contexts"])
        page.goto(f"{url}/feature.html?id=99")
        assert "ids are 0..39" in page.locator("#title").inner_text()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{url}/feature.html?id=abc")  # one clear message, no empty cards, no API call
        assert "no feature abc" in page.locator("#title").inner_text()
        assert page.locator("main > .card:visible").count() == 1
        assert "from 0 to 39" in page.locator("main > .card.note").inner_text()
        assert not [u for u in requests if "/api/" in u]
        browser.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it)")
def test_browser_search_ranks_by_field_as_python_does(explanations, tmp_path):
    from playwright.sync_api import sync_playwright

    from explain.records import load_explanations
    from explain.search import search

    python_order = search(load_explanations(explanations), "lighthouses").features
    assert python_order[:3] == [10, 11, 12]  # fires on > MI words > logit lens; "lighthouses" by its stem
    with served_site(explanations, tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(f"{url}/index.html?q=lighthouses")
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 3")
        shown = [int(t.lstrip("#")) for t in page.locator("#rows a.feature-link").all_inner_texts()]
        assert shown == python_order
        assert page.locator("#rows tr td.matched").all_inner_texts() == ["fires on", "MI words", "logit lens"]
        assert page.locator("#rows tr").first.locator("span.hit").inner_text() == "lighthouse"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=True)
        page.fill("#q", "lightho")  # a prefix finds the same three
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 3")
        page.fill("#q", "qqqqzz")
        page.wait_for_function("!document.querySelector('#nothing').hidden")
        assert "Nothing found" in page.locator("#nothing").inner_text() and page.locator("#rows tr").count() == 0
        browser.close()



@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it)")
def test_a_site_of_several_saes_has_one_search_across_them(explanations, tmp_path):
    from playwright.sync_api import sync_playwright

    from explain.search import SearchIndex

    first = [json.loads(line) for line in explanations.read_text().splitlines()]
    second = [dict(r) for r in first[:30]]  # another layer: 30 features, one of them fires on "lighthouse"
    second[20] = {**second[20], "input_summary": {"tokens": [[" lighthouse", 0.9]], "ngrams": []}}
    other = write_jsonl(second, tmp_path / "layer2.jsonl")
    sources = [("tiny/blocks.1.resid_post", explanations), ("tiny/blocks.2.resid_post", other)]
    with served_site(sources, tmp_path, title="tiny, two layers") as url, sync_playwright() as p:
        assert (tmp_path / "site" / "features" / "1" / "0.js").is_file()  # the second SAE's shards, apart
        python_order = [(0 if h.row < len(first) else 1, h.feature)
                        for h in SearchIndex(first + second).search("lighthouse")]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(f"{url}/index.html?q=lighthouse")
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 7")  # 3 in one SAE, 4 in the other
        labels = {"tiny/blocks.1.resid_post": 0, "tiny/blocks.2.resid_post": 1}
        shown = [(labels[sae], int(f.lstrip("#"))) for f, sae in zip(
            page.locator("#rows a.feature-link").all_inner_texts(), page.locator("#rows td.sae").all_inner_texts())]
        assert shown == python_order and (1, 20) in shown[:3]  # what a feature fires on ranks first, in any SAE
        quality = page.locator("#quality").inner_text()  # each SAE's trust line, labelled
        assert "tiny/blocks.1.resid_post: Fires on" in quality and "tiny/blocks.2.resid_post: Fires on" in quality
        page.select_option("#sae", "1")  # one SAE only
        page.wait_for_function("document.querySelectorAll('#rows tr').length === 4")
        page.click("a.feature-link[href='feature.html?id=20&sae=1']")
        page.wait_for_selector("#in-tokens .chip")
        assert page.locator("#in-tokens .chip").first.inner_text().startswith('" lighthouse"')
        assert page.locator("#meta").inner_text() == "tiny/blocks.2.resid_post"
        page.goto(f"{url}/feature.html?id=35&sae=1")  # this SAE has 30 features
        assert "ids are 0..29 in tiny/blocks.2.resid_post" in page.locator("#title").inner_text()
        page.goto(f"{url}/feature.html?id=1&sae=5")
        assert "no SAE 5" in page.locator("#title").inner_text()
        assert "tiny/blocks.1.resid_post, tiny/blocks.2.resid_post" in page.locator("main > .card.note").inner_text()
        browser.close()
