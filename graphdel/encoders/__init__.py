"""Encoders of each side of a pair, imported by name (importing this package loads none of them).

* ``graph``: molecule GNNs (GIN, GINE, GCN, GAT);
* ``relational``: CompGCN layers, a DistMult decoder and GNNDelete's deletion operators for knowledge graphs;
* ``image``: image encoders (EfficientNet-Lite0, a small CNN), their frozen part cached;
* ``text``: the Hugging Face text encoder, its frozen part cached.
"""

__all__ = ["graph", "image", "relational", "text"]
