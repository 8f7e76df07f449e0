"""Every modality is declared once, in graphdel/modalities.py: each record's model class and data registrations
load from it alone, and a name without a record is refused in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from graphdel.modalities import (MODALITIES, UnknownModalityError, get_modality, item_word, label, load_modality,
                                 model_class)


@pytest.mark.parametrize("name", sorted(MODALITIES))
def test_every_record_loads_its_model_class_and_data_registrations(name):
    from graphdel.data import granularities, pairs
    from graphdel.models.joint import MODEL_TYPES, JointModel

    record = load_modality(name)
    assert record.name == name and record is get_modality(name)
    cls = model_class(name)
    assert issubclass(cls, JointModel) and cls.modality == name
    assert name in MODEL_TYPES and MODEL_TYPES[name] is cls
    assert name in pairs.ITEM_FEATURIZERS  # every modality can be featurised
    assert any(g.modalities is None or name in g.modalities for g in granularities._GRANULARITIES.values())
    assert record.item_word and record.label


def test_a_record_alone_registers_its_modality_in_a_fresh_interpreter():
    """Nothing but the record is needed: in a fresh process no module imported for its side effects has run,
    and the registries fill from the records on first use."""
    code = ("from graphdel.data.sources import load_dataset, available_sources\n"
            "from graphdel.data.granularities import available_granularities\n"
            "from graphdel.models.registry import MODEL_TYPES\n"
            "import sys\n"
            "assert 'graphdel.data.kg' not in sys.modules and 'graphdel.models.image' not in sys.modules\n"
            "assert {'kg:PATH', 'wordnet', 'karpathy:PATH'} <= set(available_sources())\n"
            "assert {'triple', 'entity', 'image'} <= set(available_granularities())\n"
            "assert MODEL_TYPES['kg'].__name__ == 'KGTextModel' and 'image' in MODEL_TYPES\n"
            "from graphdel.data.pairs import ITEM_PROPERTIES\n"
            "assert {'molecule', 'image'} <= set(ITEM_PROPERTIES)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_modality_is_refused_in_one_line():
    with pytest.raises(UnknownModalityError) as info:
        load_modality("sound")
    message = str(info.value)
    assert message == "unknown modality 'sound'; known: image, kg, molecule"
    assert "\n" not in message
    assert isinstance(info.value, ValueError)  # an InvalidInputError: the command line shows it as such
    with pytest.raises(UnknownModalityError, match="unknown modality 'sound'"):
        model_class("sound")


def test_the_labels_come_from_the_records():
    assert [item_word(m) for m in ("molecule", "image", "kg", None, "sound")] == [
        "graph", "image", "query", "graph", "graph"]
    assert [label(m) for m in ("molecule", "image", "kg", "sound")] == ["graph", "image", "KG", "sound"]
