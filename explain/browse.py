"""Static feature browser: `build` turns an explanations JSONL into a site that works from a local folder
(no CDN, no server needed), `serve` shows it on localhost.

    python -m explain.browse build explanations.jsonl --out site/
    python -m explain.browse build smollm2-135m/blocks.15.resid_post=l15.jsonl \
        smollm2-135m/blocks.25.resid_post=l25.jsonl --out site/        (one site, searched across both layers)
    python -m explain.browse serve site/ [--port 8000]
    python -m explain.browse serve site/ --live [--sae smollm2-135m/blocks.15.resid_post] [--model NAME]

`--live` adds test-your-text, a steer panel and nearest features (explain/live.py: one model in memory, a
JSON API, localhost only unless --host is given); without it the pages hide those parts.

Every feature has two explanations, labelled for what they are: the MI words (output side: what steering with
it writes) and the input summary (explain.input_side: the tokens and n-grams that fire it in its top contexts).
The index holds every feature's id, density, both explanations, logit-lens tokens and top-context peak tokens
(client-side search over all of them, and sorting); each feature's full record sits in a shard file loaded only
when its page opens. A site built from several explanations files (one per layer, say) has one index and one
search across all of them, with a column saying whose each feature is. Corpus text is only ever inserted with
`textContent`, so markup in the corpus is shown, never executed.
"""
from __future__ import annotations

import csv
import functools
import http.server
import json
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from explain.input_side import held_out_contexts, peak_agreement, peak_tokens, summary_of, summary_tokens
from explain.live import LiveModel
from explain.search import SearchIndex
from explain.server import bind, serve_live
from sae.cli import arg, parse_command, run_cli
from sae.eval.stats import rate_ci
from sae.files import output_dir
from sae.lm import LMOptions
from sae.model import TopKSAE
from steering.methods import load_interventions

STATIC = Path(__file__).resolve().parent / "static"
SHARD = 64  # features per lazily-loaded file


def quality(records: list[dict], output_scores: str | Path | None = None) -> dict:
    """What the pages say about how far each explanation can be trusted: the input summaries' held-out peak
    agreement (explain.input_side) and, when given, the MI words' output-side scores (explain.output_score)."""
    by_id = {r["feature"]: r for r in records}
    out = {"input": {}, "output": {}}
    if any(held_out_contexts(r) for r in records):
        est = peak_agreement(by_id, summary_tokens, held_out=True)
        chance = peak_agreement(by_id, summary_tokens, held_out=True, shuffle=True)
        out["input"] = {"rate": est.value, "low": est.low, "high": est.high, "n": est.n, "chance": chance.value}
    if output_scores:
        with open(output_scores, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["method"] in ("mi", "mi:decoder-bayes")]
        if not rows:
            raise ValueError(f"{output_scores} holds no MI (decoder-bayes) rows; write it with "
                             "`python -m explain.output_score`")
        est = rate_ci([float(r["logprob_gain"]) for r in rows])
        out["output"] = {"mean": est.value, "low": est.low, "high": est.high, "n": est.n}
        for r in rows:
            if int(r["feature"]) in by_id:
                by_id[int(r["feature"])]["mi_output_gain"] = round(float(r["logprob_gain"]), 4)
    return out


def _js(name: str, value) -> str:
    # ensure_ascii escapes U+2028/2029 and every non-ASCII character, so any text is a valid JS literal.
    return f"{name} = {json.dumps(value, ensure_ascii=True, separators=(',', ':'))};\n"


