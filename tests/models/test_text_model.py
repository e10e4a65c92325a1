import numpy as np

from streamer.runner.plan import Plan
from streamer.runner.runner import Runner
from tests.models.conftest import embed
from tests.models.reference import sentence_transformers_reference

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
