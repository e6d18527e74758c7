"""``graphmutual recommend``: train, evaluate and recommend on Last.fm.

The lead's ``graphmutual/cli.py`` wires :func:`add_arguments` and :func:`run` as the
``recommend`` sub-command. Bad input raises :class:`~graphmutual.train.ConfigError` (a
:class:`ValueError`) / :class:`FileNotFoundError` with a readable message (the CLI prints
it without a traceback). Seeds and devices follow ``graphmutual train``: ``--seeds 3`` runs
seeds 0-2, ``--device`` takes ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional

import torch

from graphmutual.recsys.data import DATASETS, RecData, default_root, load_dataset
from graphmutual.recsys.metrics import format_table
from graphmutual.recsys.model import MODELS, build_model
from graphmutual.recsys.train import RecTrainConfig, fit
from graphmutual.train.config import ConfigError, parse_seeds
from graphmutual.train.trainer import resolve_device

DEFAULT_BRANCHES = {"lfm2k-multimodal": ["whisper", "text"], "lastfm-2k": ["id", "tags"]}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``recommend`` options to ``parser`` (and return it)."""
    parser.description = (
        "Train and evaluate a recommender on Last.fm with full ranking over all artists "
        "(training items masked). Default: fusion-free modality branches (audio, text) with "
        "mutual learning and the friend graph, on the multimodal Last.fm-2K set (fixed split)."
    )
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="lfm2k-multimodal",
                   help="lfm2k-multimodal: 1,858 users x 1,425 artists, fixed 8:1:1 split, "
                        "audio+text features; lastfm-2k: full HetRec set, 17,632 artists, "
                        "random 8:1:1 per-user split per seed (default: %(default)s)")
    g.add_argument("--root", type=Path, default=None,
                   help="directory holding lfm2k-multimodal/ and lastfm-2k/ "
                        "(default: $GRAPHMUTUAL_DATA, else the per-user cache directory "
                        "of graphmutual.data.default_root())")
    g.add_argument("--branches", default=None,
                   help="comma-separated item modalities, one branch each: vggish, whisper, "
                        "text, tags, id (collaborative only). Default: whisper,text on "
                        "lfm2k-multimodal; id,tags on lastfm-2k")
    g.add_argument("--no-social", action="store_true", help="drop the user-user friend edges")
    g.add_argument("--no-mask-valid", action="store_true",
                   help="do not mask validation items when ranking for the test set "
                        "(by default they are masked, as RecBole does)")
    m = parser.add_argument_group("model and training")
    m.add_argument("--model", choices=MODELS, default="mutual",
                   help="mutual (ours), bprmf, lightgcn, lightgcn-social, fused "
                        "(concatenated modalities) (default: %(default)s)")
    m.add_argument("--no-mutual", action="store_true",
                   help="ablation: train the branches without mutual learning")
    m.add_argument("--weighting", choices=("uniform", "adaptive"), default="uniform",
                   help="peer weights: uniform (DML) or adaptive logit weighting (ALW)")
    m.add_argument("--entropy", type=float, default=None,
                   help="entropy-enhancement weight beta (default: the weighting's preset, "
                        "0 for uniform, 0.1 for adaptive)")
    m.add_argument("--divergence", default="kl",
                   help="kl, reverse_kl, js, renyi or balanced (default: %(default)s)")
    m.add_argument("--mutual-weight", type=float, default=1.0, help="lambda of the mimicry loss")
    m.add_argument("--temperature", type=float, default=1.0)
    m.add_argument("--dim", type=int, default=64, help="embedding size (default: %(default)s)")
    m.add_argument("--layers", type=int, default=3, help="propagation layers (default: 3)")
    m.add_argument("--epochs", type=int, default=300, help="maximum epochs (default: 300)")
    m.add_argument("--patience", type=int, default=10,
                   help="evaluations without validation NDCG@10 gain before stopping")
    m.add_argument("--lr", type=float, default=5e-3)
    m.add_argument("--batch-size", type=int, default=2048)
    m.add_argument("--negatives", type=int, default=8, help="sampled negatives per positive")
    m.add_argument("--reg", type=float, default=1e-4, help="L2 on the batch embeddings")
    m.add_argument("--seeds", default="1",
                   help="a count (3 runs seeds 0-2, as graphmutual train) or a list (0,3,7; "
                        "seed 3 alone: 3,); lastfm-2k: also the split seed; mean ± std is "
                        "printed for several (default: 1, seed 0)")
    m.add_argument("--device", default="cpu",
                   help="cpu (default), cuda, cuda:N or auto")
    m.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    m.add_argument("--max-minutes", type=float, default=None, help="time limit per run")
    m.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    o = parser.add_argument_group("output")
    o.add_argument("--output", type=Path, default=None,
                   help="directory for checkpoints (best.pt), history and results.json")
    o.add_argument("--user", default=None,
                   help="after training, print this user's top artists (the dataset's own "
                        "user ID, e.g. 2), excluding artists they already listen to")
    o.add_argument("--top", type=int, default=10, help="how many artists for --user (default: 10)")
    return parser


