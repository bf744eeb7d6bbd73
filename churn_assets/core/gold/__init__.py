"""Gold: customer value, learned action effects, the uplift model, the retention plan with its holdout, and campaign read-outs."""
