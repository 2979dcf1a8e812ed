"""What the trainer is told, as typed values; imports nothing heavy.

`TrainingOptions` holds how updates are taken, saved and logged: the part a
script's shared flags give (`cli.training_options_from_flags`) and every
stage uses alike. `TrainerConfig` adds what each stage decides for itself:
where the run lives and its learning-rate schedule. The defaults here are
the only ones; the flags take theirs from these classes.

>>> options = TrainingOptions(gradient_accumulation_steps=2, seed=7)
>>> config = TrainerConfig.from_options(options, model_dir="/tmp/run", num_train_steps=10)
>>> config.gradient_accumulation_steps, config.seed, config.learning_rate
(2, 7, 5e-05)
>>> TrainingOptions(mixed_precision="fp8")
Traceback (most recent call last):
...
ValueError: TrainingOptions.mixed_precision must be one of [None, 'bf16', 'fp16'], got 'fp8'
"""

from __future__ import annotations

import dataclasses

# --mixed_precision value -> Keras dtype policy.
PRECISION_POLICIES = {None: "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


@dataclasses.dataclass(kw_only=True)
class TrainingOptions:
    """How each update is taken, checkpointed and logged; the same for every stage."""

    optimizer: str = "adamw"  # a name in optimization.OPTIMIZERS
    weight_decay_rate: float = 0.01
    clip_norm: float | None = 1.0  # None or 0: no clipping
    gradient_accumulation_steps: int = 1
    steps_per_loop: int = 100  # Google's iterations_per_loop: steps per tf.function call
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    log_steps: int = 100
    use_xla: bool = False
    mixed_precision: str | None = None  # None | "bf16" | "fp16" (dynamic loss scaling)
    seed: int = 12345  # data order, dropout and initialisation

    def __post_init__(self):
        kind = type(self).__name__
        for name in ("gradient_accumulation_steps", "steps_per_loop", "save_checkpoints_steps",
                     "log_steps", "keep_checkpoint_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"{kind}.{name} must be >= 1, got {getattr(self, name)}")
        if self.mixed_precision not in PRECISION_POLICIES:
            raise ValueError(f"{kind}.mixed_precision must be one of "
                             f"{list(PRECISION_POLICIES)}, got {self.mixed_precision!r}")


@dataclasses.dataclass(kw_only=True)
class TrainerConfig(TrainingOptions):
    """How to train: the shared options plus this run's folder and schedule.

    The defaults are Google's BERT fine-tuning settings.
    """

    model_dir: str
    num_train_steps: int
    learning_rate: float = 5e-5
    num_warmup_steps: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.num_train_steps < 1:
            raise ValueError(f"TrainerConfig.num_train_steps must be >= 1, got {self.num_train_steps}")

    @classmethod
    def from_options(cls, options: TrainingOptions, **run) -> "TrainerConfig":
        """`options` completed with model_dir, num_train_steps and the schedule."""
        shared = {f.name: getattr(options, f.name) for f in dataclasses.fields(TrainingOptions)}
        return cls(**shared, **run)
