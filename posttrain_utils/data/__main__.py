"""``python -m posttrain_utils.data FILE [--format FMT]``: check a data file (`validate.main`).

Introduced in chapter 1 ("Data formats"). Exits 0 for a valid file, 1 with the file, line and
field of the first problem otherwise.
"""

import sys

from .validate import main

sys.exit(main())
