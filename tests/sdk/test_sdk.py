"""The official OpenAI and Anthropic Python SDKs against a real llmgate and its mock upstream.

Run by `make test` (through tests/sdk/run.sh) with the debug binary that `cargo test` built.
Everything listens on 127.0.0.1; every process is stopped at the end.
"""

import json
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
AZURE_KEY = "azure-sdk-account-key-0004"
AWS_KEY_ID = "AKIDSDKTEST0005"
AWS_SECRET = "sdk-test-secret/0005+key"
AWS_SESSION_TOKEN = "sdk-test-session-token-0005"
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def service_account(token_uri):
    """A service account's key file around the test-only key, whose token endpoint is the mock's."""
    with open(os.path.join(FIXTURES, "vertex-sa-TEST-ONLY.key.pem")) as f:
        private_key = f.read()
    return json.dumps(
        {
            "type": "service_account",
            "private_key": private_key,
            "client_email": "sdk-test@test-project.iam.gserviceaccount.com",
            "token_uri": token_uri,
        }
    )


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
            f.write(CONFIG.format(mock=mock_url, key=KEY, azure_key=AZURE_KEY))
        env = dict(os.environ, LLMGATE_LOG="warn")
        self.mock = subprocess.Popen(
            [
                BINARY, "mock-upstream", "--listen", f"127.0.0.1:{self.mock_port}",
                "--azure-api-key", AZURE_KEY,
                "--vertex-public-key", os.path.join(FIXTURES, "vertex-sa-TEST-ONLY.pub.pem"),
                "--aws-access-key-id", AWS_KEY_ID,
                "--aws-secret-access-key", AWS_SECRET,
                "--aws-session-token", AWS_SESSION_TOKEN,
            ],
            env=env,
        )
        env["VERTEX_SA_JSON"] = service_account(f"{mock_url}/token")
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

