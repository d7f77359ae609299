"""Smart order routing: consolidated book, internal crossing, split strategies, TCA. No sockets, no database."""
