"""The dev stack: local processes for ``make up``, ``make demo``, the tests and the benchmarks.

redis-server and dynalite on free ports (:mod:`devstack.localstack`), a private
stack and the environment for it (:mod:`devstack.private`, for the tests and the
benchmarks), the DynamoDB counting and fault proxy (:mod:`devstack.dynamo_proxy`),
dynalite's launcher (``dynalite-server.js``) and the task ledger that the
reliability tests load into their workers (:mod:`devstack.ledger`). Only the shell, the tests and
the benchmarks import it; the core, the loaders and the workers never do (the
layer contract in ``pyproject.toml`` checks it).
"""
