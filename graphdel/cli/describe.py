"""The commands that describe what there is, without training: ``graphdel data stats`` (a dataset's counts,
a knowledge graph's relations), ``graphdel data cache`` (what the feature cache holds, and clearing it) and
``graphdel methods`` (the unlearning methods and their settings).
"""

from __future__ import annotations

from typing import Any

from graphdel.cli.common import _add_json, _emit, _table

__all__ = ["cmd_data_cache", "cmd_data_stats", "cmd_methods"]


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="inspect datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("stats", help="print pair, item and text counts per split (a knowledge graph: also "
                                      "entities, relations, triples per split and relation frequencies)")
    s.add_argument("source", help="dataset: drugs, chebi20:PATH, csv:PATH, wordnet, kg:PATH, ...")
    s.add_argument("--skip-invalid", action="store_true")
    _add_json(s)
    s.set_defaults(func=cmd_data_stats)
    c = dsub.add_parser("cache", help="show what the feature cache ($GRAPHDEL_CACHE) holds by kind, or clear "
                                      "kinds of it (everything there is rebuilt on demand)")
    c.add_argument("--clear", nargs="+", metavar="KIND", default=None,
                   help="remove every entry of these kinds (text, molecules, images, runs, ...; 'all': every "
                        "kind). Clearing runs or audit means training those models again")
    c.add_argument("--unread", action="store_true",
                   help="with --clear: only entries of an earlier layout that nothing reads any more")
    _add_json(c)
    c.set_defaults(func=cmd_data_cache)


def cmd_data_stats(args) -> int:
    """``graphdel data stats SOURCE``: print the dataset's pair, item and text counts per split (and what
    loading skipped, stripped or grouped; all of it as JSON with ``--json``); returns 0."""
    from graphdel.data.sources import load_dataset

    corpus = load_dataset(args.source, skip_invalid=args.skip_invalid)
    stats = corpus.stats()
    counted = {**stats["splits"], "total": stats["total"]}
    notes = [f"{key.replace('_', ' ')}: {value}" for key, value in stats.items()
             if key not in ("source", "modality", "splits", "total", "skipped") and value]
    graph = _graph_stats(corpus)
    if graph is not None:
        stats["graph"] = graph
    mirrors = _mirror_relations(corpus)
    if mirrors is not None:
        stats["mirror_relations"] = mirrors
    _emit(args, stats, f"{stats['source']} ({stats['modality']})\n"
          + _table(["split", "pairs", "items", "texts"],
                   [(k, v["pairs"], v["items"], v["texts"]) for k, v in counted.items()])
          + "".join(f"\n{note}" for note in notes) + _graph_tables(graph) + _mirror_table(mirrors))
    return 0


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def cmd_data_cache(args) -> int:
    """``graphdel data cache [--clear KIND ... [--unread]]``: the cache's entries and sizes by kind, after
    clearing the kinds asked for (:mod:`graphdel.data.cache_usage`); returns 0."""
    from graphdel.data.cache_usage import cache_usage, clear_cache
    from graphdel.errors import ConfigError

    if args.unread and not args.clear:
        raise ConfigError("--unread only applies with --clear KIND")
    removed = clear_cache(args.clear, unread_only=args.unread) if args.clear else {}
    usage = cache_usage()
    lines = [f"removed {v['entries']} {k} entries ({_mib(v['bytes'])})" for k, v in removed.items()]
    rows = [(k["kind"], k["entries"], _mib(k["bytes"]),
             f"{k['unread_entries']} ({_mib(k['unread_bytes'])})" if k["unread_entries"] else "")
            for k in usage["kinds"]]
    human = "".join(f"{line}\n" for line in lines) + f"{usage['root']}: {_mib(usage['bytes'])}\n" + _table(
        ["kind", "entries", "size", "unread (earlier layout)"], rows)
    _emit(args, {**usage, "removed": removed}, human)
    return 0


def _graph_stats(corpus) -> dict | None:
    """For a KG corpus, its entities, relations, triples per split and relation frequencies
    (:func:`graphdel.data.kg.kg_stats`); else ``None``."""
    if corpus.modality != "kg":
        return None
    from graphdel.data.kg import kg_stats

    return kg_stats(corpus)


