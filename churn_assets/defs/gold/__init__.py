"""Gold layer: value, the retention plan and summary, action effects, uplift validation and campaigns."""
