"""The trained parts of the agent: encoder, predictor, JEPA objective and regularisers, level 2, critic, policy, probes."""
