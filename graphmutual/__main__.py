"""``python -m graphmutual`` is ``graphmutual``."""
import sys

from graphmutual.cli import main

sys.exit(main())
