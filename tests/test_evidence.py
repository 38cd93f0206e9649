"""A report's evidence: rendered from it alone the report is the same; imported into an empty store, a re-run
of its sweep skips every finished run it holds."""
import subprocess
import sys

import pytest

from analysis import __main__ as analysis_cli
from analysis import evidence
from launch import ENV, base_args, run, runs_of
from runner import evidence as importer
from runner.schema import PROJECT_ROOT

SWEEP = ["-m", "sweep=before_after", "+preset=basic,enhanced", "seed=0", "trainer.steps=4", "data.subset=null",
         "trainer.synthesize=false"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, small_corpus):
    """Two runs of a real sweep, its report and evidence written by the sweep itself."""
    root = tmp_path_factory.mktemp("swept")
    result = run([*SWEEP, *base_args(root, small_corpus)])
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_the_report_from_its_evidence_alone_is_the_report_from_its_store(swept, tmp_path):
    folder = swept / "reports" / "before_after"
    assert {p.name for p in (folder / "evidence").iterdir()} == {"runs.parquet", "history.parquet", "inputs.json"}
    assert analysis_cli.main(["--evidence", str(folder / "evidence"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == (folder / "report.md").read_text()
    figures = sorted(p.name for p in folder.glob("*.png"))
    assert figures and figures == sorted(p.name for p in tmp_path.glob("*.png"))
    found = evidence.read(folder / "evidence")
    assert len(found.runs) == 2 and {r.status for r in found.runs} == {"FINISHED"}
    assert set(found.history["metric"]) >= {"loss/total", "weight/mel"} and found.history["step"].max() == 3


def test_the_same_runs_give_the_same_evidence_bytes(swept, tmp_path):
    folder = swept / "reports" / "before_after" / "evidence"
    again = evidence.write(tmp_path / "evidence", evidence.read(folder))
    for name in ("runs.parquet", "history.parquet", "inputs.json"):
        assert (again / name).read_bytes() == (folder / name).read_bytes(), name


def test_imported_evidence_is_skipped_by_a_rerun_of_its_sweep(swept, tmp_path, small_corpus):
    folder = swept / "reports" / "before_after" / "evidence"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "runner.evidence", str(folder), "--tracking-uri", uri]
    first = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, env=ENV, timeout=300)
    assert first.returncode == 0 and "2 imported" in first.stdout, first.stdout + first.stderr
    assert importer.import_evidence(folder, uri)[1] == {"already finished in the store": 2}
    result = run([*SWEEP, *base_args(tmp_path, small_corpus)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("skipped (runner.rerun=true trains it again)") == 2
    _, runs = runs_of(tmp_path, "before_after")
    children = [r for r in runs if r.data.tags.get("sweep") != "true"]
    assert len(children) == 2 and all(r.data.tags["imported_from"].startswith(str(folder)) for r in children)
    # The imported runs render the report of the runs they were imported from.
    assert analysis_cli.main(["--tracking-uri", uri, "--experiment", "before_after", "--out", str(tmp_path / "r"),
                              "--no-parent"]) == 0
    assert (tmp_path / "r" / "report.md").read_text() == (swept / "reports" / "before_after" / "report.md").read_text()


def test_a_folder_that_is_not_evidence_is_one_line_and_exit_2(tmp_path, capsys):
    assert analysis_cli.main(["--evidence", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "inputs.json").write_text("{\"format\": 99}")
    assert importer.main([str(tmp_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "no such evidence folder" in errors[0] and "format 99" in errors[1]
