"""``python -m batchframe.simulator``: see :func:`batchframe.simulator.main`."""

import sys

from ._cli import main

sys.exit(main())
