"""The churn model: training window, candidates, out-of-time metrics, the champion gate, the MLflow registry and scoring."""
