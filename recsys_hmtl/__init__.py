"""recsys_hmtl: priority-aware multi-task recommendation training on TorchRec.

Layers (SPEC §2): ``data`` → ``models`` → ``training``; ``priority`` (loss stages, torch only);
``evaluation``; ``monitoring``; ``adapters``; ``cli`` (argument parsing only).
"""

__version__ = "0.1.0"
