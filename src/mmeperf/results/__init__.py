"""Results: one run's files as DataFrames, comparisons, cost, charts and the HTML report."""
