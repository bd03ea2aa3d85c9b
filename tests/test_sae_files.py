"""sae/files.py: a command replaces only folders whose record says it wrote every file in them, and runs that
write the same folder at once never break each other (issue 46). Each test failed on the code before."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from reliability_helpers import ROOT, tiny_sae, write_records

from explain.browse import build
from sae.files import MARKER, output_dir
from sae.model import TopKSAE
from sae.train.harvest import read_cache_meta, write_cache


def test_a_users_files_named_like_ours_are_never_replaced(tmp_path):
    """`browse build --out DIR` used to delete DIR's own index.html and features/notes.txt: judged ours by name."""
    expl = write_records(tmp_path / "explanations.jsonl", [0, 1])
    mine = tmp_path / "mine"
    (mine / "features").mkdir(parents=True)
    (mine / "index.html").write_text("my page")
    (mine / "features" / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match=r"features/notes.txt, index.html; no saesteer command recorded"):
        build(expl, mine)
    assert (mine / "index.html").read_text() == "my page"
    assert (mine / "features" / "notes.txt").read_text() == "my notes"
    # a site of ours, with a file the user added later: refused too, naming that file alone
    site = build(expl, tmp_path / "site")
    record = json.loads((site / MARKER).read_text())
    assert record["kind"] == "site" and "index.html" in record["files"] and "features/0.js" in record["files"]
    (site / "features" / "notes.txt").write_text("added by hand")
    with pytest.raises(FileExistsError, match=r"\(features/notes.txt; no saesteer command"):
        build(expl, site)
    (site / "features" / "notes.txt").unlink()
    build(expl, site)  # wholly ours again: replaced
    # an SAE folder is another command's output: a site build never replaces it, although every file is recorded
    sae_dir = tiny_sae().save(tmp_path / "sae")
    with pytest.raises(FileExistsError, match=r"the output of another command \(sae\)"):
        build(expl, sae_dir)
    assert TopKSAE.load(sae_dir).d_sae == 64


def test_an_sae_save_never_replaces_a_folder_it_did_not_record(tmp_path):
    folder = tmp_path / "downloaded"
    folder.mkdir()
    (folder / "cfg.json").write_text('{"mine": true}')  # a user's SAELens folder, say
    with pytest.raises(FileExistsError, match="cfg.json"):
        tiny_sae().save(folder)
    assert json.loads((folder / "cfg.json").read_text()) == {"mine": True}
    out = tiny_sae().save(tmp_path / "ours")
    tiny_sae(k=8).save(out)  # our own earlier save: replaced
    assert TopKSAE.load(out).cfg.k == 8 and json.loads((out / MARKER).read_text())["kind"] == "sae"


def test_a_failed_build_leaves_nothing_and_the_previous_output_intact(tmp_path):
    out = tmp_path / "out"
    with output_dir(out, "thing") as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), output_dir(out, "thing") as tmp:
        (tmp / "a.txt").write_text("second")
        raise RuntimeError("killed half-way")
    assert (out / "a.txt").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


SAVER = textwrap.dedent("""
    import sys
    import torch
    from sae.config import SAEConfig
    from sae.model import TopKSAE
    seed, folder, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    torch.manual_seed(seed)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=256, k=4))
    sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()  # start together
    for _ in range(n):
        sae.save(folder)
    print("saved", n)
""")


def test_two_processes_saving_one_folder_both_succeed_and_the_result_is_whole(tmp_path):
    """150 saves from each of two processes used to fail 8-50 times each with FileNotFoundError, SafetensorError
    or [Errno 39]: each run's clean-up removed the other live run's temp folder."""
    folder = tmp_path / "sae"
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(seed), str(folder), "60"], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for seed in (1, 2)]
    for p in procs:
        assert p.stdout.readline() == "ready\n"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and "saved 60" in out, err[-2000:]
    sae = TopKSAE.load(folder)  # whole: one of the two, not a mix
    torch.manual_seed(1)
    first = TopKSAE(sae.cfg).W_dec
    torch.manual_seed(2)
    assert any(torch.equal(sae.W_dec, w) for w in (first, TopKSAE(sae.cfg).W_dec))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]  # no temp folder or old copy left


def test_a_live_runs_cache_is_not_cleaned_up_by_another_run(tmp_path):
    """Two `train.py fit` runs sharing a cache: one died with [Errno 2] on '….cache.XXXX.tmp/…' because the other
    removed its temp folder as "half-built"."""
    cache = tmp_path / "cache"
    batch = {"blocks.0.resid_post": torch.ones(8, 4)}

    def stream():
        yield batch
        write_cache(cache, iter([batch]), {"run": "second"})  # another run, while this one is mid-write
        yield batch

    write_cache(cache, stream(), {"run": "first"})
    assert read_cache_meta(cache)["run"] == "first" and not [p for p in tmp_path.iterdir() if p.name != "cache"]


def test_a_report_folder_is_claimed_before_any_work_and_a_users_folder_refused(tmp_path):
    """Reports write into their folder over time (a rerun resumes from its cache): a folder of the user's, even
    one holding a file called report.md, is refused up front; the command's own folder is taken again."""
    from sae.files import claim_folder

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("my report")
    with pytest.raises(FileExistsError, match="report.md"):
        claim_folder(theirs, "python -m evaluation.report")
    assert (theirs / "report.md").read_text() == "my report" and not (theirs / MARKER).exists()
    ours = claim_folder(tmp_path / "ours", "python -m evaluation.report")
    (ours / "report.md").write_text("ours")
    assert claim_folder(ours, "python -m evaluation.report") == ours  # a rerun resumes it
    with pytest.raises(FileExistsError, match="did not write"):
        claim_folder(ours, "python -m evaluation.frontier")  # another command's report
    legacy = tmp_path / "legacy"  # a report written before markers: its manifest names the command
    legacy.mkdir()
    (legacy / "manifest.json").write_text(json.dumps({"command": "python -m sae.eval runs/a runs/b"}))
    assert claim_folder(legacy, "python -m sae.eval") == legacy
