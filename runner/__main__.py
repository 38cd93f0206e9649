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
            stores = {tracking.resolve_store(c.tracking.uri, c.tracking.artifact_location)[0] for c in configs}
            for uri in sorted(stores):  # an unreachable server stops the launch here, not minutes into a job
                tracking.check_reachable(uri)
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        for uri in sorted(stores):  # create stores and corpora here, once, before any job starts
            try:
                tracking.ensure_store(uri)
            except Exception as error:  # noqa: BLE001 - a store that cannot be used ends the launch in one line
                print(f"error: tracking.uri={uri} cannot be used as an MLflow store ({type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}): allowed a writable sqlite:///path or "
                      f"a running MLflow server", file=sys.stderr)
                return 2
        for config in configs:
            config.data.ensure_corpus()
    from runner import app

    sys.argv = [sys.argv[0], *argv]
    try:
        app.main()
    except SystemExit as stop:  # the app and the sweep callback say how it ended
        return stop.code if isinstance(stop.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
