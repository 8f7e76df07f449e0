"""Training: ``loop``, the training loop shared by original training, Retrain and fine-tuning, and
``fusion``, the stage that trains the fusion module and matching head on the frozen encoders after it
(imported by name; importing this package loads nothing)."""

__all__ = ["fusion", "loop"]
