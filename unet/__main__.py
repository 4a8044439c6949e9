"""``python -m unet`` is the ``unet`` command."""

import sys

from unet.cli import main

sys.exit(main())