def _read(explanations: Path, out: Path) -> list[dict]:
    if not explanations.is_file():
        raise FileNotFoundError(f"No explanations file {str(explanations)!r}; write one with `python -m explain --sae "
                                "NAME --out FILE` (several SAEs: LABEL=FILE each)")
    if out.resolve() in explanations.resolve().parents:
        raise ValueError(f"--out {out} contains the explanations file {explanations}, which replacing the folder "
                         "would delete; write the site to its own folder (e.g. --out site/).")
    records = [json.loads(line) for line in explanations.read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{explanations} holds no feature records")
    for r in records:
        f = r.get("feature")
        if not isinstance(f, int) or isinstance(f, bool) or f < 0:
            raise ValueError(f"{explanations}: feature id {f!r} is not a non-negative integer; every record needs "
                             "an integer 'feature' (write the file with `python -m explain`).")
    for r in records:  # files written before input summaries existed get theirs from their top contexts
        r["input_summary"] = summary_of(r)
    return sorted(records, key=lambda r: r["feature"])


def shard_folder(sae: int) -> str:
    """Where an SAE's feature records live in the site: the first SAE's in features/, the k-th's in features/k/
    (the pages read it from SAE_META, so this is the one place that says so)."""
    return f"features/{f'{sae}/' if sae else ''}"


def build(explanations: str | Path | Sequence[str | Path | tuple[str, str | Path]], out: str | Path,
          title: str | None = None, output_scores: str | Path | None = None) -> Path:
    """Write the site into `out`, replaced atomically (built beside it, then renamed). `out` must be new,
    empty or an earlier site: a folder holding anything else is refused, never emptied. `output_scores`: a
    per_feature.csv from `python -m explain.output_score`, shown beside the first SAE's MI words.

    Several explanations files (one per SAE, e.g. one per layer; each a path or (label, path)) make one site:
    one index and one search over all of them, a column saying whose each feature is, and each feature's page
    at feature.html?id=N&sae=K. A label that names the SAE (e.g. smollm2-135m/blocks.20.resid_post) lets the
    live server's panels appear on that SAE's pages."""
    single = isinstance(explanations, (str, Path))
    sources = [(None, explanations)] if single else [s if isinstance(s, tuple) else (None, s) for s in explanations]
    if not sources:
        raise ValueError("No explanations file given")
    out = Path(out)
    saes = [(label or (title if len(sources) == 1 and title else Path(path).stem), _read(Path(path), out))
            for label, path in sources]
    own = [f.name for f in STATIC.iterdir()] + ["index_data.js", "search_data.js", "features"]
    with output_dir(out, "site", own) as tmp:
        (tmp / "features").mkdir()
        for f in STATIC.iterdir():
            shutil.copy(f, tmp / f.name)
        index, metas, everything = [], [], []
        for k, (label, records) in enumerate(saes):
            index += [[r["feature"], round(r.get("frequency", 0.0), 8), " ".join(w for w, _ in r.get("mi_words", [])),
                       " ".join(t.strip() for t in r.get("logit_tokens", {}).get("pos", [])[:5]),
                       " ".join(t.strip() for t, _ in r["input_summary"]["tokens"]),
                       " ".join(sorted(peak_tokens(r.get("top_contexts", [])))),
                       r.get("content_output_score"), r.get("input_score"), k] for r in records]
            metas.append({"label": label, "n_features": records[-1]["feature"] + 1, "shards": shard_folder(k),
                          "median_max_act": statistics.median([r.get("max_act", 0.0) for r in records]),
                          "quality": quality(records, output_scores if k == 0 else None)})
            everything += records
            shards: dict[str, dict] = {}
            for r in records:  # one file per shard that holds a feature: sparse ids never write empty shards
                shards.setdefault(f"{shard_folder(k)}{r['feature'] // SHARD}.js", {})[r["feature"]] = r
            for path, shard in shards.items():
                (tmp / path).parent.mkdir(exist_ok=True)
                (tmp / path).write_text("window.SAE_SHARD = Object.assign(window.SAE_SHARD || {}, "
                                        + json.dumps(shard, ensure_ascii=True) + ");\n")
        meta = {"title": title or " · ".join(m["label"] for m in metas), "shard": SHARD, "saes": metas}
        (tmp / "index_data.js").write_text(_js("window.SAE_META", meta) + _js("window.SAE_INDEX", index))
        (tmp / "search_data.js").write_text(_js("window.SAE_SEARCH", SearchIndex(everything).to_json()))
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(site: str | Path, port: int = 8000, host: str = "127.0.0.1",
          quiet: bool = False) -> http.server.ThreadingHTTPServer:
    """A static file server for the site on localhost (call .serve_forever(), or .shutdown() to stop)."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} has no index.html; build it first with `python -m explain.browse build`")
    cls = _QuietHandler if quiet else http.server.SimpleHTTPRequestHandler
    handler = functools.partial(cls, directory=str(site))
    return http.server.ThreadingHTTPServer((host, port), handler)


@dataclass(kw_only=True)
class Build:
    """explanations JSONL → static site"""
    explanations: list[str] = arg(positional=True)
    """JSONL written by `python -m explain`; several (one per SAE or layer, each FILE or LABEL=FILE, LABEL naming the
    SAE) make one site searched across all of them"""
    out: str = "site"
    """site folder: new, empty or an earlier site (never another folder)"""
    title: str | None = None
    """page title (default: the explanations file's name)"""
    output_scores: str | None = None
    """per_feature.csv from `python -m explain.output_score`: each MI word list's output-side score, shown on the
    pages (default: none shown)"""


@dataclass(kw_only=True)
class Serve:
    """serve a built site on localhost"""
    site: str = arg(positional=True)
    """folder written by `build`"""
    port: int = 8000
    """0 picks a free port"""
    live: bool = False
    """load the model and SAE: test your text, steer from the page"""
    sae: str = "smollm2-135m/blocks.15.resid_post"
    """with --live: SAE folder or name"""
    host: str | None = None
    """bind address (default 127.0.0.1); giving it is what allows a non-loopback one"""
    interventions: list[str] = arg([])
    """with --live: saved intervention files (AURA, DiffMean, …) the steer panel can apply"""
    lm: LMOptions = field(default_factory=LMOptions)


def main(argv=None) -> None:
    args = parse_command({"build": Build, "serve": Serve}, argv, "python -m explain.browse", __doc__)
    if isinstance(args, Build):
        sources = [tuple(e.split("=", 1)) if "=" in e else e for e in args.explanations]
        print(f"site written to {build(sources, args.out, args.title, args.output_scores)}/index.html")
    elif args.live:
        host = args.host or "127.0.0.1"
        sock = bind(host, args.port)  # before the model loads: a busy port fails now, not after it
        port = sock.getsockname()[1]
        sae = TopKSAE.load(args.sae)
        name, (model, tok) = args.lm.name(sae), args.lm.load(sae)
        saved = {Path(f).stem: load_interventions(f) for f in args.interventions}
        server = serve_live(args.site, LiveModel(model, tok, sae, name=name, saved=saved), host, port,
                            allow_remote=args.host is not None)
        print(f"serving {args.site} live ({name}, {args.sae}) on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        server.run(sockets=[sock])
    else:
        server = serve(args.site, args.port)
        host, port = server.server_address[:2]
        print(f"serving {args.site} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            server.shutdown()


if __name__ == "__main__":
    run_cli(main)
