"""GPU pool scaling: the pure policy, the loop that applies it, and the backends."""
