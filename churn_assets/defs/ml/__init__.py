"""ML layer: the monthly model with its champion gate, predictions, and the monthly retraining schedule."""
