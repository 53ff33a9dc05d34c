"""`python -m engine` is the `ape-engine` command."""

import sys

from engine.cli import main

sys.exit(main())
