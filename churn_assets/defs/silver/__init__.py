"""Silver layer: transactions and quarantine, features and labels per monthly snapshot."""
