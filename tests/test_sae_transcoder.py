"""Training transcoders with the same trainer and CLI: blocks.N.mlp_in → blocks.N.mlp_out, with and without a skip
connection; the saved transcoder takes raw activations and predicts raw ones."""
import pytest
import torch

from sae.model import TopKSAE
from sae.train.datamodule import ActivationDataModule
from sae.train.metrics import SAEStats, evaluate_saes

IN, OUT = "blocks.1.mlp_in", "blocks.1.mlp_out"


@pytest.mark.parametrize("skip", [False, True], ids=["plain", "skip"])
def test_train_py_trains_a_transcoder_that_predicts_the_mlp_output(tmp_path, tiny_lm_dir, skip, capsys):
    import train

    train.main(["fit", "--trainer.max_steps=150", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
                "--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=2", "--trainer.accelerator=cpu",
                "--data.val_windows=4", f"--data.model_name={tiny_lm_dir}", f"--data.hook_points=[{IN}]",
                f"--data.target_hook_points=[{OUT}]", "--data.ctx_len=32", "--data.batch_size=128",
                "--data.max_tokens=20000", f"--data.cache_dir={tmp_path / 'cache'}", "--model.architecture=transcoder",
                "--model.expansion_factor=4", "--model.k=8", f"--model.skip={str(skip).lower()}",
                "--model.warmup_steps=5", f"--model.save_dir={tmp_path / 'out'}",
                f"--trainer.default_root_dir={tmp_path}"])
    printed = capsys.readouterr().out
    assert f"val/{IN}/ce_recovered" in printed and f"val/{IN}/fvu" in printed
    tc = TopKSAE.load(tmp_path / "out" / IN)
    assert type(tc).__name__ == "TranscoderSAE" and (tc.cfg.hook_point, tc.writes_at) == (IN, OUT)
    assert tc.cfg.skip == skip and tc.cfg.max_l0 == tc.cfg.k == 8
    # held-out: its prediction of the MLP's output beats the output's mean, with raw activations in and out
    dm = ActivationDataModule(model_name=tiny_lm_dir, hook_points=[IN], target_hook_points=[OUT], ctx_len=32,
                              batch_size=256, max_tokens=4000, val_path="wikitext2-test", train_path="wikitext2-test")
    batch = next(dm.batches())
    with torch.no_grad():
        pred = tc.transcode(batch[IN])
    y = batch[OUT]
    fvu = ((y - pred).pow(2).sum() / (y - y.mean(0)).pow(2).sum()).item()
    assert fvu < 0.6, fvu  # (a least-squares linear map from the MLP's input gets about 0.8 on this tiny LM)
    # spliced in place of the MLP, the LM's loss moves less than with the MLP's output removed
    model = dm.lm[0]
    stats = SAEStats(tc.d_sae)
    evaluate_saes(model, dm.val_source.load(dm.lm[1], max_windows=4), [(IN, tc)], [stats], 10.0)
    row = stats.compute()
    assert abs(row["ce_loss_sae"] - row["ce_loss_clean"]) < abs(row["ce_loss_zero"] - row["ce_loss_clean"]), row
    assert row["fvu"] < 0.6 and 0 < row["l0"] <= 8, row


def test_a_transcoder_needs_one_target_per_hook_and_an_sae_none():
    from sae.train.module import SAEModule

    with pytest.raises(ValueError, match="one --data.target_hook_points entry per hook point"):
        SAEModule(hook_points=[IN], architecture="transcoder")
    with pytest.raises(ValueError, match="other architectures take none"):
        SAEModule(hook_points=[IN], target_hook_points=[OUT], architecture="topk")


def test_raw_directions_are_what_one_more_unit_of_a_latent_adds_to_the_output():
    """FeatureAdd and the output scores add these rows: a transcoder's are in its *output* units (W_dec / s_out);
    dividing by the input scale, as both once did, would steer with the wrong length."""
    from sae.config import SAEConfig
    from sae.transcoder import TranscoderSAE

    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=8, d_sae=16, k=4))
    tc = TranscoderSAE(SAEConfig(d_in=8, d_sae=16, k=4, architecture="transcoder", d_out=6))
    sae.scale.fill_(3.0)
    tc.scale.fill_(3.0)
    tc.scale_out.fill_(0.5)
    values, indices = torch.rand(1, 4), torch.tensor([[2, 5, 7, 9]])
    bumped = values.clone()
    bumped[0, 1] += 1.0  # latent 5, one unit more
    assert torch.allclose(sae.decode(bumped, indices) - sae.decode(values, indices), sae.raw_directions([5]),
                          atol=1e-5)
    x = torch.randn(1, 8)
    enc = tc.encode(x)
    more = enc.values.clone()
    more[0, 0] += 1.0
    grown = (tc._predict(tc._check(x), enc._replace(values=more)) - tc._predict(tc._check(x), enc)) / tc.scale_out
    assert torch.allclose(grown, tc.raw_directions(enc.indices[0, :1]), atol=1e-5)
    assert tc.raw_directions().shape == (16, 6)
