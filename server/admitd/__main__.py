"""Allow `python -m admitd`."""

from admitd.cli import main

raise SystemExit(main())
