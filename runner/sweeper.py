"""A multirun from the launching process: the sweep's one expansion, the check of every job, its parent
run and the launch of that same job list.

Hydra calls this through the sweeper plugin the base config selects (hydra/sweeper=checked, in
hydra_plugins/runner_sweeper): the job list the launcher numbers is the list the parent run counts and
picks its sample jobs from, and each job is composed once here, by Hydra's own loader, before any run
exists (the launcher composes it again where the job runs, as every Hydra launcher does).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf

from runner import preflight
from runner.callbacks import MlflowSweepCallback
from runner.schema import ConfigError


def launch_checked(config: DictConfig, params: dict[str, str], arguments: list[str], hydra_context: HydraContext,
                   launcher: Launcher) -> list[Sequence[Any]]:
    """Expand, check, open the parent, launch. A bad job value or an unusable store ends the command here
    with one line and exit code 2, before any run is created."""
    try:
        jobs = preflight.expand(params, arguments)
        configs = preflight.check_jobs(jobs, lambda job: hydra_context.config_loader.load_sweep_config(config, job))
        preflight.check_launcher(config.hydra.launcher)
        preflight.prepare(configs)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    sweep_dir = Path(config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, sweep_dir / "multirun.yaml")   # what Hydra's own sweeper leaves there
    for callback in hydra_context.callbacks.callbacks:
        if isinstance(callback, MlflowSweepCallback):
            callback.open_parent(config, jobs)
    results = launcher.launch(jobs, initial_job_idx=0)
    for result in results:
        _ = result.return_value   # a job that raised re-raises here, as under Hydra's own sweeper
    return [results]
