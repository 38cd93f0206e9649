"""reports/<experiment>/report.md and its figures, from one MLflow experiment."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis import claims, figures, tables
from analysis.load import ExperimentData, load_experiment

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = PROJECT_ROOT / "reports" / "bench" / "step_time.json"


def _cell(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, percent: tuple[str, ...] = ()) -> str:
    if frame.empty:
        return "_no data_\n"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    for _, row in frame.iterrows():
        cells = [(f"{row[c]:.0%}" if c in percent and isinstance(row[c], float) and math.isfinite(row[c])
                  else _cell(row[c])) for c in frame.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _provenance(data: ExperimentData) -> list[str]:
    runs = data.runs
    get = lambda key: sorted(set(tables.column(runs, key).astype(str)) - {"", "None", "nan"})  # noqa: E731
    end = float(pd.to_numeric(runs["end_time"], errors="coerce").max()) if "end_time" in runs else math.nan
    when = datetime.fromtimestamp(end / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC") \
        if math.isfinite(end) else "unknown"
    seconds = tables.numeric(tables.column(runs, "tag.train_seconds")).sum()
    logging = tables.numeric(tables.column(runs, "tag.logging_seconds")).sum()
    epoch_counts = tables.numeric(tables.column(runs, "param.trainer.steps")) / \
        tables.numeric(tables.column(runs, "tag.steps_per_epoch"))
    epochs = ", ".join(f"{value:g}" for value in sorted(set(epoch_counts.dropna().round(1))))
    commits = get("tag.git_commit")
    dirty = "true" in get("tag.git_dirty") or "True" in get("tag.git_dirty")
    return [f"- git commit: {', '.join(c[:12] for c in commits) or 'unknown'}{' (uncommitted changes)' if dirty else ''}",
            f"- finished: {when}",
            f"- machine: {', '.join(get('tag.machine')) or 'unknown'}; device: {', '.join(get('tag.device')) or '?'}",
            f"- versions: TensorFlow {', '.join(get('tag.tf_version')) or '?'}",
            f"- steps per run: {', '.join(get('param.trainer.steps')) or '?'} ({epochs or '?'} epochs of "
            f"{', '.join(get('tag.train_utterances')) or '?'} training utterances); batch size: "
            f"{', '.join(get('param.trainer.batch_size')) or '?'}; seeds: {', '.join(sorted(get('tag.seed'), key=lambda s: int(s) if s.isdigit() else 0))}",
            f"- runs: {len(runs)}; total training time: {seconds / 60:.1f} min"
            + (f"; metric logging {logging:.1f} s ({100 * logging / seconds:.2f} % of it)" if seconds > 0 else "")]


def build_report(data: ExperimentData, out_dir: Path, benchmark: dict | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, history = data.runs, data.history
    lines = [f"# Stability report: {data.name}", "",
             "Generated from the MLflow records of this experiment by `python -m analysis`; every number "
             "below was measured by the runs listed here.", ""]
    lines += ["## Provenance", "", *_provenance(data), ""]
    if data.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in data.notes], ""]
    if runs.empty:
        (out_dir / "report.md").write_text("\n".join(lines) + "\n")
        return out_dir / "report.md"

    unfinished = tables.not_finished(runs, history)
    if len(unfinished):
        lines += ["## Runs without a verdict", "",
                  "Failed, killed, orphaned or still running: named here and left out of every rate below.", "",
                  markdown_table(unfinished), ""]
    main = tables.at_multiplier_one(runs)
    main_history = history[history["run_id"].isin(main["run_id"])]
    failure = tables.failures(main)
    initial = tables.initial_losses(main, main_history)
    summary = tables.weight_summary(main, main_history)
    lines += ["## Configurations", "", markdown_table(tables.configurations(main)), ""]
    lines += ["## NaN failures (measured, not claimed)", "",
              "A run diverges when its loss is non-finite for `guards.divergence_patience` consecutive steps or "
              "exceeds `guards.divergence_factor` × its first loss. Rates carry a 95 % Wilson interval.", "",
              markdown_table(failure, percent=("divergence rate", "95% CI low", "95% CI high")), ""]
    lines += [f"## Before/after: the first {tables.INITIAL_WINDOW} steps (seed 003's form)", "",
              markdown_table(initial), ""]
    lines += ["## Loss progression (seed 004's form; median over seeds, NaN/inf rank as worst)", "",
              markdown_table(tables.progression(main, main_history)), ""]
    lines += ["## Weight evolution (seed 000)", ""]
    figure = figures.weight_evolution(main, main_history, out_dir / "weight_evolution.png")
    if figure:
        lines += [f"![mel weight over steps]({figure.name})", ""]
    lines += [markdown_table(tables.weight_table(main, main_history)), "", markdown_table(summary), ""]
    figure = figures.loss_curves(main, main_history, out_dir / "loss_curves.png")
    if figure:
        lines += ["## Loss curves", "", f"![loss per preset]({figure.name})", ""]
    factors = tables.ablation(runs, history)
    if not factors.empty:
        lines += ["## Which factor does it (ablation)", "",
                  "From `upstream` each factor is corrected alone (direction off); from `upstream_fixed` each is "
                  "switched back on alone (on); `none` is the preset itself. Rates carry a 95 % Wilson interval; the "
                  "update norm is ‖Δθ‖ per step, median over steps and then over seeds.", "",
                  markdown_table(factors, percent=("divergence rate", "95% CI low", "95% CI high")), ""]
    frontier = tables.lr_frontier(runs)
    if not frontier.empty:
        lines += ["## Learning-rate stress frontier (divergence rate)", "",
                  markdown_table(frontier, percent=tuple(c for c in frontier.columns if c.startswith("x")))]
        figure = figures.lr_frontier(frontier, out_dir / "lr_frontier.png")
        lines += [f"![frontier]({figure.name})", ""]
    evidence = claims.Evidence(main, main_history, failure, initial, summary, benchmark)
    lines += ["## Claims audit", "", markdown_table(claims.audit(evidence)), ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_benchmark(path: Path = BENCHMARK) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_report_for(experiment: str, tracking_uri: str, report_root: str | Path) -> Path:
    data = load_experiment(experiment, tracking_uri)
    return build_report(data, Path(report_root) / experiment, read_benchmark())
