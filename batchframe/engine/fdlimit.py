"""Open-file limit: every call in flight holds a socket, so thousands in flight need thousands of
file descriptors. Raise the soft limit to what the run needs where the hard limit allows; refuse
with a clear message where it does not."""

from __future__ import annotations

import logging

from ..exceptions import ConfigError

log = logging.getLogger("batchframe")
HEADROOM = 256  # files the process needs besides sockets (checkpoint, libraries, stdio)


def ensure_open_files(connections: int) -> None:
    try:
        import resource
    except ImportError:  # Windows: no RLIMIT_NOFILE; sockets are not limited the same way
        return
    need = connections + HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise ConfigError(
            f"{connections} calls in flight need about {need} open files, but this process may open "
            f"at most {hard} (hard limit). Lower max_workers/max_pending to {max(1, hard - HEADROOM)} "
            "or raise the limit (e.g. `ulimit -n` in the shell that starts Python).")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else max(need, min(hard, 65536)), hard))
    log.info("batchframe: raised the open-file limit from %d to %d for %d connections", soft, need, connections)
