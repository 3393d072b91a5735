"""``python -m vidcorrect``: the same as the ``vidcorrect`` console script."""

import sys

from vidcorrect.cli import main

sys.exit(main())
