"""The training recipes: which techniques each turns on (REFERENCE.md section 10).

"nanogpt" is nanoGPT's GPT-2 with AdamW, byte-for-byte compatible with its checkpoints. "modern" takes the
speed-running community's measured techniques (modded-nanogpt): rotary positions, QK-norm, ReLU², RMSNorm,
zero-initialised output projections, an untied zero-initialised head, a tanh logit cap, and Muon for the
hidden matrices. Every technique is its own RunConfig key, so any one can be turned off (`--set rotary=false`);
the recipe only chooses the keys left unset.
"""

from __future__ import annotations

from typing import Any

MODEL_SWITCHES = ("rotary", "qk_norm", "relu2_mlp", "rms_norm", "zero_init_proj", "untied_head", "logit_softcap")
"""The recipe's keys that change the model (and so its checkpoint); `muon` changes only the optimizer."""

RECIPES: dict[str, dict[str, Any]] = {
    "nanogpt": {"rotary": False, "qk_norm": False, "relu2_mlp": False, "rms_norm": False,
                "zero_init_proj": False, "untied_head": False, "logit_softcap": 0.0, "muon": False},
    "modern": {"rotary": True, "qk_norm": True, "relu2_mlp": True, "rms_norm": True,
               "zero_init_proj": True, "untied_head": True, "logit_softcap": 30.0, "muon": True},
}
"""What each recipe sets the switches to when they are not given (REFERENCE.md section 10)."""
