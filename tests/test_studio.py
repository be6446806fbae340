"""`npc-engine studio`: its HTTP API over a real server, its safety checks, and the page itself in
a real headless Chromium (Debian's, driven by Playwright) against `serve` with the built-in model."""

from __future__ import annotations

import shutil
import subprocess
import sys
import json
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from npc_engine import ServerError
from npc_engine.client import Client
from npc_engine.protocol import PROTOCOL_VERSION
from npc_engine.demo import ServerProcess
from npc_engine.server import write_curve_keys

from .server_helpers import make_server, running
from .studio_helpers import call, studio

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "images" / "studio.png"
BROKEN_TEMPLATE = {"name": "broken", "slots": [{"name": "mood", "kind": "choice", "options": []}]}


def _studio_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npc_engine.cli", "studio", *args], capture_output=True, text=True,
                          timeout=120)


def test_the_api_reads_state_says_and_observes_through_the_protocol(backend):
    with running(make_server(backend, max_steps=4)) as server, studio(server.endpoint) as url:
        status, listed = call(url, "/api/characters")
        assert status == 200 and [c["id"] for c in listed["characters"]] == ["brom"]
        assert call(url, "/api/observe", {})[1]["events"] == []  # now observed
        status, reply = call(url, "/api/say", {"character_id": "brom", "speaker_id": "player", "text": "Any work?",
                                               "template": "shopkeeper_reply", "seed": 3})
        assert status == 200 and reply["finish_reason"] == "complete" and reply["fields"]["say"]
        events = call(url, "/api/observe", {"since": 0})[1]["events"]
        assert [e["kind"] for e in events][0] == "say.start" and events[-1]["kind"] == "say.reply"
        assert events[-1]["reply"]["fields"] == reply["fields"]
        # The template editor's check: the server's own error, word for word.
        status, error = call(url, "/api/template/check", {"template": BROKEN_TEMPLATE})
        with Client(server.endpoint) as client, pytest.raises(ServerError) as direct:
            client.check_template(BROKEN_TEMPLATE)
        assert status == 400 and error["error"]["code"] == direct.value.code == "invalid_template"
        assert error["error"]["message"] == direct.value.server_message
        # Bad calls to the API itself get an error of their own; the studio keeps serving.
        assert call(url, "/api/say", {"character_id": "brom"})[1]["error"]["code"] == "bad_studio_request"
        assert call(url, "/api/observe", {"since": "x"})[0] == 400
        status, missing = call(url, "/api/say", {"character_id": "nobody", "speaker_id": "player", "text": "Hi",
                                                 "template": "shopkeeper_reply"})
        assert status == 400 and missing["error"]["code"] == "unknown_character"
        assert call(url, "/api/hello")[1]["protocol_version"] == PROTOCOL_VERSION


def test_try_registers_the_edited_template_and_says_a_line_with_it(backend):
    template = {"name": "studio_try", "slots": [{"name": "line", "kind": "text", "max_tokens": 8},
                                                {"name": "mood", "kind": "choice", "options": ["calm", "wary"]}],
                "effects": [{"kind": "set_mood", "slot": "mood"}]}
    with running(make_server(backend, max_steps=4)) as server, studio(server.endpoint) as url:
        assert call(url, "/api/template/check", {"template": template})[0] == 200
        assert "studio_try" not in [t["name"] for t in call(url, "/api/templates")[1]["templates"]]
        status, reply = call(url, "/api/template/try", {"template": template, "character_id": "brom",
                                                        "speaker_id": "player", "text": "Well?"})
        assert status == 200 and set(reply["fields"]) == {"line", "mood"}
        assert "studio_try" in [t["name"] for t in call(url, "/api/templates")[1]["templates"]]
        assert call(url, "/api/characters")[1]["characters"][0]["mood"] == reply["fields"]["mood"]


def test_the_studio_speaks_curve_with_the_keys_it_is_given(backend, tmp_path):
    keys = write_curve_keys(tmp_path / "keys")
    with running(make_server(backend, curve_keys=keys)) as server, \
            studio(server.endpoint, "--curve-keys", str(keys)) as url:
        status, listed = call(url, "/api/characters")
        assert status == 200 and [c["id"] for c in listed["characters"]] == ["brom"]
        assert "curve" in call(url, "/api/hello")[1]["capabilities"]


def test_the_page_is_served_with_its_assets(backend):
    with running(make_server(backend)) as server, studio(server.endpoint) as url:
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        assert "/static/studio.js" in page and 'id="talk-form"' in page
        with urllib.request.urlopen(url.split("?")[0] + "static/studio.js", timeout=30) as response:
            assert b"/api/observe" in response.read()


