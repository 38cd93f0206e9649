"""How to spend two cores on the big sizes: one job with two TensorFlow threads, or two jobs with one each.

Each layout trains the model of one size on the step-time benchmark's batch (8 x 176 frames, static weights)
in separate processes, all started together, and reports the pair's steps per second over the same wall-clock
window. Needs quiet cores: anything else running shares them.

    python -m benchmarks.size_layout [--sizes medium,base] [--seconds 120] [--out reports/bench/size_layout.json]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

LAYOUTS = {"1 job x 2 threads": (1, 2), "2 jobs x 1 thread": (2, 1)}


def _worker(size: str, threads: int, seconds: float) -> None:
    """One process: build, compile, then count steps for `seconds`; prints steps and their wall time."""
    from myxtts.backend import tf
    from myxtts.training.run import use_threads

    use_threads(threads, print)
    from benchmarks.step_time import _stream, _trainer

    trainer = _trainer("none", False, False, diagnostics=0, size=size)
    batch = {k: tf.constant(v) for k, v in next(_stream().iterate()).items()}
    scale = tf.constant(1.0)
    for _ in range(2):
        trainer._train_step(batch, scale).numpy()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        trainer._train_step(batch, scale).numpy()
        steps += 1
    print(json.dumps({"steps": steps, "seconds": time.perf_counter() - started}))


def measure(size: str, seconds: float) -> dict:
    result = {}
    for name, (jobs, threads) in LAYOUTS.items():
        processes = [subprocess.Popen([sys.executable, "-m", "benchmarks.size_layout", "--worker", size, str(threads),
                                       str(seconds)], stdout=subprocess.PIPE, text=True) for _ in range(jobs)]
        outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
        if any(p.returncode for p in processes):
            raise SystemExit(f"error: a {name} worker at size {size} failed")
        rate = sum(o["steps"] / o["seconds"] for o in outputs)
        result[name] = {"steps_per_second": rate, "seconds_per_step_each": [o["seconds"] / max(o["steps"], 1)
                                                                             for o in outputs]}
    best = max(result, key=lambda n: result[n]["steps_per_second"])
    return {"size": size, "layouts": result, "faster": best}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], int(argv[2]), float(argv[3]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.size_layout", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="medium,base")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/size_layout.json"))
    args = parser.parse_args(argv)
    from myxtts.models.settings import SIZES

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or args.seconds <= 0:
        parser.error(f"--sizes: {', '.join(unknown)} unknown (allowed {', '.join(SIZES)})" if unknown
                     else f"--seconds: must be > 0, got {args.seconds}")
    results = [measure(size, args.seconds) for size in sizes]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    for found in results:
        print(f"{found['size']}: " + "; ".join(f"{name} {v['steps_per_second']:.3f} steps/s"
                                             for name, v in found["layouts"].items()) + f" -> {found['faster']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
