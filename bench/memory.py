"""Peak memory of a job's process tree, sampled from outside, and of the JVM heap, from inside."""

from __future__ import annotations

import threading
from typing import Any

import psutil

MB = 1024 * 1024


class _Sampler:
    """A background thread that calls ``_sample`` every interval until the block ends."""

    def __init__(self, interval_s: float):
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._sample() is False:
                return
            self._stop.wait(self._interval)

    def _sample(self) -> bool | None:
        """Take one sample; return False to stop sampling."""
        raise NotImplementedError


class TreeSampler(_Sampler):
    """Samples the resident memory of one process and its descendants until stopped.

    The root is the job's Python process (the Spark driver for Spark jobs). Its ``java``
    descendant is the driver JVM (in local mode it also runs the executors); the other
    descendants are Python workers the JVM starts for Arrow UDFs and ML stages.
    """

    def __init__(self, pid: int, interval_s: float = 0.2):
        super().__init__(interval_s)
        self._root = psutil.Process(pid)
        self.peaks = {"python_rss": 0, "jvm_rss": 0, "driver_rss": 0, "workers_rss": 0}
        self.samples = 0

    def _sample(self) -> None:
        try:
            python = self._root.memory_info().rss
            children = self._root.children(recursive=True)
        except psutil.Error:  # the process ended between two samples
            return
        jvm = workers = 0
        for child in children:
            try:
                rss = child.memory_info().rss
                if child.name() == "java":
                    jvm += rss
                else:
                    workers += rss
            except psutil.Error:
                continue
        current = {
            "python_rss": python,
            "jvm_rss": jvm,
            "driver_rss": python + jvm,
            "workers_rss": workers,
        }
        for key, value in current.items():
            self.peaks[key] = max(self.peaks[key], value)
        self.samples += 1

    def result(self) -> dict[str, float]:
        """Peaks in MB, and how many samples they come from."""
        out: dict[str, float] = {f"{k}_mb": round(v / MB, 1) for k, v in self.peaks.items()}
        out["samples"] = self.samples
        return out


class HeapSampler(_Sampler):
    """Samples the driver JVM's heap through py4j: used heap, and old generation after GC."""

    def __init__(self, spark, interval_s: float = 0.5):
        management = spark._jvm.java.lang.management.ManagementFactory
        self._memory = management.getMemoryMXBean()
        self._pools = [p for p in management.getMemoryPoolMXBeans() if p.getType().name() == "HEAP"]
        super().__init__(interval_s)
        self.used_peak = 0
        self.after_gc_peak = 0

    def __enter__(self) -> HeapSampler:
        for pool in self._pools:
            pool.resetPeakUsage()
        return super().__enter__()

    def _sample(self) -> bool | None:
        try:
            self.used_peak = max(self.used_peak, self._memory.getHeapMemoryUsage().getUsed())
            after_gc = sum(
                p.getCollectionUsage().getUsed()
                for p in self._pools
                if p.isCollectionUsageThresholdSupported()
            )
            self.after_gc_peak = max(self.after_gc_peak, after_gc)
        except Exception:  # the gateway is closing
            return False
        return None

    def result(self) -> dict[str, float]:
        heap = self._memory.getHeapMemoryUsage()
        pool_peaks = sum(p.getPeakUsage().getUsed() for p in self._pools)
        return {
            "heap_used_peak_mb": round(self.used_peak / MB, 1),
            "heap_pool_peaks_sum_mb": round(pool_peaks / MB, 1),
            "old_gen_after_gc_peak_mb": round(self.after_gc_peak / MB, 1),
            "heap_max_mb": round(heap.getMax() / MB, 1),
        }