[[providers]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "{mock}/v1"
  [[providers.accounts]]
  name = "a"
  api_key = "sk-upstream-anthropic-0002"

[[providers]]
name = "mock-gemini"
kind = "gemini"
base_url = "{mock}/v1beta"
  [[providers.accounts]]
  name = "a"
  api_key = "upstream-gemini-0003"

[[providers]]
name = "mock-azure"
kind = "azure"
base_url = "{mock}/openai"
api_version = "2024-10-21"
  [[providers.accounts]]
  name = "a"
  api_key = "{azure_key}"

[[providers]]
name = "mock-vertex"
kind = "vertex"
base_url = "{mock}/vertex/v1"
project = "test-project"
region = "us-central1"
  [[providers.accounts]]
  name = "sa"
  service_account_json = "${{VERTEX_SA_JSON}}"

[[providers]]
name = "mock-bedrock"
kind = "bedrock"
base_url = "{mock}/bedrock"
region = "us-east-1"
  [[providers.accounts]]
  name = "aws"
  aws_access_key_id = "AKIDSDKTEST0005"
  aws_secret_access_key = "sdk-test-secret/0005+key"
  aws_session_token = "sdk-test-session-token-0005"

[[models]]
name = "bedrock-mock"
  [[models.routes]]
  provider = "mock-bedrock"
  model = "anthropic.claude-3-haiku-20240307-v1:0"

[[models]]
name = "azure-mock"
  [[models.routes]]
  provider = "mock-azure"
  model = "gpt-deployment"

[[models]]
name = "vertex-gemini-mock"
  [[models.routes]]
  provider = "mock-vertex"
  model = "gemini-2.5-flash"

[[models]]
name = "vertex-claude-mock"
  [[models.routes]]
  provider = "mock-vertex"
  model = "claude-sonnet-4@20250514"

[[models]]
name = "gpt-mock"
  [[models.routes]]
  provider = "mock-openai"
  model = "mock-model"

[[models]]
name = "claude-mock"
  [[models.routes]]
  provider = "mock-anthropic"
  model = "claude-upstream"

[[models]]
name = "gemini-mock"
  [[models.routes]]
  provider = "mock-gemini"
  model = "gemini-upstream"

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
        self.assertEqual(
            sorted(m.id for m in client.models.list()),
            [
                "azure-mock", "bedrock-mock", "claude-mock", "gemini-mock", "gpt-mock",
                "vertex-claude-mock", "vertex-gemini-mock",
            ],
        )

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


# Every model of the config: one per kind of provider (two for Vertex AI's two publishers).
MODELS = (
    "gpt-mock", "claude-mock", "gemini-mock",
    "azure-mock", "vertex-gemini-mock", "vertex-claude-mock", "bedrock-mock",
)

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


class OpenAiSdkAcrossProviders(unittest.TestCase):
    """The OpenAI SDK against openai, anthropic and gemini upstreams."""

    def client(self):
        return openai.OpenAI(base_url=GATEWAY.base + "/v1", api_key=KEY, max_retries=0)

    def test_chat_streamed_and_not(self):
        for model in MODELS:
            with self.subTest(model=model):
                reply = self.client().chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Hello there"}]
                )
                self.assertEqual(reply.choices[0].message.content, "echo: Hello there")
                self.assertEqual(reply.choices[0].finish_reason, "stop")
                self.assertGreater(reply.usage.prompt_tokens, 0)
                stream = self.client().chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": "Stream this"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text, usage, finish = "", None, None
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        text += chunk.choices[0].delta.content
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finish = chunk.choices[0].finish_reason
                    if chunk.usage:
                        usage = chunk.usage
                self.assertEqual(text.strip(), "echo: Stream this")
                self.assertEqual(finish, "stop")
                self.assertIsNotNone(usage)
                self.assertGreater(usage.completion_tokens, 0)

    def test_tool_call_round_trip(self):
        for model in MODELS:
            with self.subTest(model=model):
                client = self.client()
                messages = [{"role": "user", "content": "Weather in Paris?"}]
                first = client.chat.completions.create(
                    model=model,
                    messages=messages,
                    tools=[WEATHER_TOOL_OPENAI],
                    extra_body={"mock": {"tool_calls": 1}},
                )
                choice = first.choices[0]
                self.assertEqual(choice.finish_reason, "tool_calls")
                call = choice.message.tool_calls[0]
                self.assertEqual(call.function.name, "get_weather")
                json.loads(call.function.arguments)
                messages.append(choice.message.model_dump(exclude_none=True))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
                second = client.chat.completions.create(
                    model=model, messages=messages, tools=[WEATHER_TOOL_OPENAI]
                )
                self.assertEqual(second.choices[0].finish_reason, "stop")
                self.assertTrue(second.choices[0].message.content)


WEATHER_TOOL_RESPONSES = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


