"""The training recipes: which techniques each turns on (REFERENCE.md section 10).

"nanogpt" is nanoGPT's GPT-2 with AdamW, byte-for-byte compatible with its checkpoints. "modern" takes the
speed-running community's measured techniques (modded-nanogpt): rotary positions, QK-norm, ReLU², RMSNorm,
zero-initialised output projections and Muon for the hidden matrices; an untied zero-initialised head and a
tanh logit cap are keys of their own, off by default (the ablation below). Every technique is its own
RunConfig key, so any one can be turned off or on (`--set rotary=false`); the recipe only chooses the keys
left unset.
"""

from __future__ import annotations

from typing import Any

MODEL_SWITCHES = ("rotary", "qk_norm", "relu2_mlp", "rms_norm", "zero_init_proj", "untied_head", "logit_softcap")
"""The recipe's keys that change the model (and so its checkpoint); `muon` changes only the optimizer."""

RECIPES: dict[str, dict[str, Any]] = {
    "nanogpt": {"rotary": False, "qk_norm": False, "relu2_mlp": False, "rms_norm": False,
                "zero_init_proj": False, "untied_head": False, "logit_softcap": 0.0, "muon": False},
    # untied_head and logit_softcap off: bench/recipe.py's ablation (Shakespeare, 2 seeds) found that neither
    # helps at our CPU scale (removing them: -0.006 and -0.003 val loss); both stay a key away (30.0 is the cap
    # modded-nanogpt used). The rest each cost val loss when removed.
    "modern": {"rotary": True, "qk_norm": True, "relu2_mlp": True, "rms_norm": True,
               "zero_init_proj": True, "untied_head": False, "logit_softcap": 0.0, "muon": True},
}
"""What each recipe sets the switches to when they are not given (REFERENCE.md section 10)."""
