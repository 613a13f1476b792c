"""A run resolved once, at the config boundary: every configuration check before any work.

:func:`resolve_run` turns a :class:`~recsys_hmtl.config.RunConfig` into a frozen :class:`RunPlan`:
the adapter (SPEC §9) and its resolved part (data section, task tuple, model hyper-parameters), the
stage's hyper-parameters and the trainer and metrics settings, each checked; or it raises
:class:`~recsys_hmtl.errors.InputError` naming the key. ``validate``, ``train`` (the launcher and
every rank, which resolve the same config to the same plan) and ``evaluate`` start from it, so a
bad value fails with exit code 2 before data is read, a run folder is touched or a process is
started. Checks that need the data (the model against the features) are the adapter's
:meth:`~recsys_hmtl.training.adapter.TaskAdapter.check_model`, run as soon as the data is prepared.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..config import RunConfig
from ..errors import InputError
from .adapter import AdapterPlan, TaskAdapter, get_adapter
from .bilevel import bilevel_on, check_bilevel
from .setup import build_loss_stage
from .steps import check_grad_mode

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class RunPlan:
    """The checked, resolved parts of a run (read-only)."""

    config: RunConfig
    adapter: TaskAdapter
    resolved: AdapterPlan
    stage_hparams: Mapping[str, Any]
    single_process: str | None = None  # why the run trains in one process only (None: any number)

    @property
    def data(self) -> Any:
        return self.resolved.data

    @property
    def task_names(self) -> tuple[str, ...]:
        return self.resolved.tasks

    def fingerprint(self) -> list[dict]:
        """The input files' fingerprint (content digests; memoised by the adapter where it can)."""
        return self.adapter.fingerprint(self.resolved)

    def check_world_size(self, world: int) -> None:
        limit = self.adapter.max_world_size
        if limit is not None and world > limit:
            raise InputError(f"the {self.adapter.name} adapter trains in at most {limit} process(es), "
                             f"not {world}", key="--nproc")
        if world > 1 and self.single_process:
            raise InputError(f"{self.single_process} trains in one process (its inner gradients are outside "
                             f"DDP's reducer), not {world}", key="--nproc")
        if self.config.trainer.batch_size % world:
            raise InputError(f"must be divisible by the number of processes ({world})", key="trainer.batch_size")


def resolve_run(cfg: RunConfig) -> RunPlan:
    """Check every key of ``cfg`` that needs no data; InputError (exit 2) naming the first bad one."""
    _check_trainer(cfg)
    _check_metrics(cfg)
    adapter = get_adapter(cfg.adapter)
    resolved = adapter.resolve(cfg)
    stage = build_loss_stage(cfg, list(resolved.tasks))  # stage.name and the stage's own checks
    check_bilevel(cfg, adapter, resolved, stage)
    check_grad_mode(cfg.stage.grad_mode, stage)
    single = ("bilevel mode" if bilevel_on(cfg) else
              "LDC-MTL's double loop" if stage.needs_lower_level else None)
    return RunPlan(config=cfg, adapter=adapter, resolved=resolved,
                   stage_hparams=MappingProxyType(dict(cfg.stage.hparams)), single_process=single)


def _check_trainer(cfg: RunConfig) -> None:
    t = cfg.trainer
    for key in ("batch_size", "eval_batch_size", "max_epochs", "log_every", "max_nonfinite"):
        value = getattr(t, key)
        if value < 1:
            raise InputError(f"must be at least 1, got {value}", key=f"trainer.{key}")
    if t.acting_window < 4:
        raise InputError(f"must be at least 4 steps, got {t.acting_window}", key="trainer.acting_window")
    if t.ckpt_every < 0:
        raise InputError(f"must be at least 0 (0: only at the end), got {t.ckpt_every}", key="trainer.ckpt_every")
    if t.max_steps != -1 and t.max_steps < 1:
        raise InputError(f"must be -1 (no limit) or at least 1, got {t.max_steps}", key="trainer.max_steps")
    for key in ("lr", "sparse_lr"):
        value = getattr(t, key)
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"must be a positive finite number, got {value}", key=f"trainer.{key}")
    if t.device.split(":")[0] not in DEVICES:
        raise InputError(f"unknown device '{t.device}'", key="trainer.device",
                         hint="use cpu, cuda or cuda:N")


def _check_metrics(cfg: RunConfig) -> None:
    m = cfg.metrics
    if not 0 <= m.port <= 65535:
        raise InputError(f"must be a TCP port 1..65535, or 0 for no /metrics endpoint; got {m.port}",
                         key="metrics.port")
    if m.port and not m.addr.strip():
        raise InputError("must be an address to bind /metrics to (e.g. 127.0.0.1)", key="metrics.addr")
    if m.pushgateway is not None:
        check_pushgateway_url(m.pushgateway)
    if m.window < 1:
        raise InputError(f"must be at least 1 step, got {m.window}", key="metrics.window")
    if not m.group.strip():
        raise InputError("must be a non-empty name (the Pushgateway grouping key part; default 'default')",
                         key="metrics.group")


def check_pushgateway_url(url: str) -> None:
    """``[http(s)://]HOST[:PORT][/path]`` (prometheus-client adds ``http://`` to a URL without a
    scheme) with a valid host and port; anything else names ``metrics.pushgateway``."""
    hint = "expected http://HOST:PORT, e.g. http://127.0.0.1:9091 (or leave it unset)"
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port outside 0..65535 or not a number
    except ValueError as exc:
        raise InputError(f"not a valid URL {url!r} ({exc})", key="metrics.pushgateway", hint=hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"not an http(s) URL with a host: {url!r}", key="metrics.pushgateway", hint=hint)
    if port == 0 or any(c.isspace() for c in text):
        raise InputError(f"not a valid URL {url!r}", key="metrics.pushgateway", hint=hint)
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not all(label and len(label) < 64 and label.replace("-", "").replace("_", "").isalnum()
                   for label in host.split(".")):
            raise InputError(f"'{host}' is not a valid host name", key="metrics.pushgateway",
                             hint=hint) from None
