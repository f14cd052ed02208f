"""Vantage: store, ingest, engine and the Dash pages of the operator command centre."""
