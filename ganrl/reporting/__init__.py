"""Reporting: tables and plots from finished runs, apart from the code that makes the runs.

- `tables`: the user-model table (methods x datasets, prec@k mean (std) over seeds) and its
  records file;
- `compare`: user-model run folders compared, curves and a summary
  (`python -m ganrl.reporting.compare RUN_DIR ... --out DIR`);
- `policy_comparison`: policies over datasets and seeds, a table and a plot;
- `curves`: line plots whose lines stay told apart, and a policy run's `curves.png`.
"""
