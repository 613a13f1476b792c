"""The training core (SPEC §6, §9): one loop for every adapter.

``adapter`` (the task-adapter contract and its registry), ``outputs`` (what a model returns per
batch), ``run_plan`` (a run resolved once), ``run.train`` (one rank, ``recsys-hmtl train``),
``module`` (the LightningModule: one step), ``callbacks`` (checkpoints, SIGTERM, Prometheus),
``checkpoint`` (atomic per-rank files), ``position`` (resumable data position), ``evaluate``
(offline report of a checkpoint through its adapter), ``distributed`` and ``launch`` (processes,
``--nproc`` via torchrun). The core never imports an adapter; adapters register by name.
"""
