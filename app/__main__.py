"""``python -m app`` does what the ``slicewise`` command does."""

from app.cli import main

raise SystemExit(main())
