"""``python -m cdcsync.soak``."""

from __future__ import annotations

import sys

from cdcsync.soak.run import main

sys.exit(main())
