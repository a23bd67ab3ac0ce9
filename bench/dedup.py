"""Semantic dedup at scale: blocked matrix products against the naive pairwise Python loop.

    .venv/bin/python bench/dedup.py [--n 50000] [--naive-n 2000] [--block 4096] [--device cpu|cuda]
    .venv/bin/python bench/dedup.py --quick      # n=3000, naive-n=500: a smoke run

1. ``--n`` varied tool-calling requests are generated (deterministic; about 3% are near
   copies of others) and embedded with the packaged all-MiniLM-L6-v2 twice, side by side:
   the float sentence-transformers model and the int8 onnxruntime export
   (``FTOPS_EMBEDDING_BACKEND``), each through its own cold file cache keyed by sha256 of
   the text. The two alternate chunk by chunk, so a busy machine slows both alike. Prints
   both sentences/s, the speed-up, and how well the duplicate decisions agree: the pairs at
   cosine >= 0.95 found with each (Jaccard = common / union; precision and recall of the
   int8 pairs against the float ones) and the rows the greedy dedup keeps.
2. Ours, on the ``--backend`` embeddings (default: the configured one, float): tool-aware
   greedy dedup at cosine >= 0.95 with blocked matrix products
   (``ftops.datasets.dedup.greedy_select``; a row is only dropped for a kept row with the same
   expected call). Prints the time and how many were dropped.
3. Baseline: the naive pairwise Python loop (cosine per pair, pure Python, the shape of the
   seed's ``_ensure_diversity``) on the first ``--naive-n`` vectors, checked to find the same
   pairs as ours on that subset, then scaled by (n / naive-n)^2 to an estimate for n.
4. Re-curation: 1% new requests are added and the set is curated again from a fresh
   process-like state (cache reopened from disk): only the new texts are embedded, and only
   the new rows are compared with the rows kept before (``greedy_extend``; checked against a
   full re-dedup, which must keep exactly the same rows).

Last line: ``ratio: <naive estimate for n / our dedup time for n>`` (goal >= 200).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftops.datasets.dedup import greedy_extend, greedy_select, similar_pairs
from ftops.datasets.embeddings import Embedder, NpyFolderStore, configured_backend, get_model

THRESHOLD = 0.95

VERBS = {
    "get_order": ["Where is order {o}?", "Can you look up order {o}", "status of {o} please", "track my order {o}",
                  "I never got {o}, what's going on", "has {o} shipped yet", "show me the details of purchase {o}"],
    "cancel_order": ["Cancel order {o} because {r}", "please stop {o}, {r}", "I want to call off {o} since {r}",
                     "kill the shipment of {o}: {r}", "{o} should be cancelled, {r}"],
    "refund_payment": ["Refund {a} {c} on payment {p}", "give the customer back {a} {c} for {p}",
                       "reverse {a} {c} of charge {p}", "issue a {a} {c} refund against {p} because {r}",
                       "can we pay back {a} {c} from {p}"],
    "check_stock": ["How many {s} do we have in {w}?", "stock level for {s} at the {w} warehouse",
                    "is {s} available in {w}", "inventory count of {s}, {w} site", "do we still carry {s} in {w}"],
    "create_ticket": ["Open a {u} priority ticket about {t}", "file a support case: {t} ({u})",
                      "log an issue titled {t} with {u} urgency", "create a {u} ticket regarding {t}"],
    "send_invoice": ["Email invoice {i} to {e}", "send {e} a copy of invoice {i}", "mail bill {i} over to {e}",
                     "forward invoice number {i} to {e} please"],
    "find_customer": ["Who is the customer with email {e}?", "look up the account for {e}",
                      "find {n}'s customer record", "which customer owns {e}"],
}
PREFIXES = ["", "", "", "hi, ", "quick one: ", "urgent: ", "hey team, ", "sorry to bother you, ", "fyi "]
SUFFIXES = ["", "", "", " thanks", " asap", " please", " thx", " when you get a chance", " - it's for a VIP"]
REASONS = ["the customer changed their mind", "it was a double charge", "the item arrived broken",
           "we are out of stock", "the address is wrong", "payment bounced", "fraud is suspected"]
PRODUCTS = ["standing desk", "ergonomic chair", "27-inch monitor", "mechanical keyboard", "desk lamp",
            "laptop stand", "cable tray", "oak desk", "mesh chair", "ultrawide monitor"]
SITES = ["Seattle", "Atlanta", "Reno", "Denver", "Austin"]
TOPICS = ["printer jam", "login broken", "slow laptop", "vpn down", "missing invoice", "broken badge",
          "email bounce", "calendar sync", "expense report", "wifi drops"]
NAMES = ["Maria Gonzalez", "James Smith", "Aisha Okafor", "Chen Wei", "Olga Petrova", "Diego Ramirez",
         "Priya Sharma", "Tom Becker", "Fatima Haddad", "Lukas Novak"]


def request(rng: random.Random) -> tuple[str, str]:
    tool = rng.choice(sorted(VERBS))
    template = rng.choice(VERBS[tool])
    name = rng.choice(NAMES)
    slots = {
        "o": f"ORD-{rng.randint(10000, 99999)}", "p": f"PAY-{rng.randint(100000, 999999)}",
        "a": str(rng.choice([5, 10, 12.5, 20, 35, 49.99, 80, 120, 250])), "c": rng.choice(["USD", "EUR", "GBP"]),
        "r": rng.choice(REASONS), "s": rng.choice(PRODUCTS), "w": rng.choice(SITES), "t": rng.choice(TOPICS),
        "u": rng.choice(["low", "normal", "high"]), "i": f"INV-{rng.randint(1000, 9999)}",
        "e": f"{name.split()[0].lower()}.{rng.randint(1, 999)}@example.com", "n": name,
    }
    core = template.format(**slots)
    text = rng.choice(PREFIXES) + core + rng.choice(SUFFIXES)
    # The label is the expected call: the tool with the values the request names.
    return text[0].upper() + text[1:], f"{tool}:{core.lower()}"


def corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts: list[str] = []
    labels: list[str] = []
    while len(texts) < n:
        if texts and rng.random() < 0.03:
            # a near copy: same request with different casing or punctuation
            k = rng.randrange(len(texts))
            variant = texts[k].lower() if rng.random() < 0.5 else texts[k].rstrip("?.!") + "."
            texts.append(variant)
            labels.append(labels[k])
        else:
            text, tool = request(rng)
            texts.append(text)
            labels.append(tool)
    return texts, labels


def naive_pairs(vectors: list[list[float]], threshold: float) -> set[tuple[int, int]]:
    """The pairwise Python loop: a cosine per pair, compared one at a time."""
    norms = [math.sqrt(sum(x * x for x in v)) for v in vectors]
    found: set[tuple[int, int]] = set()
    for i in range(len(vectors)):
        vi, ni = vectors[i], norms[i]
        for j in range(i + 1, len(vectors)):
            vj = vectors[j]
            cosine = sum(a * b for a, b in zip(vi, vj, strict=True)) / (ni * norms[j])
            if cosine >= threshold:
                found.add((i, j))
    return found


def embed_side_by_side(texts: list[str], models: dict[str, object], caches: dict[str, Path],
                       chunk: int = 2000) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Embed all texts with every model through its own cold cache, alternating chunk by chunk."""
    embedders = {name: Embedder(NpyFolderStore(caches[name]), batch_size=256, model=m) for name, m in models.items()}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in models}
    seconds = dict.fromkeys(models, 0.0)
    for start in range(0, len(texts), chunk):
        for name, embedder in embedders.items():
            began = time.perf_counter()
            parts[name].append(embedder.embed(texts[start : start + chunk]))
            seconds[name] += time.perf_counter() - began
    return {name: np.concatenate(p) for name, p in parts.items()}, seconds


