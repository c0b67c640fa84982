"""``python -m strangler`` is the ``strangler`` command."""

import sys

from strangler.cli import main

sys.exit(main())
