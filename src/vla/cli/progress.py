"""Progress of long commands: a live tqdm bar on a terminal, plain periodic lines in logs.

A bar redraws itself with carriage returns many times a second; piped to a file (CI, nohup, `| tee`)
that becomes thousands of fragments on one line. So when the stream is not a terminal, `Progress`
prints one plain line every `1/lines` of the total instead (and a last one at close), as `vla train`
does with its metrics.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO


class Progress:
    """`update(n)` / `set_postfix(**values)` / `close()`, like a tqdm bar; also a context manager.

    Args:
        total: the count at completion (> 0).
        desc: what is counted, printed in front ("collect tabletop").
        unit: the unit of the count ("ep", "view").
        stream: where to write (default: stderr, like tqdm).
        lines: plain lines over the whole run when the stream is not a terminal.
    """

    def __init__(
        self, total: int, *, desc: str, unit: str = "it", stream: TextIO | None = None, lines: int = 20
    ) -> None:
        if total <= 0 or lines <= 0:
            raise ValueError(f"Progress needs total > 0 and lines > 0, got {total} and {lines}")
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.postfix: dict[str, Any] = {}
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._every = max(1, -(-total // lines))  # ceil: at most `lines` lines
        self._next = self._every
        self._start = time.perf_counter()
        self._printed_at = -1
        self._bar: Any = None
        if self.interactive:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        """Adds `n` to the count."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.count >= self._next:
            self._line()
            self._next = (self.count // self._every + 1) * self._every

    def set_postfix(self, **values: Any) -> None:
        """Extra values shown after the count (e.g. failures, throughput)."""
        self.postfix = values
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def close(self) -> None:
        """Ends the bar; in plain mode prints the final count unless the last line already did."""
        if self._bar is not None:
            self._bar.close()
        elif self._printed_at != self.count:
            self._line()

    def _line(self) -> None:
        elapsed = time.perf_counter() - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        pct = 100.0 * self.count / self.total
        self.stream.write(
            f"{self.desc}: {self.count}/{self.total} {self.unit} ({pct:.0f}%), {elapsed:.0f} s, "
            f"{rate:.1f} {self.unit}/s{extra}\n"
        )
        self.stream.flush()
        self._printed_at = self.count

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
