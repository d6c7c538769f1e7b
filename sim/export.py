"""Write a generated world and its logging period in pymk's ingestion formats (DESIGN.md).

    users.csv     id + profile columns
    edges.txt     `src dst ts` friendships formed before the logging period
    events.jsonl  impressions (with position), sends, accepts, declines, dismissals shown by the
                  baseline policy (random friends-of-friends) during the logging period
Ties formed by accepted requests during the logging period appear only as accept events.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sim.behaviour import HiddenBehaviour, WorldState
from sim.policies import RandomFoFPolicy
from sim.traffic import EVENT_NAMES, run_traffic
from sim.world import AGE_GROUPS, LANGUAGES, WorldConfig, generate_world

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleSpec:
    world: WorldConfig
    log_days: int = 14
    suggestions_per_view: int = 10
    daily_active: float = 0.15
    opted_out_share: float = 0.01


def write_users(world, path: Path, opted_out: np.ndarray) -> None:
    with open(path, "w") as f:
        f.write("id,created_at,school,employer,city,lat,lon,age_group,language,opted_out\n")
        for i in range(world.num_users):
            f.write(f"{i},{world.created_at[i]:.0f},school-{world.school[i]},employer-{world.employer[i]},"
                    f"city-{world.city[i]},{world.lat[i]:.5f},{world.lon[i]:.5f},{AGE_GROUPS[world.age_group[i]]},"
                    f"{LANGUAGES[world.language[i]]},{'true' if opted_out[i] else 'false'}\n")


def write_events(arrays: dict[str, np.ndarray], path: Path) -> int:
    with open(path, "w") as f:
        for t, s, d, ts, pos in zip(arrays["type"].tolist(), arrays["src"].tolist(), arrays["dst"].tolist(),
                                    arrays["ts"].tolist(), arrays["position"].tolist(), strict=True):
            obj: dict[str, object] = {"type": EVENT_NAMES[t], "src": str(s), "dst": str(d), "ts": round(ts, 3)}
            if pos >= 0:
                obj["position"] = int(pos)
                obj["policy"] = "random_fof"
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
    return len(arrays["type"])


def write_sample(spec: SampleSpec, out: Path, progress: bool = False) -> dict[str, object]:
    """Generate the world, simulate the logging period and write the three files plus a manifest."""
    out.mkdir(parents=True, exist_ok=True)
    world = generate_world(spec.world)
    rng = np.random.default_rng(spec.world.seed + 17)
    opted_out = rng.random(world.num_users) < spec.opted_out_share
    write_users(world, out / "users.csv", opted_out)
    np.savetxt(out / "edges.txt", np.column_stack([world.src, world.dst, world.ts.round()]).astype(np.int64),
               fmt="%d", header="src dst ts", comments="")
    state = WorldState(world)
    traffic = run_traffic(state, [RandomFoFPolicy(state, seed=spec.world.seed)], spec.log_days, world.end_ts,
                          k=spec.suggestions_per_view, daily_active=spec.daily_active, seed=spec.world.seed,
                          behaviour=HiddenBehaviour(), progress=progress).arrays()
    n_events = write_events(traffic, out / "events.jsonl")
    manifest = {"spec": asdict(spec), "users": world.num_users, "friendships": len(world.src),
                "events": n_events, "log_start": world.end_ts,
                "log_end": world.end_ts + spec.log_days * 86_400.0,
                "event_counts": {name: int((traffic["type"] == i).sum()) for i, name in enumerate(EVENT_NAMES)}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log.info("sample written to %s: %s", out, manifest["event_counts"])
    return manifest
