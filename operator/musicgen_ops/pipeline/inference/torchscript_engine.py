"""``TorchScriptInferenceEngine``: the exported-parts generation loop on TorchScript files (CPU or CUDA)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from musicgen_ops.pipeline.export.descriptor import ExportDescriptor
from musicgen_ops.pipeline.inference.decoders import AudioDecoder
from musicgen_ops.pipeline.inference.onnx_engine import (
    PartsGenerationEngine,
    load_processor,
    resolve_export_folder,
)

logger = logging.getLogger(__name__)


class TorchScriptInferenceEngine(PartsGenerationEngine):
    """Generation on the ``torchscript/`` parts of a ``musicgen-ops export`` folder.

    Args:
        model_path: the export root (holding ``torchscript/``) or that folder itself.
        processor_path: defaults to the processor saved in the export folder.
        use_gpu: run on CUDA when torch sees a device (else CPU, with a log line).
        decoder: turns the codes into audio; default the exported EnCodec part.
    """

    def __init__(
        self,
        model_path: str | Path,
        processor_path: str | Path | None = None,
        use_gpu: bool = False,
        decoder: AudioDecoder | None = None,
    ):
        import torch

        folder = resolve_export_folder(model_path, "torchscript")
        descriptor = ExportDescriptor.load(folder)
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        if use_gpu and self.device.type == "cpu":
            logger.warning("use_gpu=True but no CUDA device is visible to torch: running on CPU")
        self.modules = {
            name: torch.jit.load(str(folder / spec.files["fp32"]), map_location=self.device).eval()
            for name, spec in descriptor.parts.items()
        }
        super().__init__(descriptor, load_processor(folder, processor_path), decoder)

    def _run(self, name: str, *arrays: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.modules[name](
                *(torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays)
            )
        out = out if isinstance(out, tuple) else (out,)
        return [t.cpu().numpy() for t in out]

    def run_text_encoder(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._run("text_encoder", input_ids, attention_mask)[0]

    def run_decoder_init(self, ids: np.ndarray, hidden: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        return self._run("decoder_init", ids, hidden, mask)

    def run_decoder_step(self, ids: np.ndarray, mask: np.ndarray, past: list[np.ndarray]) -> list[np.ndarray]:
        return self._run("decoder_step", ids, mask, *past)

    def run_audio_decoder(self, codes: np.ndarray) -> np.ndarray:
        return self._run("audio_decoder", codes)[0]
