"""The allowed values of each switch that models an upstream behaviour, named once (no TensorFlow here).

The code each switch changes imports its tuple from here, and so does the runner's configuration check,
so a value is allowed in exactly one place. The first value of each is its default.
"""
ATTENTION_MASKS = ("correct", "inverted")                    # model.attention_mask
SOFTMAX_DTYPES = ("float32", "compute")                      # model.softmax_dtype
OVERFLOW_MODES = ("skip", "apply")                           # trainer.overflow (float16 loss scaling)
FEATURE_SCALES = ("standardized", "log", "minmax")           # data.features.scale
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # trainer.precision
CLIP_ORDERS = ("unscaled", "scaled")                         # optim.clip_order
SCHEDULES = ("constant", "noam", "cosine", "cosine_restarts")  # optim.schedule
NONFINITE_MODES = ("propagate", "skip", "zero")              # guards.nonfinite
