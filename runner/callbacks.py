"""Hydra callback: one MLflow parent run per multirun, children attach to it; the report at the end."""
from __future__ import annotations

import os
import time
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from runner import tracking


def _store(config: DictConfig) -> tuple[Any, str, str | None]:
    uri, artifacts = tracking.resolve_store(config.tracking.uri, config.tracking.artifact_location)
    return tracking.ensure_store(uri), uri, artifacts


def close_parent_run(config: DictConfig, status: str) -> None:
    parent = tracking.parent_run_id()
    if parent:
        client, _, _ = _store(config)
        tracking.end_run(client, parent, tracking.STATUS[status])
        os.environ.pop(tracking.PARENT_RUN_ENV, None)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        client, _, artifacts = _store(config)
        experiment = tracking.experiment_id(client, config.experiment, artifacts)
        params = OmegaConf.to_container(config.hydra.sweeper.params, resolve=True) if config.hydra.sweeper.get(
            "params") else {}
        run = client.create_run(experiment, run_name=f"sweep {config.experiment} {time.strftime('%Y-%m-%d %H:%M')}",
                                tags={"sweep": "true", "sweep_params": str(params),
                                      "overrides": " ".join(config.hydra.overrides.task)})
        os.environ[tracking.PARENT_RUN_ENV] = run.info.run_id
        self.started = time.perf_counter()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.app import OUTCOMES

        parent = tracking.parent_run_id()
        if not parent:
            return
        client, uri, _ = _store(config)
        counts: dict[str, int] = {}
        for outcome in OUTCOMES:
            key = outcome.outcome or outcome.status.lower()
            counts[key] = counts.get(key, 0) + 1
        tracking.set_tags(client, parent, {f"jobs_{k}": v for k, v in counts.items()} |
                          {"sweep_seconds": round(time.perf_counter() - self.started, 1)})
        tracking.end_run(client, parent, tracking.STATUS["FINISHED"])
        os.environ.pop(tracking.PARENT_RUN_ENV, None)
        if config.runner.report:
            from analysis.report import write_report_for

            path = write_report_for(config.experiment, uri, config.runner.report_dir)
            print(f"report: {path}")
