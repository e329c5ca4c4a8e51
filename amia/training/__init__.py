"""Learning: the one resumable training loop, the one in-memory fitting loop, and what they train (the world model,
level 2, the critics, the Mode-1 policy, the refined predictor)."""
