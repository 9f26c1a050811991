"""Embeddings from the real all-MiniLM-L6-v2 through every API: the openai client, the ollama
client, gRPC. The reference is sentence-transformers' own: the similarity matrices its
documentation prints for this model (sbert.net, "Computing Embeddings" and "Semantic Textual
Similarity", four decimals), which our vectors must reproduce to rounding."""

from __future__ import annotations

import base64

import grpc
import numpy as np
import ollama
import openai
import pytest
from tokenizers import Tokenizer

from osaurus.client import open_channel
from osaurus.v1 import inference_pb2 as pb
from osaurus.v1 import inference_pb2_grpc

WEATHER = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
WEATHER_SIMILARITY = [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]]
MOVIES = ["The new movie is awesome", "The cat sits outside", "A man is playing guitar"]
GARDEN = ["The dog plays in the garden", "The new movie is so great", "A woman watches TV"]
MOVIES_SIMILARITY = [
    [0.0543, 0.8939, -0.0502],
    [0.2838, -0.0029, 0.1310],
    [0.2277, -0.0136, -0.0327],
]
ROUNDING = 6e-4  # four printed decimals, and float32 against PyTorch's float32


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="any", max_retries=0)


def vectors(client: openai.OpenAI, model: str, texts: list[str], **extra) -> np.ndarray:
    reply = client.embeddings.create(model=model, input=texts, **extra)
    assert [d.index for d in reply.data] == list(range(len(texts)))
    return np.array([d.embedding for d in reply.data])


def test_vectors_reproduce_sentence_transformers(client, embedding_model_id) -> None:
    weather = vectors(client, embedding_model_id, WEATHER)
    assert weather.shape == (3, 384)
    assert np.allclose(np.linalg.norm(weather, axis=1), 1, atol=1e-5)
    assert np.abs(weather @ weather.T - WEATHER_SIMILARITY).max() < ROUNDING
    movies = vectors(client, embedding_model_id, MOVIES)
    garden = vectors(client, embedding_model_id, GARDEN)
    assert np.abs(movies @ garden.T - MOVIES_SIMILARITY).max() < ROUNDING
    # Semantic sanity: each paraphrase is closer than the unrelated sentences.
    assert weather[0] @ weather[1] > max(weather[0] @ weather[2], weather[1] @ weather[2])


def test_a_batch_gives_what_each_input_gets_alone(client, embedding_model_id) -> None:
    texts = [*WEATHER, "a much longer sentence " * 20, "short"]
    together = vectors(client, embedding_model_id, texts)
    for i, text in enumerate(texts):
        alone = vectors(client, embedding_model_id, [text])[0]
        assert together[i] @ alone > 0.99999


def test_base64_token_ids_and_dimensions(client, embedding_model_id, server) -> None:
    # The openai client asks for base64 by itself and decodes it (what `vectors` gets); asked
    # for explicitly, it hands the text over as is.
    floats = vectors(client, embedding_model_id, WEATHER)
    sent = client.embeddings.create(
        model=embedding_model_id, input=WEATHER, encoding_format="float"
    )
    assert np.allclose(floats, [d.embedding for d in sent.data], atol=1e-7)
    packed = client.embeddings.create(
        model=embedding_model_id, input=WEATHER, encoding_format="base64"
    )
    decoded = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in packed.data]
    assert np.allclose(floats, decoded, atol=1e-7)
    tokenizer = Tokenizer.from_file(str(server.models_dir / embedding_model_id / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128: token ids as the text has them
    ids = [tokenizer.encode(text).ids for text in WEATHER]
    from_ids = vectors(client, embedding_model_id, ids)
    assert np.allclose(floats, from_ids, atol=1e-5)
    short = vectors(client, embedding_model_id, WEATHER, dimensions=64)
    assert short.shape == (3, 64) and np.allclose(np.linalg.norm(short, axis=1), 1, atol=1e-5)
    reply = client.embeddings.create(model=embedding_model_id, input=WEATHER)
    assert reply.usage.prompt_tokens == sum(len(i) for i in ids) == reply.usage.total_tokens


def test_the_wrong_kind_of_model_is_a_clear_400(client, model_id, embedding_model_id) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=model_id, input="hi")
    assert "does not embed" in info.value.body["message"] and info.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=embedding_model_id, messages=[{"role": "user", "content": "hi"}]
        )
    assert "embedding model" in info.value.body["message"]
    for bad in ("", [], [[]]):
        with pytest.raises(openai.BadRequestError) as info:
            client.embeddings.create(model=embedding_model_id, input=bad)
        assert info.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=embedding_model_id, input="hi", dimensions=1000)
    assert info.value.body["param"] == "dimensions"
    long = client.embeddings.create(model=embedding_model_id, input="word " * 1000)
    assert long.usage.prompt_tokens == 256  # cut to the model's max_seq_length


def test_ollama_embed_and_embeddings(server, client, embedding_model_id) -> None:
    local = ollama.Client(host=server.http_url)
    r = local.embed(model=f"{embedding_model_id}:latest", input=WEATHER)
    assert np.allclose(r.embeddings, vectors(client, embedding_model_id, WEATHER), atol=1e-6)
    assert r.prompt_eval_count > 0 and r.total_duration > 0
    single = local.embed(model=embedding_model_id, input=WEATHER[0])
    assert len(single.embeddings) == 1 and len(single.embeddings[0]) == 384
    legacy = local.embeddings(model=embedding_model_id, prompt=WEATHER[0])
    assert np.allclose(legacy.embedding, single.embeddings[0], atol=1e-6)
    shown = local.show(embedding_model_id)
    assert shown.capabilities == ["embedding"] and shown.details.family == "bert"
    with pytest.raises(ollama.ResponseError) as info:
        local.embed(model=embedding_model_id, input="word " * 1000, truncate=False)
    assert info.value.status_code == 400 and "256" in info.value.error


def test_grpc_embed(server, embedding_model_id) -> None:
    stub = inference_pb2_grpc.InferenceServiceStub(open_channel(server.grpc_target))
    reply = stub.Embed(pb.EmbedRequest(model=embedding_model_id, texts=WEATHER, normalize=False))
    raw = np.array([e.values for e in reply.embeddings])
    assert reply.model == embedding_model_id and not np.allclose(np.linalg.norm(raw, axis=1), 1)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert np.abs(unit @ unit.T - WEATHER_SIMILARITY).max() < ROUNDING
    with pytest.raises(grpc.RpcError) as info:
        stub.Embed(
            pb.EmbedRequest(model=embedding_model_id, texts=["a"], token_ids=[pb.TokenIds(ids=[1])])
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_langchain_ollama_embeddings_and_chat(server, embedding_model_id, model_id) -> None:
    from langchain_ollama import ChatOllama, OllamaEmbeddings

    embedder = OllamaEmbeddings(model=embedding_model_id, base_url=server.http_url)
    docs = np.array(embedder.embed_documents(WEATHER))
    assert np.abs(docs @ docs.T - WEATHER_SIMILARITY).max() < ROUNDING
    query = np.array(embedder.embed_query(WEATHER[0]))
    assert query @ docs[0] > 0.99999
    chat = ChatOllama(model=model_id, base_url=server.http_url, temperature=0)
    reply = chat.invoke("Name the capital of France.")
    assert reply.content == "The capital of France is Paris."
