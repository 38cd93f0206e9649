"""One configuration, built and trained: data → model → objective → trainer → weights, sample, NaN origin.

The runner hands over the run's settings, a checkpoint directory, its callbacks (metrics out) and a stop
flag; everything that touches TensorFlow happens here. What comes back is plain: the training result, the
files to keep as artifacts and facts about the run (machine, device, data sizes, NaN origin).
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

from myxtts.backend import tf  # first: the quiet TensorFlow import

import keras

from myxtts import record
from myxtts.data.dataset import BatchStream, PreparedData, prepare_data
from myxtts.data.features import MelSpec
from myxtts.models.xtts import build_model
from myxtts.training.losses import build_objective
from myxtts.training.settings import TrainingSettings
from myxtts.training.trainer import Trainer, TrainResult, make_deterministic


@dataclass
class RunOutput:
    result: TrainResult
    artifacts: list[Path] = field(default_factory=list)   # directories (logged as themselves) or sample files
    facts: dict = field(default_factory=dict)              # record.RunFacts fields this entry point knows


def all_finite(variables) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables)


def device_name() -> str:
    return ", ".join(d.name for d in tf.config.list_logical_devices("GPU")) or "CPU"


def use_threads(threads: int, say: Callable[[str], None]) -> None:
    """TensorFlow's thread pools for this process; fixed once TensorFlow has started (a launcher's worker
    that trains a second job keeps what its first job set)."""
    if not threads or tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        say(f"trainer.threads={threads}: TensorFlow already started in this process with "
            f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} threads; keeping them")


@dataclass
class Built:
    """One configuration, ready to train: its data, features, model and trainer (nothing traced yet)."""
    data: PreparedData
    mel_spec: MelSpec
    model: keras.Model
    trainer: Trainer


def build(s: TrainingSettings, checkpoint_dir: Path, callbacks: tuple = (),
          say: Callable[[str], None] = print) -> Built:
    use_threads(s.trainer.threads, say)
    keras.mixed_precision.set_global_policy(s.trainer.precision)
    s.data.ensure_corpus()
    mel_spec = MelSpec.for_scale(s.data.features.scale)
    data = prepare_data(s.data, mel_spec)
    make_deterministic(s.seed)
    model = build_model(s.model, data.tokenizer.vocab_size, mel_spec.n_mels)
    trainer = Trainer(
        model, build_objective(s.loss, s.weighting, s.guards, s.seed), s.optim, s.guards, s.trainer,
        BatchStream(data.train, s.trainer.batch_size, s.seed, s.data.reference_frames, fixed_shapes=s.trainer.xla),
        BatchStream(data.validation, s.trainer.batch_size, s.seed, s.data.reference_frames, shuffle=False,
                    drop_remainder=False) if data.validation else None,
        checkpoint_dir=checkpoint_dir, callbacks=tuple(callbacks), fault=s.fault, diagnostics=s.diagnostics)
    return Built(data, mel_spec, model, trainer)


def train(s: TrainingSettings, checkpoint_dir: Path, callbacks: list, should_stop: Callable[[], bool],
          artifact_dir: Path, say: Callable[[str], None] = print, render_sample: bool = True) -> RunOutput:
    """`render_sample`: False where another run has this configuration's sample (another seed of a sweep)."""
    started = time.perf_counter()
    built = build(s, checkpoint_dir, tuple(callbacks), say)
    data, mel_spec, model, trainer = built.data, built.mel_spec, built.model, built.trainer
    setup = time.perf_counter() - started   # corpus check, features, model and trainer built (no tracing yet)
    result = trainer.fit(should_stop=should_stop)
    finished = time.perf_counter()
    output = RunOutput(result, facts={record.SETUP_SECONDS: round(setup, 2),
        record.TF_VERSION: tf.__version__, record.DEVICE: device_name(),
        record.MACHINE: f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        record.SKIPPED_UTTERANCES: data.skipped.total, record.TRAIN_UTTERANCES: len(data.train),
        record.VALIDATION_UTTERANCES: len(data.validation),
        record.STEPS_PER_EPOCH: trainer.train_stream.batches_per_epoch})
    if result.outcome == record.KILLED:  # the checkpoint is the record; nothing else is final yet
        return output
    weights = artifact_dir / "checkpoint" / "model.weights.h5"
    weights.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(weights)
    output.artifacts.append(weights.parent)
    if s.trainer.synthesize and not render_sample:
        output.facts[record.SAMPLE] = "not rendered: in a sweep, only the first seed's run of a configuration renders one"
    elif s.trainer.synthesize and all_finite(model.trainable_variables):
        from myxtts.samples import render_validation_sentence

        output.artifacts += render_validation_sentence(model, data, mel_spec, artifact_dir / "samples",
                                                       s.trainer.synthesis_max_frames)
    if s.diagnostics.origin and result.first_bad_step is not None:
        # Last use of the trainer: the replay rewinds it to the first non-finite step, logging nothing.
        origin = trainer.find_nan_origin()
        if origin:
            path = artifact_dir / "nan_origin" / "nan_origin.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(origin, indent=1, allow_nan=True))
            output.artifacts.append(path.parent)
            output.facts.update({record.NAN_ORIGIN_LAYER: origin["layer"], record.NAN_ORIGIN_OP: origin["op"],
                                 record.NAN_ORIGIN_STEP: origin["step"]})
            say(f"NaN origin: {origin['layer'] or '?'} ({origin['op']}) at step {origin['step']}")
    output.facts[record.FINISH_SECONDS] = round(time.perf_counter() - finished, 2)  # weights, sample, NaN replay
    return output
