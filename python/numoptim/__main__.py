"""Command line of numoptim.

python -m numoptim demo            train a NumPy MLP with SGD and Adam
python -m numoptim info            print show_config()
python -m numoptim plot-schedule CosineAnnealingLR --T_max 100 --steps 110 -o lr.png
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m numoptim`` and the ``numoptim`` script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["plot-schedule"]:
        # Its options are the scheduler's own keyword arguments, parsed there.
        from .plotting import main as plot_main

        return plot_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m numoptim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a 2-layer NumPy MLP with SGD and Adam")
    demo.add_argument("--epochs", type=int, default=60)
    demo.add_argument("--no-plots", action="store_true", help="do not write the PNG curves")
    commands.add_parser("info", help="print show_config(): version, SIMD level, threads")
    commands.add_parser(
        "plot-schedule", help="plot a learning-rate schedule: plot-schedule NAME --arg value ..."
    )
    args = parser.parse_args(argv)

    if args.command == "demo":
        from .demo import main as demo_main

        return demo_main(epochs=args.epochs, plots=not args.no_plots)
    from ._config import show_config

    show_config()
    return 0


if __name__ == "__main__":
    sys.exit(main())
