"""The suite registry loads once even when threads ask for it together (a worker's env lanes do)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Runs in a fresh interpreter (the registry loads once per process). Each suite package's import is
# slowed down so the second thread asks while the first is still loading: before the lock, it looked up
# an empty registry and raised "unknown suite 'metaworld'. Known: " (seen in `vla eval --workers 2
# --envs-per-worker 2` on MT50).
SCRIPT = textwrap.dedent(
    """
    import importlib, threading, time
    import vla.envs.base as base

    real = importlib.import_module
    def slow(name, *a, **k):
        time.sleep(0.2)
        return real(name, *a, **k)
    base.importlib.import_module = slow

    seen, errors = [], []
    def ask(delay):
        time.sleep(delay)
        try:
            seen.append(base.get_suite("metaworld").name)
        except Exception as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=ask, args=(0.05 * i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(sorted(seen), errors)
    assert not errors and seen == ["metaworld"] * 4, (seen, errors)
    """
)


def test_env_registry_serves_threads_that_ask_while_it_loads() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
