"""Generated sample data with its latent truth, the simulated months and the report against that truth."""
