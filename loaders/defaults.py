"""The loader's defaults, in a module of their own so that ``cachewarm load --help`` can show them cheaply."""

from __future__ import annotations

#: Writer processes of a local load. Measured on the 2-core reference machine
#: against dynalite (benchmarks/bench_load.py records it every run, 50k lines),
#: four runs: 1 process x 8 threads did 3,840 / 4,410 / 4,696 / 4,118 items/s,
#: 2 processes x 4 threads 3,871 / 4,248 / 3,996 / 5,198: a tie within the shared
#: machine's noise, at 68 MB instead of 154 MB. The writers wait on DynamoDB, so
#: threads suffice; ``--workers N`` spreads a load over N processes where CPU is free.
DEFAULT_WORKERS = 1
#: Concurrent BatchWriteItem requests per writer process.
DEFAULT_THREADS = 8
