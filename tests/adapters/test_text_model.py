"""The text adapter's training side: the per-task sampler (task-specific inputs, exact resume),
the TextCNN model's TaskOutputs contract, and one in-process step of every loss stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recsys_hmtl.adapters.text.config import TextDataConfig
from recsys_hmtl.adapters.text.data import Encoded, prepare
from recsys_hmtl.adapters.text.model import SHARED, TextMTLModel
from recsys_hmtl.adapters.text.sampler import PerTaskStream, collate, eval_batches
from recsys_hmtl.priority import available_stages, build_stage
from stage_modes import shared_for

TASKS = ("books", "dvd", "music")
AMAZON = Path(__file__).resolve().parents[3] / "shared" / "data" / "text" / "amazon_mtl"


def toy_split(n: int, offset: int) -> Encoded:
    """``n`` one-token reviews whose token id is ``offset + row`` (rows are recognisable)."""
    tokens = torch.arange(offset, offset + n).unsqueeze(1)
    return Encoded(tokens, torch.ones(n, dtype=torch.long), torch.arange(n) % 2)


@pytest.fixture(scope="module")
def data():
    """40 genuine training reviews of each of three domains (their full val and test splits)."""
    if not AMAZON.is_dir():
        pytest.skip(f"FDU-MTL not found at {AMAZON}")
    cfg = TextDataConfig(root=str(AMAZON), domains=list(TASKS), max_length=64, max_train_per_task=40)
    return prepare(cfg, TASKS)


# --------------------------------------------------------------------------------- sampler
def test_every_batch_holds_per_task_reviews_of_each_task():
    sizes = {"books": 10, "dvd": 7, "music": 3}
    train = {t: toy_split(n, 100 * i) for i, (t, n) in enumerate(sizes.items())}
    stream = PerTaskStream(TASKS, train, per_task=4, seed=5)
    assert len(stream) == 3  # ceil(10 / 4): the largest task covered once
    seen = {t: [] for t in TASKS}
    for batch in stream.batches():
        assert batch.tasks == TASKS and batch.counts == (4, 4, 4) and batch.batch_size == 12
        for i, (task, rows) in enumerate(batch.slices()):
            ids = batch.tokens[rows, 0]
            assert ((ids >= 100 * i) & (ids < 100 * i + sizes[task])).all()  # task i's own reviews
            seen[task] += ids.tolist()
    assert sorted(seen["books"][:10]) == list(range(10))           # the largest: each once, then wraps
    assert sorted(seen["dvd"][:7]) == list(range(100, 107))        # smaller tasks cycle,
    assert sorted(seen["music"][:3]) == sorted(seen["music"][3:6]) == [200, 201, 202]
    assert seen["music"][:3] != seen["music"][3:6] or seen["music"][3:6] != seen["music"][6:9]  # reshuffled


def test_resume_yields_the_tail_of_an_uninterrupted_pass():
    train = {t: toy_split(n, 100 * i) for i, (t, n) in enumerate(zip(TASKS, (9, 5, 4)))}
    whole = PerTaskStream(TASKS, train, per_task=2, seed=3)
    passes = {}
    for epoch in (0, 1):
        whole.set_epoch(epoch)
        passes[epoch] = [b.tokens.flatten().tolist() for b in whole.batches()]
    assert passes[0] != passes[1]  # reshuffled per epoch
    for epoch in (0, 1):
        for start in (0, 2, 4):
            resumed = PerTaskStream(TASKS, train, per_task=2, seed=3)  # a fresh process
            resumed.set_epoch(epoch)
            assert [b.tokens.flatten().tolist() for b in resumed.batches(start)] == passes[epoch][start:]
    other = PerTaskStream(TASKS, train, per_task=2, seed=4)
    assert [b.tokens.flatten().tolist() for b in other.batches()] != passes[0]


def test_collate_trims_to_the_longest_review_and_eval_batches_cover_a_split(data):
    split = data.splits["val"]["books"]
    batches = list(eval_batches("books", split, 64))
    assert sum(b.batch_size for b in batches) == len(split) == 160 and [len(batches), batches[-1].batch_size] == [3, 32]
    assert all(b.tokens.shape[1] == int(b.lengths.max()) for b in batches)
    assert torch.equal(torch.cat([b.labels for b in batches]), split.labels)
    moved = collate([("books", split, torch.arange(3))]).to("cpu")
    assert moved.tasks == ("books",) and moved.counts == (3,)


# ----------------------------------------------------------------------------------- model
def model_for(data, **options) -> TextMTLModel:
    torch.manual_seed(0)
    return TextMTLModel(TASKS, len(data.vocab), embedding_dim=16, filters=8, **options)


@pytest.mark.parametrize("shared", SHARED)
def test_forward_keeps_the_task_outputs_contract(data, shared):
    model = model_for(data, shared=shared)
    batch = next(PerTaskStream(TASKS, data.splits["train"], 4, seed=0).batches())
    out = model(batch)
    assert list(out.losses) == list(TASKS) and out.batch_size == 12 and out.extra is None
    for task, loss in out.losses.items():
        assert loss.dim() == 0 and torch.isfinite(loss)
    if shared == "features":
        assert [z.shape for z in out.shared] == [(4, 24)] * 3 and all(z.grad_fn is not None for z in out.shared)
        # task-specific inputs: L_books depends on the books rows' features only
        grads = torch.autograd.grad(out.losses["books"], out.shared, retain_graph=True, allow_unused=True)
        assert grads[0].abs().sum() > 0 and grads[1] is None and grads[2] is None
    else:
        convs = [p for c in model.encoders[0].convs for p in c.parameters()]
        expected = convs if shared == "filters" else [model.encoders[0].embedding.weight, *convs]
        assert [id(p) for p in out.shared] == [id(p) for p in expected]


def test_features_do_not_depend_on_the_batch_padding(data):
    model = model_for(data).eval()
    split = data.splits["test"]["dvd"]
    short = int(split.lengths.argmin())
    alone = collate([("dvd", split, torch.tensor([short]))])
    padded = collate([("dvd", split, torch.tensor([short, int(split.lengths.argmax())]))])
    assert padded.tokens.shape[1] > alone.tokens.shape[1]
    with torch.no_grad():
        a, b = model.features(alone)["dvd"], model.features(padded)["dvd"][:1]
    assert torch.allclose(a, b, atol=1e-6)


def test_no_sharing_gives_every_task_its_own_encoder_and_vocabulary(data):
    own = {t: (len(data.domain_vocabs[t]), data.remap(t)) for t in TASKS}
    model = model_for(data, sharing="none", own_vocabularies=own)
    assert [e.embedding.num_embeddings for e in model.encoders] == [own[t][0] for t in TASKS]
    assert all(n < len(data.vocab) for n, _ in own.values())
    assert "encoders.0.remap" not in model.state_dict()  # derived from the data, not checkpointed
    out = model(next(PerTaskStream(TASKS, data.splits["train"], 2, seed=0).batches()))
    out.losses["dvd"].backward()
    grads = [e.embedding.weight.grad for e in model.encoders]
    assert grads[0] is None and grads[1].abs().sum() > 0 and grads[2] is None
    # dvd's encoder sees the ids a single-task dvd run would (its vocabulary fitted on dvd alone)
    alone = prepare(TextDataConfig(root=str(AMAZON), domains=["dvd"], max_length=64, max_train_per_task=40), ("dvd",))
    assert alone.vocab == data.domain_vocabs["dvd"]
    assert torch.equal(data.remap("dvd")[data.splits["test"]["dvd"].tokens], alone.splits["test"]["dvd"].tokens)


@pytest.mark.parametrize("name", available_stages())
def test_every_loss_stage_trains_one_step(data, name):
    model = model_for(data)
    stage = build_stage(name, tasks=list(TASKS))
    optimizer = torch.optim.Adam([*model.parameters(), *stage.parameters()], lr=1e-3)
    conv = model.encoders[0].convs[0].weight
    before = conv.detach().clone()
    for batch in list(PerTaskStream(TASKS, data.splits["train"], 4, seed=1).batches())[:2]:
        optimizer.zero_grad()
        out = model(batch)
        stage.backward(out.losses, shared=shared_for(name, out, model), extra=out.extra)
        optimizer.step()
        assert all(torch.isfinite(v) for v in out.losses.values())
    assert not torch.equal(before, conv), "the shared filters moved"
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["mgda", "getmtl"])
def test_gradient_stages_on_the_features_see_orthogonal_tasks(data, name):
    """Why ``shared: filters`` is the default: on the pooled features the task gradients have
    disjoint rows, so their pairwise cosines are 0 (no conflict for any stage to resolve)."""
    model = model_for(data, shared="features")
    stage = build_stage(name, tasks=list(TASKS))
    out = model(next(PerTaskStream(TASKS, data.splits["train"], 4, seed=1).batches()))
    stage.backward(out.losses, shared=out.shared)
    assert stage.diagnostics()["min_pair_cosine"] == pytest.approx(0.0, abs=1e-6)
    model = model_for(data, shared="filters")
    out = model(next(PerTaskStream(TASKS, data.splits["train"], 4, seed=1).batches()))
    stage.backward(out.losses, shared=out.shared)
    assert abs(stage.diagnostics()["min_pair_cosine"]) > 1e-3


def test_predict_restores_training_mode_and_uses_each_tasks_head(data):
    model = model_for(data)
    batch = next(PerTaskStream(TASKS, data.splits["train"], 3, seed=0).batches())
    with torch.no_grad():
        model.heads["dvd"].bias.copy_(torch.tensor([-1e3, 1e3]))   # dvd always says 1
        model.heads["music"].bias.copy_(torch.tensor([1e3, -1e3]))  # music always says 0
    predicted = model.predict(batch)
    assert model.training and predicted[3:6].tolist() == [1, 1, 1] and predicted[6:9].tolist() == [0, 0, 0]


def test_collate_pads_domains_of_different_widths():
    """Each domain's split is padded to its own longest review: a batch mixing a short-review domain
    with a long one pads the short one's rows to the batch width (it failed on the shipped config)."""
    import torch

    from recsys_hmtl.adapters.text.data import Encoded
    from recsys_hmtl.adapters.text.sampler import collate
    from recsys_hmtl.adapters.text.vocab import PAD_ID

    short = Encoded(torch.tensor([[5, 6, PAD_ID], [7, 8, 9]]), torch.tensor([2, 3]), torch.tensor([0, 1]))
    long = Encoded(torch.tensor([[4] * 6]), torch.tensor([6]), torch.tensor([1]))
    batch = collate([("a", short, torch.tensor([0, 1])), ("b", long, torch.tensor([0]))])
    assert batch.tokens.shape == (3, 6) and batch.counts == (2, 1)
    assert batch.tokens[1].tolist() == [7, 8, 9, PAD_ID, PAD_ID, PAD_ID]
