"""The benchmark task: measure on the live system, store the run durably."""

from __future__ import annotations

import logging
import time

from cachewarm import service
from cachewarm.bench_store import BenchmarkStore
from cachewarm.benchmark import run_benchmark as run_benchmark_core
from cachewarm.settings import get_settings
from workers.app import app
from workers.retry import RETRY_POLICY

log = logging.getLogger(__name__)


@app.task(name="cachewarm.run_benchmark", bind=True, **RETRY_POLICY)
def run_benchmark(self, sample: int = 50) -> dict:
    """Benchmark ``sample`` restaurants; store the run in DynamoDB; return it without raw samples.

    Not acks_late: a benchmark interrupted by a lost node is simply not
    recorded, and re-running it would measure a different moment anyway. (A
    lost pool process alone re-sends it, like every task: task_retry_on_worker_lost.)
    """
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    repo = service.repository()
    run = run_benchmark_core(service.engine(), repo, get_settings(), sample=int(sample), progress=progress)
    BenchmarkStore(repo).save(run)
    log.info("run_benchmark %s: %d names in %.2fs, db p50 %.2f ms, hit p50 %.3f ms, speedup p50 %.1fx",
             run["run_id"], run["sample"], time.perf_counter() - started, run["db_ms"]["p50"],
             run["hit_ms"]["p50"], run["speedup_p50"])
    return {k: v for k, v in run.items() if k not in ("samples", "names")}
