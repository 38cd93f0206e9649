"""The schema of hydra/sweeper=checked, the runner's sweeper (conf/config.yaml selects it)."""
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class CheckedSweeperConf:
    _target_: str = "hydra_plugins.runner_sweeper.checked_sweeper.CheckedSweeper"
    # key -> value list, as Hydra's basic sweeper takes them (sweep=NAME sets them; the command line adds to them)
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="checked", node=CheckedSweeperConf, provider="runner")
