"""``python -m callcontrol``: the same as the ``callcontrol`` command."""

import sys

from callcontrol.cli import main

sys.exit(main())
