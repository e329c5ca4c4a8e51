"""Evaluation: the goal-reaching protocol, decision timing, representation diagnostics and pictures."""
