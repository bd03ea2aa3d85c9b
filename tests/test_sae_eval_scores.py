import numpy as np
import pytest
import torch
from scipy.stats import pointbiserialr
from sklearn.metrics import average_precision_score, roc_auc_score

from sae.eval.scores import aucpr, auroc, cohens_d, point_biserial


@pytest.fixture(params=["continuous", "ties"])
def data(request):
    g = torch.Generator().manual_seed(0)
    y = torch.rand(300, generator=g) < 0.3
    r = torch.randn(300, 50, generator=g) + y[:, None] * torch.linspace(-1, 2, 50)
    if request.param == "ties":
        r = (r * 2).round()  # heavy ties, as ReLU'd or max-pooled responses have
        r[:, 0] = 0  # a constant unit
    return r, y


def test_auroc_matches_sklearn(data):
    r, y = data
    ref = [roc_auc_score(y.numpy(), r[:, j].numpy()) for j in range(r.shape[1])]
    assert np.allclose(auroc(r, y, chunk=7).numpy(), ref, atol=1e-6)


def test_aucpr_matches_sklearn(data):
    r, y = data
    ref = [average_precision_score(y.numpy(), r[:, j].numpy()) for j in range(r.shape[1])]
    assert np.allclose(aucpr(r, y, chunk=7).numpy(), ref, atol=1e-6)


def test_point_biserial_matches_scipy(data):
    r, y = data
    r = r[:, 1:]  # scipy returns nan for a constant unit
    ref = [pointbiserialr(y.numpy(), r[:, j].numpy()).statistic for j in range(r.shape[1])]
    assert np.allclose(point_biserial(r, y).numpy(), ref, atol=1e-5)


def test_cohens_d_matches_formula(data):
    r, y = data
    r = r[:, 1:].double().numpy()
    a, b = r[y.numpy()], r[~y.numpy()]
    pooled = np.sqrt(((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / (len(a) + len(b) - 2))
    assert np.allclose(cohens_d(torch.tensor(r), y).numpy(), (a.mean(0) - b.mean(0)) / pooled, atol=1e-5)


def test_needs_both_labels():
    with pytest.raises(ValueError, match="both labels.*0 negative"):
        auroc(torch.randn(5, 3), torch.ones(5))
    with pytest.raises(ValueError, match="N texts, U units"):
        auroc(torch.randn(5, 3), torch.tensor([0, 1]))
