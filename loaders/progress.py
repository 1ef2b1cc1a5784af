"""What a progress display sees of a running load, and the memory it reports at the end."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress displays."""

    done_bytes: int
    total_bytes: int
    lines: int
    written: int
    rejected: int
    elapsed: float
    resumed_lines: int = 0

    @property
    def fraction(self) -> float:
        """Share of the input handled, 0..1."""
        return min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 1.0

    @property
    def items_per_second(self) -> float:
        """Lines handled per second by this run."""
        return (self.lines - self.resumed_lines) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds left, or None before there is a rate."""
        done = self.done_bytes
        if self.elapsed <= 0 or done <= 0 or self.fraction >= 1.0:
            return None if self.fraction < 1.0 else 0.0
        return self.elapsed * (self.total_bytes - done) / done


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since it started.

    Read from /proc's VmHWM where there is one: ``getrusage``'s ``ru_maxrss``
    survives ``execve`` on Linux, so a process spawned by a large parent would
    report the parent's size as its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