def _raw_http(url: str, request: bytes) -> tuple[int, dict]:
    """Send `request` as is over a socket to the studio at `url`; (status, JSON body) of its answer."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_the_studio_refuses_web_pages_and_foreign_hosts(backend):
    """What a hostile page in the developer's browser can send: DNS rebinding (a foreign Host),
    cross-origin and token-less calls, `text/plain` bodies (no CORS preflight), huge bodies."""
    probe = {"name": "web_probe", "slots": [{"name": "line", "kind": "text", "max_tokens": 4}]}
    try_body = {"template": probe, "character_id": "brom", "speaker_id": "player", "text": "Hi"}
    with running(make_server(backend, max_steps=2)) as server, studio(server.endpoint) as url:
        port = urllib.parse.urlsplit(url).port
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["token"][0]
        foreign = {"host": f"rebound.example:{port}"}
        assert call(url, "/api/characters", headers=foreign) == (400, ANY_ERROR("bad_host"))
        assert call(url, "/", headers=foreign)[0] == 400  # the page itself too
        assert call(url, "/api/characters", headers={"x-studio-token": None}) == (403, ANY_ERROR("bad_token"))
        assert call(url, "/api/characters", headers={"x-studio-token": "guess"})[0] == 403
        evil = {"origin": "http://evil.example"}
        assert call(url, "/api/template/try", try_body, headers=evil) == (403, ANY_ERROR("bad_origin"))
        assert call(url, "/api/template/try", try_body, headers={"x-studio-token": None})[0] == 403
        plain = {"content-type": "text/plain;charset=UTF-8"}
        assert call(url, "/api/template/try", try_body, headers=plain) == (415, ANY_ERROR("bad_content_type"))
        # An oversized body is refused from its Content-Length, before a byte of it is sent.
        status, error = _raw_http(url, (f"POST /api/say HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                        f"x-studio-token: {token}\r\ncontent-type: application/json\r\n"
                                        f"content-length: 100000000\r\n\r\n").encode())
        assert (status, error["error"]["code"]) == (413, "too_large")
        # ... and a chunked one as it streams past the limit.
        chunk = b"[" + b" " * (300 * 1024) + b"]"
        status, error = _raw_http(url, (f"POST /api/say HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                        f"x-studio-token: {token}\r\ncontent-type: application/json\r\n"
                                        f"transfer-encoding: chunked\r\n\r\n{len(chunk):x}\r\n").encode()
                                  + chunk + b"\r\n0\r\n\r\n")
        assert (status, error["error"]["code"]) == (413, "too_large")
        # GETs change nothing: observing (which starts recording, and tracing with debug) is a POST.
        assert call(url, "/api/observe")[0] == 405 and not server.observe.is_observed
        assert call(url, "/api/template/try")[0] == 405
        with Client(server.endpoint) as client:  # none of the refused calls registered the probe
            assert "web_probe" not in [t.name for t in client.list_templates()]
        # The same calls, from the page itself (its own Origin, the token, JSON), work.
        own = {"origin": f"http://127.0.0.1:{port}"}
        assert call(url, "/api/template/try", try_body, headers=own)[0] == 200
        assert call(url, "/api/observe", {}, headers=own)[0] == 200 and server.observe.is_observed


class ANY_ERROR:
    """Equal to a studio error body with this code."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and other.get("error", {}).get("code") == self.code

    def __repr__(self) -> str:
        return f"<error {self.code}>"


