"""Entry point of the ``runbook`` command and of ``python -m runbook``.

``--version`` is answered before the CLI framework is imported: monitoring calls it often and it must
be instant.
"""

import sys


def main() -> None:
    if sys.argv[1:] in (["--version"], ["-V"]):
        from runbook import __version__

        print(f"runbook {__version__}")
        return
    from runbook.cli import run

    run()


if __name__ == "__main__":
    main()
