"""Parity benchmark: seed-averaged multitask vs single-task models on real tasks, plain and with each remedy; the
options and what it writes: `python scripts/bench_parity.py --help` (the code: polyhead.benchmark.parity).

    python scripts/bench_parity.py --tiny      # offline smoke run on the tiny random encoder and synthetic tasks
"""

from polyhead.benchmark.parity import main


if __name__ == "__main__":
    main()
