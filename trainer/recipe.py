"""The training recipes: which techniques each turns on (REFERENCE.md section 10).

"nanogpt" is nanoGPT's GPT-2 with AdamW, byte-for-byte compatible with its checkpoints. "modern" takes the
speed-running community's measured techniques (modded-nanogpt) that our own benchmark (bench/recipe.py: 2
corpora x 3 seeds, paired ablation) finds helpful: rotary positions, QK-norm, RMSNorm and Muon for the hidden
matrices. ReLU², zero-initialised output projections, an untied zero-initialised head and a tanh logit cap
are keys of their own, off by default because that ablation found they cost val loss or change nothing at our
scale (figures below and in README.md). Every technique is its own RunConfig key, so any one can be turned off
or on (`--set relu2_mlp=true`); the recipe only chooses the keys left unset.
"""

from __future__ import annotations

from typing import Any

MODEL_SWITCHES = ("rotary", "qk_norm", "relu2_mlp", "rms_norm", "zero_init_proj", "untied_head", "logit_softcap")
"""The recipe's keys that change the model (and so its checkpoint); `muon` changes only the optimizer."""

RECIPES: dict[str, dict[str, Any]] = {
    "nanogpt": {"rotary": False, "qk_norm": False, "relu2_mlp": False, "rms_norm": False,
                "zero_init_proj": False, "untied_head": False, "logit_softcap": 0.0, "muon": False},
    # bench/recipe.py's full run (2 x 64 model, 400 steps, Shakespeare and demo corpora, seeds 1-3; val loss
    # change when the technique is flipped, mean ± sd paired by seed; + = the default is right):
    #   rotary +0.46 ± 0.02 / +0.52 ± 0.02, qk_norm +0.07 ± 0.03 / +0.10 ± 0.01, muon +0.12 ± 0.01 / +0.18 ± 0.05,
    #   rms_norm -0.001 ± 0.027 / +0.011 ± 0.008 (kept: no worse, a cheaper norm, helps on one corpus);
    #   relu2_mlp -0.04 ± 0.02 / -0.07 ± 0.02 and zero_init_proj -0.03 ± 0.02 / -0.05 ± 0.01 (both hurt: off);
    #   adding untied_head +0.003 / +0.09 (hurts: off), adding logit_softcap 30 +0.002 / -0.001 (nothing: off).
    # modded-nanogpt measured ReLU² and zero-init helping at 124M on GPUs: a key away for such runs.
    "modern": {"rotary": True, "qk_norm": True, "relu2_mlp": False, "rms_norm": True,
               "zero_init_proj": False, "untied_head": False, "logit_softcap": 0.0, "muon": True},
}
"""What each recipe sets the switches to when they are not given (REFERENCE.md section 10)."""
