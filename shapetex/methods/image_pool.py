"""CycleGAN's history of generated images, which its discriminators see instead of only the newest fakes."""

from __future__ import annotations

import torch
from torch import nn


class ImagePool(nn.Module):
    """CycleGAN's history of generated images (Shrivastava et al. 2017). While filling, every image goes
    in and comes back out; once full, each image is, with probability 1/2, swapped for a random stored one
    (which is returned instead), else returned as is. Randomness from torch's global RNG; the stored
    images are buffers, so the pool is saved and restored with the checkpoint."""

    def __init__(self, size: int, image_shape: tuple[int, ...]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images.detach()
        images = images.detach()
        out = []
        count = int(self.count)
        for img in images:
            if count < self.size:
                self.images[count] = img
                count += 1
                out.append(img)
            elif float(torch.rand(())) < 0.5:
                i = int(torch.randint(self.size, ()))
                out.append(self.images[i].to(img.dtype).clone())
                self.images[i] = img
            else:
                out.append(img)
        self.count.fill_(count)
        return torch.stack(out)
