"""Paired differences between concept-steering rows: each method's per-concept aggregate minus a reference's, with a
bootstrap 95 % CI over the test concepts both were run on (`concepts.paired_table`). Several report folders of the
same test set can be read together (a method named in more than one is taken from the first).

    python -m bench.concept_paired reports/steering/2026-12-06-concepts-per-concept \
        --references diffmean prompting --out reports/steering/2026-12-06-concepts-per-concept/paired.md
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from evaluation.concepts import paired_table
from sae.cli import arg, parse_options, run_cli
from sae.files import write_text
from sae.tables import markdown_table


def read_rows(folders: list[str]) -> list[dict]:
    rows, seen = [], set()
    for folder in folders:
        path = Path(folder) / "test_per_concept.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: give a folder written by evaluation.concept_bench")
        with open(path, newline="") as f:
            mine = list(csv.DictReader(f))
        rows += [r for r in mine if r["method"] not in seen]
        seen |= {r["method"] for r in mine}
    return rows


@dataclass(kw_only=True)
class Options:
    folders: list[str] = arg(positional=True)
    """concept_bench output folders (same test concepts)"""
    references: list[str] = arg(["diffmean", "prompting"])
    """the rows every method is paired with"""
    key: str = arg("aggregate", choices=["aggregate", "concept", "instruction", "fluency"])
    """the per-concept score compared"""
    out: str | None = None
    """also write the table here (markdown)"""


def main(argv=None) -> None:
    args = parse_options(Options, argv, "python bench/concept_paired.py", __doc__)
    table = paired_table(read_rows(args.folders), args.references, args.key)
    if not table:
        raise ValueError(f"None of {args.references} is a method in {args.folders}: name one with --references")
    text = markdown_table(table)
    print(text)
    if args.out:
        command = " ".join(["python -m bench.concept_paired", *(sys.argv[1:] if argv is None else argv)])
        write_text(Path(args.out), f"# Paired differences\n\n`{command}`\n\n{text}")


if __name__ == "__main__":
    run_cli(main)
