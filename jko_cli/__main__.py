"""``python -m jko_cli`` is ``jko-flow``."""

import sys

from jko_cli.cli import main

sys.exit(main())
