"""The ``corrlab`` command: LightningCLI (``fit``, ``validate``, ``test``, ``predict``) with
corrlab's run layout and default loggers, plus corrlab's own commands (:data:`COMMANDS`:
``data``, ``fid``, ``lpips``, ``stylize``, ``exemplars``, ``evaluate``, ``results``).
``corrlab --help`` lists them all."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
from pathlib import Path

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import callbacks  # noqa: F401  (registers callback classes for short class names)
import lightning_modules.distributed  # noqa: F401  (registers `strategy: corrlab_ddp`)
from datamodules import FewShotDataModule, PairedDataModule, UnpairedDataModule  # noqa: F401
from experiments.loggers import LOGGER_NAMES, default_loggers
from lightning_modules.checkpoint_io import AtomicCheckpointIO
from lightning_modules.errors import report_errors


def init_options(cls: type) -> list[str]:
    """Keyword options of ``cls(...)``, following ``**kwargs`` into base classes (as
    jsonargparse does)."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = list(inspect.signature(init).parameters.values())[1:]
        names += [p.name for p in parameters
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return sorted(set(names))


def _resolve(class_path: str) -> type | None:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def explain_unknown_options(message: str) -> str:
    """For each option a config or command line gave a class that does not take it, the valid
    options and the closest one (LightningCLI names only the rejected key)."""
    hints = []
    unknown = re.findall(r"class_path '([\w.]+)':\s*Option '(\w+)' is not accepted", message)
    unknown += [("lightning.pytorch.Trainer", key) for key in
                re.findall(r"does not accept option 'trainer\.(\w+)'", message)]
    for class_path, option in dict.fromkeys(unknown):
        cls = _resolve(class_path)
        if cls is None:
            continue
        valid = init_options(cls)
        close = difflib.get_close_matches(option, valid, n=1)
        guess = f" Did you mean '{close[0]}'?" if close else ""
        hints.append(f"'{option}' is not an option of {class_path}.{guess}\n"
                     f"  Valid options: {', '.join(valid)}")
    return "\n" + "\n".join(hints) if hints else ""


class CorrlabArgumentParser(LightningArgumentParser):
    """Errors about unknown options also list the valid ones."""

    def error(self, message: str, ex: Exception | None = None):
        return super().error(message + explain_unknown_options(message), ex)


class CorrlabCLI(LightningCLI):
    """LightningCLI whose runs land in ``<runs_dir>/<experiment>/<version>/``.

    ``--experiment`` defaults to the stem of the last ``--config`` file; ``--loggers`` picks
    among csv, tensorboard and wandb (all by default) unless ``trainer.logger`` is given.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            LightningModule, LightningDataModule, subclass_mode_model=True,
            subclass_mode_data=True, seed_everything_default=0, auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True}, parser_class=CorrlabArgumentParser,
            args=args, run=run)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--experiment", type=str | None, default=None,
                            help="Run name; runs land in <runs_dir>/<experiment>/<version>/ "
                                 "(default: the config file's name).")
        parser.add_argument("--runs_dir", type=str, default="runs")
        parser.add_argument("--version", type=str | None, default=None,
                            help="Run version folder (default: the next version_N).")
        parser.add_argument("--loggers", type=list[str], default=list(LOGGER_NAMES),
                            help=f"Default loggers, any of {LOGGER_NAMES}. W&B runs offline "
                                 "unless WANDB_API_KEY is set or WANDB_MODE=online.")

    def experiment_name(self) -> str:
        config = self.config[self.subcommand]
        if config.get("experiment"):
            return config["experiment"]
        configs = config.get("config") or []
        if configs:
            return Path(str(configs[-1])).stem
        return type(self.model).__name__.lower()

    def instantiate_trainer(self, **kwargs):
        config = self.config[self.subcommand]
        trainer_config = config["trainer"]
        experiment = self.experiment_name()
        if trainer_config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(config["runs_dir"], experiment, config["loggers"],
                                               config.get("version"))
        if trainer_config.get("default_root_dir") is None:
            kwargs["default_root_dir"] = str(Path(config["runs_dir"]) / experiment)
        if not trainer_config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]  # never half-written, verified on load
        return super().instantiate_trainer(**kwargs)


#: corrlab's own commands beside LightningCLI's: name -> (module with main(argv), summary)
COMMANDS = {
    "data": ("datamodules.convert", "convert image sets to zip / LMDB, or summarise one"),
    "fid": ("experiments.fid_cli", "FID (and KID) between two image sets, with provenance"),
    "lpips": ("experiments.lpips_cli", "LPIPS between two image sets paired by file name"),
    "stylize": ("experiments.stylize_cli", "every content image in the style of every style "
                "image (AdaConv / AdaIN)"),
    "evaluate": ("experiments.evaluate", "run a config's metrics on a checkpoint and write "
                 "result records with their provenance"),
    "results": ("experiments.results", "the results registry: paper vs corrlab numbers for every "
                "config"),
    "exemplars": ("experiments.exemplars_cli", "write an exemplar list (VGG retrieval, top-k "
                  "cosine) for exemplar-based translation (CoCosNet)"),
}
TRAINER_COMMANDS = {"fit": "train a model (a LightningCLI config)",
                    "validate": "run the validation metrics of a checkpoint",
                    "test": "run the test metrics of a checkpoint",
                    "predict": "run a model's predict step"}


def usage() -> str:
    rows = {**TRAINER_COMMANDS, **{name: summary for name, (_, summary) in COMMANDS.items()}}
    listing = "\n".join(f"  {name:<10} {summary}" for name, summary in rows.items())
    return ("usage: corrlab COMMAND [options]   (corrlab COMMAND --help for its options)\n\n"
            f"commands:\n{listing}\n\nUser errors (data, weights, checkpoints, configuration) "
            "print as one 'corrlab: error:' message;\nadd --traceback (or set "
            "CORRLAB_TRACEBACK=1) to see the traceback.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``corrlab`` console script (``argv`` defaults to ``sys.argv[1:]``)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if "--traceback" in words:
        words.remove("--traceback")
        previous = os.environ.get("CORRLAB_TRACEBACK")
        os.environ["CORRLAB_TRACEBACK"] = "1"
        try:
            return main(words)
        finally:  # an in-process caller keeps its environment
            if previous is None:
                os.environ.pop("CORRLAB_TRACEBACK")
            else:
                os.environ["CORRLAB_TRACEBACK"] = previous
    if not words or words[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if words else 2)
    if words[0] in COMMANDS:
        command = importlib.import_module(COMMANDS[words[0]][0])
        sys.exit(command.main(words[1:]))
    cli_args = None if words == sys.argv[1:] else words  # LightningCLI warns about both
    code = report_errors(lambda: CorrlabCLI(args=cli_args) and None)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