def _graph_tables(graph: dict | None) -> str:
    """A KG's counts as text: entities and relations, triples per split, relation frequencies ("" without)."""
    if graph is None:
        return ""
    e, t = graph["entities"], graph["triples"]
    splits = [k for k in t if k != "total"]
    return (f"\nknowledge graph: {e['total']:,} entities ({e['with_text']:,} with a text: the pairs above), "
            f"{graph['relations']} relations\n"
            + _table(["split", "triples"], [(k, f"{v:,}") for k, v in t.items()])
            + "\nrelation frequencies (triples per split):\n"
            + _table(["relation", *splits, "total"],
                     [(f["relation"], *(f"{f[k]:,}" for k in splits), f"{f['total']:,}")
                      for f in graph["relation_frequencies"]]))


def _mirror_relations(corpus) -> dict | None:
    """For a KG corpus, the relation pairs whose training triples the graph also states backwards
    (:func:`graphdel.data.kg_facts.learn_mirror_relations`, default thresholds): ``{"min_share",
    "min_support", "pairs": [{"relation", "mirror", "share", "mirrored", "triples"}]}``; else ``None``."""
    if corpus.modality != "kg":
        return None
    from graphdel.data.kg import kg_triples
    from graphdel.data.kg_facts import learn_mirror_relations

    learned = learn_mirror_relations(kg_triples(corpus, "train"))
    return {"min_share": learned.min_share, "min_support": learned.min_support, "pairs": learned.to_json()}


def _mirror_table(mirrors: dict | None) -> str:
    """The mirror relation pairs as a text table under a heading ("" when there is nothing to show)."""
    if mirrors is None:
        return ""
    head = (f"\nmirror relations (share of a relation's training triples (h, r, t) with (t, mirror, h) in the "
            f"graph; share >= {mirrors['min_share']}, at least {mirrors['min_support']} mirrored):")
    if not mirrors["pairs"]:
        return head + " none"
    return head + "\n" + _table(["relation", "mirror", "share", "mirrored", "triples"],
                                 [(p["relation"], p["mirror"], f"{p['share']:.4f}", p["mirrored"], p["triples"])
                                  for p in mirrors["pairs"]])


def _add_methods(sub) -> None:
    p = sub.add_parser("methods", help="list the unlearning methods and their settings (--set KEY=VALUE)",
                       description="Without NAME: every method, its citation and the settings it sets itself. "
                       "With NAME: every setting of those methods, its default and meaning.")
    p.add_argument("names", nargs="*", metavar="NAME", help="show every setting of these methods")
    _add_json(p)
    p.set_defaults(func=cmd_methods)


def cmd_methods(args) -> int:
    """``graphdel methods [NAME...]``: print each registered unlearning method (or the named ones) with its
    summary, citation and settings (:func:`graphdel.unlearning.settings.method_settings`).

    Without names only the settings a method sets itself are listed, as ``key=default``; with names every
    setting, its default and meaning; with ``--json`` everything. Returns 0; an unknown name raises
    :class:`~graphdel.errors.ConfigError` (exit 2).
    """
    from graphdel.unlearning import available_methods, get_method
    from graphdel.unlearning.settings import method_settings

    rows = available_methods()
    if args.names:
        rows = [(cls.name, cls.summary, cls.citation) for cls in map(get_method, args.names)]
    described = [{"name": name, "summary": summary, "citation": citation,
                  "settings": [vars(s) for s in method_settings(get_method(name).Config)]}
                 for name, summary, citation in rows]
    blocks = []
    for method in described:
        head = f"{method['name']}: {method['summary']}\n  [{method['citation']}]"
        settings = method["settings"]
        if args.names:
            body = _table(["  setting", "default", "meaning"],
                          [(f"  {s['key']}", _shown(s["default"]), s["help"]) for s in settings])
        else:
            own = [f"{s['key']}={_shown(s['default'])}" for s in settings if s["own"]]
            common = len(settings) - len(own)
            body = ("  settings: " + (" ".join(own) or "none of its own")
                    + (f" (+{common} common; `graphdel methods {method['name']}`)" if common else ""))
        blocks.append(head + "\n" + body)
    _emit(args, described, "\n\n".join(blocks))
    return 0


def _shown(value: Any) -> str:
    """A default as ``--set`` takes it (``true``, ``none``, ``1e-05``)."""
    if value is None or isinstance(value, bool):
        return {None: "none", True: "true", False: "false"}[value]
    return str(value)
