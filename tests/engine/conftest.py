"""Engine tests need no database and no Django settings; they only make the
helpers module importable as ``enginekit``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
