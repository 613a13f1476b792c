"""The main job (SPEC §6): Lightning training of a DMP-sharded tower through a loss stage.

``run.train`` (one rank, ``recsys-hmtl train``), ``module`` (the LightningModule: one step),
``callbacks`` (checkpoints, Prometheus), ``checkpoint`` (atomic per-rank files), ``position``
(resumable data position), ``evaluate`` (offline AUC/GAUC of a checkpoint), ``sharding`` and
``plan`` (DMP, fused sparse optimizer, sharding plans), ``launch`` (``--nproc`` via torchrun).
"""
