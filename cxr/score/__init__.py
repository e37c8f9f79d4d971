"""Archive scoring: the model over every image of a shards folder, exactly once per (image, task)."""
