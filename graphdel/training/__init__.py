"""Training: ``loop``, the training loop shared by original training, Retrain and fine-tuning (imported by
name; importing this package loads nothing)."""

__all__ = ["loop"]
