"""The Dagster shell: assets, checks, sensors and resources that wire the core together."""
