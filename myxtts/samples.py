"""What a person looks at or listens to after a run: a validation sentence's mel plot and synthesized wav."""
from __future__ import annotations

import wave
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from myxtts.backend import tf
from myxtts.data.dataset import BatchStream
from myxtts.data.features import mel_to_audio


def render_validation_sentence(model, data, mel_spec, out_dir: Path, max_frames: int) -> list[Path]:
    """Teacher-forced and free-running mels of one validation sentence (PNG) and its audio (WAV)."""
    examples = data.validation or data.train
    stream = BatchStream(examples[:1], 1, 0, 96, shuffle=False, drop_remainder=False)
    batch = {k: tf.constant(v) for k, v in next(stream.iterate()).items()}
    example = examples[0]
    forced = model(batch, training=False)["postnet_output"][0, :len(example.mel)].numpy()
    generated, lengths = model.generate(batch["text"], batch["text_lengths"], batch["reference_mel"],
                                        batch["reference_lengths"], max_frames=max_frames)
    generated = generated[0, :int(lengths[0])].numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(3, 1, figsize=(10, 8), constrained_layout=True)
    low, high = float(np.min(example.mel)), float(np.max(example.mel))  # the scale of the features trained on
    for axis, (title, mel) in zip(axes, (("target", example.mel), ("teacher-forced prediction", forced),
                                          (f"generated ({len(generated)} frames)", generated))):
        axis.imshow(mel.T, origin="lower", aspect="auto", interpolation="nearest", vmin=low, vmax=high)
        axis.set_title(f"{example.id} — {title}")
        axis.set_ylabel("mel channel")
    axes[-1].set_xlabel("frame")
    plot = out_dir / "validation_mel.png"
    figure.savefig(plot, dpi=80)
    plt.close(figure)
    paths = [plot]
    if len(generated) >= 4 and np.isfinite(generated).all():
        audio = mel_to_audio(data.stats.denormalize(generated), mel_spec).numpy()
        peak = float(np.max(np.abs(audio))) or 1.0
        pcm = (np.clip(audio / peak, -1, 1) * 0.9 * 32767).astype("<i2")
        wav = out_dir / "validation_sample.wav"
        with wave.open(str(wav), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(mel_spec.sample_rate)
            handle.writeframes(pcm.tobytes())
        paths.append(wav)
    return paths
