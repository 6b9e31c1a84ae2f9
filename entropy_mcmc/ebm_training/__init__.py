"""Training energy-based models with any kernel as the negative sampler (later work)."""
