"""reports/<experiment>/report.md and its figures, from one MLflow experiment."""
from __future__ import annotations

import json
import math
from datetime import datetime, UTC
from pathlib import Path

import pandas as pd

from analysis import claims, evidence, figures, frontier, late, roles, rules, scaling, spike, tables
from analysis.load import ExperimentData, assemble, read_store
from myxtts import record
from myxtts.models.settings import UPSTREAM_PARAMETERS
from myxtts.training.settings import LegacyTanhSettings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = PROJECT_ROOT / "reports" / "bench" / "step_time.json"
REPLAY = PROJECT_ROOT / "reports" / "replay" / "replay.json"


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


def _values(column: pd.Series) -> list[str]:
    """The distinct values of a column as the run recorded them, blanks left out."""
    return sorted(set(column.map(str)) - {"", "None", "nan"})


def _provenance(data: ExperimentData) -> list[str]:
    runs = data.runs

    def tagged(name: str) -> list[str]:
        return _values(tables.tag(runs, name))

    def settings(path: str) -> list[str]:
        return _values(tables.setting(runs, path, ""))

    end = float(pd.to_numeric(runs["end_time"], errors="coerce").max()) if "end_time" in runs else math.nan
    when = datetime.fromtimestamp(end / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC") \
        if math.isfinite(end) else "unknown"
    seconds = tables.numeric(tables.tag(runs, record.TRAIN_SECONDS)).sum()
    logging = tables.numeric(tables.tag(runs, record.LOGGING_SECONDS)).sum()
    epoch_counts = tables.number(runs, "trainer.steps") / \
        tables.numeric(tables.tag(runs, record.STEPS_PER_EPOCH))
    epochs = ", ".join(f"{value:g}" for value in sorted(set(epoch_counts.dropna().round(1))))
    commits = tagged(record.GIT_COMMIT)
    dirty = any(value.lower() == "true" for value in tagged(record.GIT_DIRTY))
    return [f"- git commit: {', '.join(c[:12] for c in commits) or 'unknown'}{' (uncommitted changes)' if dirty else ''}",
            f"- finished: {when}",
            f"- machine: {', '.join(tagged(record.MACHINE)) or 'unknown'}; device: {', '.join(tagged(record.DEVICE)) or '?'}",
            f"- versions: TensorFlow {', '.join(tagged(record.TF_VERSION)) or '?'}",
            f"- steps per run: {', '.join(settings('trainer.steps')) or '?'} ({epochs or '?'} epochs of "
            f"{', '.join(tagged(record.TRAIN_UTTERANCES)) or '?'} training utterances); batch size: "
            f"{', '.join(settings('trainer.batch_size')) or '?'}; seeds: "
            f"{', '.join(sorted(tagged(record.SEED), key=lambda s: int(s) if s.isdigit() else 0))}",
            f"- runs: {len(runs)}; total training time: {seconds / 60:.1f} min"
            + (f"; metric logging {logging:.1f} s ({100 * logging / seconds:.2f} % of it)" if seconds > 0 else "")]


# What a run that neither diverged nor ended stable ended as (record.classify's rules, in a reader's words).
UNSETTLED = {"frozen": "most steps changed no weight", "not_learning": "its best validation loss stayed above 0.9x "
             "its first"}


def findings(failure: pd.DataFrame, runs: pd.DataFrame, factors: pd.DataFrame, audited: pd.DataFrame,
             frontier: pd.DataFrame | None = None, stressed: int = 0, origins: pd.DataFrame | None = None) -> list[str]:
    """The report's opening summary, generated from its own tables (no number is typed in by hand)."""
    lines = []
    judged = failure[failure["runs"] > 0]
    total, diverged = int(judged["runs"].sum()), int(judged["diverged"].sum())
    horizon = tables.horizon_epochs(runs[tables.tag(runs, record.OUTCOME).astype(str).isin(record.VERDICTS)])
    steps = tables.number(runs, "trainer.steps").min()
    span = (f"{steps:g} steps" if math.isfinite(steps) else "its steps") + \
        (f" ({horizon:g} epochs of the training subset, not the documents' epochs)" if math.isfinite(horizon) else "")
    if diverged == 0:
        at = " at their own learning rate" if stressed > total else ""
        lines.append(f"- **No run diverged**: {total} runs of {len(judged)} configurations{at}, each trained for {span}.")
    else:
        lines.append(f"- **{diverged} of {total} runs diverged** (each set to train {span}; a diverged run stops at "
                     f"its divergence):")
        for _, row in judged[judged["diverged"] > 0].iterrows():
            epoch = row["median first non-finite epoch"]
            when = (f", first non-finite loss at median epoch {epoch:.3g}" if math.isfinite(epoch) else "")
            lines.append(f"  - {row['preset']}: {row['diverged']}/{row['runs']} (95 % CI {row['95% CI low']:.0%}–"
                         f"{row['95% CI high']:.0%}){when}")
        calm = judged.loc[judged["diverged"] == 0, "preset"].tolist()
        if calm:
            lines.append(f"  - no divergence: {', '.join(calm)}")
    lines += _unsettled(judged)
    for _, row in (origins.iterrows() if origins is not None else []):
        lines.append(f"- {row['preset']}: {row['runs with a non-finite step']}/{row['runs']} runs had a non-finite loss "
                     f"or gradient; where it started: {row['origin (layer: op × runs)']}.")
    if frontier is not None and not frontier.empty:
        multipliers = [c for c in frontier.columns if c.startswith("x")]
        broke = [f"{row['preset']} from {next(c for c in multipliers if row[c] > 0)}" for _, row in frontier.iterrows()
                 if any(row[c] > 0 for c in multipliers)]
        lines.append(f"- Learning-rate stress ({stressed} runs, {multipliers[0]}–{multipliers[-1]} each preset's rate): "
                     + (f"divergence {'; '.join(broke)}." if broke else "no preset diverged at any multiplier."))
    lines += _ablation_findings(factors)
    if len(audited):
        judged = audited[audited["verdict"].map(claims.base_verdict) != ""]
        if len(judged):
            counts = claims.verdict_counts(audited)
            lines.append("- Claims judged in this report, by kind (measured holds apart from arithmetic and "
                         "by-construction ones): " + "; ".join(
                             f"{kind}: " + ", ".join(f"{n} {verdict}" for (k, verdict), n in counts.items() if k == kind)
                             for kind in claims.KINDS if any(k == kind for k, _ in counts)) + ".")
            for verdict in (claims.HOLDS, claims.FAILS):
                named = judged[judged["verdict"].map(claims.base_verdict) == verdict]
                if len(named):
                    scope = named["verdict"].str.endswith(claims.ON_PROXY).map({True: f", {claims.ON_PROXY}", False: ""})
                    lines += [f"  - {verdict}:"] + [f"    - {row['claim']} ({row['kind']}{scope[index]})"
                                                    for index, row in named.iterrows()]
        elsewhere = sorted(set(audited.loc[audited["verdict"].str.startswith("judged in"), "verdict"]))
        if elsewhere:
            homes = [v.removeprefix("judged in ") for v in elsewhere]
            lines.append(("- Other claims are judged in their home reports: " if len(judged) else
                          "- No claim is judged in this report; each is judged in its home report: ")
                         + ", ".join(home + ("" if (PROJECT_ROOT / home / "report.md").is_file() else " (not rendered yet: its "
                                             "sweep has not run to the end)") for home in homes) + ".")
    return lines


def _unsettled(judged: pd.DataFrame) -> list[str]:
    """The findings line for runs that neither diverged nor ended stable (frozen, not learning), per preset."""
    unsettled = judged[judged["other outcomes"] != ""]
    if unsettled.empty:
        return []
    return ["- **Not diverged, not stable either**: " + "; ".join(
        f"{row['preset']} {row['other outcomes']} of {row['runs']}" for _, row in unsettled.iterrows())
        + " (" + "; ".join(f"{name}: {meaning}" for name, meaning in UNSETTLED.items()
                           if unsettled["other outcomes"].str.contains(name).any()) + ")."]


def _ablation_findings(factors: pd.DataFrame) -> list[str]:
    """Per ablation base: which single factor changed the divergence rate, and which moved the update most."""
    lines: list[str] = []
    for base, rows in (factors.groupby("base", sort=False) if len(factors) else []):
        reference = rows[rows["factor"] == "none"]
        if reference.empty:
            continue
        rate, update = float(reference["divergence rate"].iloc[0]), float(reference["median update norm"].iloc[0])
        flips = rows[rows["factor"] != "none"]
        moved = flips[(flips["divergence rate"] - rate).abs() > 0]
        if len(moved):
            parts = [f"{r['factor']} {r['direction']}: {r['divergence rate']:.0%} (CI {r['95% CI low']:.0%}–"
                     f"{r['95% CI high']:.0%}{'; the runs of `' + r['same runs as'] + '`' if r['same runs as'] else ''})"
                     for _, r in moved.iterrows()]
            lines.append(f"- Ablation from `{base}` (divergence {rate:.0%}): " + "; ".join(parts) + ".")
        elif len(flips):
            lines.append(f"- Ablation from `{base}`: no single factor changed the divergence rate ({rate:.0%}).")
        else:
            lines.append(f"- Ablation from `{base}` (divergence {rate:.0%}): no arm with one factor flipped ran.")
        if math.isfinite(update) and update > 0 and len(flips):
            ratio = flips["median update norm"] / update
            ratio = ratio.where(ratio > 0)
            if ratio.notna().any():
                biggest = (ratio.apply(lambda r: abs(math.log(r)))).idxmax()
                row = flips.loc[biggest]
                lines.append(f"  - largest effect on the update size ‖Δθ‖: {row['factor']} {row['direction']} "
                             f"(×{ratio[biggest]:.3g} against `{base}`).")
    return lines


def build_report(data: ExperimentData, out_dir: Path, benchmark: dict | None = None,
                 replay: dict | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    runs, history = data.runs, data.history
    head = [f"# Stability report: {data.name}", "",
            "Generated from the MLflow records of this experiment by `python -m analysis`: every measured number "
            "below comes from the runs listed here; the arithmetic and by-construction claim rows recompute the "
            "documents' own numbers and read the lab's code.", ""]
    lines = ["## Provenance", "", *_provenance(data), ""]
    if data.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in data.notes], ""]
    if runs.empty:
        (out_dir / "report.md").write_text("\n".join(head + lines) + "\n")
        return out_dir / "report.md"

    unfinished = tables.not_finished(runs, history)
    if len(unfinished):
        lines += ["## Runs without a verdict", "",
                  "Failed, killed, orphaned or still running: named here and left out of every rate below.", "",
                  markdown_table(unfinished), ""]
    if frontier.is_grid(runs):
        return _frontier_report(data, out_dir, head, lines)
    multiplied = tables.at_multiplier_one(runs)
    probing = tables.rate_probe(multiplied)
    main, probe = multiplied[~probing], multiplied[probing]
    main_history = history[history["run_id"].isin(main["run_id"])]
    failure = tables.failures(main)
    origins = tables.divergence_origins(main, main_history)
    lines += _measured_sections(main, main_history, failure, origins, out_dir)
    factors, stress = tables.ablation(runs, history), tables.lr_frontier(runs)
    lines += _stress_sections(runs, factors, stress, out_dir)
    spiked = spike.per_run(runs, history)
    if len(spiked):
        lines += _spike_section(spiked)
    lines += _old_weight_section(runs, history)
    documented = tables.as_documented(main)
    audited = claims.audit(claims.Evidence(documented, main_history[main_history["run_id"].isin(documented["run_id"])],
                                           benchmark, replay, stress=runs, spikes=spiked), report=data.name)
    lines += _claims_section(audited, tables.overridden_runs(runs))
    stressed = int(tables.tag(runs, record.OUTCOME).astype(str).isin(record.VERDICTS).sum())
    if len(probe):
        section, answer = _probe_section(failure, probe, main)
        lines = section + lines
        head += ["## Answer", "", *answer, ""]
    idle, never = _old_weight(runs, history)
    head += ["## Findings", "", *findings(failure, main, factors, audited, stress, stressed, origins),
             *([f"- **The old adaptive weight never acted**: {idle} So every old-system run here trained at its floor "
                f"weight, and no comparison in this report tests the old adaptive weight itself."] if never else []), ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(head + lines) + "\n")
    return path


