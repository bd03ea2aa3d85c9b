"""The catalogue of steering methods: feature operators (steering.methods.feature_operators) and the report's rows
(steering.catalogue). A method declared in one file reaches the live browser (operator list, defaults, API,
snippet), the concept benchmark and the toxicity report's rows with no other file touched."""
import importlib.util
import sys

import pytest
import torch

from evaluation.concept_bench import FEATURE_ROWS, GRIDS
from evaluation.config import ReportConfig
from evaluation.fits import Fits
from evaluation.report import check_config, report_rows, rows_for
from explain.live import LiveModel, SteerRequest, operators, snippet, steer_defaults
from explain.server import make_app
from sae.config import SAEConfig
from sae.model import TopKSAE
from steering.catalogue import ROWS, contrast_rows
from steering.features import Chosen
from steering.intervention import Intervention
from steering.methods import build_feature_operator, feature_operators
from steering.methods.sae_add import FeatureAdd
from tests.conftest import make_tiny

TOY = '''
import torch
from steering.catalogue import ContrastRow, contrast_row
from steering.intervention import FeatureOperator, Intervention
from steering.methods.sae_features import feature_directions


class ToyShift(Intervention):
    """x + gain · Σ_f d_f: the smallest feature operator, in one file."""

    operator = FeatureOperator("toy-shift", "gain", default=2.0, grid=(1.0, 2.0), scale="max_act")
    width_of = "vector"
    scalars = ("gain",)

    def __init__(self, hook_point, vector, gain=1.0):
        super().__init__(hook_point)
        self.register_buffer("vector", torch.as_tensor(vector, dtype=torch.float32))
        self.gain = float(gain)

    @classmethod
    def from_sae(cls, sae, features, gain=1.0):
        return cls(sae.writes_at, feature_directions(sae, features).sum(1), gain)

    def apply(self, x):
        return x + self.gain * self.vector.to(x)


# its row in the toxicity report: shift away from the SAE's toxicity features, over the amplification grid
contrast_row(ContrastRow("SAE toy shift", 14, family="sae", grid="amplify_alpha", build=lambda fits, cfg, a: [
    ToyShift.from_sae(fits.sae, fits.toxic_features.features[:4], gain=a)]))
'''


@pytest.fixture
def toy(tmp_path):
    """The toy method's file, imported as a user's module would be; unregistered afterwards."""
    (tmp_path / "toy_method.py").write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_method", tmp_path / "toy_method.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module.ToyShift
    finally:
        Intervention.registry.pop("ToyShift", None)
        ROWS.pop("SAE toy shift", None)
        sys.modules.pop("toy_method", None)


def test_the_shipped_operators_and_their_declared_defaults():
    ops = feature_operators()
    assert set(ops) >= {"amplify", "calibrate", "inject", "add"} and ops["add"] is FeatureAdd
    assert list(operators())[0] == "add"  # the page's default first
    assert steer_defaults()["amplify"] == {"times": 4.0, "of": None}
    assert steer_defaults()["add"] == {"times": 4.0, "of": "max_act"}
    assert {r: GRIDS[r] for r in FEATURE_ROWS} == {"amplify": [4.0, 16.0, 64.0], "calibrate": [1.0, 2.0, 4.0],
                                                   "inject": [1.0, 2.0, 4.0], "add-input": [2.0, 4.0, 8.0]}


def test_a_strength_is_a_multiple_of_the_features_max_act_where_declared():
    sae = TopKSAE(SAEConfig(d_in=8, d_sae=16, k=2, hook_point="blocks.0.resid_post"))
    assert build_feature_operator("add", sae, [3], 2.0, max_act=5.0).vector.norm() == pytest.approx(
        FeatureAdd.from_sae(sae, [3], m=10.0).vector.norm())
    assert build_feature_operator("amplify", sae, [3], 2.0).alpha == 2.0  # no scale: used as it is
    with pytest.raises(ValueError, match="pass max_act"):
        build_feature_operator("inject", sae, [3], 2.0)
    with pytest.raises(ValueError, match="Unknown feature operator 'boost'; the operators are amplify"):
        build_feature_operator("boost", sae, [3], 2.0)


def test_a_method_in_one_file_reaches_every_surface(toy, tokenizer, tmp_path):
    from fastapi.testclient import TestClient

    assert feature_operators()["toy-shift"] is toy and "toy-shift" in operators()
    assert steer_defaults()["toy-shift"] == {"times": 2.0, "of": "max_act"}
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point="blocks.1.resid_post", model_name="tiny"))
    assert build_feature_operator("toy-shift", sae, [1], 3.0, max_act=2.0).gain == 6.0
    model = make_tiny("llama", d=32)
    with torch.no_grad():  # peaked next-token distributions, as a trained LM has (tests/test_explain_live.py says why)
        model.model.norm.weight.mul_(30.0)
    lm = LiveModel(model, tokenizer, sae, name="tiny")
    (tmp_path / "index.html").write_text("<html></html>")
    client = TestClient(make_app(tmp_path, lm), base_url="http://127.0.0.1")
    health = client.get("/api/health").json()
    assert "toy-shift" in health["operators"] and health["steer_defaults"]["toy-shift"]["times"] == 2.0
    req = {"prompt": "The town", "features": [1], "operator": "toy-shift", "strength": 400.0, "max_new_tokens": 6}
    out = client.post("/api/steer", json=req)
    assert out.status_code == 200 and out.json()["steered"] != out.json()["unsteered"]
    code = snippet("tiny", sae, [1], SteerRequest(**req))
    assert "from toy_method import ToyShift" in code and "ToyShift.from_sae(sae, [1], gain=400.0)" in code
    # the toxicity report: its row list, --rows, and the row itself built from the fitted inputs it names
    assert report_rows()[-1] == "SAE toy shift" and "SAE toy shift" in contrast_rows()
    cfg = ReportConfig(rows=["SAE toy shift"], amplify_alpha=[-0.5, -1.0])
    check_config(cfg)
    fits = Fits(cfg, model, tokenizer, sae, [], tmp_path)
    fits.toxic_features = Chosen([5, 6, 7, 8, 9], [1.0] * 5, "given")  # what for_removal would have chosen
    rows = {m.name: m for m in rows_for(cfg, fits)}
    assert list(rows) == ["original", "SAE toy shift"] and rows["SAE toy shift"].grid == [-0.5, -1.0]
    (iv,) = rows["SAE toy shift"].make(-0.5)
    assert type(iv) is toy and iv.gain == -0.5 and torch.allclose(iv.vector, sae.W_dec[5:9].sum(0))


def test_an_unknown_operator_is_refused_naming_the_catalogue(tokenizer, tmp_path):
    from fastapi.testclient import TestClient

    sae = TopKSAE(SAEConfig(d_in=32, d_sae=40, k=4, hook_point="blocks.1.resid_post"))
    (tmp_path / "index.html").write_text("<html></html>")
    client = TestClient(make_app(tmp_path, LiveModel(make_tiny("llama", d=32), tokenizer, sae)),
                        base_url="http://127.0.0.1")
    out = client.post("/api/steer", json={"prompt": "The", "features": [1], "operator": "boost"})
    assert out.status_code == 422 and "unknown operator 'boost'; the operators are add" in out.text


def test_two_operators_with_one_name_are_refused(toy):
    class Clash(toy):
        pass

    Clash.operator = toy.operator  # declared on the class itself, as a copied method file would
    try:
        with pytest.raises(ValueError, match="Two feature operators are named 'toy-shift'"):
            feature_operators()
    finally:
        Intervention.registry.pop("Clash", None)
