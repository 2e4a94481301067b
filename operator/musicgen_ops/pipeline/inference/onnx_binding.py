"""ONNX Runtime decoding with IO binding: the key/value cache never leaves the device.

Without binding, every step hands the whole cache to ONNX Runtime as numpy arrays and gets a new,
one-longer copy back (on a GPU: two host copies of the cache per step). Here each layer's self-attention
keys and values live in two preallocated flat buffers on the execution provider's device, sized for the
whole generation: step ``t`` reads the past (``t`` positions) from one and the graph writes the present
(``t + 1`` positions) into the other, then they swap. Cross-attention keys/values are written once by
``decoder_init`` and read in place by every step. Only the ids go in and the logits come out per step.
"""

from __future__ import annotations

import numpy as np

from musicgen_ops.pipeline.export.descriptor import ModelConstants


class BoundDecoderState:
    """One generation's cache on ``device_type`` (``cpu`` or ``cuda``), run through IO bindings.

    Args:
        init_session, step_session: ``decoder_init`` and ``decoder_step`` sessions.
        constants: the export's model constants.
        hidden: encoder states ``[rows, text_len, hidden]`` (rows include the unconditional half).
        mask: encoder attention mask ``[rows, text_len]``.
        steps: decoder steps of this generation (the cache holds that many positions).
        device_type, device_id: where the buffers live (the first execution provider's device).
    """

    def __init__(
        self,
        init_session,
        step_session,
        constants: ModelConstants,
        hidden: np.ndarray,
        mask: np.ndarray,
        steps: int,
        device_type: str = "cpu",
        device_id: int = 0,
    ) -> None:
        import onnxruntime as ort

        self.device = (device_type, device_id)
        rows, text_len = mask.shape
        c = constants
        self.head_shape = (rows, c.num_heads)
        self.head_dim = c.head_dim
        self.layers = c.num_layers
        self.step_index = 0

        def buffer(shape: list[int], dtype=np.float32):
            return ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, device_type, device_id)

        flat = rows * c.num_heads * steps * c.head_dim
        #: self-attention cache: [layer][key=0/value=1][ping-pong 0/1], flat buffers
        self.cache = [[[buffer([flat]), buffer([flat])] for _ in range(2)] for _ in range(self.layers)]
        cross_shape = [rows, c.num_heads, text_len, c.head_dim]
        self.cross = [[buffer(cross_shape), buffer(cross_shape)] for _ in range(self.layers)]
        self.logits = buffer([rows, c.num_codebooks, 1, c.vocab_size])
        self.hidden = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(hidden), device_type, device_id)
        self.mask = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(mask), device_type, device_id)

        self.init_session, self.step_session = init_session, step_session
        self.init = init_session.io_binding()
        self.init.bind_ortvalue_input("encoder_hidden_states", self.hidden)
        self.init.bind_ortvalue_input("encoder_attention_mask", self.mask)
        self.init.bind_ortvalue_output("logits", self.logits)
        self.step = step_session.io_binding()
        self.step.bind_ortvalue_input("encoder_attention_mask", self.mask)
        self.step.bind_ortvalue_output("logits", self.logits)
        for i in range(self.layers):
            for kv, name in enumerate(("key", "value")):
                self.init.bind_ortvalue_output(f"present.{i}.cross.{name}", self.cross[i][kv])
                self.step.bind_ortvalue_input(f"past.{i}.cross.{name}", self.cross[i][kv])
                self._bind(self.init, "output", f"present.{i}.self.{name}", self.cache[i][kv][1], 1)

    def _bind(self, binding, kind: str, name: str, value, length: int) -> None:
        """Bind ``value``'s memory viewed as ``[rows, heads, length, head_dim]``."""
        shape = [*self.head_shape, length, self.head_dim]
        bind = binding.bind_input if kind == "input" else binding.bind_output
        bind(name, self.device[0], self.device[1], np.float32, shape, value.data_ptr())

    def run(self, ids: np.ndarray) -> np.ndarray:
        """Feed ``ids [rows, K, 1]``; return the logits ``[rows, K, 1, vocab]`` (a host array)."""
        t = self.step_index
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if t == 0:
            self.init.bind_cpu_input("input_ids", ids)
            self.init_session.run_with_iobinding(self.init)
        else:
            self.step.bind_cpu_input("input_ids", ids)
            for i in range(self.layers):
                for kv, name in enumerate(("key", "value")):
                    self._bind(self.step, "input", f"past.{i}.self.{name}", self.cache[i][kv][t % 2], t)
                    self._bind(
                        self.step, "output", f"present.{i}.self.{name}", self.cache[i][kv][(t + 1) % 2], t + 1
                    )
            self.step_session.run_with_iobinding(self.step)
        self.step_index += 1
        return self.logits.numpy()
