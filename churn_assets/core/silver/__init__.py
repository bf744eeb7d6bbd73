"""Silver: typed, de-duplicated transactions with their quarantine, campaign contacts, and the point-in-time snapshots (features, labels)."""
