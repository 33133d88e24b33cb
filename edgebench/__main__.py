"""`python -m edgebench` is the `edgebench` command."""

import sys

from edgebench.cli.main import main

sys.exit(main())
