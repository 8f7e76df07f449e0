"""Training: ``loop``, the training loop shared by original training, Retrain and fine-tuning;
``fusion``, the stage that trains the fusion module and matching head on the frozen encoders after it;
``schedules``, the per-step learning-rate schedules both use (imported by name; importing this package
loads nothing)."""

__all__ = ["fusion", "loop", "schedules"]
