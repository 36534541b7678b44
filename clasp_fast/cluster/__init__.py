"""``--workers N``: the supervisor, the workers, the bus between them, shared limits."""
