"""What a non-editable install must do, run from outside the checkout (tests/test_install.py and
bench/install_check.sh): the installed copy is the one imported, the bundled data is found, the shipped SAE and
the embedded LM load, and one steered generation differs from the plain one.

    python bench/installed_smoke.py EXPECTED   # EXPECTED: a string the installed package's path must contain
"""
import sys

import torch

import sae
from sae.data.local import BUNDLED, DATA_DIR
from sae.lm import load_lm
from sae.model import TopKSAE
from steering.intervention import AddVector, steer

expected = sys.argv[1]
assert expected in sae.__file__ and expected in str(DATA_DIR), (sae.__file__, DATA_DIR)  # not the checkout
assert BUNDLED["wikitext2-test"].is_file(), BUNDLED
s = TopKSAE.pretrained("smollm2-135m", "blocks.15.resid_post")
model, tok = load_lm("smollm2-135m")
enc = tok(["The weather today is"], return_tensors="pt")
gen = lambda: model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
plain = gen()
with steer(model, [AddVector(s.cfg.hook_point, s.W_dec[2442].detach(), coef=40.0)], positions="generated"):
    steered = gen()
assert not torch.equal(plain, steered)
new = enc.input_ids.shape[1]
print("ok", s.d_sae, "installed at", sae.__file__, "| plain:", repr(tok.decode(plain[0, new:])), "| steered:",
      repr(tok.decode(steered[0, new:])))
