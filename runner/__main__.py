"""python -m runner [+preset=NAME] [overrides]   |   python -m runner -m sweep=before_after [overrides]"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from runner.preflight import check, is_informational
    from runner.schema import ConfigError

    multirun = any(a in ("-m", "--multirun") for a in argv)
    if multirun and any(a.split("=")[0] in ("--cfg", "-c", "--info", "-i", "--shell-completion", "-sc") for a in argv):
        print("error: -m cannot be combined with --cfg or --info (Hydra's rule): allowed one of them; "
              "drop -m to see one job's config", file=sys.stderr)
        return 2
    if not is_informational(argv):
        from runner import tracking

        try:
            configs = check(argv)
            stores = {tracking.resolve_store(cfg.tracking.uri, cfg.tracking.artifact_location)[0] for cfg in configs}
            for uri in sorted(stores):  # an unreachable server stops the launch here, not minutes into a job
                tracking.check_reachable(uri)
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        from runner.job import ensure_corpus

        for uri in sorted(stores):  # create stores and corpora here, once, before any job starts
            tracking.ensure_store(uri)
        for cfg in configs:
            ensure_corpus(cfg)
    from runner import app

    sys.argv = [sys.argv[0], *argv]
    try:
        app.main()
    except app.Interrupted as stop:
        return int(stop.code)
    # A failed job, a job another live process is training, or a failed report: the command did not do it all.
    if any(outcome.status in ("FAILED", "BUSY") for outcome in app.OUTCOMES) or app.SWEEP_ERRORS:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
