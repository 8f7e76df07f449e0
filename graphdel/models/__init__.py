"""Models: the modality protocol the engine relies on, the joint models, and their saving.

The modules are imported by name; importing this package loads none of them.

* ``protocol``: :class:`~graphdel.models.protocol.ModalityModel`, :class:`~graphdel.models.protocol.PairBatch`,
  :class:`~graphdel.models.protocol.PairSampler` (docs/extending.md wraps a model of one's own in them);
* ``joint``: the joint model (molecules) and the registry of joint model classes by modality, every name
  imported from here; they are defined in
* ``config`` (the model configuration), ``layers`` (projection and fusion module), ``contrastive`` (InfoNCE
  and hard negatives), ``base`` (the joint model base class), ``molecule`` (the molecule model),
  ``frozen_items`` (its table of item embeddings while the item side is frozen), ``registry`` (the classes
  by modality) and ``saving`` (the code behind ``persistence``);
* ``kg``, ``image``: the knowledge-graph and image joint models (``kg_structure``: what the KG model stores of
  its training data and how a request removes it);
* ``persistence``: safetensors weights plus a JSON config, never pickle.
"""

__all__ = ["base", "config", "contrastive", "frozen_items", "image", "joint", "kg", "kg_structure", "layers",
           "molecule", "persistence", "protocol", "registry", "saving"]
