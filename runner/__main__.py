"""python -m runner [+preset=NAME] [overrides]   |   python -m runner -m sweep=before_after [overrides]"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from runner.preflight import check, is_informational
    from runner.schema import ConfigError

    if not is_informational(argv):
        try:
            configs = check(argv)
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        from runner import tracking
        from runner.job import ensure_corpus

        for cfg in configs:  # create stores and corpora here, once, before any job starts
            tracking.ensure_store(tracking.resolve_store(cfg.tracking.uri, cfg.tracking.artifact_location)[0])
            ensure_corpus(cfg)
    from runner import app

    sys.argv = [sys.argv[0], *argv]
    try:
        app.main()
    except app.Interrupted as stop:
        return int(stop.code)
    if any(outcome.status == "FAILED" for outcome in app.OUTCOMES):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
