"""Choose SAE features to steer: by explanation words, by contrast between two text sets, or by id."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from sae.capture import capture
from sae.model import TopKSAE


@dataclass
class Chosen:
    features: list[int]
    scores: list[float]  # why each was chosen (contrast, or the matched word's MI score)
    how: str

    def __iter__(self):
        return iter(self.features)


def load_explanations(path: str | Path) -> dict[int, dict]:
    """{feature id: record} from an explanations JSONL (one record per feature, with 'feature' or 'id')."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[int(rec.get("feature", rec.get("id")))] = rec
    return out


def by_explanation(explanations: dict[int, dict], words: Iterable[str], top_m: int | None = None) -> Chosen:
    """Features whose MI words (the first top_m of them) include any of `words` (case-insensitive)."""
    wanted = {w.lower() for w in words}
    hits = []
    for fid, rec in explanations.items():
        pairs = rec.get("mi_words", [])[:top_m]
        scores = [float(s) for w, s in pairs if str(w).lower().strip() in wanted]
        if scores:
            hits.append((max(scores), fid))
    hits.sort(reverse=True)
    return Chosen([f for _, f in hits], [s for s, _ in hits], f"explanation contains {sorted(wanted)}")


def by_id(sae: TopKSAE, ids: Sequence[int]) -> Chosen:
    bad = [i for i in ids if not 0 <= i < sae.d_sae]
    if bad:
        raise ValueError(f"Feature ids {bad} out of range: this SAE has {sae.d_sae} features (0..{sae.d_sae - 1})")
    return Chosen(list(ids), [float("nan")] * len(ids), "by id")


@torch.no_grad()
def mean_feature_acts(model, tokenizer, sae: TopKSAE, texts: Sequence[str], batch_size: int = 16,
                      max_length: int = 128, outlier_factor: float | None = 10.0) -> torch.Tensor:
    """(d_sae,) mean over texts of each feature's mean activation over the text's tokens, leaving out special
    tokens and outliers (attention sinks: the SAE never trained on them, and their activations would
    swamp the means of short texts)."""
    if not texts:
        raise ValueError("No texts given")
    total = torch.zeros(sae.d_sae)
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i : i + batch_size]), return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length)
        acts = capture(model, enc.input_ids, enc.attention_mask, [sae.cfg.hook_point],
                       exclude_ids=tokenizer.all_special_ids, outlier_factor=outlier_factor)
        feats = sae.feature_acts(acts.acts[sae.cfg.hook_point]).float().cpu()  # (tokens, d_sae)
        rows = acts.positions[:, 0].cpu()
        per_text = torch.zeros(len(enc.input_ids), sae.d_sae).index_add_(0, rows, feats)
        per_text /= torch.bincount(rows, minlength=len(enc.input_ids)).clamp_min(1)[:, None]
        total += per_text.sum(0)
    return total / len(texts)


def contrastive(model, tokenizer, sae: TopKSAE, texts_a: Sequence[str], texts_b: Sequence[str], n: int = 10,
                **kw) -> Chosen:
    """The n features whose mean activation is most higher on texts_a than on texts_b; score = the gap."""
    gap = mean_feature_acts(model, tokenizer, sae, texts_a, **kw) - mean_feature_acts(model, tokenizer, sae,
                                                                                    texts_b, **kw)
    top = gap.topk(min(n, sae.d_sae))
    return Chosen(top.indices.tolist(), top.values.tolist(), "contrast: mean activation A − B")


def describe(chosen: Chosen, explanations: dict[int, dict] | None = None, words: int = 6) -> str:
    """One line per chosen feature: id, score, and its MI words / logit-lens tokens when explanations exist."""
    lines = [f"{len(chosen.features)} features ({chosen.how}):"]
    for fid, score in zip(chosen.features, chosen.scores):
        rec = (explanations or {}).get(fid, {})
        mi = ", ".join(str(w) for w, _ in rec.get("mi_words", [])[:words]) or "-"
        pos = " ".join(repr(t) for t in rec.get("logit_tokens", {}).get("pos", [])[:words]) or "-"
        lines.append(f"  #{fid:<6} score {score:8.4f}  MI: {mi}  | logit+: {pos}")
    return "\n".join(lines)
