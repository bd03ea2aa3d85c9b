"""The training mixture: several local sources with weights, read as one `datasets.Dataset`.

    read_mixture(yaml)     (sources, options) of a mixture YAML (configs/corpus/*.yaml), checked
    load_mixture(yaml)     `datasets.interleave_datasets` over the sources, each filtered to its training part;
                           `TextSource` reads a mixture YAML like any other path
    mixture_stats(yaml)    documents and tokens per source (`python -m sae.data stats configs/corpus/smollm2-135m.yaml`)
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from datasets import interleave_datasets

from sae.data.local import BUNDLED, file_fingerprint, load_local, local_path
from sae.data.prompts import benchmark_test_statements
from sae.data.splits import in_part


@dataclass
class MixtureSource:
    """One source of a mixture. `weight`: passes over the source relative to the others (1 = each document about
    once); `part`: 'train' keeps only the training part of a labelled set (`sae.data.splits.in_part`); `not_in`: drop
    documents that occur inside the steering benchmark's test prompts (ToxiGen statements)."""

    name: str
    path: str
    text_column: str = "text"
    weight: float = 1.0
    part: str | None = None
    not_in: str | None = None  # 'benchmark-test-prompts'


STOPPING = ("all_exhausted", "first_exhausted")  # datasets.interleave_datasets' stopping strategies


def read_mixture(path: str | Path) -> tuple[list[MixtureSource], dict]:
    """(sources, options) of a mixture YAML; relative paths are read from the project root."""
    path = local_path(str(path))
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("sources"), list) or not spec["sources"]:
        raise ValueError(f"{path}: a mixture YAML needs a non-empty `sources:` list (see configs/corpus/).")
    names = {f for f in MixtureSource.__dataclass_fields__}
    sources = []
    for i, s in enumerate(spec["sources"]):
        unknown = set(s) - names if isinstance(s, dict) else None
        if unknown or not isinstance(s, dict) or "name" not in s or "path" not in s:
            raise ValueError(f"{path}: source {i + 1} must be a mapping with name and path"
                             + (f"; unknown keys {sorted(unknown)} (allowed: {sorted(names)})" if unknown else ""))
        src = MixtureSource(**s)
        if not src.weight > 0:
            raise ValueError(f"{path}: source {src.name!r} has weight {src.weight}; weights must be positive "
                             "(remove the source instead of giving it 0).")
        if src.not_in not in (None, "benchmark-test-prompts"):
            raise ValueError(f"{path}: source {src.name!r}: not_in must be 'benchmark-test-prompts' or absent")
        local = local_path(src.path)
        if not local.exists():
            raise FileNotFoundError(f"{path}: source {src.name!r}: {src.path} does not exist"
                                    + (" (make it with `python -m sae.data generate`)"
                                       if "generated" in src.path else ""))
        src.path = src.path if src.path in BUNDLED else str(local)
        sources.append(src)
    options = {"seed": spec.get("seed", 0), "stopping_strategy": spec.get("stopping_strategy", "all_exhausted")}
    if options["stopping_strategy"] not in STOPPING:
        raise ValueError(f"{path}: stopping_strategy {options['stopping_strategy']!r}; use one of {STOPPING} "
                         "(all_exhausted reads every document at least once)")
    return sources, options


def source_documents(src: MixtureSource):
    """The source's documents (a `datasets.Dataset` with one `text` column), filtered to its part."""
    ds = load_local(local_path(src.path))
    if src.text_column not in ds.column_names:
        raise ValueError(f"Source {src.name!r}: column {src.text_column!r} not in {src.path}; its columns are "
                         f"{ds.column_names}. Set text_column in the mixture YAML.")
    ds = ds.select_columns([src.text_column]).rename_column(src.text_column, "text") if src.text_column != "text" \
        else ds.select_columns(["text"])
    banned = benchmark_test_statements() if src.not_in else set()
    return ds.filter(lambda t: bool(t and t.strip()) and in_part(t, src.part) and t.strip() not in banned,
                     input_columns="text")


def load_mixture(path: str | Path, seed: int | None = None):
    """The mixture as one `datasets.Dataset`: `interleave_datasets` draws documents from source i with
    probability ∝ weight_i · size_i, so weight 1 everywhere reads each document about once; with the default
    'all_exhausted' it stops when every source has been read at least once."""
    sources, options = read_mixture(path)
    parts = [source_documents(s) for s in sources]
    for s, d in zip(sources, parts):
        if len(d) == 0:
            raise ValueError(f"Source {s.name!r} ({s.path}) has no document left after its filters.")
    mass = [s.weight * len(d) for s, d in zip(sources, parts)]
    return interleave_datasets(parts, probabilities=[m / sum(mass) for m in mass],
                               seed=options["seed"] if seed is None else seed,
                               stopping_strategy=options["stopping_strategy"])


def mixture_fingerprint(path: str | Path) -> str:
    """sha256 over the YAML and every source file, so an activation cache notices an edit to any of them."""
    h = hashlib.sha256(Path(path).read_bytes())
    for s in read_mixture(path)[0]:
        h.update((s.name + "\0" + file_fingerprint(local_path(s.path))).encode())
    return h.hexdigest()


def mixture_stats(path: str | Path, tok) -> dict:
    """Documents and tokens (by the tokenizer `tok`) per source after filtering, and in the interleaved mixture
    (distinct and total)."""
    count = lambda texts: sum(len(ids) + 1 for ids in tok(list(texts), add_special_tokens=False).input_ids)
    out = {}
    for s in read_mixture(path)[0]:
        d = source_documents(s)
        out[s.name] = {"documents": len(d), "tokens": count(d["text"])}
    mix = load_mixture(path)["text"]
    out["mixture"] = {"documents": len(mix), "tokens": count(mix), "distinct_documents": len(set(mix)),
                      "distinct_tokens": count(set(mix))}
    return out
