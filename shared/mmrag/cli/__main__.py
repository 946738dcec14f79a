"""`python -m mmrag.cli ...`: the same as the `mmrag` command."""

from mmrag.cli import main

raise SystemExit(main())
