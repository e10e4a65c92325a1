"""The search page in a real browser (Debian's Chromium, headless, driven by Selenium through
its ChromeDriver) against ``streamer ui`` on the embedded stack, the sample photos indexed by a
real worker: a photo and a text find their photo with thumbnails drawn, bad input of each kind
is a message on the page (never a trace); a training round labelled with the sliders shows
results not seen before, a saved classifier is listed, and attached to the stream from the page
it labels a new upload, found with the filter ``label:<name>=true``. Screenshots go to
``screenshots/`` (or ``$STREAMER_SCREENSHOTS``)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from operators.fetch import path_to_uri
from streamer.config.settings import settings_env
from streamer.core.messages import UploadMessage
from streamer.demo.samples import write_photos
from streamer.ingest.producer import publish
from streamer.stack.processes import free_port, terminate
from tests.integration.conftest import Scenario, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("STREAMER_SCREENSHOTS", ROOT / "screenshots"))


@pytest.fixture
def page(scenario: Scenario) -> Iterator[tuple[Any, str, dict[str, Path]]]:
    """A browser, the page's address and the photos indexed behind it."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    photos = write_photos(scenario.media)
    uploads = [UploadMessage(id=f"photo-{n}", uri=path_to_uri(p)) for n, p in photos.items()]
    asyncio.run(publish(scenario.settings.kafka, uploads))
    scenario.start_worker(
        STREAMER_TOPOLOGIES="topologies:IMAGE,topologies:TEXT",
        STREAMER_TRAINER_ATTACHED_REFRESH_S="0.5",
    )
    wait_for("the photos indexed", lambda: scenario.count("image") == len(photos), timeout_s=300)

    port = free_port()
    env = {**os.environ, **settings_env(scenario.settings)}
    log = open(scenario.logs / "ui.log", "wb")  # noqa: SIM115 (closed below)
    ui = subprocess.Popen(
        [sys.executable, "-m", "streamer", "ui", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        assert ui.poll() is None, (scenario.logs / "ui.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(address + "healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    wait_for("the search page", up, timeout_s=120)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    browser.set_page_load_timeout(60)
    try:
        yield browser, address, photos
    finally:
        browser.quit()
        terminate(ui)
        log.close()


def search(browser: Any, address: str, **fields: str) -> None:
    """Fill the form afresh and submit it; wait for the page to say something."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(address)
    options = (By.CSS_SELECTOR, "#topology option")
    wait_for("the topologies", lambda: len(browser.find_elements(*options)) > 0)
    Select(browser.find_element(By.ID, "topology")).select_by_value(fields.pop("topology", "image"))
    for name, value in fields.items():
        element = browser.find_element(By.ID, name)
        if element.get_attribute("type") != "file":
            element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "go").click()
    wait_for(
        "an answer on the page",
        lambda: browser.find_element(By.ID, "message").text not in ("", "searching…"),
        timeout_s=180,
    )


def shown(browser: Any) -> tuple[str, str, list[str]]:
    """The message's class and text, and the ids of the results, in order."""
    from selenium.webdriver.common.by import By

    message = browser.find_element(By.ID, "message")
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    return message.get_attribute("class"), message.text, [h.get_attribute("data-id") for h in hits]


def thumbnails_drawn(browser: Any) -> int:
    return int(
        browser.execute_script(
            "return [...document.querySelectorAll('#results img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length"
        )
    )


def rounds(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.TAG_NAME, "body").get_attribute("data-rounds"))


def round_ids(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    cards = browser.find_elements(By.CSS_SELECTOR, "#round .hit")
    return [card.get_attribute("data-id") for card in cards]


def shot(browser: Any, name: str, at: str | None = None) -> None:
    """A screenshot of the window, scrolled to the element ``at`` (a CSS selector) if given."""
    if at is not None:
        browser.execute_script(f"document.querySelector({at!r}).scrollIntoView()")
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def test_a_photo_and_a_text_find_their_photo_with_thumbnails(
    page: tuple[Any, str, dict[str, Path]],
) -> None:
    browser, address, photos = page
    search(browser, address, image=str(photos["coffee"]))
    kind, text, ids = shown(browser)
    assert kind == "info" and "searched with image" in text, text
    assert ids[0] == "photo-coffee" and len(ids) == 12
    wait_for("the thumbnails drawn", lambda: thumbnails_drawn(browser) == 12, timeout_s=60)
    shot(browser, "search-by-photo")

    # no text model shares the photos' space: the words start from the image model's classes
    search(browser, address, text="a cup of coffee")
    kind, text, ids = shown(browser)
    assert kind == "info" and "coffee mug" in text, text
    assert ids[0] == "photo-coffee"
    wait_for("the thumbnails drawn", lambda: thumbnails_drawn(browser) == len(ids), timeout_s=60)
    shot(browser, "search-by-text")

    search(browser, address, asset="photo-chelsea", topk="3")
    assert shown(browser)[2][0] == "photo-chelsea"


BAD = [
    ({"image": "junk"}, "not an image"),
    ({"asset": "photo-nobody"}, "no asset 'photo-nobody'"),
    ({"text": "cats", "filter": 'tenant"] == 1 or 1 == 1'}, "cannot filter on"),
    ({"text": "cats", "image": "junk"}, "one of: a text, a photo, or an asset"),
]


def test_bad_input_is_a_message_on_the_page(
    page: tuple[Any, str, dict[str, Path]], tmp_path: Path
) -> None:
    browser, address, _ = page
    junk = tmp_path / "holiday.jpg"  # a hostile upload: random bytes under a photo's name
    junk.write_bytes(os.urandom(200_000))
    for fields, says in BAD:
        if "image" in fields:
            fields = {**fields, "image": str(junk)}
        search(browser, address, **fields)
        kind, text, ids = shown(browser)
        assert kind == "error" and says in text, (fields, text)
        assert ids == [] and "Traceback" not in browser.page_source
        shot(browser, "refused-" + says.split()[0].lower().strip("'"))


def test_a_training_round_changes_the_results_and_a_saved_classifier_is_listed(
    page: tuple[Any, str, dict[str, Path]], scenario: Scenario
) -> None:
    from selenium.webdriver.common.by import By

    browser, address, photos = page
    search(browser, address, text="a cup of coffee")
    browser.find_element(By.ID, "train-start").click()
    wait_for("the first round", lambda: rounds(browser) == "1", timeout_s=120)
    first = round_ids(browser)
    assert len(first) == 10 and first[0] == "photo-coffee", first
    # the coffee is a yes, the rest no: the sliders moved as a user moves them
    browser.execute_script(
        "for (const s of document.querySelectorAll('#round input.label')) {"
        " s.value = s.dataset.id === 'photo-coffee' ? '1' : '-1';"
        " s.dispatchEvent(new Event('input')); }"
    )
    shot(browser, "trainer-round-1", at="#trainer")
    browser.find_element(By.ID, "train").click()
    wait_for("the second round", lambda: rounds(browser) == "2", timeout_s=120)
    second = round_ids(browser)
    assert second and not set(second) & set(first), (first, second)  # nothing shown twice
    assert len(first) + len(second) == len(photos)
    assert "10 labels so far (1 positive)" in browser.find_element(By.ID, "train-status").text

    browser.find_element(By.ID, "name").send_keys("coffee-finder")
    browser.find_element(By.ID, "save").click()
    listed = (By.CSS_SELECTOR, "#classifiers li[data-name='coffee-finder']")
    wait_for("the saved classifier listed", lambda: len(browser.find_elements(*listed)) == 1)
    assert "10 labels, 1 positive" in browser.find_element(*listed).text
    shot(browser, "trainer-saved", at="#trainer")
    browser.find_element(By.ID, "save").click()  # the same name again: refused, said
    wait_for("the refusal", lambda: "saved already" in browser.find_element(By.ID, "message").text)

    # attached from the page, it labels what the stream brings next
    browser.find_element(*listed).find_element(By.CSS_SELECTOR, "button.attach").click()
    # (the list is drawn anew, so read it by script, never through a stale element)
    item = "document.querySelector(\"#classifiers li[data-name='coffee-finder']\")"
    wait_for(
        "the classifier attached",
        lambda: browser.execute_script(f"return {item}.dataset.attached") == "true",
    )
    said = browser.execute_script(f"return {item}.textContent")
    assert "search with label:coffee-finder=true" in said, said
    shot(browser, "trainer-attached", at="#trainer")
    asyncio.run(asyncio.sleep(1.5))  # the worker's next look at what is attached
    again = UploadMessage(id="coffee-again", uri=path_to_uri(photos["coffee"]))
    asyncio.run(publish(scenario.settings.kafka, [again]))
    wait_for("the new upload", lambda: scenario.count("image") == len(photos) + 1)
    scenario.wait_searchable(scenario.collection("image"))
    search(browser, address, text="a cup of coffee", filter="label:coffee-finder=true")
    kind, text, ids = shown(browser)
    assert ids == ["coffee-again"], (kind, text, ids)  # the rows stored before: unlabelled
    verdict = browser.find_element(By.CSS_SELECTOR, "#results .verdict[data-classifier]")
    assert verdict.text.startswith("coffee-finder: yes ("), verdict.text
    shot(browser, "label-filter")
