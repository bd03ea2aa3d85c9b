"""reports/: every run folder says what it asked and answered, and the generated index is current."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("reports_index", ROOT / "bench" / "reports_index.py")
reports_index = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reports_index)


def test_every_report_folder_has_a_manifest_and_a_readme_with_question_answer_status():
    found = reports_index.folders()
    assert len(found) >= 30
    for f in found:
        rel = f.relative_to(ROOT / "reports").parts
        assert rel[0] in ("sae", "steering", "explain", "archive") and len(rel) == (3 if rel[0] == "archive" else 2), f
        s = reports_index.summary(f)
        assert s["command"] and s["question"] and s["answer"] and s["status"], (f, s)
    # a folder of any other depth would not be indexed: every results folder holds a manifest
    loose = [p for p in (ROOT / "reports").glob("*/*/*.md") if p.parent.parent.name != "archive"
             and not (p.parent / "manifest.json").is_file()]
    assert loose == []


def test_the_index_is_generated_from_the_folders():
    assert (ROOT / "reports" / "README.md").read_text() == reports_index.index()


def test_the_index_lists_a_new_folder_from_its_manifest_and_readme(tmp_path):
    run = tmp_path / "steering" / "2026-12-06-demo"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text('{"command": "python -m evaluation.report --quick"}')
    (run / "README.md").write_text("# demo\n\n- question: q?\n- answer: a.\n- status: current\n")
    old = tmp_path / "archive" / "sae" / "2026-11-01-old"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text('{"command": "make sweep"}')
    text = reports_index.index(tmp_path)
    current, archive = text.split("## Archive")
    assert "steering/2026-12-06-demo" in current and "| q? | a. |" in current and "--quick" in current
    assert "archive/sae/2026-11-01-old" in archive and "(no README.md yet)" in archive
