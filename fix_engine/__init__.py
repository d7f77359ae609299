"""QuickFIX glue: settings, the client acceptor, the FIX <-> domain codec. No routing or risk decisions."""
