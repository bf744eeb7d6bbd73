"""The monthly snapshot partitions every snapshot table shares."""

import dagster as dg

from churn_assets.settings import Settings


def snapshot_partitions(settings: Settings) -> dg.MonthlyPartitionsDefinition:
    """One partition per monthly snapshot S from CHURN_START_DATE; the current month's S has
    passed, so it is included (end_offset=1). Which of them are computed follows the data
    (``automation.py``), not the calendar."""
    return dg.MonthlyPartitionsDefinition(start_date=settings.start_date.isoformat(), end_offset=1)
