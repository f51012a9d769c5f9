"""Kill-switches and gradual rollout: which drivers get which v2 behaviour, decided per decision."""