class OpenAiResponsesSdk(unittest.TestCase):
    """The OpenAI SDK's `responses.create` on /v1/responses, for a chat and an Anthropic upstream."""

    def client(self):
        return openai.OpenAI(base_url=GATEWAY.base + "/v1", api_key=KEY, max_retries=0)

    def test_responses_streamed_and_not(self):
        for model in ["gpt-mock", "claude-mock", "azure-mock", "vertex-claude-mock", "bedrock-mock"]:
            with self.subTest(model=model):
                reply = self.client().responses.create(
                    model=model, instructions="be brief", input="Hello there"
                )
                self.assertTrue(reply.id.startswith("resp_"))
                self.assertEqual(reply.status, "completed")
                self.assertEqual(reply.output_text, "echo: Hello there")
                self.assertGreater(reply.usage.input_tokens, 0)
                self.assertGreater(reply.usage.output_tokens, 0)
                stream = self.client().responses.create(
                    model=model, input="Stream this", stream=True
                )
                text, kinds, done = "", [], None
                for event in stream:
                    kinds.append(event.type)
                    if event.type == "response.output_text.delta":
                        text += event.delta
                    if event.type == "response.completed":
                        done = event.response
                self.assertEqual(kinds[0], "response.created")
                self.assertEqual(kinds[-1], "response.completed")
                self.assertEqual(text, "echo: Stream this")
                self.assertGreater(done.usage.output_tokens, 0)

    def test_tool_call_round_trip(self):
        for model in ["gpt-mock", "claude-mock", "azure-mock", "vertex-gemini-mock", "bedrock-mock"]:
            with self.subTest(model=model):
                client = self.client()
                first = client.responses.create(
                    model=model,
                    input=[{"role": "user", "content": "Weather in Paris?"}],
                    tools=[WEATHER_TOOL_RESPONSES],
                    extra_body={"mock": {"tool_calls": 1}},
                )
                calls = [item for item in first.output if item.type == "function_call"]
                self.assertEqual(calls[0].name, "get_weather")
                json.loads(calls[0].arguments)
                second = client.responses.create(
                    model=model,
                    input=[
                        {"role": "user", "content": "Weather in Paris?"},
                        {
                            "type": "function_call",
                            "call_id": calls[0].call_id,
                            "name": calls[0].name,
                            "arguments": calls[0].arguments,
                        },
                        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
                    ],
                    tools=[WEATHER_TOOL_RESPONSES],
                )
                self.assertEqual(second.status, "completed")
                self.assertTrue(second.output_text)

    def test_previous_response_id_round_trips_streamed_and_not(self):
        for model in ["gpt-mock", "claude-mock"]:
            with self.subTest(model=model):
                client = self.client()
                first = client.responses.create(model=model, input="Hello there")
                second = client.responses.create(
                    model=model, input="And again", previous_response_id=first.id
                )
                self.assertEqual(second.previous_response_id, first.id)
                self.assertEqual(second.output_text, "echo: And again")
                # The upstream got the earlier turn: as many prompt tokens (the mock counts
                # words) as when the whole conversation is sent.
                whole = client.responses.create(
                    model=model,
                    input=[
                        {"role": "user", "content": "Hello there"},
                        {"role": "assistant", "content": "echo: Hello there"},
                        {"role": "user", "content": "And again"},
                    ],
                    store=False,
                )
                self.assertEqual(second.usage.input_tokens, whole.usage.input_tokens)
                self.assertGreater(second.usage.input_tokens, 2)

                # Streamed, continuing the second; its response is stored before the stream
                # ends, so the next turn can continue it at once.
                stream = client.responses.create(
                    model=model, input="Stream this", previous_response_id=second.id, stream=True
                )
                done = None
                for event in stream:
                    if event.type == "response.completed":
                        done = event.response
                self.assertEqual(done.previous_response_id, second.id)
                self.assertEqual(done.output_text, "echo: Stream this")
                fourth = client.responses.create(
                    model=model, input="Last one", previous_response_id=done.id
                )
                self.assertEqual(fourth.status, "completed")
                self.assertGreater(fourth.usage.input_tokens, done.usage.input_tokens)

    def test_tool_call_round_trip_through_previous_response_id(self):
        for model in ["gpt-mock", "claude-mock"]:
            with self.subTest(model=model):
                client = self.client()
                first = client.responses.create(
                    model=model,
                    input="Weather in Paris?",
                    tools=[WEATHER_TOOL_RESPONSES],
                    extra_body={"mock": {"tool_calls": 1}},
                )
                call = [item for item in first.output if item.type == "function_call"][0]
                second = client.responses.create(
                    model=model,
                    previous_response_id=first.id,
                    input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
                    tools=[WEATHER_TOOL_RESPONSES],
                )
                self.assertEqual(second.status, "completed")
                self.assertTrue(second.output_text)
                whole = client.responses.create(
                    model=model,
                    input=[
                        {"role": "user", "content": "Weather in Paris?"},
                        {
                            "type": "function_call",
                            "call_id": call.call_id,
                            "name": call.name,
                            "arguments": call.arguments,
                        },
                        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
                    ],
                    tools=[WEATHER_TOOL_RESPONSES],
                    store=False,
                )
                self.assertEqual(second.usage.input_tokens, whole.usage.input_tokens)

    def test_retrieve_list_input_items_and_delete(self):
        client = self.client()
        created = client.responses.create(
            model="gpt-mock",
            input=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ],
        )
        retrieved = client.responses.retrieve(created.id)
        self.assertEqual(retrieved.id, created.id)
        self.assertEqual(retrieved.output_text, "echo: c")
        self.assertEqual(retrieved.usage.input_tokens, created.usage.input_tokens)
        # Pages of two, followed by the SDK with `after`.
        items = list(client.responses.input_items.list(created.id, limit=2, order="asc"))
        self.assertEqual([item.content[0].text for item in items], ["a", "b", "c"])
        self.assertEqual({item.type for item in items}, {"message"})
        page = client.responses.input_items.list(created.id, limit=2)
        self.assertEqual([item.content[0].text for item in page.data], ["c", "b"])
        self.assertTrue(page.has_more)
        client.responses.delete(created.id)
        with self.assertRaises(openai.NotFoundError):
            client.responses.retrieve(created.id)
        with self.assertRaises(openai.NotFoundError):
            client.responses.delete(created.id)
        with self.assertRaises(openai.BadRequestError) as refused:
            client.responses.create(model="gpt-mock", input="x", previous_response_id=created.id)
        self.assertEqual(refused.exception.code, "previous_response_not_found")

    def test_store_false_keeps_nothing(self):
        client = self.client()
        created = client.responses.create(model="gpt-mock", input="x", store=False)
        with self.assertRaises(openai.NotFoundError):
            client.responses.retrieve(created.id)


