"""The tricklab HTTP API (FastAPI). Never imports torch."""
