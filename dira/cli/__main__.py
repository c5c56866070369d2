"""``python -m dira.cli``: how torchrun starts one ``dira`` process per GPU."""

import sys

from dira.cli import main

sys.exit(main())