def test_the_studio_refuses_to_be_reachable_from_other_machines_unless_asked():
    refused = _studio_cli("--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    no_keys = _studio_cli("--connect", "tcp://192.0.2.1:5555", "--port", "0")
    assert no_keys.returncode == 2 and "--curve-keys" in no_keys.stderr


def test_the_studio_finds_a_game_server_by_its_status_file(tmp_path):
    """A game's launcher starts `serve --port 0 --status-file`; the studio attaches by the file, even
    when it is started first."""
    status_file = tmp_path / "npc" / "server.json"
    waiting = subprocess.Popen([sys.executable, "-m", "npc_engine.cli", "studio", "--status-file", str(status_file),
                                "--port", "0", "--wait-s", "120"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "waiting for the server to write" in waiting.stderr.readline()
        with ServerProcess(port=0, extra_args=["--status-file", str(status_file)]) as server:
            line = waiting.stdout.readline()
            assert f"(inspecting {server.endpoint})" in line
            with studio(None, "--status-file", str(status_file)) as url:
                assert call(url, "/api/hello")[1]["protocol_version"] == PROTOCOL_VERSION
    finally:
        waiting.terminate()
        waiting.wait(timeout=20)
    status_file.parent.mkdir(exist_ok=True)
    status_file.write_text("not json")
    bad = _studio_cli("--status-file", str(status_file), "--port", "0")
    assert bad.returncode == 2 and str(status_file) in bad.stderr
    assert _studio_cli("--status-file", str(tmp_path / "none.json"), "--wait-s", "0").returncode == 2
    status_file.write_text('{"endpoint": "tcp://127.0.0.1:1"}' + " " * (64 * 1024))  # over the bound
    too_big = _studio_cli("--status-file", str(status_file), "--port", "0")
    assert too_big.returncode == 2 and "over 65536 bytes" in too_big.stderr
    both = _studio_cli("--status-file", str(status_file), "--connect", "tcp://127.0.0.1:5555")
    assert both.returncode == 2 and "not both" in both.stderr


def test_the_studio_says_so_when_no_server_answers():
    # Nothing listens on port 9 of loopback: the hello times out with a clear line.
    result = subprocess.run([sys.executable, "-c", "import sys; from npc_engine.cli import main; "
                             "sys.exit(main(['studio', '--connect', 'tcp://127.0.0.1:9', '--port', '0']))"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1 and "cannot reach the server at tcp://127.0.0.1:9" in result.stderr


# -- the page in a real browser ------------------------------------------------------------------

def _browser():
    """Playwright driving Debian's chromium, or a skip that says what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium on this machine (tools/install-chromium.sh installs Debian's; ./npc test runs it)")
    return sync_playwright, executable


def _seed(endpoint: str) -> None:
    with Client(endpoint, timeout_s=120) as client:
        client.upsert_speaker("player", "Aria")
        client.upsert_character({"id": "brom", "name": "Brom", "persona": "A gruff smith of Thornvale.",
                                 "relationships": {"player": {"trust": 20, "affinity": -10, "familiarity": 40}},
                                 "memories": [{"text": "Aria paid for a sword in full.", "salience": 0.8}],
                                 "flags": {"forge_lit": True}})
        client.upsert_character({"id": "mira", "name": "Mira", "persona": "A bard who collects rumours."})


def test_the_page_in_a_real_browser(tmp_path):
    sync_playwright, executable = _browser()
    with ServerProcess(db=tmp_path / "studio.db") as server:
        _seed(server.endpoint)
        with studio(server.endpoint) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.goto(url)
                # The seeded characters, with the selected one's state.
                page.wait_for_selector("#character-list .character[data-id='mira']")
                assert page.locator("#character-list .character .name").all_inner_texts() == ["Brom", "Mira"]
                page.wait_for_selector("#character-detail .relationship[data-other='player']")
                assert "forge_lit = true" in page.inner_text("#character-detail")
                # A line from the talk box: drafts, then the reply with its state changes.
                page.select_option("#talk-character", "brom")
                page.select_option("#talk-speaker", "player")
                page.select_option("#talk-template", "shopkeeper_reply")
                page.fill("#talk-text", "Any work for a traveller?")
                page.click("#talk-send")
                page.wait_for_selector("#feed .say.done", timeout=120_000)
                say = page.locator("#feed .say.done").first
                assert "player → brom" in say.inner_text()
                assert "trust" in say.locator(".say-changes").inner_text()
                assert "complete" in page.inner_text("#talk-status")
                say.click()  # expand: the canvas settling step by step, and the prompt's make-up
                page.wait_for_selector("#feed .say.open .steps .step")
                num_steps = page.locator("#feed .say.open .steps .step").count()
                assert num_steps >= 1 and page.locator("#feed .say.open .tok.a").count() > 0
                assert "Prompt:" in say.inner_text() and "Aria paid for a sword in full." in say.inner_text()
                # The character's state follows the reply.
                page.wait_for_function("document.querySelector('#character-detail').innerText"
                                       ".includes('Any work for a traveller?')", timeout=30_000)
                # An invalid template shows the server's own error as you type.
                page.fill("#template-editor", '{"name": "broken", "slots": [{"name": "mood", "kind": "choice", '
                                              '"options": []}]}')
                page.wait_for_selector("#template-check.error", timeout=30_000)
                with Client(server.endpoint) as client, pytest.raises(ServerError) as direct:
                    client.check_template(BROKEN_TEMPLATE)
                assert direct.value.server_message in page.inner_text("#template-check")
                page.wait_for_function("document.querySelector('#frame-summary').innerText.includes('p50')",
                                       timeout=30_000)
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                time.sleep(0.5)  # one more stats poll, so the queue chart has a few columns
                page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
