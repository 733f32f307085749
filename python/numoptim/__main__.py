"""Command line: ``python -m numoptim demo`` trains a NumPy MLP; ``info`` shows the config."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m numoptim`` and the ``numoptim`` script."""
    parser = argparse.ArgumentParser(prog="python -m numoptim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a 2-layer NumPy MLP with SGD and Adam")
    demo.add_argument("--epochs", type=int, default=60)
    commands.add_parser("info", help="print show_config(): version, SIMD level, threads")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from .demo import main as demo_main

        return demo_main(epochs=args.epochs)
    from ._config import show_config

    show_config()
    return 0


if __name__ == "__main__":
    sys.exit(main())
