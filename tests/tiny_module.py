"""A tiny autoencoder used to exercise the CLI, loggers and callbacks before any paper module."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from datamodules.keys import IMAGE
from lightning_modules.gan_module import GANModule, OptimizerSpec, Phase


class TinyAutoencoder(L.LightningModule):
    def __init__(self, channels: int = 4, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh())

    def generate_for_metrics(self, batch: dict) -> torch.Tensor:
        return self.net(batch["image"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = (self.net(batch["image"]) - batch["image"]).abs().mean()
        self.log("train/l1", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/l1", (self.net(batch["image"]) - batch["image"]).abs().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class TinyTranslator(GANModule):
    """A single-phase, non-adversarial module on the GAN scaffold (as style transfer is): one
    network, one optimizer, no discriminator, no EMA."""

    def __init__(self, channels: int = 4, lr: float = 1e-2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(channels, 3, 3, padding=1))

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {"net": OptimizerSpec([self.net], self.hparams.lr, betas=(0.9, 0.99))}

    def phases(self) -> list[Phase]:
        return [Phase("main", "net")]

    def loss_main(self, batch: dict, gain: float) -> dict[str, torch.Tensor]:
        return {"L1": (self.net(batch[IMAGE]) - batch[IMAGE]).abs().mean()}
