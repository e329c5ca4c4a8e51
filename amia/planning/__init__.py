"""Mode-2 planners (Sec. 3.1.2): optimisers of a cost through a roll-out, and the count of their predictor calls."""
