"""Which interrupted sweep ``resume`` continues, and why another one cannot be: the
flags, the data and a still-running process are checked before anything trains."""

from __future__ import annotations

import os
import socket

from sweepjax.errors import ConfigError
from sweepjax.store.db import Store


def _config_diff(old: dict, new: dict, prefix: str = "", quote: str = "") -> list[str]:
    """``key: old -> new`` for each differing entry (nested keys dotted; ``quote`` around
    each key, e.g. a backtick for an option the CLI shows as its flag)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{k}.", quote)
        elif a != b:
            out.append(f"{quote}{prefix}{k}{quote}: {a} -> {b}")
    return out


def _pid_alive(row) -> bool:
    if row.host != socket.gethostname() or not row.pid or row.pid == os.getpid():
        return False
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_resumable(st: Store, cfg: dict, kind: str, name: str | None, sha: str) -> str:
    """The unfinished sweep to continue (see the module docstring), or a ConfigError.
    ``cfg`` is the new sweep's config in its stored form (``SweepConfig.as_dict``)."""
    if name is not None:
        if not st.exists(name):
            raise ConfigError(
                f"no sweep named {name!r} to resume in {st.path}; drop `resume` to start it"
            )
        rows = [st.sweep_row(name)]
        if rows[0].status == "finished":
            raise ConfigError(
                f"sweep {name} already finished; nothing to resume "
                "(drop `resume` and pick a new `name`)"
            )
    else:
        rows = st.unfinished(kind)
        if not rows:
            raise ConfigError(
                f"no interrupted {kind} sweep in {st.path} to resume; "
                "drop `resume` to start a new one"
            )
        # Compared as this version stores them (the typed row's as_dict), so a sweep
        # stored by an older version matches the same flags now (a budget given as
        # "4000 steps" is stored as 4k).
        same = [r for r in rows if r.config.as_dict() == cfg]
        rows = same[:1] or rows[:1]
    row = rows[0]
    old = row.config.as_dict()
    diff = _config_diff(old, cfg)
    old_spec, new_spec = old.get("spec"), cfg.get("spec")
    if diff and old_spec and new_spec:
        # Name the options that differ (the config's other entries follow from them).
        diff = _config_diff(old_spec, new_spec, quote="`") or diff
    if diff:
        raise ConfigError(
            f"flags differ from interrupted sweep {row.id} ({'; '.join(diff[:3])}); "
            "rerun with its flags, or drop `resume` to start a new sweep"
        )
    if row.dataset.get("sha256") != sha:
        raise ConfigError(
            f"the data differs from sweep {row.id}'s (sha256 changed); "
            "restore it, or drop `resume` to start a new sweep"
        )
    if row.status == "running" and _pid_alive(row):
        raise ConfigError(
            f"sweep {row.id} is still running (pid {row.pid}); wait for it or stop it first"
        )
    return row.id
