"""Hydra's side of the runner's sweeper; the work is runner.sweeper.launch_checked (Hydra only loads
plugins from the hydra_plugins package)."""
from collections.abc import Sequence
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class CheckedSweeper(Sweeper):
    """Expands the command's sweep once, validates every job, opens the sweep's parent run with that job
    list and hands the same list to the launcher."""

    def __init__(self, params: dict[str, str] | None = None) -> None:
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Sequence[Any]:
        from runner.sweeper import launch_checked

        assert self.config is not None and self.hydra_context is not None and self.launcher is not None
        return launch_checked(self.config, self.params, arguments, self.hydra_context, self.launcher)
