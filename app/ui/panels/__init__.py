"""Side panels and readouts: display settings, review figures, the status line, the cohort worklist and adjudication."""
