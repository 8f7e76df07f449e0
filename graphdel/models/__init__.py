"""Models: the modality protocol the engine relies on, the joint models, and their saving.

The modules are imported by name; importing this package loads none of them.

* ``protocol``: :class:`~graphdel.models.protocol.ModalityModel`, :class:`~graphdel.models.protocol.PairBatch`,
  :class:`~graphdel.models.protocol.PairSampler` (docs/extending.md wraps a model of one's own in them);
* ``joint``: the joint model (molecules) and the registry of joint model classes by modality;
* ``kg``, ``image``: the knowledge-graph and image joint models;
* ``persistence``: safetensors weights plus a JSON config, never pickle.
"""

__all__ = ["image", "joint", "kg", "persistence", "protocol"]
