"""fixoms: CLI, configuration and wiring (the composition root)."""
