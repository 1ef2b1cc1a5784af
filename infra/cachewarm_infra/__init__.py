"""The cachewarm CDK app: constructs for the network, the Redis cache, the table and the workers.

:mod:`cachewarm_infra.stack` composes them; every grant happens there. Settings come from CDK
context and are parsed once, in :mod:`cachewarm_infra.config`.
"""
