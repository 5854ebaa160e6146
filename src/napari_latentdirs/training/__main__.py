"""``torchrun --nproc_per_node N -m napari_latentdirs.training gan|vae --data ... --out RUN``.

Also works as a plain single-process ``python -m napari_latentdirs.training``. An entry point
like ``cli.py`` (nothing imports it), so it sits on the top layer and runs the train command.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..commands.train import add_arguments, run
from . import ddp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m napari_latentdirs.training", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    clean = False
    try:
        code = run(args)
        clean = code == 0
        return code
    finally:
        ddp.shutdown(clean)


if __name__ == "__main__":
    sys.exit(main())
