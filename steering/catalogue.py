"""The catalogue of steering methods as rows of the toxicity report: each method's file declares its rows here
(`contrast_row`), and the report and the frontier read them (`contrast_rows`), so a new method reaches both with
no other file touched. (Feature operators, the other half of the catalogue, are declared on their classes:
`steering.intervention.FeatureOperator`, read by `steering.methods.feature_operators`.)

A row is built at one strength from inputs fitted on contrast texts (toxic vs non-toxic):

    contrast_row(ContrastRow("DiffMean add", 2, lambda fits, cfg, c: add_relative(fits.diffs, c),
                             grid="diffmean_coef"))

`build(fits, cfg, strength)` reads what it needs by name from `fits` (the SAE as `fits.sae`; the fitted inputs
`diffs`, `thresholds`, `linear_act`, `aura_scores`, `toxic_features`, `firing_features`, `sparse`,
`concept_features`: evaluation.fits.Fits fits each on first use) and its settings from `cfg` (the report's options,
evaluation.config.ReportConfig); `grid` names the option holding its strengths (None: one setting).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steering.intervention import Intervention


@dataclass(frozen=True)
class ContrastRow:
    name: str
    position: int  # its place in the report's table: baselines first, then this project's SAE rows
    build: Callable[[Any, Any, Any], list[Intervention]]  # (fits, cfg, strength) → interventions
    grid: str | None = None  # the report option holding its strengths
    family: str = "activation"  # "prompt", "activation" or "sae": what the report's combined rows draw on
    prompting: Any = None  # a steering.methods.prompting.Prompting, for a row that changes the prompt


ROWS: dict[str, ContrastRow] = {}  # filled by `contrast_row` (steering.methods imports every method)


def contrast_row(row: ContrastRow) -> ContrastRow:
    """Declare a row. Declaring it again (its module run as `python -m`, say) replaces it; another row with its
    name is refused."""
    old = ROWS.get(row.name)
    if old is not None and (old.position, old.grid, old.family) != (row.position, row.grid, row.family):
        raise ValueError(f"Two report rows are named {row.name!r}; rename one")
    ROWS[row.name] = row
    return row


def contrast_rows() -> dict[str, ContrastRow]:
    """{name: row} of every declared row, in table order (import `steering.methods` first: it declares them all)."""
    return {r.name: r for r in sorted(ROWS.values(), key=lambda r: (r.position, r.name))}

