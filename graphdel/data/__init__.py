"""Data: corpora and their sources, featurisation into pair batches, deletion requests.

The modules are imported by name (``from graphdel.data.requests import DeletionRequest``); importing this
package loads none of them, so it stays free of torch, RDKit and PyTorch Geometric.

* ``corpus``: :class:`~graphdel.data.corpus.Corpus`, one row per (item, text) pair;
* ``sources``: the source registry and the molecule loaders (``drugs``, ``chebi20:PATH``, ``csv:PATH``);
* ``molecules``, ``scaffold``: SMILES -> graphs (and the molecules' probe targets), Bemis–Murcko scaffolds and
  the scaffold split;
* ``kg``, ``kg_facts``, ``kg_pairs``: the knowledge-graph modality, the facts a KG deletion leaves behind, and
  what a KG pair batch carries (texts with their entities, the triples of a pair set);
* ``images``: the image modality;
* ``pairs``: featurised pairs and samplers (Df, Dr...), the featuriser/probe/view registries;
* ``loading``: batch prefetching for the training loop;
* ``requests``: deletion requests and their granularities.
"""

__all__ = ["corpus", "images", "kg", "kg_facts", "kg_pairs", "loading", "molecules", "pairs", "requests",
           "scaffold", "sources"]