def recommend_for_user(model, data: RecData, user_id, top: int = 10) -> List[Dict]:
    """Top-``top`` items for the user with raw ID ``user_id``, excluding every item they
    already interacted with (train, valid and test)."""
    if top < 1:
        raise ConfigError(f"--top must be >= 1 (got {top})")
    u = data.user_index(user_id)
    model.eval()
    with torch.no_grad():
        device = model.user_emb.device
        scores = model.full_scores(torch.tensor([u], device=device))[0].cpu()
    seen = torch.cat([p[1, p[0] == u] for p in (data.train, data.valid, data.test)])
    scores[seen] = float("-inf")
    k = min(top, int(torch.isfinite(scores).sum()))
    val, idx = scores.topk(k)
    names = data.item_names or [str(i) for i in range(data.num_items)]
    ids = data.item_ids if data.item_ids is not None else range(data.num_items)
    return [{"rank": r + 1, "artist_id": int(ids[i]), "name": names[i], "score": float(v)}
            for r, (i, v) in enumerate(zip(idx.tolist(), val.tolist()))]


def run(args: argparse.Namespace) -> int:
    """Execute ``graphmutual recommend`` with parsed ``args``; returns the exit status."""
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        resolve_device(args.device)
    except ValueError as exc:
        raise ConfigError(f"--device: {exc}") from None
    if args.top < 1:
        raise ConfigError(f"--top must be >= 1 (got {args.top})")
    seeds = parse_seeds(args.seeds)
    root = args.root if args.root is not None else default_root()
    branches = (args.branches.split(",") if args.branches
                else DEFAULT_BRANCHES[args.dataset])
    branches = [b.strip() for b in branches if b.strip()]
    mods = [b for b in branches if b != "id"]
    results, last = [], None
    for seed in seeds:
        data = load_dataset(args.dataset, root, seed=seed, modalities=mods,
                            social=not args.no_social)
        if args.user is not None:
            data.user_index(args.user)  # fail on an unknown user before training
        cfg = RecTrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, reg=args.reg,
            num_negatives=args.negatives, mutual=0.0 if args.no_mutual else args.mutual_weight,
            divergence=args.divergence, temperature=args.temperature,
            weighting=args.weighting, entropy=args.entropy, patience=args.patience,
            seed=seed, device=args.device,
            mask_valid_at_test=not args.no_mask_valid, max_minutes=args.max_minutes,
            progress=not args.no_progress,
            checkpoint_dir=str(args.output / f"seed{seed}") if args.output else None,
        )
        model = build_model(args.model, data, dim=args.dim, num_layers=args.layers,
                            branches=branches, seed=seed)
        if len(seeds) == 1 or seed == seeds[0]:
            print(data)
            print(model)
        res = fit(model, data, cfg)
        print(f"seed {seed}: best epoch {res.best_epoch}, {res.seconds:.1f} s "
              f"({res.seconds_per_epoch:.2f} s/epoch, test ranking {res.eval_seconds:.2f} s)")
        results.append(res)
        last = (model, data)
    rows: Dict[str, Dict[str, float]] = {}
    keys = [k for k in results[0].test if k != "num_users"]
    agg = {k: statistics.mean(r.test[k] for r in results) for k in keys}
    if len(results) > 1:
        agg.update({f"{k}_std": statistics.stdev(r.test[k] for r in results) for k in keys})
    rows[args.model + (" (no mutual)" if args.no_mutual else "")] = agg
    for b in results[0].branches:
        rows[f"  branch {b} alone"] = {
            k: statistics.mean(r.branches[b][k] for r in results) for k in keys}
    masking = "train" + ("" if args.no_mask_valid else "+valid")
    print(f"\n{args.dataset}, test set, full ranking ({masking} items masked), "
          f"{len(seeds)} seed(s)\n")
    print(format_table(rows))
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "results.json").write_text(json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()},
             "runs": [r.to_dict() for r in results], "table": rows}, indent=1))
    if args.user is not None:
        model, data = last
        print(f"\ntop {args.top} artists for user {args.user} (not already listened to):")
        for rec in recommend_for_user(model, data, args.user, args.top):
            print(f"{rec['rank']:3d}. {rec['name']}  (artist {rec['artist_id']}, "
                  f"score {rec['score']:.3f})")
    return 0


def main(argv: Optional[List[str]] = None) -> int:  # pragma: no cover - convenience entry
    parser = add_arguments(argparse.ArgumentParser(prog="graphmutual recommend"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
