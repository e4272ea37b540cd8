"""Local emulators of the GitHub REST API and the Anthropic Message Batches API (demo and tests only)."""
