"""The official OpenAI and Anthropic Python SDKs against a real llmgate and its mock upstream.

Run by `make test` (through tests/sdk/run.sh) with the debug binary that `cargo test` built.
Everything listens on 127.0.0.1; every process is stopped at the end.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import anthropic
import openai

BINARY = os.environ.get("LLMGATE_BIN", "target/debug/llmgate")
KEY = "sk-sdk-test-key-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, deadline=20.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


class Gateway:
    """A mock upstream and an llmgate in front of it, for the whole test module."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory()
        self.mock_port = free_port()
        self.port = free_port()
        mock_url = f"http://127.0.0.1:{self.mock_port}"
        config = os.path.join(self.dir.name, "llmgate.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(mock=mock_url, key=KEY))
        env = dict(os.environ, LLMGATE_LOG="warn")
        self.mock = subprocess.Popen(
            [BINARY, "mock-upstream", "--listen", f"127.0.0.1:{self.mock_port}"], env=env
        )
        self.gateway = subprocess.Popen(
            [
                BINARY, "serve", "--config", config,
                "--listen", f"127.0.0.1:{self.port}",
                "--database", f"sqlite://{self.dir.name}/llmgate.db",
            ],
            env=env,
        )
        wait_ready(f"http://127.0.0.1:{self.port}/readyz")
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        for process in (self.gateway, self.mock):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.dir.cleanup()


CONFIG = """
[[providers]]
name = "mock-openai"
kind = "openai"
base_url = "{mock}/v1"
  [[providers.accounts]]
  name = "a"
  api_key = "sk-upstream-openai-0001"

[[models]]
name = "gpt-mock"
  [[models.routes]]
  provider = "mock-openai"
  model = "mock-model"

[[keys]]
name = "sdk"
key = "{key}"
"""

GATEWAY = None


def setUpModule():
    global GATEWAY
    GATEWAY = Gateway()


def tearDownModule():
    GATEWAY.stop()


class OpenAiSdk(unittest.TestCase):
    def client(self):
        return openai.OpenAI(base_url=GATEWAY.base + "/v1", api_key=KEY, max_retries=0)

    def test_chat_completion(self):
        reply = self.client().chat.completions.create(
            model="gpt-mock", messages=[{"role": "user", "content": "Hello there"}]
        )
        self.assertEqual(reply.choices[0].message.content, "echo: Hello there")
        self.assertEqual(reply.choices[0].finish_reason, "stop")
        self.assertGreater(reply.usage.total_tokens, 0)

    def test_streaming_chat_completion(self):
        stream = self.client().chat.completions.create(
            model="gpt-mock",
            messages=[{"role": "user", "content": "Stream this"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage = "", None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage:
                usage = chunk.usage
        self.assertEqual(text.strip(), "echo: Stream this")
        self.assertIsNotNone(usage)

    def test_embeddings_and_models(self):
        client = self.client()
        embedding = client.embeddings.create(model="gpt-mock", input=["a", "b"])
        self.assertEqual(len(embedding.data), 2)
        self.assertEqual([m.id for m in client.models.list()], ["gpt-mock"])

    def test_errors_raise_the_sdk_exceptions(self):
        with self.assertRaises(openai.NotFoundError):
            self.client().chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "x"}]
            )
        bad = openai.OpenAI(base_url=GATEWAY.base + "/v1", api_key="sk-wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            bad.chat.completions.create(
                model="gpt-mock", messages=[{"role": "user", "content": "x"}]
            )


if __name__ == "__main__":
    unittest.main(verbosity=2)
