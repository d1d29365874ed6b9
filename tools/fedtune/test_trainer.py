"""The trainer's own tests, on the tiny model: `tools/trainer test`."""
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trainer as T  # noqa: E402

CONFIG = {"model": "tiny", "adapter": {"kind": "lora", "rank": 4, "alpha": 8, "targets": ["q_proj", "v_proj"], "virtual_tokens": 8},
          "sequence_length": 32, "seed": 7, "domains": ["python", "c-headers", "licenses", "perl"],
          "clients": {"a": {"python": 1.0}, "b": {"licenses": 0.75, "perl": 0.25}}, "samples_per_client": 16,
          "test_samples_per_domain": 8}


def config(**changes):
    c = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        if key == "adapter":
            c["adapter"].update(value)
        else:
            c[key] = value
    return c


class TrainerTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lora = T.Trainer(config())

    def test_adapter_layout_and_bytes(self):
        t = self.lora
        # 2 layers × (q, v) × rank 4 × (64 in + 64 out)
        self.assertEqual(t.parameters, 2 * 2 * 4 * (64 + 64))
        self.assertEqual(len(t.initial), 4 * t.parameters)
        self.assertEqual(t.names, sorted(t.names))
        # LoRA starts as the identity: B is zero.
        values = np.frombuffer(t.initial, dtype="<f4")
        b = [n for n in t.names if "lora_B" in n]
        self.assertTrue(b)
        t.load_adapter(t.initial)
        self.assertEqual(t.adapter_bytes(), t.initial)

    def test_training_lowers_the_loss_and_changes_the_adapter(self):
        t = self.lora
        adapter, losses = t.initial, []
        for i in range(5):
            head, adapter = t.train({"client": "a", "steps": 3, "batch": 4, "lr": 0.01, "seed": i}, adapter)
            losses.append(head["loss"])
            self.assertEqual(head["samples"], 16)
            self.assertEqual(head["tokens"], 3 * 4 * 32)
        self.assertNotEqual(adapter, t.initial)
        self.assertLess(losses[-1], losses[0])
        before, _ = t.evaluate({"domains": ["python"]}, t.initial)
        after, _ = t.evaluate({"domains": ["python"]}, adapter)
        self.assertLess(after["per_domain"]["python"]["loss"], before["per_domain"]["python"]["loss"])
        p = after["per_domain"]["python"]
        self.assertAlmostEqual(p["perplexity"], math.exp(p["loss"]), places=6)

    def test_the_same_request_gives_the_same_update(self):
        t = self.lora
        request = {"client": "b", "steps": 2, "batch": 4, "lr": 0.01, "seed": 3}
        self.assertEqual(t.train(request, t.initial)[1], t.train(request, t.initial)[1])

    def test_bad_requests(self):
        t = self.lora
        with self.assertRaisesRegex(ValueError, "unknown client"):
            t.train({"client": "zz", "steps": 1, "batch": 1, "lr": 0.1}, t.initial)
        with self.assertRaisesRegex(ValueError, "expected 8192"):
            t.train({"client": "a", "steps": 1, "batch": 1, "lr": 0.1}, b"1234")
        with self.assertRaisesRegex(ValueError, "non-finite"):
            t.load_adapter(np.full(t.parameters, np.nan, dtype="<f4").tobytes())
        with self.assertRaisesRegex(ValueError, "unknown domains"):
            t.evaluate({"domains": ["poetry"]}, t.initial)

    def test_bad_config_names_the_field(self):
        for bad, message in [(config(model="gpt5"), "model"), (config(adapter={"kind": "ia3"}), "adapter.kind"),
                             (config(domains=["poetry"]), "poetry"), (config(samples_per_client=0), "samples_per_client"),
                             (config(clients={"a": {"rust": 1.0}}), "clients.a")]:
            with self.assertRaisesRegex((T.ConfigError, ValueError), message):
                T.Trainer(bad)

    def test_prefix_and_prompt_start_near_the_base_model(self):
        base = self.lora.evaluate({"domains": ["python"]}, self.lora.initial)[0]["per_domain"]["python"]["loss"]
        for kind in ("prefix", "prompt"):
            t = T.Trainer(config(adapter={"kind": kind, "virtual_tokens": 8}))
            loss = t.evaluate({"domains": ["python"]}, t.initial)[0]["per_domain"]["python"]["loss"]
            self.assertLess(abs(loss - base), 0.5, f"{kind}: {loss} vs base {base}")
            head, adapter = t.train({"client": "a", "steps": 2, "batch": 4, "lr": 0.01, "seed": 1}, t.initial)
            self.assertEqual(len(adapter), 4 * t.parameters)

    def test_served_over_zeromq(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "config.json")
            with open(path, "w") as f:
                json.dump(CONFIG, f)
            endpoint = f"ipc://{d}/trainer"
            process = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "trainer.py"), "--config", path,
                                        "--endpoint", endpoint], stderr=subprocess.PIPE)
            try:
                context = zmq.Context()
                s = context.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.RCVTIMEO, 60_000)
                s.connect(endpoint)
                s.send_multipart([json.dumps({"op": "hello", "id": "1"}).encode()])
                header, initial = s.recv_multipart()
                self.assertTrue(json.loads(header)["ok"])
                # A malformed frame is answered, and the trainer goes on serving.
                s.send_multipart([b"\xff\x00"])
                self.assertFalse(json.loads(s.recv_multipart()[0])["ok"])
                s.send_multipart([json.dumps({"op": "train", "id": "2", "client": "a", "steps": 1, "batch": 2, "lr": 0.01}).encode(), initial])
                header, trained = s.recv_multipart()
                self.assertEqual(json.loads(header)["id"], "2")
                self.assertEqual(len(trained), len(initial))
                s.send_multipart([json.dumps({"op": "stop", "id": "3"}).encode()])
                self.assertTrue(json.loads(s.recv_multipart()[0])["ok"])
                self.assertEqual(process.wait(timeout=30), 0)
                s.close()
                context.term()
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()

    def test_a_bad_config_file_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "config.json")
            with open(path, "w") as f:
                f.write('{"model": "tiny"')
            result = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "trainer.py"), "--config", path,
                                     "--endpoint", f"ipc://{d}/t"], capture_output=True, text=True, timeout=120)
            self.assertEqual(result.returncode, 2)
            self.assertIn("cannot read", result.stderr)


if __name__ == "__main__":
    unittest.main()