PROBE_COLUMNS = ["configuration", "system", "lr", "outcome", "failure step", "steps trained"]


def _steps_text(runs: pd.DataFrame) -> str:
    steps = sorted(set(tables.number(runs, "trainer.steps").dropna().astype(int)))
    return f"{'/'.join(map(str, steps)) or '?'} steps"


def _probe_section(failure: pd.DataFrame, probe: pd.DataFrame, main_runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The edge probe (runs whose only override is an absolute rate): each run's outcome and failure step, and
    the three answer lines: the documented settings, where the configurations break, what that can show."""
    done = frontier.judged(probe)
    rows = [{"configuration": run["configuration"], "system": str(run.get(record.tag_column(record.SYSTEM), "")),
             "lr": float(run["lr"]), "outcome": str(run.get(record.tag_column(record.OUTCOME), "")),
             "failure step": late.failure_step(run.get("facts")), "steps trained":
                 run["facts"].steps_completed if run.get("facts") is not None else None}
            for _, run in done.sort_values(["lr"], kind="stable").iterrows()]
    table = pd.DataFrame(rows, columns=PROBE_COLUMNS)
    table["failure step"] = table["failure step"].map(lambda s: "—" if s is None or pd.isna(s) else str(int(s)))
    diverging = failure[failure["diverged"] > 0]
    horizon = _steps_text(probe)
    seeds = ", ".join(sorted(set(tables.tag(done, record.SEED).astype(str)), key=lambda x: int(x) if x.isdigit() else 0))
    documented = (f"{len(diverging)} of {len(failure)} configurations diverged at their documented settings "
                  + (f"({', '.join(f'{r.preset} {r.diverged}/{r.runs}' for r in diverging.itertuples())})"
                     if len(diverging) else f"(0 divergences in {int(failure['runs'].sum())} runs)"))
    outcome = tables.tag(main_runs, record.OUTCOME).astype(str)
    presets = tables.tag(main_runs, record.PRESET).astype(str)
    other = [f"{preset} {int((mine == verdict).sum())}/{int(mine.isin(record.VERDICTS).sum())} {verdict}"
             for preset in tables.preset_order(main_runs) for mine in [outcome[presets == preset]]
             for verdict in record.VERDICTS if verdict not in (record.STABLE, record.DIVERGED) and (mine == verdict).any()]
    if other:
        documented += f"; other failures: {', '.join(other)}"
    breaks = []
    for preset, mine in table.groupby("configuration", sort=False):
        failed = mine[mine["outcome"] == record.DIVERGED]
        rest = mine[mine["outcome"] != record.DIVERGED]
        parts = ([f"diverged at lr {', '.join(f'{x:g}' for x in failed['lr'])} (failure step "
                  f"{', '.join(failed['failure step'])})"] if len(failed) else ["did not diverge"])
        parts += [f"{outcome} at {', '.join(f'{x:g}' for x in group['lr'])}"
                  for outcome, group in rest.groupby("outcome", sort=False)]
        breaks.append(f"`{preset}` " + ", ".join(parts))
    steps = [int(s) for s in table["failure step"] if s != "—"]
    either = min(late.OLD_CAN_ACT, late.NEW_CAN_ACT)
    if steps and max(steps) < either:
        limit = (f"every probe failure came by step {max(steps)}, before either adaptive weight can act (the old "
                 f"weight can first move at step {late.OLD_CAN_ACT}, the new controller adjusts after its "
                 f"{late.NEW_CAN_ACT}-step warmup; only the new system's guards act that early): old against new "
                 f"adaptive weights is **not testable at this horizon** here; the preregistered late-failure search "
                 f"([reports/positive_control](../positive_control/report.md)) is where it is tested")
    elif steps:
        limit = (f"the latest probe failure came at step {max(steps)}; one seed per rate cannot test prevention "
                 f"(see the late-failure search, [reports/positive_control](../positive_control/report.md))")
    else:
        limit = "no probe run diverged (one seed per rate) within this horizon"
    answer = [f"- At the documented settings ({_span_text(failure)}, {_steps_text(main_runs)}): {documented}.",
              f"- Edge probe (seed {seeds}, {horizon}): " + "; ".join(breaks) + ".",
              f"- What this can show, on this 0.78 M-parameter proxy: {limit}."]
    section = ["## Edge probe", "",
               "The control and the new system at absolute rates around the proxy's no-warmup edge (`sweep=edge_probe`, "
               "run by `make sweep` after the documented configurations): each run's outcome and the step at which "
               "it first went wrong (its first non-finite step, or where its finite loss exploded).", "",
               markdown_table(table), ""]
    return section, answer


def _span_text(failure: pd.DataFrame) -> str:
    return f"{int(failure['runs'].sum())} runs of {len(failure)} configurations"


def _measured_sections(main: pd.DataFrame, main_history: pd.DataFrame, failure: pd.DataFrame,
                       origins: pd.DataFrame, out_dir: Path) -> list[str]:
    """The runs at their presets' own values: configurations, failures, the documents' tables and figures,
    and where each divergence started."""
    initial = tables.initial_losses(main, main_history)
    summary = tables.weight_summary(main, main_history)
    lines: list[str] = []
    lines += ["## Configurations", "", markdown_table(tables.configurations(main)), ""]
    lines += ["## NaN failures (measured, not claimed)", "",
              "A run diverges when its loss is non-finite for `guards.divergence_patience` consecutive steps or "
              "exceeds `guards.divergence_factor` × its first loss. Rates carry a 95 % Wilson interval.", "",
              markdown_table(failure, percent=("divergence rate", "95% CI low", "95% CI high")), ""]
    lines += ["## The first epoch (the 30-utterance test report's form)", "",
              "Total loss, raw mel L1 and raw stop loss averaged over each run's first epoch, mean over seeds.", "",
              markdown_table(initial), ""]
    lines += ["## Loss progression (the three-digit-loss note's form)", "",
              "Total loss averaged over the named epoch, median over seeds; a diverged seed ranks as the worst.", "",
              markdown_table(tables.progression(main, main_history)), ""]
    lines += ["## Weight evolution (the design note's form)", ""]
    figure = figures.weight_evolution(main, main_history, out_dir / "weight_evolution.png")
    if figure:
        lines += [f"![mel weight over steps]({figure.name})", ""]
    lines += [markdown_table(tables.weight_table(main, main_history)), "", markdown_table(summary), ""]
    figure = figures.loss_curves(main, main_history, out_dir / "loss_curves.png")
    if figure:
        lines += ["## Loss curves", "", f"![loss per preset]({figure.name})", ""]
    lines += ["## Where divergence starts", ""]
    if origins.empty:
        lines += ["No run produced a non-finite loss or gradient in this experiment: there is no divergence to "
                  "locate.", ""]
    else:
        lines += [f"The origin is the first layer output, loss term or gradient that was non-finite when the run's "
                  f"first non-finite step was replayed from its last all-finite checkpoint (tags `nan_origin_*`). A "
                  f"per-layer signal warns when it exceeds {tables.WARNING_FACTOR:g} × its largest value in the "
                  f"first {tables.BASELINE_FRACTION:.0%} of the steps before that step; the table names the signal "
                  f"that warned first and how many steps ahead.", "", markdown_table(origins), ""]
    figure = figures.attention_logits(main, main_history, out_dir / "attention_logits.png")
    if figure:
        lines += [f"![max attention logit per preset]({figure.name})", ""]
    return lines


def _stress_sections(runs: pd.DataFrame, factors: pd.DataFrame, stress: pd.DataFrame, out_dir: Path) -> list[str]:
    """The ablation's factors and the learning-rate stress, where the experiment has them."""
    lines: list[str] = []
    if not factors.empty:
        lines += ["## Which factor does it (ablation)", "",
                  "From `upstream` each factor is corrected alone (direction off); from `upstream_fixed` each is "
                  "switched back on alone (on); from `upstream_fp16` its float16 order is corrected (off); `none` is "
                  "the preset itself. Rates carry a 95 % Wilson interval; the "
                  "update norm is ‖Δθ‖ per step, median over steps and then over seeds. Best validation L1 is in "
                  "the units of each run's feature scale: rows that flip `scale` are not comparable on it. The runner "
                  "trains a configuration once, so an arm whose configuration is another arm's counts that arm's runs: "
                  "*same runs as* names it.", "",
                  markdown_table(factors, percent=("divergence rate", "95% CI low", "95% CI high")), ""]
    if not stress.empty:
        judged = runs[tables.tag(runs, record.OUTCOME).astype(str).isin(record.VERDICTS)]
        cells = judged.groupby([tables.tag(judged, record.PRESET).astype(str),
                                tables.setting(judged, "optim.lr_multiplier", "").map(str)]).size()
        horizon = tables.horizon_epochs(judged)
        lines += ["## Learning-rate stress frontier (divergence rate)", "",
                  f"Each preset at 1x, 4x, 16x and 64x its own learning rate; {cells.min()}–{cells.max()} finished "
                  f"runs per cell, each trained for {f'{horizon:g} epochs' if math.isfinite(horizon) else 'its steps'}.",
                  "", markdown_table(stress, percent=tuple(c for c in stress.columns if c.startswith("x")))]
        figure = figures.lr_frontier(stress, out_dir / "lr_frontier.png")
        if figure:
            lines += [f"![frontier]({figure.name})", ""]
    return lines


def _claims_section(audited: pd.DataFrame, unused: pd.DataFrame) -> list[str]:
    """Every documented claim with its verdict, and the runs that are evidence for none."""
    lines: list[str] = []
    own = audited[~audited["verdict"].str.startswith("judged in")]
    lines += ["## Claims audit", ""]
    if own.empty:
        homes = sorted(set(audited["verdict"].str.removeprefix("judged in ")))
        return [*lines, "No claim is judged in this report (each claim has one home report, the one whose design "
                        "fits it): see " + ", ".join(homes) + ".", ""]
    lines += [f"Each row is one claim of the source documents, judged by the rules of `analysis/rules.py` in a fixed "
              f"order: a precondition not met → **{claims.UNTESTABLE}** (the reason is named); the mechanism the claim "
              f"is about never acted → **{claims.PROXY}** (for either system); the runs too short for the claim → "
              f"**{claims.NOT_REPRODUCED}**; otherwise **{claims.HOLDS}** / **{claims.FAILS}** by the row's tolerance, "
              f"rate claims by a one-sided Fisher exact test with its power. *Kind*: **measured** (verdicts say "
              f"'{claims.ON_PROXY}'), **arithmetic** (the document's own numbers or formula recomputed), **by "
              f"construction** (true of the lab's code, not a measurement), **advice**. Lines marked "
              f"*{claims.SENSITIVITY}* measure the same claim in another setting of its arms (not the documents' "
              f"own) and are not verdicts. Claims whose home is another report point there.", "",
              markdown_table(audited), ""]
    if len(unused):
        lines += ["Not used for the claims (a value the claim depends on was overridden; they count only in the "
                  "tables above):", "", markdown_table(unused), ""]
    return lines


# The 30-utterance test's diagnosis: the problematic settings' rate and clip (the control's) make the gradients
# explode, the fixed ones' (the baseline's) do not.
DIAGNOSED = {"control": "make the gradients explode", "baseline": "do not"}
ADVISED_MAX_LR = 2e-5   # the same report's advice: never above this rate


def _documented_rates(runs: pd.DataFrame) -> dict[str, dict[str, tuple[float, object]]]:
    """Per diagnosed role, its configurations (table order) with a documented rate: (that rate, its gradient clip)."""
    presets, role, rate = tables.tag(runs, record.PRESET).astype(str), roles.role(runs), roles.documented_lr(runs)
    clip = tables.setting(runs, "optim.clip_norm")
    found: dict[str, dict[str, tuple[float, object]]] = {name: {} for name in DIAGNOSED}
    for preset in tables.preset_order(runs):
        first = runs.index[presets == preset][0]
        if role[first] in DIAGNOSED and math.isfinite(rate[first]):
            found[role[first]][preset] = (float(rate[first]), clip[first])
    return found


def _stress_facts(critical: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """How far below its critical rate each documented rate lies (the learning-rate diagnosis, under stress)."""
    diagnosed = _documented_rates(runs)
    if len(critical):
        several = critical["size"].nunique() > 1
        found = critical.assign(preset=critical["configuration"],
                                configuration=critical["configuration"] + (" at " + critical["size"] if several else ""))
        found = found.set_index("configuration")
    else:
        found = critical
    parts = []
    for preset, (documented, _) in [item for configurations in diagnosed.values() for item in configurations.items()]:
        for name, row in (found[found["preset"] == preset].iterrows() if len(found) else []):
            edge = row[frontier.LAST_CALM]
            parts.append(f"`{name}` at its documented lr {documented:g} lies {edge / documented:.0f}x below its last "
                         f"rate without divergence {edge:g} (critical lr {row['critical lr']}, interval {row['interval']})"
                         if math.isfinite(edge) else f"`{name}` diverged at every rate of this grid")
    if not parts:
        return []
    said = []
    for name, verb in DIAGNOSED.items():
        settings = [f"{preset}'s lr {lr:g} and " + (f"clip {clip:g}" if isinstance(clip, float) else "no clip")
                    for preset, (lr, clip) in diagnosed[name].items()]
        said += [f"{' and '.join(settings)} {verb}"] if settings else []
    facts = [f"- the diagnosis that {' and '.join(said)}: {'; '.join(parts)}."]
    first = pd.to_numeric(found[frontier.FIRST_DIVERGING], errors="coerce").dropna()
    edge = pd.to_numeric(found[frontier.LAST_CALM], errors="coerce")
    if len(first):
        # A configuration that fails at every rate it trained has no edge here: its failure says nothing of the rate.
        unbounded = sorted(p for p in first.index if not math.isfinite(edge.get(p, math.nan)))
        bounded = first.drop(index=unbounded)
        lowest = (f"the lowest rate at which a configuration with a rate without divergence diverged is "
                  f"{bounded.min():g} ({bounded.idxmin()}), {bounded.min() / ADVISED_MAX_LR:.0f}x that limit"
                  if len(bounded) else "no configuration here has a rate without divergence")
        every = (f"; {', '.join(unbounded)} diverged at every rate trained, from {first[unbounded].min():g} "
                 f"({first[unbounded].min() / ADVISED_MAX_LR:.0f}x the limit), so the rate is not what fails them"
                 if unbounded else "")
        facts.append(f"- the 30-utterance test's advice to stay at lr ≤ {ADVISED_MAX_LR:g}: {lowest}{every}.")
    return facts


def _spike_section(spiked: pd.DataFrame) -> list[str]:
    """The design note's spike scenario trained for real: per configuration, then per run."""
    per_run = spiked.drop(columns=["run_id"])
    return ["## A loss spike in training (the design note's worked example 2)", "",
            f"Every raw loss term multiplied by `fault.factor` at step `fault.step`. Rules fixed before the sweep: "
            f"*nan next step* — loss/total non-finite at the first step after the spike; *recovered* — no divergence "
            f"and loss/total back to ≤ {spike.RECOVERY_FACTOR:g}x its median over the {spike.PRE_WINDOW} steps before "
            f"the spike (*steps to recover* from the spike step; the interval is the 95 % Wilson interval of the "
            f"recovered fraction); the weight change is the mel weight's largest one-step change from the step "
            f"before the spike to {spike.RESPONSE_WINDOW} steps after it; *val* is the validation postnet L1 last "
            f"before the spike and at the end.", "",
            markdown_table(spike.summary(spiked), percent=("95% CI low", "95% CI high")), "",
            markdown_table(per_run), ""]


def _old_weight_section(runs: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    text = _old_weight(runs, history)[0]
    return ["## The old weight", "", text, ""] if text else []


def _old_weight(runs: pd.DataFrame, history: pd.DataFrame) -> tuple[str, bool]:
    """Whether the old tanh weight ever moved in these runs: when first, and how far (the documents' failure
    mechanism), beside the step from which its formula lets it move at all; and whether it never moved in any."""
    old = runs[tables.setting(runs, "weighting.name") == "legacy_tanh"]
    if old.empty:
        return "", False
    changes = tables.weight_changes(history, old["run_id"])
    moved = changes[changes["adjustments"] > 0]
    trained = tables.numeric(tables.tag(old, record.STEPS_COMPLETED)).max()
    settings = LegacyTanhSettings()
    text = (f"{len(moved)} of {len(old)} runs with the old tanh weight (longest {trained:g} steps) moved it"
            + (f"; first at step {moved['first change step'].min():g} (median {moved['first change step'].median():g}), "
               f"by at most {moved['largest change %'].max():.1f} % in one step" if len(moved) else "")
            + f". Its formula lets it leave the floor {settings.tanh_factor_min:g} x base first at step "
              f"{settings.first_step_off_floor()} (a loss ≥ {settings.floor_ratio():.2f}x its running mean), by at most "
              f"+{settings.largest_step_changes()[0]:.0%} / −{settings.largest_step_changes()[1]:.0%} per step.")
    return text, moved.empty


def _named(presets: list[str]) -> str:
    return ", ".join(f"`{preset}`" for preset in presets) or "none in this experiment"


def _frontier_report(data: ExperimentData, out_dir: Path, head: list[str], lines: list[str]) -> Path:
    """An experiment that trains its configurations over a grid of learning rates: the failure frontier."""
    runs, history = data.runs, data.history
    outcomes = frontier.outcome_table(runs)
    critical = frontier.critical_table(runs)
    sensitivities = frontier.sensitivity(runs, frontier.grid_rates(runs))
    lines += _frontier_tables(runs, outcomes, critical, sensitivities)
    compared = frontier.stabilizer_table(critical, sensitivities, runs)
    if len(compared) > 1:
        lines += ["## The documents' stabilizer against the literature's", "",
                  f"The control ({_named(frontier.controls(runs))}), its treatment and the other arms of the "
                  f"experiment's design (the roles of its sweep file), trained at the same rates; `x control` "
                  f"is a row's critical rate, and its LR sensitivity, as a multiple of the control's (a higher critical "
                  f"rate and a lower sensitivity are better; NaN where a critical rate is only bounded).", "",
                  markdown_table(compared), ""]
    timing = frontier.failure_timing(runs)
    if len(timing):
        lines += ["## When the failures happened", "",
                  "Per configuration and rate with a failure: the step at which each failed run diverged (or, for "
                  "frozen and not_learning, the steps it trained), and how many failed at or after the first step "
                  "at which the old tanh weight can leave its floor — earlier failures cannot be the documents' "
                  "weight-drift mechanism.", "", markdown_table(timing), ""]
    lines += _old_weight_section(runs, history)
    search = late.search_table(runs, history)
    if len(search) and int(search["steps"].max()) > late.LATE_AFTER:
        section, answer = _late_section(search, len(tables.not_finished(runs, history)))
        lines += section
        head += ["## Answer", "", *answer, ""]
    prevention = frontier.prevention_table(runs)
    if len(prevention):
        lines += ["## Prevention where the control fails", "",
                  f"At every rate where the control ({_named(frontier.controls(runs))}) and another configuration "
                  f"each have at least "
                  f"{frontier.PREVENTION_MIN_SEEDS} seeds (the refinement's rates inside the control's bracket): "
                  f"failures of both and the one-sided Fisher exact p that the control fails more often (the change "
                  f"prevents failures) or less often (it causes them); p < 0.05 is the rule, fixed before the sweep. "
                  f"`detectable at power 0.8` is the smallest control failure rate the design tells apart from none "
                  f"(one-sided, alpha 0.05): a p above 0.05 says nothing of effects smaller than that, and every "
                  f"failure that precedes both controllers counts here although neither system can act on it "
                  f"(see *When the failures happened*).",
                  "", markdown_table(prevention), ""]
    figure = figures.final_loss_vs_lr(frontier.final_losses(runs), out_dir / "final_loss_vs_lr.png")
    if figure:
        lines += [f"![final loss against learning rate]({figure.name})", ""]
    if frontier.judged(runs)["size"].nunique() > 1:
        section, answer = _scaling_section(runs, history, out_dir)
        lines += section
        head += ["## Answer", "", *answer, ""]
    lines += _early_warning_and_claims(runs, history, critical, prevention, data.name)
    head += ["## Findings", "", *frontier.findings(outcomes, critical, sensitivities), ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(head + lines) + "\n")
    return path


def _late_section(search: pd.DataFrame, unfinished: int) -> tuple[list[str], list[str]]:
    """The preregistered late-failure search: every arm's outcomes and cost, the criterion and what it found,
    and the prevention verdict wherever both systems ran at one setting; returns (section, answer lines)."""
    found = late.search_outcome(search, still_training=unfinished)
    verdicts = []
    for (size, lr, steps), rows in search.groupby(["size", "lr", "steps"], sort=False):
        old, new = rows[rows["system"] == "old"], rows[rows["system"] == "new"]
        for _, control in old.iterrows():
            for _, treatment in new.iterrows():
                judged = rules.prevention(_steps(control), int(control["runs"]), _steps(treatment),
                                          int(treatment["runs"]), late.LATE_AFTER + 1)
                verdicts.append({"size": size, "lr": lr, "steps": steps, "control": control["configuration"],
                                 "treatment": treatment["configuration"], "verdict": judged.verdict,
                                 "why": judged.reason})
    answer = [f"- Late-failure search ({late.criterion_text()}): **{found['statement']}**; {found['searched']} "
              f"control arm-rates searched, {found['hours']:.1f} core-hours of training so far."]
    moved = search[late.MOVED].where(search[late.MOVED] != "—").dropna().str.split("/", expand=True)
    if len(moved):
        acted, total = int(moved[0].astype(int).sum()), int(moved[1].astype(int).sum())
        late_failed = int(search.loc[moved.index, "late failures"].sum())
        answer.append(f"- The old tanh weight moved after step {late.LATE_AFTER} (where its mechanism can act) in "
                      f"{acted} of {total} old-system runs; {late_failed} of those arms' runs failed late.")
    if verdicts:
        kinds = pd.Series([v["verdict"] for v in verdicts]).value_counts()
        answer.append("- Prevention (old against new system at the same setting): "
                      + ", ".join(f"{n} {verdict}" for verdict, n in kinds.items()) + " (table below).")
    section = ["## Late failures: the preregistered search", "",
               f"The plan (`docs/plans/2026-12-07-late-failure-search.md`) was committed before the search's first "
               f"run. A run's failure step is its first non-finite step or, when its loss exploded while finite, the "
               f"step its divergence was declared; a failure is late after step {late.LATE_AFTER}. Criterion: "
               f"{late.criterion_text()}; other outcomes are reported and never count. Every arm that ran is below, "
               f"with its cost (core-hours of training).", "",
               markdown_table(search, percent=("late rate", "95% CI low", "95% CI high")), ""]
    if verdicts:
        section += ["### Prevention where both systems ran", "",
                    f"Only failures after step {late.LATE_AFTER} count: before it neither system can act. \"does not "
                    f"hold\" needs power >= 0.8 for the claimed effect (the control's measured rate against none).", "",
                    markdown_table(pd.DataFrame(verdicts)), ""]
    return section, answer


# The rates the documents and the upstream code base use (the size axis asks where each becomes unsafe).
DOCUMENTED_SCALE_RATES = {"1e-5 (basic)": 1e-5, "3e-5 (upstream tiny)": 3e-5, "5e-5 (upstream small)": 5e-5,
                          "8e-5 (enhanced)": 8e-5}


def _scaling_section(runs: pd.DataFrame, history: pd.DataFrame, out_dir: Path) -> tuple[list[str], list[str]]:
    """Several model sizes on one grid: the critical rate per (configuration, size) with its horizon, the fit of
    log critical rate on log parameters with the range of slopes every bracket allows, where each documented
    rate becomes unsafe, the step-1 attention logit against the outcome, and the figure."""
    done = frontier.judged(runs)
    points = scaling.critical_points(runs)
    steps = tables.number(done, "trainer.steps")
    horizon = {key: ", ".join(f"{s:g}" for s in sorted(steps[group.index].dropna().unique()))
               for key, group in frontier.groups(done)}
    points["steps"] = [horizon.get((c, z), "?") for c, z in zip(points["configuration"], points["size"])]
    fits, rows, unsafe, predicted = {}, [], [], []
    for name, mine in points.groupby("configuration", sort=False):
        found = fits[name] = scaling.fit(mine)
        rows.append({"configuration": name, "sizes with a point": found.sizes,
                     "slope (least squares)": found.slope,
                     "slopes through every bracket": f"[{found.slope_low:.3g}, {found.slope_high:.3g}]"
                     if found.consistent else "no line passes through every bracket"})
        unsafe += scaling.unsafe_from(name, mine, found, DOCUMENTED_SCALE_RATES)
        predicted += scaling.predictions(name, mine, found, UPSTREAM_PARAMETERS)
    logits = _step_one_logits(done, history)
    section = ["## Model size", "",
               "Each size is named by its parameter count (the size table in `myxtts/models/settings.py`). The "
               "critical rate's horizon is the `steps` column; the plan (`docs/plans/2026-12-07-scaling.md`) fixed "
               "every horizon before the runs.", "",
               markdown_table(points), "",
               "### Critical rate against size", "",
               "Least-squares slope of log10 critical rate on log10 parameters through the sizes with a point "
               "estimate, and the range of slopes of every line that passes through every size's bracket (an open "
               "side constrains nothing, so an open bracket widens the range).", "",
               markdown_table(pd.DataFrame(rows)), ""]
    if unsafe:
        section += ["Where each documented rate becomes unsafe: measured, the smallest size whose whole critical-rate "
                    "interval lies below the rate; and where the least-squares line reaches it, an extrapolation "
                    "beyond the largest size trained when the size exceeds it.", "",
                    markdown_table(pd.DataFrame(unsafe)), ""]
    if predicted:
        section += ["Predicted critical rates at the upstream code base's `small` and `normal` shapes (counted with this "
                    "project's builder, `UPSTREAM_SHAPES` in `myxtts/models/settings.py`; not trained): the "
                    "least-squares line, and the range over every line through every size's bracket (0 or inf where "
                    "a side is open). Both are extrapolations beyond the largest size trained.", "",
                    markdown_table(pd.DataFrame(predicted)), ""]
    figure = figures.critical_rate_vs_size(points, fits, DOCUMENTED_SCALE_RATES, out_dir / "critical_rate_vs_size.png")
    if figure:
        section += [f"![critical rate against parameters]({figure.name})", ""]
    if len(logits):
        section += ["### The attention logit at step 1 against the outcome", "",
                    "The largest attention logit over every block at step 1 (Wortsman et al. 2023 predict divergence "
                    "from it); `separates` says whether one threshold puts every diverged run above every other run "
                    "of that size.", "", markdown_table(logits), ""]
    answer = [f"- {row['configuration']}: slope {row['slope (least squares)']:.3g} "
              f"(brackets allow {row['slopes through every bracket']}) over {row['sizes with a point']} sizes with a "
              f"point estimate." for row in rows]
    return section, answer


def _step_one_logits(done: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    prefix = record.diag("attention", "")
    first = history[history["metric"].str.startswith(prefix) & (history["step"] == 1)]
    if first.empty:
        return pd.DataFrame()
    largest = first.groupby("run_id")["value"].max()
    outcome = tables.tag(done, record.OUTCOME).astype(str)
    frame = pd.DataFrame({"size": done["size"], "diverged": outcome == record.DIVERGED,
                          "logit": done["run_id"].map(largest)}).dropna(subset=["logit"])
    rows = []
    for size, mine in frame.groupby("size", sort=False):
        bad, calm = mine.loc[mine["diverged"], "logit"], mine.loc[~mine["diverged"], "logit"]
        rows.append({"size": size, "runs": len(mine), "diverged": len(bad),
                     "step-1 logit, diverged (min-max)": f"{bad.min():.3g}-{bad.max():.3g}" if len(bad) else "—",
                     "step-1 logit, others (min-max)": f"{calm.min():.3g}-{calm.max():.3g}" if len(calm) else "—",
                     "separates": bool(len(bad) and len(calm) and bad.min() > calm.max())})
    return pd.DataFrame(rows)


def _steps(row: pd.Series) -> list[int]:
    return [int(s) for s in str(row["failure steps"]).split(", ") if s.strip().isdigit()]


def _frontier_tables(runs: pd.DataFrame, outcomes: pd.DataFrame, critical: pd.DataFrame,
                     sensitivities: pd.DataFrame) -> list[str]:
    """The outcome rules, the outcomes per configuration and rate, critical rates and LR sensitivity."""
    grid = frontier.grid_rates(runs)
    done = frontier.judged(runs)
    horizon = tables.horizon_epochs(done)
    steps = sorted(set(tables.setting(done, "trainer.steps", "").map(str)))
    warmup = [f"{p}: {int(st)} steps" if st else f"{p}: {fr:g} of the steps"
              for p, mine in done.groupby("configuration", sort=False)
              for st, fr in [(tables.number(mine, "optim.warmup_steps", 0).max(),
                              tables.number(mine, "optim.warmup_fraction", 0).max())] if st or fr]
    return ["## Outcome rules", "",
              f"Fixed before any sweep ({'`myxtts/record.py`'}; the README states them): **diverged** — the loss was "
              f"non-finite for `guards.divergence_patience` consecutive steps or exceeded `guards.divergence_factor` x "
              f"its first loss; **frozen** — more than {record.FROZEN_FRACTION:.0%} of the update steps applied no "
              f"update (skipped, non-finite gradients zeroed or overflowed, or ‖Δθ‖ = 0), or under float16 the "
              f"gradients overflowed and the loss scale never left its start; **not_learning** — the best validation "
              f"loss is not below {record.NOT_LEARNING_RATIO:g} x the validation loss before step 0; **spiky** (a flag "
              f"beside the verdict) — after the warmup the training loss exceeded {record.SPIKE_FACTOR:g} x its running "
              f"minimum. A run *fails* on any verdict but stable.", "",
              "## Outcomes per configuration and learning rate", "",
              f"Every configuration at the same absolute rates ({len(grid)} shared grid rates"
              f"{', plus rates only some configurations ran' if outcomes['lr'].nunique() > len(grid) else ''}); "
              f"each run was set to "
              f"train {', '.join(steps)} steps ({f'{horizon:g} epochs' if math.isfinite(horizon) else 'epochs unknown'}"
              f"; a diverged run stops at its divergence; linear warmup: {'; '.join(warmup) or 'none'}). Failure "
              f"rates carry a 95 % Wilson interval.", "",
              markdown_table(outcomes, percent=("divergence rate", "95% CI low", "95% CI high")), "",
              "## Critical learning rate", "",
              "Where half the seeds diverge (divergence alone defines the edge; frozen and not_learning runs are "
              "counted above): interpolated in log rate between the last rate diverging in less than half its seeds "
              "and the first diverging in at least half. The interval runs from the highest measured rate "
              "below it whose 95 % Wilson interval lies wholly below 1/2 to the lowest above it whose interval lies "
              "wholly above 1/2; `open` where no measured rate is that clear (one seed per rate never is).", "",
              markdown_table(critical), "",
              "## LR sensitivity (Wortsman et al. 2023)", "",
              "Mean over the shared grid's rates of min(final loss, initial loss) minus the configuration's best final "
              "loss over the grid; the loss is the validation postnet L1 (feature-scale units: configurations on "
              "another feature scale are not comparable on it), a run without a final loss counts as its initial "
              "loss, seeds at one rate are averaged.", "",
              markdown_table(sensitivities), ""]


def _early_warning_and_claims(runs: pd.DataFrame, history: pd.DataFrame, critical: pd.DataFrame,
                              prevention: pd.DataFrame, experiment: str) -> list[str]:
    """The early-warning table and what a stress experiment says about the documents' claims."""
    warnings = frontier.early_warning(runs, history)
    homed = [claim.id for claim in claims.CLAIMS if claim.report == experiment]
    new_runs = int((tables.tag(runs, record.SYSTEM).astype(str) == "new").sum())
    where = (f"judged per setting in the tables above (prevention only by failures after step {late.LATE_AFTER}, "
             f"where both systems can act)" if new_runs else "not judged yet: no new-system run in this experiment")
    own = ([f"- the claims whose home is this experiment ({', '.join(f'`{c}`' for c in homed)}): {where}."]
           if homed else [])
    return ["## Early warning", "",
            f"For each failing run with a non-finite step: whether a per-layer signal crossed "
            f"{tables.WARNING_FACTOR:g} x its largest value in the first {tables.BASELINE_FRACTION:.0%} of the steps "
            f"before that step, and how many steps ahead; over the stable runs, how often the same rule fires "
            f"at all (a false alarm).", "",
            markdown_table(warnings, percent=("false-alarm rate",)) if len(warnings) else
            "_no per-layer diagnostics recorded_\n", "",
            "## Claims", "",
            "This experiment trains configurations away from their documented learning rate, so it is not evidence "
            "for the documents' claims about those configurations as documented; each claim is judged in its home "
            "report (`analysis/claims.py`). It speaks to the claims that are about stress:", "",
            *own, *_stress_facts(critical, runs), "- the prevention claim at rates where the control really fails: "
            + ("the table *Prevention where the control fails* above." if len(prevention) else
               f"no rate has {frontier.PREVENTION_MIN_SEEDS} seeds of the control and another configuration yet "
               "(python -m runner.refine places them)."), ""]


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_benchmark(path: Path = BENCHMARK) -> dict | None:
    return read_json(path)


def read_replay(path: Path = REPLAY) -> dict | None:
    return read_json(path)


def render(found: evidence.Evidence, out_dir: Path) -> Path:
    """The report of one experiment's evidence, in out_dir."""
    return build_report(assemble(found.experiment, found.runs, found.history), out_dir,
                        found.inputs.benchmark, found.inputs.replay)


def write_report_for(experiment: str, tracking_uri: str, report_root: str | Path, folder: str | None = None) -> Path:
    """The experiment's report from its store, with the evidence it was rendered from beside it (out_dir/evidence),
    so `render(evidence.read(...))` gives the same report without the store."""
    out_dir = Path(report_root) / (folder or experiment)
    found = evidence.Evidence(experiment, *read_store(experiment, tracking_uri),
                              evidence.Inputs(read_benchmark(), read_replay()))
    evidence.write(out_dir / evidence.FOLDER, found)
    return render(found, out_dir)
