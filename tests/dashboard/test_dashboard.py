"""`kube-taskqueue dashboard` in a real browser (headless Chromium from Debian's packages, via
Selenium), against the test control plane and moto: the pages show the real numbers, a
redrive from the page moves the messages, forged POSTs are refused, read-only mode has no
actions. Screenshots of the main pages go to the test's output directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from harness import free_port, wait_for
from kube_taskqueue_operator.resource.models import GROUP, PLURAL, VERSION
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(os.environ.get("TASKQUEUE_SCREENSHOTS", "test-output/screenshots"))


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        reason = "Chromium is missing: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI"):  # CI installs it: there its absence is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def taskqueue(crd, kube_client, namespace, make_manifest, queues) -> dict[str, Any]:
    """A TaskQueue whose status names a queue with 2 waiting messages and 3 dead letters
    (2 of task record:job, 1 of other:job), as the operator would report it."""
    url = queues.create("work", max_receive_count=3)
    for index in range(2):
        queues.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": f"w{index}"}))
    for index, task in enumerate(["record:job", "other:job", "record:job"]):
        queues.sqs.send_message(
            QueueUrl=queues.url("work-dlq"),
            MessageBody=json.dumps({"id": f"d{index}"}),
            MessageAttributes={
                "JobName": {"DataType": "String", "StringValue": task},
                "TraceId": {"DataType": "String", "StringValue": f"trace-{index}"},
            },
        )
    custom = kubernetes.client.CustomObjectsApi(kube_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, make_manifest())
    status = {
        "queues": [{"name": "work", "url": url, "deadLetterUrl": queues.url("work-dlq")}],
        "processors": [{"name": "main", "desiredReplicas": 2, "readyReplicas": 2}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": "in place",
                "lastTransitionTime": "2026-12-01T10:00:00Z",
            }
        ],
    }
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "app", {"status": status}
    )
    return status


@pytest.fixture
def serve(control_plane, tmp_path) -> Iterator[Callable[..., str]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(namespace: str, *extra: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kube_taskqueue.cli",
                "dashboard",
                "-n",
                namespace,
                "--port",
                str(port),
                *extra,
            ],
            env={
                **os.environ,
                "KUBECONFIG": str(control_plane.kubeconfig),
                "XDG_CACHE_HOME": str(tmp_path / "cache"),
            },
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"dashboard-{port}.log").open("wb"),
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get(f"{base}/healthz") == 200, timeout=30)
        return base

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except (urllib.error.URLError, OSError):
        return 0


def _post(url: str, fields: dict[str, str], headers: dict[str, str] | None = None) -> int:
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _shot(browser: webdriver.Chrome, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def test_the_overview_shows_the_real_numbers(browser, serve, namespace, taskqueue):
    base = serve(namespace)
    browser.get(base + "/")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-queue='work']")
    assert row.find_element(By.CSS_SELECTOR, ".visible").text == "2"
    assert row.find_element(By.CSS_SELECTOR, ".dead-letters").text == "3"
    assert "Ready True" in browser.page_source
    assert row.find_element(By.CSS_SELECTOR, "svg.spark")
    _shot(browser, "overview")


def test_a_redrive_from_the_page_moves_the_dead_letters(
    browser, serve, namespace, taskqueue, queues
):
    base = serve(namespace)
    browser.get(base + "/")
    browser.find_element(By.CSS_SELECTOR, "tr[data-queue='work'] .dead-letters a").click()
    assert browser.find_element(By.ID, "dead-letter-count").text == "3"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 3
    _shot(browser, "dead-letters")
    browser.find_element(By.LINK_TEXT, "record:job").click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 2
    browser.find_element(By.ID, "redrive").click()
    assert "moved 2 to work" in browser.find_element(By.ID, "done").text
    assert queues.counts("work") == (4, 0)
    wait_for(lambda: queues.counts("work-dlq") == (1, 0))
    browser.get(base + "/")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-queue='work']")
    assert row.find_element(By.CSS_SELECTOR, ".dead-letters").text == "1"


def test_a_purge_from_the_page_asks_first(browser, serve, namespace, taskqueue, queues):
    base = serve(namespace)
    page = f"{base}/taskqueues/{namespace}/app/queues/work/dead-letters?task=other%3Ajob"
    browser.get(page)
    browser.find_element(By.ID, "purge").click()
    browser.switch_to.alert.dismiss()
    assert queues.counts("work-dlq") == (3, 0)
    browser.find_element(By.ID, "purge").click()
    browser.switch_to.alert.accept()
    assert "deleted 1" in browser.find_element(By.ID, "done").text
    wait_for(lambda: queues.counts("work-dlq") == (2, 0))


def test_forged_posts_are_refused(browser, serve, namespace, taskqueue, queues):
    base = serve(namespace)
    action = f"{base}/taskqueues/{namespace}/app/queues/work/redrive"
    assert _post(action, {}) == 403  # no token, no session
    browser.get(f"{base}/taskqueues/{namespace}/app/queues/work/dead-letters")
    token = browser.find_element(By.NAME, "csrf").get_attribute("value")
    assert token
    assert _post(action, {"csrf": token}) == 403  # a token without the browser's cookie
    session = browser.get_cookie("taskqueue_session")
    assert session is not None and session["httpOnly"] and session["sameSite"] == "Strict"
    cookie = {"Cookie": f"taskqueue_session={session['value']}"}
    assert _post(action, {"csrf": "0" * 64}, cookie) == 403  # a wrong token
    assert _post(action, {"csrf": token}, {**cookie, "Origin": "http://evil.test"}) == 403
    assert queues.counts("work-dlq") == (3, 0)  # nothing moved by any of them


def test_read_only_mode_has_no_actions(browser, serve, namespace, taskqueue, queues):
    base = serve(namespace, "--read-only")
    browser.get(f"{base}/taskqueues/{namespace}/app/queues/work/dead-letters")
    assert browser.find_elements(By.ID, "redrive") == []
    assert browser.find_elements(By.ID, "purge") == []
    assert "read-only" in browser.find_element(By.TAG_NAME, "header").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")) == 3
    _shot(browser, "dead-letters-read-only")
    assert _post(f"{base}/taskqueues/{namespace}/app/queues/work/purge", {"all": "yes"}) == 403
    assert queues.counts("work-dlq") == (3, 0)
