"""The cost module (Sec. 3.2-3.3): immutable intrinsic terms, the critic term, boredom, and the configurator."""
