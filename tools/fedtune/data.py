"""The clients' private data: text domains that every Debian machine has, split non-IID.

Domains (each a sorted, capped list of files; a file belongs to the test split when a stable hash of
its path says so, so held-out text is never trained on):
  python     the Python standard library's sources (sysconfig's stdlib)
  c-headers  C headers under /usr/include
  licenses   licence texts: /usr/share/common-licenses and /usr/share/doc/*/copyright
  perl       Perl modules (perl-base, Essential on Debian; /usr/share/perl if present)
"""
import glob
import hashlib
import os
import random
import sysconfig

MAX_FILES = 240
MAX_BYTES_PER_FILE = 24_000


def _python():
    stdlib = sysconfig.get_paths()["stdlib"]
    return sorted(glob.glob(os.path.join(stdlib, "*.py")) + glob.glob(os.path.join(stdlib, "*", "*.py")))


def _c_headers():
    return sorted(glob.glob("/usr/include/**/*.h", recursive=True))


def _licenses():
    return sorted(glob.glob("/usr/share/common-licenses/*") + glob.glob("/usr/share/doc/*/copyright"))


def _perl():
    return sorted(glob.glob("/usr/lib/x86_64-linux-gnu/perl-base/**/*.pm", recursive=True)
                  + glob.glob("/usr/share/perl/*/**/*.pm", recursive=True))


DOMAINS = {"python": _python, "c-headers": _c_headers, "licenses": _licenses, "perl": _perl}


def is_test(path):
    """One file in five is held out, by a stable hash of its path."""
    return int(hashlib.sha256(path.encode()).hexdigest()[:8], 16) % 5 == 0


def files(domain):
    found = [p for p in DOMAINS[domain]() if os.path.isfile(p) and not os.path.islink(p)]
    # Spread the cap over the whole sorted list (not only its first directory).
    if len(found) > MAX_FILES:
        step = len(found) / MAX_FILES
        found = [found[int(i * step)] for i in range(MAX_FILES)]
    return found


def windows(domain, encode, length, split):
    """Non-overlapping windows of `length` token ids from the domain's `split` ("train"/"test") files."""
    out = []
    for path in files(domain):
        if is_test(path) != (split == "test"):
            continue
        try:
            with open(path, "rb") as f:
                text = f.read(MAX_BYTES_PER_FILE).decode("utf-8", errors="replace")
        except OSError:
            continue
        ids = encode(text)
        out.extend(ids[i:i + length] for i in range(0, len(ids) - length + 1, length))
    return out


class Corpus:
    """Train and test windows per domain, the clients' shards and the held-out sets."""

    def __init__(self, config, encode):
        self.length = config["sequence_length"]
        seed = config["seed"]
        self.train, self.test = {}, {}
        for d in config["domains"]:
            if d not in DOMAINS:
                raise ValueError(f"domains: unknown domain '{d}' (known: {', '.join(DOMAINS)})")
            self.train[d] = windows(d, encode, self.length, "train")
            test = windows(d, encode, self.length, "test")
            need = config["test_samples_per_domain"]
            if len(test) < need or len(self.train[d]) < 8:
                raise ValueError(f"domains: domain '{d}' has too little text here: {len(self.train[d])} training and "
                                 f"{len(test)} test windows of {self.length} tokens (need ≥ 8 and ≥ {need})")
            random.Random(f"{seed}/test/{d}").shuffle(test)
            self.test[d] = test[:need]
        self.shards = {}
        for client, mix in sorted(config["clients"].items()):
            total = sum(mix.values())
            if total <= 0:
                raise ValueError(f"clients.{client}: the domain shares add up to {total}")
            rng = random.Random(f"{seed}/shard/{client}")
            n = config["samples_per_client"]
            counts = {d: int(round(n * share / total)) for d, share in mix.items()}
            shard = []
            for d, k in sorted(counts.items()):
                if d not in self.train:
                    raise ValueError(f"clients.{client}: domain '{d}' is not among the domains")
                pool = self.train[d]
                # Without replacement while the domain has enough windows.
                shard.extend(rng.sample(pool, min(k, len(pool))))
                shard.extend(rng.choice(pool) for _ in range(k - min(k, len(pool))))
            if not shard:
                raise ValueError(f"clients.{client}: an empty shard")
            self.shards[client] = {"windows": shard, "mix": mix}
