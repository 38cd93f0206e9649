"""python -m runner [+preset=NAME] [overrides]   |   python -m runner -m sweep=before_after [overrides]"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from runner.preflight import check, is_informational, prepare
    from runner.schema import ConfigError

    multirun = any(a in ("-m", "--multirun") for a in argv)
    if multirun and any(a.split("=")[0] in ("--cfg", "-c", "--info", "-i", "--shell-completion", "-sc") for a in argv):
        print("error: -m cannot be combined with --cfg or --info (Hydra's rule): allowed one of them; "
              "drop -m to see one job's config", file=sys.stderr)
        return 2
    if not is_informational(argv):
        try:  # a single run is checked here; a sweep's jobs by the sweeper, inside Hydra (runner/sweeper.py)
            prepare(check(argv))
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    from runner import app

    sys.argv = [sys.argv[0], *argv]
    try:
        app.main()
    except SystemExit as stop:  # the app and the sweep callback say how it ended
        return stop.code if isinstance(stop.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
