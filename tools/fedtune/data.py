"""The clients' private data: text domains that every Debian 12 machine with python3 and
build-essential has, split non-IID between the clients (README.md beside this file).

Domains (each a sorted, capped list of files; a file is held out for testing when a stable hash of
its path below the domain's root says so, so held-out text is never trained on):
  python     the Python standard library's sources (sysconfig's stdlib: *.py and */*.py)
  c-headers  C headers under /usr/include (libc6-dev, linux-libc-dev, libstdc++ ...)
  licenses   licence texts: /usr/share/common-licenses and /usr/share/doc/*/copyright
  perl       Perl modules: perl-base (Essential) and /usr/share/perl (perl, pulled in by dpkg-dev)
"""
import glob
import hashlib
import os
import random
import sysconfig

# At most this many files per domain, spread evenly over the sorted list, and this many bytes of
# each: enough for thousands of 128-token windows per domain while the whole build (reading and
# tokenising all four domains with SmolLM2's tokenizer) stays within a few seconds.
MAX_FILES = 160
MAX_BYTES_PER_FILE = 16_000
# One file in TEST_ONE_IN is held out.
TEST_ONE_IN = 5


def _python():
    stdlib = sysconfig.get_paths()["stdlib"]
    return stdlib, glob.glob(os.path.join(stdlib, "*.py")) + glob.glob(os.path.join(stdlib, "*", "*.py"))


def _c_headers():
    return "/usr/include", glob.glob("/usr/include/**/*.h", recursive=True)


def _licenses():
    return "/usr/share", glob.glob("/usr/share/common-licenses/*") + glob.glob("/usr/share/doc/*/copyright")


def _perl():
    return "/usr", (glob.glob("/usr/lib/*/perl-base/**/*.pm", recursive=True)
                    + glob.glob("/usr/share/perl/*/**/*.pm", recursive=True))


DOMAINS = {"python": _python, "c-headers": _c_headers, "licenses": _licenses, "perl": _perl}


def is_test(relative_path):
    """One file in TEST_ONE_IN is held out, by a stable hash of its path below the domain's root."""
    return int(hashlib.sha256(relative_path.encode()).hexdigest()[:8], 16) % TEST_ONE_IN == 0


def files(domain):
    """The domain's files as sorted (path, path below the root) pairs, capped at MAX_FILES."""
    root, found = DOMAINS[domain]()
    unique = {}
    for path in found:
        if not os.path.isfile(path):
            continue
        # The same file reached twice (a symlinked directory such as /usr/share/perl/5.36 -> 5.36.0)
        # is one file: otherwise its two paths could land on both sides of the split.
        real = os.path.realpath(path)
        unique.setdefault(real, os.path.relpath(real, os.path.realpath(root)))
    ordered = sorted(unique.items(), key=lambda item: item[1])
    # Spread the cap over the whole sorted list (not only its first directory).
    if len(ordered) > MAX_FILES:
        step = len(ordered) / MAX_FILES
        ordered = [ordered[int(i * step)] for i in range(MAX_FILES)]
    return ordered


def texts(domain):
    """The domain's texts as (path below the root, text), a text whose content an earlier file
    already had left out (many /usr/share/doc/*/copyright files are the same licence, word for word)."""
    seen, out = set(), []
    for path, relative in files(domain):
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_BYTES_PER_FILE)
        except OSError:
            continue
        digest = hashlib.sha256(raw).digest()
        if digest in seen:
            continue
        seen.add(digest)
        out.append((relative, raw.decode("utf-8", errors="replace")))
    return out


def windows(domain, encode, length):
    """Non-overlapping windows of `length` token ids from the domain's files: (train, test)."""
    split = {"train": [], "test": []}
    for relative, text in texts(domain):
        ids = list(encode(text))
        split["test" if is_test(relative) else "train"].extend(ids[i:i + length] for i in range(0, len(ids) - length + 1, length))
    # A held-out window that also occurs, token for token, in a training file (shared boilerplate) is
    # not held out: dropped.
    seen = {tuple(w) for w in split["train"]}
    return split["train"], [w for w in split["test"] if tuple(w) not in seen]


class Corpus:
    """Train and test windows per domain, the clients' shards and the held-out sets.

    A client's shard: samples_per_client windows drawn (seeded by the seed and the client's name)
    from the TRAIN windows of its domains in its proportions, without replacement while a domain
    has enough windows. The held-out set of a domain: test_samples_per_domain windows from its
    TEST files (seeded shuffle)."""

    MIN_TRAIN_WINDOWS = 8

    def __init__(self, config, encode):
        self.length = config["sequence_length"]
        seed = config["seed"]
        need = config["test_samples_per_domain"]
        self.train, self.test, self.available = {}, {}, {}
        for d in config["domains"]:
            if d not in DOMAINS:
                raise ValueError(f"domains: unknown domain '{d}' (known: {', '.join(DOMAINS)})")
            train, test = windows(d, encode, self.length)
            if len(test) < need or len(train) < self.MIN_TRAIN_WINDOWS:
                raise ValueError(f"domains: domain '{d}' has too little text on this machine: it found {len(train)} training "
                                 f"and {len(test)} test windows of {self.length} tokens (needs at least "
                                 f"{self.MIN_TRAIN_WINDOWS} and {need})")
            self.available[d] = {"train": len(train), "test": len(test)}
            random.Random(f"{seed}/test/{d}").shuffle(test)
            self.train[d] = train
            self.test[d] = test[:need]
        self.shards = {}
        n = config["samples_per_client"]
        for client, mix in sorted(config["clients"].items()):
            total = sum(mix.values())
            if total <= 0:
                raise ValueError(f"clients.{client}: the domain shares add up to {total}; expected > 0")
            rng = random.Random(f"{seed}/shard/{client}")
            # Largest remainder, so the counts add up to exactly samples_per_client.
            exact = {d: n * share / total for d, share in sorted(mix.items())}
            counts = {d: int(x) for d, x in exact.items()}
            for d in sorted(exact, key=lambda d: (counts[d] - exact[d], d))[:n - sum(counts.values())]:
                counts[d] += 1
            shard = []
            for d, k in sorted(counts.items()):
                if d not in self.train:
                    raise ValueError(f"clients.{client}: domain '{d}' is not among the domains")
                pool = self.train[d]
                taken = min(k, len(pool))
                shard.extend(rng.sample(pool, taken))
                shard.extend(rng.choice(pool) for _ in range(k - taken))
            if not shard:
                raise ValueError(f"clients.{client}: an empty shard")
            self.shards[client] = {"windows": shard, "mix": mix, "counts": counts}
