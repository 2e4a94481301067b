"""musicgen-ops: fine-tune MusicGen with LoRA, export it and serve it, on one machine or on Kubernetes."""

__version__ = "0.1.0"