class AnthropicSdk(unittest.TestCase):
    """The Anthropic SDK on /v1/messages, against openai, anthropic and gemini upstreams."""

    def client(self, key=KEY):
        return anthropic.Anthropic(base_url=GATEWAY.base, api_key=key, max_retries=0)

    def test_messages_streamed_and_not(self):
        for model in MODELS:
            with self.subTest(model=model):
                message = self.client().messages.create(
                    model=model,
                    max_tokens=100,
                    system="Be brief.",
                    messages=[{"role": "user", "content": "Hello there"}],
                )
                self.assertEqual(message.type, "message")
                self.assertEqual(message.content[0].type, "text")
                self.assertEqual(message.content[0].text, "echo: Hello there")
                self.assertEqual(message.stop_reason, "end_turn")
                self.assertGreater(message.usage.input_tokens, 0)
                self.assertGreater(message.usage.output_tokens, 0)
                with self.client().messages.stream(
                    model=model,
                    max_tokens=100,
                    messages=[{"role": "user", "content": "Stream this"}],
                ) as stream:
                    text = "".join(stream.text_stream)
                    final = stream.get_final_message()
                self.assertEqual(text.strip(), "echo: Stream this")
                self.assertEqual(final.stop_reason, "end_turn")
                self.assertGreater(final.usage.output_tokens, 0)

    def test_tool_use_round_trip_streamed(self):
        for model in MODELS:
            with self.subTest(model=model):
                client = self.client()
                messages = [{"role": "user", "content": "Weather in Paris?"}]
                with client.messages.stream(
                    model=model,
                    max_tokens=200,
                    tools=[WEATHER_TOOL_ANTHROPIC],
                    messages=messages,
                    extra_body={"mock": {"tool_calls": 1}},
                ) as stream:
                    first = stream.get_final_message()
                self.assertEqual(first.stop_reason, "tool_use")
                uses = [block for block in first.content if block.type == "tool_use"]
                self.assertEqual(len(uses), 1)
                self.assertEqual(uses[0].name, "get_weather")
                self.assertIsInstance(uses[0].input, dict)
                messages.append({"role": "assistant", "content": first.content})
                messages.append(
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}
                        ],
                    }
                )
                second = client.messages.create(
                    model=model, max_tokens=200, tools=[WEATHER_TOOL_ANTHROPIC], messages=messages
                )
                self.assertEqual(second.stop_reason, "end_turn")
                self.assertEqual(second.content[0].type, "text")

    def test_count_tokens(self):
        for model in MODELS:
            with self.subTest(model=model):
                count = self.client().messages.count_tokens(
                    model=model, messages=[{"role": "user", "content": "How many tokens is this?"}]
                )
                self.assertGreater(count.input_tokens, 0)

    def test_errors_raise_the_sdk_exceptions(self):
        with self.assertRaises(anthropic.NotFoundError):
            self.client().messages.create(
                model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        with self.assertRaises(anthropic.AuthenticationError):
            self.client("sk-wrong").messages.create(
                model="claude-mock", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        with self.assertRaises(anthropic.BadRequestError):
            self.client().messages.create(
                model="gpt-mock", max_tokens=10, messages=[{"role": "tool", "content": "x"}]
            )


if __name__ == "__main__":
    unittest.main(verbosity=2)
