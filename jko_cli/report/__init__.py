"""Reporting a sweep: tables, statistics and figures from the run directories under one folder.

    collect.py     find the runs, read their configs and metrics, group them, cell statistics
    choosing_k.py  the jko.n_steps=auto study: K and Adam steps against fixed K, paired differences
    markdown.py    report.md
    figures.py     mmd_vs_alpha.png, samples_grid.png, steps.png, k_vs_alpha.png
    command.py     ``jko-flow report DIR`` (argument parsing, writing the files)
"""
