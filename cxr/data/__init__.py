"""Datasets over shards (later issues) and synthetic images for demos and tests."""
