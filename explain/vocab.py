"""A fixed vocabulary of real words and their embeddings in the LM's output (unembedding) space.

Two vocabularies: `word_list` (the most frequent lowercase English words, wordfreq) and `cased_word_list`
(the most frequent word forms of a corpus as written: 'Paris', 'NASA', "don't", 'well-known'; the MI paper
keeps case too). e_w = mean of the unembedding rows of the word's sub-tokens, tokenised with a leading space
(the form a word takes mid-sentence), so words of several tokens are kept. Embeddings are cached per (model,
word list) on disk when `cache_dir` is given.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from wordfreq import top_n_list

from sae.data.local import local_path
from sae.files import atomic_file

_WORD = re.compile(r"^[a-z]+$")


def word_list(n: int = 5000, min_len: int = 1) -> list[str]:
    """The n most frequent lowercase alphabetic English words (wordfreq), de-duplicated, in frequency order."""
    if n <= 0:
        raise ValueError(f"The vocabulary needs at least one word; got n={n}")
    words, seen = [], set()
    for w in top_n_list("en", max(4 * n, 1000), wordlist="large" if n > 20_000 else "best"):
        if _WORD.match(w) and len(w) >= min_len and w not in seen:
            seen.add(w)
            words.append(w)
            if len(words) == n:
                break
    return words


_CASED = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*")


def cased_word_list(n: int = 5000, corpus: str = "wikitext2-valid") -> list[str]:
    """The n most frequent word forms of `corpus` (a bundled alias or a text file) as written, case kept,
    inner apostrophes and hyphens kept (WikiText's ' @-@ ' is read as '-', its <unk> dropped)."""


    if n <= 0:
        raise ValueError(f"The vocabulary needs at least one word; got n={n}")
    text = local_path(corpus).read_text(encoding="utf-8").replace(" @-@ ", "-").replace("<unk>", " ")
    counts = Counter(w for w in _CASED.findall(text) if len(w) > 1 or w in ("a", "A", "I"))  # not 's of "John 's"
    return [w for w, _ in counts.most_common(n)]


VOCABULARIES = {"lower": word_list, "cased": cased_word_list}


def unembedding(model) -> torch.Tensor:
    """W_U: (vocab, d) output embedding matrix."""
    return model.get_output_embeddings().weight.detach()


def word_token_ids(tokenizer, words: Sequence[str]) -> list[list[int]]:
    ids = tokenizer([" " + w for w in words], add_special_tokens=False).input_ids
    return [i if i else [tokenizer.unk_token_id or 0] for i in ids]


def vocab_embeddings(model, tokenizer, words: Sequence[str], cache_dir: str | Path | None = None) -> torch.Tensor:
    """(n_words, d) float32: e_w = mean of W_U rows of the word's sub-tokens."""
    if not words:
        raise ValueError("Empty vocabulary: give at least one word")
    path = None
    if cache_dir is not None:
        key = hashlib.sha1(("\n".join(words) + model.config._name_or_path + str(unembedding(model).shape)).encode())
        path = Path(cache_dir) / f"vocab-{key.hexdigest()[:16]}.safetensors"
        if path.is_file():
            return load_file(path)["embeddings"]
    W_U = unembedding(model).float()
    ids = word_token_ids(tokenizer, words)
    flat = torch.tensor([t for seq in ids for t in seq])
    offsets = torch.tensor([0] + [len(s) for s in ids[:-1]]).cumsum(0)
    emb = torch.nn.functional.embedding_bag(flat, W_U, offsets, mode="mean")
    if path is not None:
        with atomic_file(path) as tmp:  # a killed run never leaves a truncated cache that later runs trust
            save_file({"embeddings": emb.contiguous()}, tmp)
    return emb


def token_texts(tokenizer, ids: Sequence[int], longest: int = 4) -> list[str]:
    """Each token's text for display, aligned with `ids`: a character whose UTF-8 bytes are split over several
    byte-level tokens (℃, emoji, CJK) is shown whole on its first token and the others show "" — decoded one by
    one, each would be a "�". At most `longest` tokens are joined; a genuine "�" stays as it is."""
    texts = [tokenizer.decode([t]) for t in ids]
    i = 0
    while i < len(texts):
        if "\ufffd" in texts[i]:
            for j in range(i + 2, min(i + longest, len(texts)) + 1):
                joined = tokenizer.decode(list(ids[i:j]))
                if "\ufffd" not in joined:
                    texts[i : j] = [joined] + [""] * (j - i - 1)
                    i = j - 1
                    break
        i += 1
    return texts


def _byte_of_char() -> dict[str, int]:
    """Byte-level BPE's alphabet (GPT-2's): printable bytes stand for themselves, the other 68 are shifted to
    code points 256 and up; the inverse map, char → byte."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in kept]
    return {chr(b): b for b in kept} | {chr(256 + i): b for i, b in enumerate(shifted)}


BYTE_OF_CHAR = _byte_of_char()


def token_label(tokenizer, token: int) -> str:
    """One token's text for display on its own (a logit-lens or peak token): its decoded text, or, where that is
    a "�" because the token holds part of a character's UTF-8 bytes, the bytes it holds as sentencepiece writes
    them ("<0xE2><0x84>", which the page shows as they are). A token from a tokenizer that is not byte-level keeps
    its own piece (sentencepiece's own "<0xE2>")."""
    text = tokenizer.decode([token])
    if "\ufffd" not in text:
        return text
    piece = tokenizer.convert_ids_to_tokens(token)
    if not piece or any(c not in BYTE_OF_CHAR for c in piece):
        return piece or text
    text = bytes(BYTE_OF_CHAR[c] for c in piece).decode("utf-8", errors="backslashreplace")
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: f"<0x{m.group(1).upper()}>", text)
