"""sae.config's registry, the one source of what each SAE architecture is: its class, whether it trains here,
whether it exports to SAELens, and the names other libraries give it. Every consumer reads it."""
import pytest

from sae.checkpoints import _saelens
from sae.config import REGISTRY, SAEConfig, architectures, from_foreign, register
from sae.export import export_saelens
from sae.model import TopKSAE, sae_class
from sae.train.module import SAEModule


def test_the_registry_says_what_each_architecture_can_do():
    assert architectures(trainable=True) == ("topk", "batchtopk", "matryoshka", "transcoder")
    assert architectures(exportable=True) == ("topk", "batchtopk", "matryoshka")
    assert set(architectures()) == {"topk", "batchtopk", "matryoshka", "transcoder", "jumprelu", "relu", "gated",
                                    "abstopk"}
    assert from_foreign("standard") == "relu" and from_foreign("jumprelu_skip_transcoder") == "transcoder"
    assert from_foreign("batchtopk") == "batchtopk" and from_foreign("crosscoder") is None
    assert all(sae_class(name) is a.cls for name, a in REGISTRY.items())


def test_consumers_refuse_by_the_registry_and_list_it():
    with pytest.raises(ValueError, match="cannot be trained here; choose one of topk, batchtopk, matryoshka, "
                                         "transcoder"):
        SAEModule(architecture="gated")
    with pytest.raises(ValueError, match="cannot be loaded; known: .*skip_transcoder, standard"):
        _saelens({"architecture": "crosscoder"}, {}, "folder")
    with pytest.raises(ValueError, match="Unknown SAE architecture 'crosscoder'"):
        SAEConfig(d_in=4, d_sae=8, k=2, architecture="crosscoder")


def test_a_new_architecture_is_one_registered_class(tiny_lm_dir, tmp_path):
    """Declared once, it is known to the config, the loader and the Lightning module; export refuses it by the flag."""
    @register("toy-topk", trainable=True, foreign=("their-topk",))
    class ToyTopK(TopKSAE):
        pass

    try:
        cfg = SAEConfig(d_in=8, d_sae=16, k=2, hook_point="blocks.0.resid_post", architecture="toy-topk")
        assert type(sae_class(cfg.architecture)(cfg)) is ToyTopK and from_foreign("their-topk") == "toy-topk"
        module = SAEModule(model_name=str(tiny_lm_dir), hook_points=["blocks.1.resid_post"], architecture="toy-topk")
        assert module.hparams.architecture == "toy-topk"
        with pytest.raises(ValueError, match="export_saelens writes topk, batchtopk, matryoshka SAEs; this one is "
                                             "'toy-topk'"):
            export_saelens(ToyTopK(cfg), tmp_path / "out")
    finally:
        REGISTRY.pop("toy-topk")
