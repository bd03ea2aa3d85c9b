"""Every Python block of the README runs, in order, in one namespace — on a tiny model standing in for
SmolLM2 (same hook names, small widths) — and every command-line entry point it shows answers --help."""
import ast
import builtins
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sae.lm
from sae.config import SAEConfig
from sae.model import TopKSAE
from tests.conftest import make_tiny, make_tokenizer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


CONTINUES = "# continues the block above"  # the only way a README block may use another block's names


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def names_used_and_bound(code: str) -> tuple[set[str], set[str]]:
    """(names a block reads, names it binds: assignments, imports, defs, arguments, loop and `with` targets)."""
    used, bound = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return used, bound


def test_every_block_defines_what_it_uses_or_says_it_continues():
    """A newcomer copies one block: it must run alone, or open with CONTINUES and use only what the blocks
    before it in its chain define."""
    chain: set[str] = set()
    for i, block in enumerate(blocks("python")):
        used, bound = names_used_and_bound(block)
        chain = (chain if block.startswith(CONTINUES) else set()) | bound
        missing = sorted(used - chain - set(dir(builtins)))
        assert not missing, f"README python block {i + 1} uses {missing}, defined by no earlier block of its chain " \
                            f"(define them, or open the block with {CONTINUES!r}):\n{block}"


def test_python_blocks_run(tmp_path, monkeypatch):
    tiny = tmp_path / "tiny"
    make_tiny("llama", n_layers=21, d=32, d_mlp=64).save_pretrained(tiny)
    tok = make_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
    tok.save_pretrained(tiny)
    real = sae.lm.load_lm
    monkeypatch.setattr(sae.lm, "load_lm", lambda name="smollm2-135m", *a, **k: real(str(tiny)))
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    TopKSAE(SAEConfig(d_in=32, d_sae=128, k=4, hook_point="blocks.15.resid_post", model_name="smollm2-135m")).save(
        tmp_path / "runs/smollm2-135m/sae/blocks.15.resid_post")
    # the shipped SAE is SmolLM2's (d_in 576): the tiny stand-in model gets a tiny stand-in SAE
    monkeypatch.setattr(TopKSAE, "pretrained", classmethod(
        lambda cls, *a, **k: cls.load(tmp_path / "runs/smollm2-135m/sae/blocks.15.resid_post")))
    # the explanations the README's pipeline snippet reads, written by the real explainer
    from explain.explanations import ExplainConfig, explain_features, write_jsonl
    from sae.data.text import TextSource

    model, tok = sae.lm.load_lm()
    windows = TextSource("wikitext2-valid", ctx_len=32).load(tok, 16)
    write_jsonl(explain_features(model, tok, TopKSAE.pretrained(), windows, ExplainConfig(words=300, top_m=5)),
                tmp_path / "runs/smollm2-135m/explanations.jsonl")
    # the scores shipped beside each pretrained SAE are SmolLM2's: the stand-in's come from its explanations
    import explain.writers
    from explain.records import load_explanations

    stand_in = load_explanations(tmp_path / "runs/smollm2-135m/explanations.jsonl")
    monkeypatch.setattr(explain.writers, "shipped_scores", lambda: {"smollm2-135m/blocks.15.resid_post": stand_in})
    # the published SAE the README's "Use a published SAE" snippet loads: written by sae-lens itself
    from sae_lens.registry import SAE_CLASS_REGISTRY
    from sae_lens.saes.sae import SAEMetadata

    jumprelu, jumprelu_cfg = SAE_CLASS_REGISTRY["jumprelu"]
    published = jumprelu(jumprelu_cfg(d_in=32, d_sae=64, metadata=SAEMetadata(hook_name="blocks.15.hook_resid_post")))
    with torch.no_grad():
        for p in published.parameters():
            p.copy_(torch.rand(p.shape) * 0.1)
    published.save_model(tmp_path / "downloads" / "saelens-sae")
    code = blocks("python")
    assert len(code) >= 5
    chains: list[dict] = []  # one namespace per chain of blocks
    for i, block in enumerate(code):
        if not block.startswith(CONTINUES):  # a block that does not say it continues runs on its own
            chains.append({})
        namespace = chains[-1]
        try:
            exec(compile(block, f"README python block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the block that rotted
            raise AssertionError(f"README python block {i + 1} failed: {e!r}\n{block}") from e
    assert chains[0]["acts"].acts["blocks.15.resid_post"].shape[1] == 32
    steering = next(c for c in chains if "continuation" in c)  # the SAE-feature block printed both texts
    assert isinstance(steering["continuation"](), str) and len(chains) >= 6


def commands() -> list[list[str]]:
    """python -m X / python script.py invocations shown in bash blocks, reduced to their subcommand."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#")[0]) if line.strip() else []
            if words[:1] != ["python"]:
                continue
            head = words[1:3] if words[1] == "-m" else words[1:2]
            rest = words[len(head) + 1 :]
            sub = [rest[0]] if rest and not rest[0].startswith("-") and rest[0] in {"fit", "rank", "apply", "build",
                                                                                    "serve", "validate"} else []
            out.append(head + sub)
    return [list(c) for c in dict.fromkeys(tuple(c) for c in out)]


@pytest.mark.parametrize("cmd", commands(), ids=lambda c: " ".join(c))
def test_commands_answer_help(cmd):
    proc = subprocess.run([sys.executable, *cmd, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower()
