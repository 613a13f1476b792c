"""ERE readers: genuine CasRel splits (counts, drops, spans), small files in the TPLinker, DocRED and
PubTator shapes, the split-file rules and the error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_hmtl.adapters.ere.document import Span, Triple
from recsys_hmtl.adapters.ere.formats.casrel import locate
from recsys_hmtl.adapters.ere.readers import (
    read_casrel, read_docred, read_pubtator, read_split, read_tplinker, split_file,
)
from recsys_hmtl.errors import InputError

ERE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ere"


@pytest.fixture
def ere() -> Path:
    if not ERE.is_dir():
        pytest.skip(f"genuine ERE data (CasRel NYT / WebNLG) not found at {ERE}")
    return ERE


def write(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


# --- genuine CasRel data ------------------------------------------------------------------------

# dropped = distinct triples of a document whose subject or object text is not in its sentence
# (accents: 'Medellín' vs 'Medellin' ...). NYT val has 47 such triple *occurrences*, 5 of them
# repeats of a triple in the same sentence: 42 distinct (the count the metrics lose). Test: 44 both.
GENUINE = [
    ("webnlg", "train", 5019, 216, 0),
    ("webnlg", "val", 500, 216, 0),
    ("webnlg", "test", 703, 216, 0),
    ("nyt", "val", 5000, 24, 42),
    ("nyt", "test", 5000, 24, 44),
]


@pytest.mark.parametrize("dataset,split,documents,relations,dropped", GENUINE)
def test_genuine_casrel_counts_and_spans(ere, dataset, split, documents, relations, dropped):
    corpus = read_split("casrel", ere / dataset, split)
    assert len(corpus.documents) == documents
    assert len(corpus.relations) == relations == len(set(corpus.relations))
    assert corpus.dropped == dropped
    assert len(corpus.dropped_examples) == min(dropped, 5)
    assert corpus.source.endswith(f"{split}_triples.json")
    inventory = set(corpus.relations)
    for doc in corpus.documents:
        assert len(set(doc.triples)) == len(doc.triples)
        assert [item.triple for item in doc.located] == list(doc.triples)
        for item in doc.located:
            assert doc.text[item.subject.start:item.subject.end] == item.triple.subject
            assert doc.text[item.object.start:item.object.end] == item.triple.object
            assert item.triple.relation in inventory


def test_genuine_inventory_is_rel2id_in_id_order(ere):
    id2rel = json.loads((ere / "nyt" / "rel2id.json").read_text())[0]
    assert read_casrel(ere / "nyt" / "test_triples.json").relations == [id2rel[str(i)] for i in range(24)]
    # the genuine WebNLG rel2id.json is a one-element list [rel2id]
    rel2id = json.loads((ere / "webnlg" / "rel2id.json").read_text())[-1]
    corpus = read_casrel(ere / "webnlg" / "val_triples.json")
    assert corpus.relations == sorted(rel2id, key=rel2id.get)


def test_genuine_nyt_drop_examples_are_readable(ere):
    corpus = read_casrel(ere / "nyt" / "val_triples.json")
    first = corpus.dropped_examples[0]
    assert "val_triples.json row 43" in first and "'Medellín' does not occur in the text" in first


# --- CasRel rules on hand-written files ---------------------------------------------------------

def test_locate_object_nearest_non_overlapping():
    text = "Paris , Texas is not Paris , France ; Texas again"
    (s, o) = locate(text, "Paris", "Texas")
    assert s == (0, 5) and o == (8, 13)
    # the subject's first occurrence; the object nearest to it (gap 1 before vs 5 after)
    text = "b a c x a"
    assert locate(text, "a", "b") == ((2, 3), (0, 1))
    assert locate(text, "c", "a") == ((4, 5), (2, 3))  # gaps: 'a'@2 -> 1, 'a'@8 -> 3
    # nested: every occurrence of the object overlaps the subject -> its first occurrence
    assert locate("in New York City .", "New York City", "New York") == ((3, 16), (3, 11))
    assert locate("Bacon sandwich", "Bacon", "Bacon") == ((0, 5), (0, 5))
    assert locate("x and y", "x", "z") == "z"


def test_casrel_duplicates_drops_and_sorted_relations(tmp_path):
    path = write(tmp_path / "train_triples.json", [
        {"text": "Queens contains Douglaston .", "triple_list": [
            ["Queens", "contains", "Douglaston"], ["Queens", "contains", "Douglaston"],
            ["Douglaston", "neighborhood_of", "Queens"]]},
        {"text": "Munster , Germany", "triple_list": [
            ["Germany", "contains", "Münster"], ["Germany", "contains", "Münster"]]},
    ])
    corpus = read_casrel(path)
    assert corpus.relations == ["contains", "neighborhood_of"]  # no rel2id.json: sorted from the data
    first, second = corpus.documents
    assert first.triples == (Triple("Queens", "contains", "Douglaston"),
                             Triple("Douglaston", "neighborhood_of", "Queens"))
    assert first.located[0].subject == Span(0, 6) and first.located[0].object == Span(16, 26)
    assert first.id == "1" and second.triples == () and second.located == ()
    assert corpus.dropped == 1  # the repeated triple counts once
    assert corpus.dropped_examples == [
        "train_triples.json row 2: ('Germany', 'contains', 'Münster'): 'Münster' does not occur in the text"]


def test_casrel_relation_not_in_rel2id(tmp_path):
    write(tmp_path / "rel2id.json", [{"0": "contains"}, {"contains": 0}])
    path = write(tmp_path / "test_triples.json", [
        {"text": "a b", "triple_list": [["a", "contains", "b"]]},
        {"text": "a b", "triple_list": [["a", "contains", "b"], ["a", "capital", "b"]]},
    ])
    with pytest.raises(InputError) as info:
        read_casrel(path)
    message = str(info.value)
    assert str(path) in message and "row 2" in message and "'capital'" in message and "triple_list[1]" in message
    explicit = write(tmp_path / "other.json", {"contains": 1, "capital": 0})
    assert read_casrel(path, relations_path=explicit).relations == ["capital", "contains"]


BAD_CASREL = [
    ("not json", "[{", "not valid JSON", None),
    ("an object", {"text": "a"}, "expected a JSON array of documents, got a JSON object", None),
    ("not an object", [{"text": "a", "triple_list": []}, ["a"]], "row 2: expected a document to be a JSON object",
     None),
    ("no text", [{"triple_list": []}], "key 'text', row 1: missing", "text"),
    ("text not str", [{"text": 3, "triple_list": []}], "key 'text', row 1: expected a string", "text"),
    ("no triple_list", [{"text": "a"}], "key 'triple_list', row 1: missing", "triple_list"),
    ("short triple", [{"text": "a b", "triple_list": [["a", "r"]]}], "key 'triple_list[0]', row 1: expected [subject",
     "triple_list[0]"),
    ("not strings", [{"text": "a b", "triple_list": [["a", "r", 1]]}], "key 'triple_list[0]', row 1", "triple_list[0]"),
    ("empty entity", [{"text": "a b", "triple_list": [["", "r", "a"]]}], "the subject is empty", "triple_list[0]"),
]


@pytest.mark.parametrize("case,content,expected,key", BAD_CASREL, ids=[c[0] for c in BAD_CASREL])
def test_casrel_bad_input(tmp_path, case, content, expected, key):
    path = tmp_path / "train_triples.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_casrel(path)
    assert str(info.value).startswith(str(path)) and expected in str(info.value)
    assert info.value.key == key


# --- TPLinker ----------------------------------------------------------------------------------

def _tplinker_relation(text: str, subject: str, predicate: str, obj: str) -> dict:
    s, o = text.index(subject), text.index(obj)
    return {"subject": subject, "object": obj, "subj_char_span": [s, s + len(subject)],
            "obj_char_span": [o, o + len(obj)], "predicate": predicate,
            "subj_tok_span": [0, 1], "obj_tok_span": [0, 1]}


def _tplinker_docs() -> list[dict]:
    one = ("Mr. Ferrer still holds commanding leads over the other two Democrats in the race -- United States "
           "Representative Anthony D. Weiner of Brooklyn and Queens , and City Council Speaker Gifford Miller .")
    two = "Sony Pictures , based in Culver City , California , released the film ."
    return [
        {"id": "valid_0", "text": one,
         "relation_list": [_tplinker_relation(one, "Anthony D. Weiner", "/people/person/place_lived", "Brooklyn"),
                           _tplinker_relation(one, "Anthony D. Weiner", "/people/person/place_lived", "Brooklyn")],
         "entity_list": [{"text": "Anthony D. Weiner", "type": "DEFAULT", "char_span": [104, 121]}]},
        {"id": "valid_1", "text": two,
         "relation_list": [_tplinker_relation(two, "California", "/location/location/contains", "Culver City")],
         "entity_list": []},
    ]


def test_tplinker(tmp_path):
    corpus = read_tplinker(write(tmp_path / "valid_data.json", _tplinker_docs()))
    assert corpus.relations == ["/location/location/contains", "/people/person/place_lived"]
    assert [doc.id for doc in corpus.documents] == ["valid_0", "valid_1"]
    first = corpus.documents[0]
    assert first.triples == (Triple("Anthony D. Weiner", "/people/person/place_lived", "Brooklyn"),)
    item = first.located[0]
    assert first.text[item.subject.start:item.subject.end] == "Anthony D. Weiner"
    assert first.text[item.object.start:item.object.end] == "Brooklyn"
    write(tmp_path / "rel2id.json", {"/people/person/place_lived": 0, "/location/location/contains": 1})
    corpus = read_split("tplinker", tmp_path, "val")
    assert corpus.relations == ["/people/person/place_lived", "/location/location/contains"]


def test_tplinker_span_mismatch(tmp_path):
    docs = _tplinker_docs()
    docs[1]["relation_list"][0]["obj_char_span"][0] += 1
    path = write(tmp_path / "test_data.json", docs)
    with pytest.raises(InputError) as info:
        read_tplinker(path)
    message = str(info.value)
    assert str(path) in message and "row 2" in message and "relation_list[0].obj_char_span" in message
    assert "relation 0" in message and "'Culver City'" in message


# --- DocRED -----------------------------------------------------------------------------------

DOCRED = [
    {"title": "Skai TV",
     "sents": [["Skai", "TV", "is", "a", "Greek", "free", "-", "to", "-", "air", "television", "network", "."],
               ["It", "is", "based", "in", "Piraeus", "."]],
     "vertexSet": [[{"name": "Skai TV", "sent_id": 0, "pos": [0, 2], "type": "ORG"},
                    {"name": "It", "sent_id": 1, "pos": [0, 1], "type": "ORG"}],
                   [{"name": "Greek", "sent_id": 0, "pos": [4, 5], "type": "LOC"}],
                   [{"name": "Piraeus", "sent_id": 1, "pos": [4, 5], "type": "LOC"}]],
     "labels": [{"r": "P17", "h": 0, "t": 1, "evidence": [0]}, {"r": "P159", "h": 0, "t": 2, "evidence": [1]},
                {"r": "P17", "h": 0, "t": 1, "evidence": []}]},
    {"title": "Lark Force",
     "sents": [["Lark", "Force", "was", "an", "Australian", "Army", "formation", "."]],
     "vertexSet": [[{"name": "Lark Force", "sent_id": 0, "pos": [0, 2], "type": "ORG"}],
                   [{"name": "Australian Army", "sent_id": 0, "pos": [4, 6], "type": "ORG"}]],
     "labels": [{"r": "P361", "h": 0, "t": 1, "evidence": [0]}]},
]
REL_INFO = {"P17": "country", "P159": "headquarters location", "P361": "part of"}


def test_docred(tmp_path):
    write(tmp_path / "rel_info.json", REL_INFO)
    corpus = read_docred(write(tmp_path / "dev.json", DOCRED))
    assert corpus.relations == ["country", "headquarters location", "part of"]
    skai, lark = corpus.documents
    assert skai.id == "Skai TV"
    assert skai.text.startswith("Skai TV is a Greek free - to - air television network . It is based in Piraeus .")
    assert skai.triples == (Triple("Skai TV", "country", "Greek"),
                            Triple("Skai TV", "headquarters location", "Piraeus"))
    for doc in (skai, lark):
        for item in doc.located:
            assert doc.text[item.subject.start:item.subject.end] == item.triple.subject
            assert doc.text[item.object.start:item.object.end] == item.triple.object
    assert skai.located[1].object == Span(skai.text.index("Piraeus"), skai.text.index("Piraeus") + 7)
    assert lark.triples == (Triple("Lark Force", "part of", "Australian Army"),)


def test_docred_without_rel_info_and_labels(tmp_path):
    unlabelled = [{k: v for k, v in doc.items() if k != "labels"} for doc in DOCRED]
    write(tmp_path / "train_annotated.json", DOCRED)
    write(tmp_path / "test.json", unlabelled)
    assert read_split("docred", tmp_path, "train").relations == ["P159", "P17", "P361"]
    test = read_split("docred", tmp_path, "test")
    assert [doc.triples for doc in test.documents] == [(), ()] and test.relations == []


def test_docred_bad_position(tmp_path):
    docs = json.loads(json.dumps(DOCRED))
    docs[1]["vertexSet"][1][0]["pos"] = [4, 9]
    path = write(tmp_path / "dev.json", docs)
    with pytest.raises(InputError) as info:
        read_docred(path)
    assert str(path) in str(info.value) and "row 2" in str(info.value) and "vertexSet[1][0].pos" in str(info.value)


# --- PubTator ---------------------------------------------------------------------------------

def _pubtator_doc(pmid: str, title: str, abstract: str, mentions: list[tuple], relations: list[tuple]) -> str:
    text = title + " " + abstract
    lines = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
    for mention, kind, ids, *extra in mentions:
        start = text.index(mention)
        lines.append("\t".join([pmid, str(start), str(start + len(mention)), mention, kind, ids, *extra]))
    lines += ["\t".join((pmid, *relation)) for relation in relations]
    return "\n".join(lines) + "\n"


CDR = (
    _pubtator_doc(
        "227508", "Naloxone reverses the antihypertensive effect of clonidine.",
        "In unanesthetized, spontaneously hypertensive rats the decrease in blood pressure and heart rate produced "
        "by intravenous clonidine, 5 to 20 micrograms/kg, was inhibited or reversed by nalozone, 0.2 to 2 mg/kg. "
        "The hypotensive effect of 100 mg/kg alpha-methyldopa was also partially reversed by naloxone.",
        [("Naloxone", "Chemical", "D009270"), ("clonidine", "Chemical", "D003000"),
         ("hypertensive", "Disease", "D006973"), ("nalozone", "Chemical", "-1"),
         ("hypotensive", "Disease", "D007022"), ("alpha-methyldopa", "Chemical", "D008750")],
        [("CID", "D008750", "D007022"), ("CID", "D008750", "D007022")])
    + "\n"
    + _pubtator_doc(
        "354896", "Lidocaine-induced cardiac asystole.",
        "Intravenous administration of a single 50-mg bolus of lidocaine in a 67-year-old man resulted in "
        "profound depression of the activity of the sinoatrial and atrioventricular nodal pacemakers.",
        [("Lidocaine", "Chemical", "D008012"), ("cardiac asystole", "Disease", "D006323"),
         ("depression of the activity of the sinoatrial and atrioventricular nodal pacemakers", "Disease",
          "D001919|D054138", "depression of the activity of the sinoatrial|atrioventricular nodal pacemakers")],
        [("CID", "D008012", "D006323"), ("CID", "D008012", "D054138"), ("CID", "D008012", "D000000")])
)


def test_pubtator_cdr(tmp_path):
    (tmp_path / "CDR_TrainingSet.PubTator.txt").write_text(CDR, encoding="utf-8")
    corpus = read_split("pubtator", tmp_path, "train")
    assert corpus.relations == ["CID"]
    first, second = corpus.documents
    assert first.id == "227508" and first.text.startswith("Naloxone reverses") and " In unanesthetized" in first.text
    assert first.triples == (Triple("alpha-methyldopa", "CID", "hypotensive"),)
    composite = "depression of the activity of the sinoatrial and atrioventricular nodal pacemakers"
    assert second.triples == (Triple("Lidocaine", "CID", "cardiac asystole"), Triple("Lidocaine", "CID", composite))
    for doc in corpus.documents:
        for item in doc.located:
            assert doc.text[item.subject.start:item.subject.end] == item.triple.subject
            assert doc.text[item.object.start:item.object.end] == item.triple.object
    assert corpus.dropped == 1
    assert "PMID 354896" in corpus.dropped_examples[0] and "'D000000'" in corpus.dropped_examples[0]


def test_pubtator_gda_relation_names(tmp_path):
    gda = _pubtator_doc("10051400", "Mutations in LMNA cause dilated cardiomyopathy.", "We studied LMNA carriers.",
                        [("LMNA", "Gene", "4000"), ("dilated cardiomyopathy", "Disease", "D002311")],
                        [("GDA", "4000", "D002311")])
    corpus = read_pubtator(write_text(tmp_path / "test.PubTator", gda))
    assert corpus.relations == ["GDA"]
    assert corpus.documents[0].triples == (Triple("LMNA", "GDA", "dilated cardiomyopathy"),)


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_pubtator_offset_mismatch(tmp_path):
    bad = CDR.replace("227508\t0\t8\tNaloxone", "227508\t1\t9\tNaloxone")
    path = write_text(tmp_path / "dev.PubTator", bad)
    with pytest.raises(InputError) as info:
        read_pubtator(path)
    line = bad.splitlines().index("227508\t1\t9\tNaloxone\tChemical\tD009270") + 1
    assert str(path) in str(info.value) and f"PMID 227508, line {line}" in str(info.value)
    with pytest.raises(InputError, match="line 1: expected 'PMID|t|title'"):
        read_pubtator(write_text(tmp_path / "x.txt", "227508\t0\t8\tNaloxone\tChemical\tD009270\n"))


# --- split files ------------------------------------------------------------------------------

def test_split_file_rules(tmp_path):
    for name in ("dev_triples.json", "valid_data.json", "CDR_DevelopmentSet.PubTator.txt",
                 "CDR_TestSet.PubTator.txt", "CDR_TestSet.BioC.xml"):
        (tmp_path / name).write_text("[]")
    assert split_file("casrel", tmp_path, "val").name == "dev_triples.json"
    assert split_file("tplinker", tmp_path, "val").name == "valid_data.json"
    assert split_file("pubtator", tmp_path, "val").name == "CDR_DevelopmentSet.PubTator.txt"
    assert split_file("pubtator", tmp_path, "test").name == "CDR_TestSet.PubTator.txt"
    (tmp_path / "test_extra.txt").write_text("")
    with pytest.raises(InputError, match="several files match the 'test' split"):
        split_file("pubtator", tmp_path, "test")


def test_split_file_errors(tmp_path):
    with pytest.raises(InputError) as info:
        read_split("casrell", tmp_path, "train")
    assert info.value.key == "data.format" and "did you mean 'casrel'?" in str(info.value)
    with pytest.raises(InputError) as info:
        read_split("casrel", tmp_path, "val")
    message = str(info.value)
    assert str(tmp_path / "val_triples.json") in message and "'val' split" in message and "dev_triples.json" in message
    with pytest.raises(InputError, match="does not exist"):
        read_split("docred", tmp_path / "absent", "test")
