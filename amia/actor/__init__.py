"""The actor (Sec. 3.1, 5): Mode-2 planners (and, later, the Mode-1 policy)."""
