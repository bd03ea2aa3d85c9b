import torch

from explain.output_score import output_scores, summarise
from explain.vocab import word_list, word_token_ids
from sae.config import SAEConfig
from sae.model import TopKSAE
from tests.conftest import make_tiny


def test_a_feature_writing_a_words_unembedding_scores_that_word_high(tokenizer):
    model = make_tiny("llama", n_layers=2)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, hook_point="blocks.1.resid_post"))  # the last layer
    vocab = word_list(5000)
    planted = next(w for w in vocab[200:] if len(word_token_ids(tokenizer, [w])[0]) == 1)
    row = model.get_output_embeddings().weight.detach()[word_token_ids(tokenizer, [planted])[0][0]]
    with torch.no_grad():
        sae.W_dec[3] = row / row.norm()  # feature 3 writes the planted word's unembedding direction
    others = [w for w in vocab[300:320] if w != planted][:5]
    words = {"right": {3: [planted]}, "wrong": {3: others}, "mixed": {3: [planted] + others[:4]}}
    rows = output_scores(model, tokenizer, sae, words, {3: 2.0}, prompts=["The", "It was a", "In the"],
                         new_tokens=4, embedder=_embedder())
    by = {r["method"]: r for r in rows}
    # a random tiny LM's logits move by < 1 nat at most (‖W_U row‖ ≈ 0.1): 0.3 nats is most of that range
    assert by["right"]["logprob_gain"] > 0.3  # nats above the control words
    assert by["right"]["logprob_gain"] > by["mixed"]["logprob_gain"] > by["wrong"]["logprob_gain"]
    assert abs(by["wrong"]["logprob_gain"]) < 0.2 * by["right"]["logprob_gain"]
    # the steered continuations say the planted word, so they read like the right explanation
    assert by["right"]["similarity"] > 0.3 and by["right"]["similarity"] > by["mixed"]["similarity"] > \
        by["wrong"]["similarity"]
    table = {r["method"]: r for r in summarise(rows)}
    assert table["right"]["features"] == 1 and table["right"]["logprob_gain_low"] <= table["right"]["logprob_gain"]


def _embedder():
    from sae.embed import load_embedder

    return load_embedder()
