"""``python -m app`` does what the ``slicewise`` command does."""

from app.ui.launch import main

raise SystemExit(main())
