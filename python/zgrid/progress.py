"""A progress line for people: done/faulted, rate, ETA (like `zgrid status --watch`)."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterator, Optional, TextIO


class Progress:
    """Draws `\\r[#####.....] 512/1,000 done 510 faulted 2 · 12,345/s · ETA 0:00:04`
    at most every `interval` seconds, and a final line when closed."""

    def __init__(self, out: TextIO, total: Optional[int], interval: float = 0.2):
        self.out = out
        self.total = total
        self.interval = interval
        self.done = self.faulted = 0
        self.t0 = time.monotonic()
        self.last = 0.0

    def add(self, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.faulted += 1
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.draw(now)

    def line(self, now: float) -> str:
        n = self.done + self.faulted
        elapsed = max(now - self.t0, 1e-9)
        rate = n / elapsed
        parts = []
        if self.total:
            width = 24
            filled = min(width, int(width * n / self.total))
            parts.append("[" + "#" * filled + "." * (width - filled) + "]")
            parts.append(f"{n:,}/{self.total:,}")
        else:
            parts.append(f"{n:,}")
        parts.append(f"done {self.done:,} faulted {self.faulted:,}")
        parts.append(f"{rate:,.0f}/s")
        if self.total and rate > 0 and n < self.total:
            left = int((self.total - n) / rate)
            parts.append(f"ETA {left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}")
        return " ".join(parts)

    def draw(self, now: float) -> None:
        self.out.write("\r" + self.line(now) + "\x1b[K")
        self.out.flush()

    def close(self) -> None:
        self.draw(time.monotonic())
        self.out.write("\n")
        self.out.flush()


def with_progress(results: Iterator[Any], progress: Any, total: Optional[int],
                  ok: Callable[[Any], bool]) -> Iterator[Any]:
    """Passes `results` through, counting them on a progress line: on stderr
    when `progress` is True and stderr is a terminal, or on `progress` when
    it is a file. `ok(result)` tells done from faulted (the caller knows
    what a fault looks like: this module imports nothing of zgrid's)."""
    if progress is True:
        out = sys.stderr if sys.stderr.isatty() else None
    elif progress:
        out = progress
    else:
        out = None
    if out is None:
        yield from results
        return
    bar = Progress(out, total)
    try:
        for r in results:
            bar.add(ok(r))
            yield r
    finally:
        bar.close()
