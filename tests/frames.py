"""Hand-built runs frames as analysis/load.py makes them from a store."""
import pandas as pd

from myxtts import typed
from myxtts.training.settings import TrainingSettings

PARAM = "param."


def with_configs(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run's `param.<setting>` columns (text, as MLflow keeps params) become its typed `config`, the
    settings it would have been recorded with; settings not given keep their defaults."""
    given = [c for c in frame.columns if c.startswith(PARAM)]
    configs = [typed.build(TrainingSettings, typed.unflatten({c[len(PARAM):]: row[c] for c in given
                                                               if row[c] not in ("", None)}))
               for _, row in frame.iterrows()]
    return frame.assign(config=configs)
