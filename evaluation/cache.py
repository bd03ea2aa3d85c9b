"""The benchmark's cache: every generated text set and perplexity as a JSON file under <out>/cache, named by a
digest of what determines it (the model, the interventions' tensors, the prompts, the sampling settings), so a
rerun in the same folder resumes and every continuation can be read afterwards."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sae.files import write_text
from steering.intervention import Intervention
from steering.methods.prompting import Prompting


class Cache:
    """JSON files under `folder`, one per computed value, named by a digest of the key that determines it.
    `Cache(None)` computes everything and stores nothing."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None

    @staticmethod
    def name(kind: str, key: dict) -> str:
        """The file a value is kept in: what a report's `texts` column names, so a row's texts can be found again."""
        return f"{kind}-{hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]}.json"

    def __call__(self, kind: str, key: dict, compute: Callable[[], Any]) -> Any:
        if self.folder is None:
            return compute()
        path = self.folder / self.name(kind, key)
        if path.is_file():
            return json.loads(path.read_text())["value"]
        value = compute()
        write_text(path, json.dumps({"kind": kind, "key": key, "value": value}, ensure_ascii=False))
        return value


NO_CACHE = Cache(None)


def setting_key(model, ivs: Sequence[Intervention], prompting: Prompting | None) -> dict:
    """What fixes a setting's outputs: the model, the interventions (classes, scalars, tensors), the system prompt."""
    h = hashlib.sha256()
    for iv in ivs:
        h.update(json.dumps(iv.header(), sort_keys=True).encode())
        for name, t in sorted(iv.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return {"model": getattr(model, "saesteer_name", type(model).__name__),
            "config": hashlib.sha256(model.config.to_json_string().encode()).hexdigest()[:16],
            "interventions": h.hexdigest()[:20], "system": prompting.system if prompting else None}
