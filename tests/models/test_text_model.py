import numpy as np

from operators.text_embed import GPU_TOKEN_MULTIPLE, TransformersTextEmbedder, token_multiple
from streamer.bench.media import mixed_texts
from streamer.runner.lengths import lengths_of
from streamer.runner.plan import Plan
from streamer.runner.runner import Runner
from tests.models.conftest import embed
from tests.models.reference import sentence_transformers_reference
from topologies.text import minilm_l6_dir

SENTENCES = ["A cup of coffee on a wooden table.", "The cat sleeps.", "Rockets launch at dawn."]


def test_matches_sentence_transformers(text_plan: Plan, runner: Runner) -> None:
    ours = embed(runner, text_plan, SENTENCES)
    reference = sentence_transformers_reference(SENTENCES)
    assert ours.shape == (3, 384)
    cosines = (ours * reference).sum(axis=1)
    assert (cosines >= 0.99).all(), cosines


def test_padding_does_not_change_a_sentence(text_plan: Plan, runner: Runner) -> None:
    alone = embed(runner, text_plan, ["short"])[0]
    padded = embed(
        runner, text_plan, ["short", "a much longer sentence that forces padding of the first"]
    )[0]
    assert float(alone @ padded) > 0.9999
    assert np.isclose(np.linalg.norm(alone), 1.0, atol=1e-5)


def test_paraphrase_is_closer_than_an_unrelated_sentence(text_plan: Plan, runner: Runner) -> None:
    query, para, other = embed(
        runner,
        text_plan,
        ["someone making a latte", "A barista pours milk into espresso.", "Stock markets fell."],
    )
    assert float(query @ para) > float(query @ other) + 0.2


def test_lengths_are_token_counts_as_a_call_sees_them(text_plan: Plan) -> None:
    model = lengths_of(text_plan.models[0].model)
    assert isinstance(model, TransformersTextEmbedder)
    tokens = model.tokenizer(["The cat sleeps."])["input_ids"][0]
    assert model.lengths(["The cat sleeps.", "word " * 1000]) == [len(tokens), 256]


def test_texts_cut_by_length_embed_as_in_arrival_order(text_plan: Plan, runner: Runner) -> None:
    texts = mixed_texts(40, seed=1)
    cut = embed(runner, text_plan, texts)
    arrival = Runner(runner.cpu_pool, runner.model_pool, by_length=False)
    cosines = (cut * embed(arrival, text_plan, texts)).sum(axis=1)
    assert (cosines > 0.9999).all(), cosines


def test_token_counts_padded_to_a_multiple_change_no_vector(text_plan: Plan) -> None:
    plain = lengths_of(text_plan.models[0].model)
    assert isinstance(plain, TransformersTextEmbedder) and plain.pad_to_multiple_of is None
    padded = TransformersTextEmbedder(minilm_l6_dir(), pad_to_multiple_of=16)
    texts = ["short", *mixed_texts(6, seed=2)]
    ours, theirs = (
        v / np.linalg.norm(v, axis=1, keepdims=True) for v in (padded(texts), plain(texts))
    )
    assert np.allclose((ours * theirs).sum(axis=1), 1.0, atol=1e-5)


def test_a_gpu_pads_token_counts_to_a_multiple_and_a_cpu_does_not() -> None:
    assert token_multiple("cuda", 256) == token_multiple("cuda:1", 512) == GPU_TOKEN_MULTIPLE
    assert token_multiple("cpu", 256) is None
    assert token_multiple("cuda", 77) is None  # padding past the positions the model has
