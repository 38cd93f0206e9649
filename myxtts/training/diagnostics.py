"""Per-layer-group signals that warn of a divergence, and the replay that finds where a NaN started.

Signals (computed inside the compiled step from values the step already has, handed to the callbacks
every `diagnostics.every` steps):
- diag/attention/<block>/<self|cross>: the largest attention logit among allowed positions, the signal
  that grows before attention-logit divergence (Dehghani et al. 2023; Wortsman et al. 2023);
- diag/grad/<group> and diag/update_ratio/<group>: gradient norm (unscaled, before clipping) and
  ‖Δθ‖/‖θ‖ of the group's weights in this step;
- diag/activation/mel_head and diag/activation/stop_head: the largest |output| of the two heads.
The loss scale under float16 is logged every step as `loss_scale`.

Groups: text_encoder, conditioning, prenet, decoder_block_<i>, heads (decoder norm, mel and stop heads,
postnet).
"""
from __future__ import annotations

from dataclasses import dataclass

from myxtts.checks import SettingError

GROUP_OF_LAYER = {
    "text_embedding": "text_encoder", "text_norm": "text_encoder", "memory_projection": "text_encoder",
    "latent_head": "conditioning", "latent_projection": "conditioning",
    "prenet_projection": "prenet", "decoder_norm": "heads", "mel_head": "heads", "stop_head": "heads",
}
GROUP_OF_PREFIX = (("text_block_", "text_encoder"), ("conditioning_conv_", "conditioning"), ("prenet_", "prenet"),
                   ("postnet_", "heads"))


@dataclass
class DiagnosticsSettings:
    every: int = 10          # steps between logged signals; 0 turns them off (and out of the compiled step)
    origin: bool = True      # replay a run's first non-finite step to find the layer where it started
    dense_steps: int = 0     # signals at every one of the first N steps too (early attention logits predict
                             # divergence: Wortsman et al. 2023); needs every > 0

    def __post_init__(self) -> None:
        if not (isinstance(self.every, int) and self.every >= 0):
            raise SettingError(f"diagnostics.every={self.every!r} is invalid: allowed an integer >= 0 (0 = off)")
        if not (isinstance(self.dense_steps, int) and self.dense_steps >= 0) or (self.dense_steps and not self.every):
            raise SettingError(f"diagnostics.dense_steps={self.dense_steps!r} is invalid: allowed an integer >= 0, "
                               f"and 0 when diagnostics.every is 0")

    def due(self, step: int) -> bool:
        """Whether the signals of this (0-based) step are logged."""
        return bool(self.every) and (step % self.every == 0 or step < self.dense_steps)


def layer_group(path: str) -> str:
    """The group of a model variable or layer from its path (xtts_model/<layer>/...)."""
    parts = path.split("/")
    top = parts[1] if parts[0] == "xtts_model" and len(parts) > 1 else parts[0]
    if top.startswith("decoder_block_"):
        return top
    if top in GROUP_OF_LAYER:
        return GROUP_OF_LAYER[top]
    for prefix, group in GROUP_OF_PREFIX:
        if top.startswith(prefix):
            return group
    return "other"


def attention_layers(model) -> dict[str, object]:
    """{"<block>/<self|cross>": Attention layer} for every attention of the model, encoder first."""
    found = {}
    for block in list(getattr(model, "text_blocks", [])) + list(getattr(model, "decoder_blocks", [])):
        found[f"{block.name}/self"] = block.self_attention
        if block.cross_attention is not None:
            found[f"{block.name}/cross"] = block.cross_attention
    return found
