"""Write a real-looking 5-column CSV of weather readings (docs/python-api.md's worked example).

    python docs/examples/weather_csv.py weather.csv [ROWS]

Columns on their own scales and with dependence between them: temperature (°C) with a daily cycle, relative
humidity (%) falling as it warms, pressure (hPa) drifting slowly, wind speed (m/s, skewed) and solar
radiation (W/m², zero at night plus noise). Seeded: the same file every time.
"""

from __future__ import annotations

import sys

import numpy as np


def weather(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hour = rng.uniform(0, 24, rows)
    day = np.sin((hour - 9) / 24 * 2 * np.pi)
    temperature = 14 + 6 * day + rng.normal(0, 2.0, rows)
    humidity = np.clip(70 - 2.5 * (temperature - 14) + rng.normal(0, 6, rows), 5, 100)
    pressure = 1013 + rng.normal(0, 7, rows) - 0.3 * (temperature - 14)
    wind = rng.gamma(2.0, 1.6, rows) + 0.05 * np.abs(pressure - 1013)
    solar = np.maximum(0, 600 * day) + rng.normal(0, 25, rows)
    return np.column_stack([temperature, humidity, pressure, wind, solar])


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "weather.csv"
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    np.savetxt(path, weather(rows), delimiter=",", fmt="%.3f",
               header="temperature,humidity,pressure,wind,solar", comments="")
    print(f"wrote {rows} rows to {path}")
