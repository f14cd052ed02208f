"""Subscribers: search, the 360 story of one subscriber and its JSON API (import modules by full path)."""
