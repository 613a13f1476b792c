"""The recommendation adapter (SPEC §9): KuaiRand / TikTok / QK-Video logs (``recsys_hmtl.data``)
and the TorchRec towers (``recsys_hmtl.models``), sharded by DMP, trained by the core."""

from .adapter import RecsysAdapter

__all__ = ["RecsysAdapter"]
