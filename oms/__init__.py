"""Order management core: domain model, state machine, risk, journal and the single-writer engine loop."""
