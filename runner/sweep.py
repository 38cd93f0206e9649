"""A sweep's record in MLflow, shared by every process that takes part in it.

The parent run carries the sweep's directory as a tag; a job finds its parent through MLflow by that
directory (which Hydra hands, resolved once, to every job however it is launched), and writes its own
outcome on the parent as the tag job/<number>. So the launching process learns what every job did from
the store, whether the jobs ran in it, in other processes or on other machines.
"""
from __future__ import annotations

import hashlib
import json

from mlflow import MlflowClient
from mlflow.entities import Run

from myxtts import record
from runner import tracking
from runner.lifecycle import RUNNING

# Job statuses a sweep must not end with: a failed job, or one another live process was training.
INCOMPLETE = ("FAILED", "BUSY")


def sweep_key(experiment: str, params: dict, overrides: list[str]) -> str:
    """Identifies a sweep command: the same experiment, sweep parameters and overrides."""
    content = json.dumps({"experiment": experiment, "params": params, "overrides": sorted(overrides)}, sort_keys=True)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def find_parent(client: MlflowClient, experiment: str, sweep_dir: str) -> Run | None:
    """The running parent run of the sweep writing into `sweep_dir`, or None."""
    found = client.search_runs(
        [experiment], filter_string=f"tags.{record.SWEEP_DIR} = '{sweep_dir}' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def sample_jobs(jobs: list[list[str]]) -> list[int]:
    """The jobs that render a sample: the first of each configuration, seeds aside. One sample per
    configuration is what a person listens to; the other seeds' runs only train."""
    first: dict[tuple, int] = {}
    for number, overrides in enumerate(jobs):
        first.setdefault(tuple(o for o in overrides if o.split("=", 1)[0].lstrip("+~") != "seed"), number)
    return sorted(first.values())


def renders_sample(parent: Run | None, job_number: int | None) -> bool:
    """Whether this job renders its configuration's sample: always outside a sweep."""
    chosen = parent.data.tags.get(record.SAMPLE_JOBS) if parent else None
    return chosen is None or job_number is None or str(job_number) in chosen.split(",")


def record_job(client: MlflowClient, parent: str, number: int, status: str, outcome: str | None,
               run_id: str | None, message: str = "") -> None:
    value = json.dumps({"status": status, "outcome": outcome, "run_id": run_id, "message": message[:300]})
    client.set_tag(parent, f"{record.JOB_PREFIX}{number}", value, synchronous=True)


def job_outcomes(client: MlflowClient, parent: str) -> list[dict]:
    """Every job's recorded outcome, in job order."""
    tags = client.get_run(parent).data.tags
    jobs = [(int(key[len(record.JOB_PREFIX):]), json.loads(value)) for key, value in tags.items()
            if key.startswith(record.JOB_PREFIX) and key[len(record.JOB_PREFIX):].isdigit()]
    return [job for _, job in sorted(jobs, key=lambda item: item[0])]


def clear_jobs(client: MlflowClient, parent: str) -> None:
    """A continued sweep records its jobs afresh."""
    for key in list(client.get_run(parent).data.tags):
        if key.startswith(record.JOB_PREFIX):
            client.delete_tag(parent, key)


# The order a parent's name counts its jobs in: the verdicts, then why a job has none.
COUNTED = (*record.VERDICTS, record.FAILED, record.KILLED)


def counted(counts: dict[str, int], jobs: int) -> str:
    """`16 stable, 2 diverged`: how many of a sweep's `jobs` ended as what (`counts`: jobs per outcome, or per
    status for a job without one), and how many recorded nothing."""
    order = {str(key): place for place, key in enumerate(COUNTED)}
    said = [f"{n} {key}" for key, n in sorted(counts.items(),
                                              key=lambda item: (order.get(item[0], len(order)), item[0]))]
    if jobs > sum(counts.values()):
        said.append(f"{jobs - sum(counts.values())} not recorded")
    return ", ".join(said)


def parent_name(experiment: str, jobs: int, state: str = RUNNING) -> str:
    """A sweep parent's name in the runs table: `sweep positive_control · 18 jobs · running`, and once it ends
    its counts (`... · 16 stable, 2 diverged`) or `killed`."""
    return f"sweep {experiment} · {jobs} job{'' if jobs == 1 else 's'} · {state}"


def close(client: MlflowClient, parent: str, status: str, name: str | None = None) -> None:
    tracking.end_run(client, parent, tracking.STATUS[status], name=name)
