"""The Textual application (wired up by the dashboard work)."""