def pair_agreement(reference: np.ndarray, other: np.ndarray, block: int) -> tuple[int, int, int]:
    """(pairs with the reference, pairs with the other, pairs found by both) at THRESHOLD."""
    found = []
    for emb in (reference, other):
        i, j, _ = similar_pairs(emb, threshold=THRESHOLD, block=block)
        found.append(set(zip(i.tolist(), j.tolist(), strict=True)))
    return len(found[0]), len(found[1]), len(found[0] & found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--naive-n", type=int, default=2_000)
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (embedding only)")
    parser.add_argument("--quick", action="store_true", help="n=3000, naive-n=500")
    parser.add_argument("--backend", choices=["float", "int8"], default=None,
                        help="embeddings the dedup steps use (default: FTOPS_EMBEDDING_BACKEND, else float)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.naive_n = 3000, 500
    naive_n = min(args.naive_n, args.n)

    backend = args.backend or configured_backend()
    started = time.perf_counter()
    float_model = get_model(args.device, backend="float")
    print(f"float model loaded in {time.perf_counter() - started:.1f}s on {args.device}")
    started = time.perf_counter()
    int8_model = get_model(backend="int8")  # built on first use, then loaded from var/models/embeddings
    if getattr(int8_model, "ftops_name", "") == getattr(float_model, "ftops_name", ""):
        sys.exit("the int8 model could not be built (see the log above)")
    print(f"int8 model ready in {time.perf_counter() - started:.1f}s on cpu ({int8_model.folder})")
    texts, labels = corpus(args.n, args.seed)
    print(f"{len(texts)} requests, {len(set(texts))} distinct texts, {len(set(labels))} distinct expected calls")

    with tempfile.TemporaryDirectory(prefix="ftops-dedup-bench-") as tmp:
        caches = {name: Path(tmp) / f"cache-{name}" for name in ("float", "int8")}
        computed = len(set(texts))
        embs, seconds = embed_side_by_side(texts, {"float": float_model, "int8": int8_model}, caches)
        rates = {name: computed / s for name, s in seconds.items()}
        print(f"embedding (cold cache, {computed} texts, side by side): float {seconds['float']:.1f}s = "
              f"{rates['float']:.0f} sentences/s; int8 {seconds['int8']:.1f}s = {rates['int8']:.0f} sentences/s; "
              f"int8 speed-up {rates['int8'] / rates['float']:.2f}x")
        cosine = (embs["float"] * embs["int8"]).sum(axis=1)
        n_float, n_int8, common = pair_agreement(embs["float"], embs["int8"], args.block)
        union = n_float + n_int8 - common
        print(f"int8 vs float: cosine per text min {cosine.min():.4f} mean {cosine.mean():.4f}; pairs at "
              f"{THRESHOLD}: float {n_float}, int8 {n_int8}, both {common}: Jaccard {common / max(union, 1):.4f}, "
              f"precision {common / max(n_int8, 1):.4f}, recall {common / max(n_float, 1):.4f}")
        keeps = {name: greedy_select(e, threshold=THRESHOLD, labels=labels, block=args.block).keep
                 for name, e in embs.items()}
        print(f"greedy dedup keeps the same decision for {(keeps['float'] == keeps['int8']).mean():.4%} of rows "
              f"(float keeps {int(keeps['float'].sum())}, int8 keeps {int(keeps['int8'].sum())})")

        cache = caches[backend]
        emb_ours = embs[backend]
        embed_s = seconds[backend]
        started = time.perf_counter()
        keep = greedy_select(emb_ours, threshold=THRESHOLD, labels=labels, block=args.block).keep
        dedup_s = time.perf_counter() - started
        kept = int(keep.sum())
        print(f"ours ({backend} embeddings): blocked dedup of {args.n} in {dedup_s:.2f}s (block {args.block}), "
              f"kept {kept}, dropped {args.n - kept}")
        first_total = embed_s + dedup_s
        backend_model = float_model if backend == "float" else int8_model

        emb = Embedder(NpyFolderStore(cache), model=backend_model).embed(texts[:naive_n])
        started = time.perf_counter()
        naive = naive_pairs(emb.tolist(), THRESHOLD)
        naive_s = time.perf_counter() - started
        i, j, _ = similar_pairs(emb, threshold=THRESHOLD, block=args.block)
        ours_pairs = set(zip(i.tolist(), j.tolist(), strict=True))
        # float32 matmul and float64 Python sums may disagree right at the threshold
        agree = len(naive & ours_pairs) / max(len(naive | ours_pairs), 1)
        estimate = naive_s * (args.n / naive_n) ** 2
        print(f"naive pairwise loop: {naive_n} in {naive_s:.1f}s ({naive_n * (naive_n - 1) // 2} pairs, "
              f"{len(naive)} found; agreement with ours {agree:.3f}); scaled to {args.n}: {estimate:.0f}s")

        rng = random.Random(args.seed + 1)
        extra = [request(rng) for _ in range(max(1, args.n // 100))]
        grown_texts = texts + [t for t, _ in extra]
        grown_labels = labels + [tool for _, tool in extra]
        # Re-curation: the cache is reopened from disk (as a new process would), every text is
        # embedded again through it (only the new ones are computed), and because greedy
        # selection never revisits earlier rows, only the new rows are compared with what was kept.
        started = time.perf_counter()
        embedder = Embedder(NpyFolderStore(cache), batch_size=256, model=backend_model)
        grown = embedder.embed(grown_texts)
        re_embed_s = time.perf_counter() - started
        started = time.perf_counter()
        kept_idx = np.flatnonzero(keep)
        extra_keep = greedy_extend(grown[kept_idx], grown[len(texts):], threshold=THRESHOLD,
                                   kept_labels=[labels[k] for k in kept_idx], new_labels=grown_labels[len(texts):],
                                   block=args.block)
        re_dedup_s = time.perf_counter() - started
        re_total = re_embed_s + re_dedup_s
        print(f"re-curation after +1% ({len(extra)} new): embedded {embedder.stats.computed} new texts "
              f"({embedder.stats.cached} from the cache) in {re_embed_s:.1f}s, incremental dedup "
              f"{re_dedup_s:.2f}s (kept {int(extra_keep.sum())} of the new), total {re_total:.1f}s "
              f"vs first run {first_total:.1f}s: {first_total / re_total:.1f}x faster")
        started = time.perf_counter()
        full_again = greedy_select(grown, threshold=THRESHOLD, labels=grown_labels, block=args.block)
        full_s = time.perf_counter() - started
        same = full_again.keep.tolist() == [*keep.tolist(), *extra_keep.tolist()]
        print(f"check: a full re-dedup of all {len(grown_texts)} takes {full_s:.1f}s and keeps the same rows: {same}")
    print(f"ratio: {estimate / dedup_s:.1f}")


if __name__ == "__main__":
    main()
