"""Data: corpora and their sources, featurisation into pair batches, deletion requests.

The modules are imported by name (``from graphdel.data.requests import DeletionRequest``); importing this
package loads none of them, so it stays free of torch, RDKit and PyTorch Geometric.

* ``corpus``: :class:`~graphdel.data.corpus.Corpus`, one row per (item, text) pair;
* ``sources``: the source registry and the molecule loaders (``drugs``, ``chebi20:PATH``, ``csv:PATH``), every
  name imported from there; reading a source's files is in ``reading``, and turning molecule rows into a
  corpus in ``molecule_corpus``;
* ``molecules``, ``scaffold``: SMILES -> graphs (and the molecules' probe targets), Bemis–Murcko scaffolds and
  the scaffold split; every name of ``molecule_features`` (the atom and bond features) and ``molecule_graphs``
  (the concatenated graphs, their featurisation and cache) is also imported from ``molecules``;
* ``kg``, ``kg_facts``, ``kg_pairs``: the knowledge-graph modality, the facts a KG deletion leaves behind, and
  what a KG pair batch carries (texts with their entities, the triples of a pair set); reading a KG folder's
  files is in ``kg_files``, its pair ids and triple-pair view in ``kg_view``, its request granularities in
  ``kg_granularities`` (every public name of ``kg_files`` and ``kg_view`` is also imported from ``kg``);
  the mirror relations are learned in ``kg_mirrors`` and deleted triples classified in ``kg_paths`` (every
  public name of both is also imported from ``kg_facts``);
* ``images``: the image modality, every name imported from there; drawing molecules is in ``depictions``,
  image files, pixels and loaders in ``image_files``, the ``karpathy`` and ``imagefolder`` readers in
  ``image_corpus``;
* ``pairs``: featurised pairs and samplers (Df, Dr...), the featuriser/probe/view registries;
* ``loading``: batch prefetching for the training loop;
* ``cache_usage``: what the feature cache holds by kind, and clearing it (``graphdel data cache``);
* ``requests``: deletion requests and their granularities, every name imported from there; they are defined in
  ``granularities`` (the ways of naming what to forget), ``request_build`` (the checks a request is built
  with) and ``request_file`` (the request file and the pair hashes).
"""

__all__ = ["cache_usage", "corpus", "depictions", "granularities", "image_corpus", "image_files", "images",
           "kg", "kg_facts", "kg_files", "kg_granularities", "kg_mirrors", "kg_pairs", "kg_paths", "kg_view",
           "loading", "molecule_corpus", "molecule_features", "molecule_graphs", "molecules", "pairs",
           "reading", "request_build", "request_file", "requests", "scaffold", "sources"]
