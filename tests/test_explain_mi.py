import pytest
import torch

from explain.mi import mi_explain, mutual_information
from explain.vocab import vocab_embeddings, word_list, word_token_ids
from tests.conftest import make_tiny


def planted(n_words=1000, d=128, n_features=200, per=3, noise=0.1, junk_scale=0.0, seed=0):
    """Features = sums of `per` word embeddings + noise (+ optionally a direction every feature shares,
    which word 0 is aligned with: a frequent, uninformative word)."""
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(n_words, d, generator=g)
    junk = torch.randn(d, generator=g) * (junk_scale > 0)
    E[0] = junk * junk_scale if junk_scale else E[0]
    words = torch.stack([torch.randperm(n_words - 1, generator=g)[:per] + 1 for _ in range(n_features)])
    dirs = E[words].sum(1) + junk + noise * torch.randn(n_features, d, generator=g) * d**0.5
    return E, dirs, words


def recovered(top, words) -> float:
    return sum(set(t.tolist()) == set(w.tolist()) for t, w in zip(top, words)) / len(words)


@pytest.mark.parametrize("tau", [None, 32.0])
def test_planted_words_are_recovered_at_the_top(tau):
    E, dirs, words = planted()
    scores, top = mi_explain(dirs, E, tau=tau, top_m=3)
    assert recovered(top, words) > 0.95
    assert (scores[:, 0] >= scores[:, 1]).all() and (scores[:, 1] >= scores[:, 2]).all()
    # The reversed objective (rank by −contribution) must fail: this guards the direction.
    _, wrong = mi_explain(-dirs, E, tau=tau, top_m=3)
    assert recovered(wrong, words) < 0.05


def test_shared_word_is_discounted_where_plain_softmax_takes_it():
    E, dirs, words = planted(junk_scale=1.1)
    _, top = mi_explain(dirs, E, top_m=3)
    plain = (dirs @ E.T).softmax(-1).topk(3).indices
    assert (plain[:, 0] == 0).float().mean() > 0.3  # p(w|c) alone puts the shared word first often
    assert (top == 0).any(1).float().mean() < 0.35  # MI rarely keeps it anywhere in the top 3
    assert recovered(top, words) > 5 * recovered(plain, words)


def test_chunking_and_mi_value():
    E, dirs, _ = planted(n_features=50)
    a = mi_explain(dirs, E, tau=4.0, chunk=7)
    b = mi_explain(dirs, E, tau=4.0, chunk=1000, keep_bytes=0)  # recomputed second pass
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.equal(a[1], b[1])
    mi = mutual_information(dirs, E, tau=4.0)
    assert 0 < mi <= torch.log(torch.tensor(50.0)).item() + 1e-4  # I(C;W) ≤ H(C)


def test_errors():
    with pytest.raises(ValueError, match="Empty vocabulary"):
        mi_explain(torch.randn(3, 8), torch.zeros(0, 8))
    with pytest.raises(ValueError, match="do not match"):
        mi_explain(torch.randn(3, 8), torch.randn(5, 16))
    with pytest.raises(ValueError, match="at least one word"):
        word_list(0)


def test_vocab_embeddings_are_mean_unembedding_rows(tokenizer, tmp_path):
    model = make_tiny("llama")
    words = ["river", "music", "extraordinarily"]
    E = vocab_embeddings(model, tokenizer, words, cache_dir=tmp_path)
    W_U = model.get_output_embeddings().weight.detach()
    for w, e in zip(words, E):
        ids = tokenizer(" " + w, add_special_tokens=False).input_ids
        assert torch.allclose(e, W_U[ids].mean(0), atol=1e-6)
    assert len(word_token_ids(tokenizer, ["extraordinarily"])[0]) > 1  # a multi-token word is averaged
    assert torch.equal(vocab_embeddings(model, tokenizer, words, cache_dir=tmp_path), E)  # from the cache
    assert len(list(tmp_path.glob("vocab-*.safetensors"))) == 1


def test_word_list_is_clean():
    words = word_list(2000)
    assert len(words) == 2000 == len(set(words))
    assert all(w.isalpha() and w.islower() for w in words) and words[0] == "the"
