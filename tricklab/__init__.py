"""tricklab: the service around the tricks core (settings, Redis store, series, client, CLI)."""
