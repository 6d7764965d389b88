"""``python -m xbarsim.cli``."""

from . import main

raise SystemExit(main())
