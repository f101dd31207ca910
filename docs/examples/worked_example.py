"""The worked example of docs/python-api.md, end to end (its printed output is quoted there).

    python docs/examples/weather_csv.py weather.csv
    jko-flow train dataset=file dataset.path=weather.csv alpha=5 hydra.run.dir=outputs/weather
    python docs/examples/worked_example.py outputs/weather weather.csv
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.model_selection import GridSearchCV

from jko_cli import JKOFlow

run_dir, csv = sys.argv[1], sys.argv[2]
X = np.loadtxt(csv, delimiter=",", skiprows=1)

flow = JKOFlow.load(run_dir)  # the command line's run, as an estimator
print("nll_test (data units):", round(flow.metrics_["nll_test_data"], 4))
print("log p of the first 3 rows:", np.round(flow.score_samples(X[:3]), 3))
print("mean log-likelihood of all rows:", round(flow.score(X), 4))
print("3 samples:\n", np.round(flow.sample(3, random_state=0), 2))

# a cross-validated search over alpha, on a CPU-sized budget (the default is 800 epochs per JKO step)
start = time.perf_counter()
search = GridSearchCV(JKOFlow(n_steps=5, trainer={"epochs_per_step": 30}), {"alpha": [1, 5, 20]}, cv=3)
search.fit(X)
for alpha, score in zip(search.cv_results_["param_alpha"], search.cv_results_["mean_test_score"], strict=True):
    print(f"alpha={alpha}: mean held-out log-likelihood {score:.4f}")
print("best:", search.best_params_, f"({time.perf_counter() - start:.0f} s for 9 fits + the refit)")
