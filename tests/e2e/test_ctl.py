"""osaurus-ctl as a user runs it: a subprocess against the real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from osaurus.child_server import free_port


def ctl(server, *args: str, target: str | None = None) -> subprocess.CompletedProcess:
    # As from a shell, piped: COLUMNS is a shell variable there, not exported (a library in
    # this test process exports COLUMNS=80, which would cut tables as the user never sees).
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-m", "osaurus.cli.ctl", "--target", target or server.grpc_target, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_status_and_models_as_json(server, model_id) -> None:
    status = json.loads(ctl(server, "status", "--json").stdout)
    assert status["device"] == "cpu" and status["version"]
    models = json.loads(ctl(server, "models", "list", "--json").stdout)
    assert model_id in [m["id"] for m in models]
    shown = json.loads(ctl(server, "models", "show", model_id, "--json").stdout)
    assert shown["architecture"] == "llama" and shown["context_length"] == 8192


def test_human_output(server, model_id) -> None:
    listing = ctl(server, "models", "list")
    assert listing.returncode == 0 and model_id in listing.stdout and "4-bit" in listing.stdout
    assert "loaded" in ctl(server, "models", "load", model_id).stdout
    status = ctl(server, "status").stdout
    assert "device: cpu" in status and "KV caches kept" in status
    assert "quantized matmul: osaurus native" in status
    assert "4-bit (osaurus" in ctl(server, "models", "list").stdout


def test_chat_streams_the_answer(server, model_id) -> None:
    result = ctl(server, "chat", model_id, "Name the capital of France.", "--temperature", "0")
    assert result.returncode == 0 and "Paris" in result.stdout
    as_json = json.loads(ctl(server, "chat", model_id, "Hi", "--max-tokens", "3", "--json").stdout)
    assert as_json["finish_reason"] == "FINISH_REASON_LENGTH" and as_json["text"]


def test_sessions_list_show_and_rm(server, model_id) -> None:
    chat = ctl(server, "chat", model_id, "Hi", "--max-tokens", "3", "--session", "ctl-session")
    assert chat.returncode == 0
    listing = ctl(server, "sessions", "list")
    assert listing.returncode == 0 and "ctl-session" in listing.stdout
    shown = json.loads(ctl(server, "sessions", "show", "ctl-session", "--json").stdout)
    assert shown["model"] == model_id and shown["cached_tokens"] > 0
    assert ctl(server, "sessions", "rm", "ctl-session").returncode == 0
    gone = ctl(server, "sessions", "show", "ctl-session")
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr and "ctl-session" in gone.stderr


def test_ps_shows_loaded_models_with_memory_and_expiry(server, model_id) -> None:
    assert ctl(server, "models", "load", model_id, "--keep-alive", "10m").returncode == 0
    table = ctl(server, "ps").stdout
    assert model_id in table and "4-bit (osaurus" in table and "in 10 min" in table
    (loaded,) = [m for m in json.loads(ctl(server, "ps", "--json").stdout) if m["id"] == model_id]
    # The 4-bit weights as stored (~94 MB), not a float32 copy (~540 MB).
    assert 80 << 20 < int(loaded["memory_bytes"]) < 130 << 20 and loaded["expire_time"]
    bad = ctl(server, "models", "load", model_id, "--keep-alive", "soon")
    assert bad.returncode == 1 and "not a duration" in bad.stderr and "Traceback" not in bad.stderr


def test_system_samples(server) -> None:
    result = ctl(server, "system", "--count", "2", "--interval", "0.2", "--json")
    samples = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(samples) == 2 and int(samples[0]["memory_total_bytes"]) > 0


def test_errors_are_one_clear_line(server, tmp_path) -> None:
    missing = ctl(server, "models", "show", "no-such-model")
    assert (
        missing.returncode == 1
        and "no-such-model" in missing.stderr
        and "NOT_FOUND" in missing.stderr
    )
    assert "Traceback" not in missing.stderr
    bad_import = ctl(server, "models", "import", str(tmp_path / "nope.gguf"))
    assert bad_import.returncode == 1 and "not found" in bad_import.stderr

    down = ctl(server, "status", target=f"127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert down.stderr.strip().count("\n") == 0 and "cannot reach the osaurus server" in down.stderr


def test_piped_output_is_plain_text_and_json_numbers_are_numbers(server, model_id) -> None:
    listing = ctl(server, "models", "list").stdout
    assert not set("┃━│─┏┓") & set(listing)  # no box drawing when piped
    header, *rows = listing.splitlines()
    assert header.split()[:3] == ["ID", "SIZE", "ARCH"]
    assert any(row.split()[0] == model_id for row in rows)
    (model,) = [m for m in json.loads(ctl(server, "models", "list", "--json").stdout)
                if m["id"] == model_id]  # fmt: skip
    assert isinstance(model["size_bytes"], int) and isinstance(model["parameter_count"], int)
    stats = ctl(server, "system", "--count", "2", "--interval", "0.2")
    lines = stats.stdout.splitlines()
    assert stats.returncode == 0 and len(lines) == 2 and lines[0].startswith("cpu ")
    sample = json.loads(ctl(server, "system", "--count", "1", "--json").stdout)
    assert isinstance(sample["memory_total_bytes"], int)


def test_search_with_the_hub_unreachable_shows_the_curated_list(server) -> None:
    # The e2e server runs with HF_HUB_OFFLINE: the hub is unreachable, the server is not.
    result = ctl(server, "models", "search", "qwen")
    assert result.returncode == 0, result.stderr
    assert "Hugging Face is unreachable" in result.stderr
    assert "cannot reach the osaurus server" not in result.stderr
    assert "mlx-community/Qwen3-4B-4bit" in result.stdout and "~" in result.stdout
    found = json.loads(ctl(server, "models", "search", "qwen", "--json").stdout)
    assert found["hub_error"] and found["models"]


def _in_a_terminal(server, *args: str, columns: int = 80) -> str:
    """osaurus-ctl's output in a terminal `columns` wide (a pseudo-terminal of that size)."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    command = [sys.executable, "-m", "osaurus.cli.ctl", "--target", server.grpc_target, *args]
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    process.wait(timeout=120)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))  # no colours


def test_tables_fit_an_80_column_terminal(server, model_id) -> None:
    ctl(server, "models", "load", model_id)
    for args in (("models", "list"), ("ps",), ("models", "search", "smol")):
        shown = _in_a_terminal(server, *args)
        # The table's lines; a message above it (the hub is unreachable here) is wrapped by
        # the terminal as any text is.
        lines = [x for x in shown.replace("\r", "").splitlines() if not x.startswith("osaurus")]
        assert len(lines) > 2, (args, shown)
        assert max(len(line) for line in lines) <= 80, (args, shown)
    assert model_id in _in_a_terminal(server, "models", "list", columns=120)
