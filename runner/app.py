"""The Hydra application: compose → run one job → record its outcome on the sweep's parent run.

The exit status leaves through SystemExit: 130 when a job was stopped by a signal, 1 when a single run
failed or was busy elsewhere (a sweep's own status comes from its callback, runner/callbacks.py).
"""
from __future__ import annotations

import textwrap

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from runner import preflight, schema, sweep
from runner.job import run_job

CONF_DIR = str(schema.PROJECT_ROOT / "conf")


def choices() -> str:
    """What --help lists (conf/hydra/help/runner.yaml): each config group's options a user can choose (not
    the schemas they extend), and the launchers; a + marks a group the base config leaves out (+preset=NAME)."""
    primary = OmegaConf.load(preflight.CONF_DIR / "config.yaml")
    defaults = primary.get("defaults", []) if isinstance(primary, DictConfig) else []
    in_base = {str(next(iter(entry))).split()[-1] for entry in defaults if isinstance(entry, DictConfig)}
    groups = sorted(p.name for p in preflight.CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    lines = []
    for group in [*groups, "hydra/launcher"]:
        name = group if group in in_base or group.startswith("hydra/") else f"+{group}"
        lines.append(textwrap.fill(", ".join(preflight.options(group)), width=110, initial_indent=f"  {name}: ",
                                   subsequent_indent=" " * (len(name) + 4), break_on_hyphens=False))
    return "\n".join(lines)


if not OmegaConf.has_resolver("runner_choices"):
    OmegaConf.register_new_resolver("runner_choices", choices)


class Interrupted(SystemExit):
    """A job was stopped by SIGINT/SIGTERM: leave the sweep, exit 130."""


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    hydra_config = HydraConfig.get()
    in_sweep = hydra_config.mode == RunMode.MULTIRUN
    outcome = run_job(cfg, list(hydra_config.overrides.task),
                      sweep_dir=str(hydra_config.sweep.dir) if in_sweep else None,
                      job_number=hydra_config.job.num if in_sweep else None)
    if outcome.parent:
        sweep.record_job(outcome.client, outcome.parent, hydra_config.job.num, outcome.status, outcome.outcome,
                         outcome.run_id, outcome.message)
        if outcome.status == "KILLED":
            sweep.close(outcome.client, outcome.parent, "KILLED")
    if outcome.status == "KILLED":
        raise Interrupted(130)
    if not in_sweep and outcome.status in sweep.INCOMPLETE:
        raise SystemExit(1)
    return outcome.status
