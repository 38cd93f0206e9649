"""The Hydra application: compose → run one job. Outcomes are collected for the process exit code."""
from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from runner import schema  # noqa: F401  (registers the schemas in the ConfigStore)
from runner.job import JobOutcome, run_job

CONF_DIR = str(schema.PROJECT_ROOT / "conf")
OUTCOMES: list[JobOutcome] = []
SWEEP_ERRORS: list[str] = []   # what went wrong after the jobs (the report): the sweep exits non-zero


class Interrupted(SystemExit):
    """A job was stopped by SIGINT/SIGTERM: leave the sweep, exit 130."""


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> str:
    outcome = run_job(cfg, list(HydraConfig.get().overrides.task))
    OUTCOMES.append(outcome)
    if outcome.status == "KILLED":
        from runner.callbacks import close_parent_run

        close_parent_run(cfg, status="KILLED")
        raise Interrupted(130)
    return outcome.status
