"""`python -m mmm_platform.cli`: the same as `mmm-platform`."""

import sys

from mmm_platform.cli import main

sys.exit(main())
