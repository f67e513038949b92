"""``python -m cdcsync.bench``."""

from __future__ import annotations

import sys

from cdcsync.bench.run import main

sys.exit(main())
