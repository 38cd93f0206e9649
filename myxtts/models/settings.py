"""The model group's settings (conf/model) and the size table they name; no TensorFlow here."""
from __future__ import annotations

from dataclasses import dataclass, replace

from myxtts.checks import one_of
from myxtts.switches import ATTENTION_MASKS, SOFTMAX_DTYPES


@dataclass(frozen=True)
class ModelSize:
    text_dim: int
    text_layers: int
    text_heads: int
    decoder_dim: int
    decoder_layers: int
    decoder_heads: int
    ff_multiplier: int
    latent_dim: int
    conditioning_channels: int
    prenet_dim: int
    postnet_channels: int
    postnet_layers: int
    postnet_kernel: int = 5
    dropout: float = 0.1
    prenet_dropout: float = 0.5

    def __post_init__(self) -> None:
        for name in ("text_dim", "decoder_dim"):
            dim, heads = getattr(self, name), getattr(self, name.replace("dim", "heads"))
            if heads < 1 or dim % heads:
                raise ValueError(f"model.{name}: must be divisible by the head count {heads}, got {dim}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.prenet_dropout < 1.0:
            raise ValueError(f"model.dropout/prenet_dropout: must be in [0, 1), got {self.dropout}/"
                             f"{self.prenet_dropout}")


SIZES = {
    "tiny": ModelSize(text_dim=96, text_layers=2, text_heads=2, decoder_dim=128, decoder_layers=2,
                      decoder_heads=2, ff_multiplier=2, latent_dim=16, conditioning_channels=96,
                      prenet_dim=96, postnet_channels=96, postnet_layers=3),
    "small": ModelSize(text_dim=192, text_layers=3, text_heads=3, decoder_dim=256, decoder_layers=4,
                       decoder_heads=4, ff_multiplier=4, latent_dim=32, conditioning_channels=192,
                       prenet_dim=192, postnet_channels=256, postnet_layers=5),
    # Between small and base (about 4.5x small, 2.7x smaller than base) so that a fit of the critical rate over
    # size has four points across two orders of magnitude: base's text encoder, a 512-wide 6-layer decoder.
    "medium": ModelSize(text_dim=256, text_layers=4, text_heads=4, decoder_dim=512, decoder_layers=6,
                        decoder_heads=8, ff_multiplier=4, latent_dim=64, conditioning_channels=384,
                        prenet_dim=256, postnet_channels=384, postnet_layers=5),
    "base": ModelSize(text_dim=256, text_layers=4, text_heads=4, decoder_dim=768, decoder_layers=8,
                      decoder_heads=12, ff_multiplier=4, latent_dim=64, conditioning_channels=512,
                      prenet_dim=256, postnet_channels=512, postnet_layers=5),
}


# The upstream code base's `small` and `normal` sizes in this builder's terms, never trained: the size axis
# predicts their critical rate from its fit. What upstream's size table scales (text encoder and decoder width and
# depth, 64-dim heads; its audio encoder width, here the conditioning channels at base's ratio of 2) follows that
# table; the rest keeps base's values (base is upstream's `tiny`).
UPSTREAM_SHAPES = {
    "upstream small": replace(SIZES["base"], text_dim=384, text_layers=6, text_heads=6, decoder_dim=1024,
                              decoder_layers=12, decoder_heads=16, conditioning_channels=1024),
    "upstream normal": replace(SIZES["base"], text_dim=512, text_layers=8, text_heads=8, decoder_dim=1536,
                               decoder_layers=16, decoder_heads=24, conditioning_channels=1536),
}

# Each size's parameter count as myxtts/models/xtts.py builds it (the character tokenizer's 40 symbols, 80 mel
# bins): how reports name a size. tests/test_model.py keeps the two in step.
PARAMETERS = {"tiny": 783_111, "small": 7_095_980, "medium": 31_924_785, "base": 84_698_933}
UPSTREAM_PARAMETERS = {"upstream small": 220_987_199, "upstream normal": 643_174_217}


def size_label(size: str) -> str:
    """A size as reports name it: `small (7.1 M)`."""
    count = PARAMETERS.get(size)
    return f"{size} ({count / 1e6:.2g} M)" if count else size


@dataclass
class ModelSettings:
    size: str = "tiny"
    attention_mask: str = "correct"   # inverted: upstream's double-negated additive mask
    softmax_dtype: str = "float32"    # compute: logits, mask and softmax in the compute dtype, as upstream
                                      # (under float16 the inverted mask's +1e18 overflows to inf there)
    qk_norm: bool = False             # layer-normalise queries and keys per head (the literature's fix for
                                      # attention-logit growth)

    def __post_init__(self) -> None:
        one_of("model.size", self.size, tuple(SIZES))
        one_of("model.attention_mask", self.attention_mask, ATTENTION_MASKS)
        one_of("model.softmax_dtype", self.softmax_dtype, SOFTMAX_DTYPES)


def named_layers(size: ModelSize) -> list[str]:
    """The model's top-level layers, as myxtts/models/xtts.py names them (the first part of every weight
    path): what a setting may name without building the model (tests/test_model.py keeps the two in step)."""
    return (["text_embedding"] + [f"text_block_{i}" for i in range(size.text_layers)]
            + ["text_norm", "memory_projection"] + [f"conditioning_conv_{i}" for i in range(2)]
            + ["latent_head", "latent_projection", "prenet_0", "prenet_1", "prenet_projection"]
            + [f"decoder_block_{i}" for i in range(size.decoder_layers)]
            + ["decoder_norm", "mel_head", "stop_head"] + [f"postnet_{i}" for i in range(size.postnet_layers)])
