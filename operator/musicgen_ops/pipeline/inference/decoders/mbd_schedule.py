"""MultiBand Diffusion sampling: power noise schedule, band equaliser, subsampled reverse process.

Same maths as audiocraft's ``NoiseSchedule.generate_subsampled`` and ``MultiBandProcessor`` (paper sections
3.2-3.4): betas follow ``linspace(beta_t0^(1/p), beta_t1^(1/p), num_steps)^p``; sampling walks a subset of
the chain's states (by default every 50th of 1000, 20 network calls) with the DDPM posterior variance; the
processor maps between the diffusion space (each mel band scaled to the energy of Gaussian noise in that
band) and audio. Every random draw comes from the caller's ``torch.Generator`` objects (one per batch
item), so a seed gives the same audio whatever the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

#: audiocraft's default reverse-process length: states 999, 949, ..., 49, then 0.
DEFAULT_SAMPLING_STEPS = 20


@dataclass(frozen=True)
class ScheduleConfig:
    """``cfg.schedule`` of an MBD checkpoint (training-only keys are ignored)."""

    beta_t0: float = 1e-4
    beta_t1: float = 0.02
    beta_exp: float = 1.0
    num_steps: int = 1000
    clip: float = 5.0
    rescale: float = 1.0
    noise_scale: float = 1.0
    repartition: str = "power"
    n_bands: int | None = None

    @classmethod
    def from_dict(cls, values: dict, where: str = "schedule") -> ScheduleConfig:
        """Pick the sampling keys; refuse schedules this decoder does not implement."""
        keys = (
            "beta_t0",
            "beta_t1",
            "beta_exp",
            "num_steps",
            "clip",
            "rescale",
            "noise_scale",
            "repartition",
        )
        config = cls(**{key: values[key] for key in keys if key in values}, n_bands=values.get("n_bands"))
        if config.repartition != "power":
            raise ValueError(f"{where}.repartition: only 'power' is supported, got {config.repartition!r}")
        if config.n_bands is not None:
            raise ValueError(f"{where}.n_bands: per-band schedules are not supported (must be null)")
        if config.num_steps < 2:
            raise ValueError(f"{where}.num_steps must be at least 2, got {config.num_steps}")
        return config

    def betas(self) -> torch.Tensor:
        """Per-step variances, float32 on CPU (as audiocraft computes them)."""
        exponent = self.beta_exp
        low, high = self.beta_t0 ** (1 / exponent), self.beta_t1 ** (1 / exponent)
        return torch.linspace(low, high, self.num_steps, dtype=torch.float32) ** exponent


def step_list(num_steps: int, sampling_steps: int = DEFAULT_SAMPLING_STEPS) -> list[int]:
    """Chain states visited, from ``num_steps - 1`` down to 0; 20 of 1000 gives audiocraft's default."""
    if not 1 <= sampling_steps < num_steps:
        raise ValueError(f"sampling steps must be between 1 and {num_steps - 1}, got {sampling_steps}")
    stride = num_steps // sampling_steps
    return list(range(num_steps))[::-stride][:sampling_steps] + [0]


class MultiBandProcessor(nn.Module):
    """Per-mel-band rescaling between audio and diffusion space, from statistics stored at training.

    Buffers (``counts``, ``sum_x``, ``sum_x2``, ``sum_target_x2``, ``split_bands.lowpass.filters``) carry
    the published ``processor_state`` key names.
    """

    def __init__(self, sample_rate: int, n_bands: int = 8, power_std: float | Sequence[float] = 1.0) -> None:
        super().__init__()
        import julius

        self.n_bands = n_bands
        self.split_bands = julius.SplitBands(sample_rate, n_bands=n_bands)
        power = torch.as_tensor(power_std, dtype=torch.float32)
        if power.ndim and power.numel() != n_bands:
            raise ValueError(f"processor.power_std has {power.numel()} values for {n_bands} bands")
        self.power_std = power
        self.register_buffer("counts", torch.zeros(1))
        self.register_buffer("sum_x", torch.zeros(n_bands))
        self.register_buffer("sum_x2", torch.zeros(n_bands))
        self.register_buffer("sum_target_x2", torch.zeros(n_bands))

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = self.sum_x / self.counts
        std = (self.sum_x2 / self.counts - mean**2).clamp(min=0).sqrt()
        target_std = self.sum_target_x2 / self.counts
        return mean, std, target_std

    def project_sample(self, x: torch.Tensor) -> torch.Tensor:
        """Audio -> diffusion space (used to check the round trip; training is not done here)."""
        mean, std, target_std = self._stats()
        rescale = (target_std / std.clamp(min=1e-12)) ** self.power_std.to(x.device)
        bands = (self.split_bands(x) - mean.view(-1, 1, 1, 1)) * rescale.view(-1, 1, 1, 1)
        return bands.sum(dim=0)

    def return_sample(self, x: torch.Tensor) -> torch.Tensor:
        """Diffusion space -> audio."""
        mean, std, target_std = self._stats()
        rescale = (std / target_std) ** self.power_std.to(x.device)
        bands = self.split_bands(x) * rescale.view(-1, 1, 1, 1) + mean.view(-1, 1, 1, 1)
        return bands.sum(dim=0)


class IdentityProcessor(nn.Module):
    """Bands trained without the equaliser (``processor.use: false``): diffusion space is audio."""

    def project_sample(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def return_sample(self, x: torch.Tensor) -> torch.Tensor:
        return x


def gaussian_like(shape: Sequence[int], generators: Sequence[torch.Generator], device, dtype) -> torch.Tensor:
    """Standard normal noise, item ``b`` of the batch drawn from ``generators[b]`` (on CPU, then moved)."""
    per_item = tuple(shape[1:])
    noise = [torch.randn(per_item, generator=generator, dtype=torch.float32) for generator in generators]
    return torch.stack(noise).to(device=device, dtype=dtype)


@torch.no_grad()
def sample_band(
    model: nn.Module,
    schedule: ScheduleConfig,
    processor: nn.Module,
    condition: torch.Tensor,
    shape: Sequence[int],
    generators: Sequence[torch.Generator],
    steps: Sequence[int],
) -> torch.Tensor:
    """One band's reverse diffusion from Gaussian noise to audio ``shape`` = (batch, channels, samples)."""
    device, dtype = condition.device, condition.dtype
    betas = schedule.betas()
    cumulative = torch.cumprod(1 - betas, dim=0)
    visited = cumulative[list(reversed(steps))]
    sub_betas = 1 - torch.cat([visited[:1], visited[1:] / visited[:-1]])
    noise_scale = schedule.noise_scale
    current = gaussian_like(shape, generators, device, dtype) * noise_scale
    alpha_bar = float(cumulative[schedule.num_steps - 1])
    for index, step in enumerate(steps[:-1]):
        estimate = model(current, step, condition=condition) * noise_scale
        alpha = float(1 - sub_betas[-1 - index])
        previous = (current - (1 - alpha) / (1 - alpha_bar) ** 0.5 * estimate) / alpha**0.5
        if step == steps[-2]:
            sigma2, previous_alpha_bar = 0.0, 1.0
        else:
            previous_alpha_bar = float(cumulative[steps[index + 1]])
            sigma2 = (1 - previous_alpha_bar) / (1 - alpha_bar) * (1 - alpha)
        if sigma2 > 0:
            previous = previous + sigma2**0.5 * noise_scale * gaussian_like(shape, generators, device, dtype)
        if schedule.clip:
            previous = previous.clamp(-schedule.clip, schedule.clip)
        current, alpha_bar = previous, previous_alpha_bar
    return processor.return_sample(current)
