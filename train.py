"""Train SAEs with LightningCLI: the SAE module and the activation data module of `sae.train`.

    python train.py fit --config configs/smollm2-135m.yaml
    python train.py fit --config configs/smollm2-135m.yaml --trainer.max_epochs 2 --model.k 64
    python train.py fit --config configs/smollm2-135m.yaml --trainer.precision bf16-mixed
    python train.py fit --help          (every option, with its help text)

The command-line interface lives in `sae/train/cli.py`, so an installed package trains the same way.
"""
from sae.cli import run_cli
from sae.train.cli import main

if __name__ == "__main__":
    run_cli(main)
