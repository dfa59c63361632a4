"""History pool of generated poses for discriminator updates (Shrivastava et al. 2017).

Showing the discriminator older fakes as well as the newest keeps it from chasing the
augmentor's latest mode. Same policy as the official ``Sample_from_Pool`` (utils/gan_utils.py
in jfzhang95/PoseAug, 4096 poses, one decision per pose): while the pool fills, every pose is
stored and returned; once full, each pose is, with probability ``p_old``, swapped for a
random stored one (the stored one is returned, the new one takes its slot), else returned.

Vectorized per batch: poses of one batch that draw the same slot all get that slot's
pre-batch content, and the last of them is stored. All randomness comes from the pool's own
CPU ``torch.Generator`` so results do not depend on the device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

DEFAULT_POOL_SIZE = 4096  # official Sample_from_Pool(max_elements=4096)


class HistoryPool:
    """Fake-sample pool; ``pool(batch)`` returns a batch of the same shape, detached."""

    def __init__(
        self,
        size: int = DEFAULT_POOL_SIZE,
        p_old: float = 0.5,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if size < 0 or not 0.0 <= p_old <= 1.0:
            raise ValueError(f"need size >= 0 and 0 <= p_old <= 1, got {size}, {p_old}")
        self.size = size
        self.p_old = p_old
        if generator is None:
            generator = torch.Generator()
            # Seeded from the global RNG unless told, so torch.manual_seed makes it repeatable.
            generator.manual_seed(
                seed if seed is not None else int(torch.randint(2**62, (1,)).item())
            )
        self.generator = generator
        self._items: Tensor | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def items(self) -> Tensor | None:
        """The stored poses [len, ...] (a view; None before the first call)."""
        return None if self._items is None else self._items[: self._count]

    def state_dict(self) -> dict[str, Any]:
        """Contents and RNG state, so a resumed run continues exactly (as nn.Module's API)."""
        items = None if self._items is None else self._items[: self._count].clone()
        return {"size": self.size, "items": items, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise ValueError(f"pool size {self.size} cannot load a pool of {state['size']}")
        self.generator.set_state(state["generator"])
        items = state["items"]
        self._items, self._count = None, 0
        if items is not None:
            self._items = items.new_empty((self.size, *items.shape[1:]))
            self._items[: len(items)] = items
            self._count = len(items)

    def __call__(self, batch: Tensor) -> Tensor:
        batch = batch.detach()
        if self.size == 0:
            return batch
        if self._items is None:
            self._items = batch.new_empty((self.size, *batch.shape[1:]))
        elif self._items.shape[1:] != batch.shape[1:]:
            raise ValueError(
                f"pool holds items of shape {tuple(self._items.shape[1:])}, "
                f"got {tuple(batch.shape[1:])}"
            )
        out = batch.clone()
        n_fill = min(self.size - self._count, batch.shape[0])
        if n_fill > 0:
            self._items[self._count : self._count + n_fill] = batch[:n_fill]
            self._count += n_fill
        rest = batch.shape[0] - n_fill
        if rest == 0:
            return out
        swap = torch.rand(rest, generator=self.generator) < self.p_old
        slots = torch.randint(self.size, (rest,), generator=self.generator)
        positions = torch.nonzero(swap).flatten() + n_fill
        slots = slots[swap]
        if positions.numel() == 0:
            return out
        # Return every swapped pose's slot content from before this batch ...
        dev = batch.device
        out[positions.to(dev)] = self._items[slots.to(dev)]
        # ... and store, per slot, the last pose that drew it (deterministic writes).
        unique_slots, inverse = torch.unique(slots, return_inverse=True)
        last = torch.full((unique_slots.numel(),), -1, dtype=torch.long)
        last.scatter_reduce_(0, inverse, positions, reduce="amax")
        self._items[unique_slots.to(dev)] = batch[last.to(dev)]
        return out
