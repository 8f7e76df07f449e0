"""Encoders of each side of a pair, imported by name (importing this package loads none of them).

* ``graph``: molecule GNNs (GIN, GINE, GCN, GAT);
* ``relational``: CompGCN layers, a DistMult decoder and GNNDelete's deletion operators for knowledge graphs;
* ``image``: image encoders (EfficientNet-Lite0, a small CNN, Hugging Face vision models), their frozen part
  cached, every name imported from there; what an encoder provides is in ``image_base``, each encoder in
  ``image_efficientnet``, ``image_cnn`` and ``image_hf``;
* ``text``: the Hugging Face text encoder, its frozen part cached.
"""

__all__ = ["graph", "image", "image_base", "image_cnn", "image_efficientnet", "image_hf", "relational", "text"]
