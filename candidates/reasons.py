"""Plain-words reasons for a suggestion, built only from the proof its sources attached."""

from __future__ import annotations

from candidates.types import Candidate

SHARED_WORDS = {"school": "went to the same school", "employer": "same employer", "city": "lives in your city"}
# A newcomer (an account added since the snapshot) "joined recently" unless its profile dates it further back
# than this before it reached the store: a years-old account imported today did not
RECENT_JOIN_S = 30 * 86400.0


def reasons(c: Candidate, max_names: int = 3) -> list[str]:
    out: list[str] = []
    fof = c.proof.get("fof")
    if fof:
        m = int(fof["mutual_count"])
        names = list(fof.get("mutual_ids", []))[:max_names]
        more = ", …" if m > len(names) else ""
        listed = f": {', '.join(names)}{more}" if names else ""   # none may be nameable (opted out, deactivated)
        out.append(f"{m} mutual friend{'s' if m != 1 else ''}{listed}")
    new = c.proof.get("newcomers")
    if new is not None and (new.get("created_at") is None
                            or new["written_at"] - new["created_at"] <= RECENT_JOIN_S):
        out.append("joined recently")
    cold = c.proof.get("coldstart")
    if cold:
        out.extend(SHARED_WORDS[s] for s in cold.get("shared", []) if s in SHARED_WORDS)
        if cold.get("distance_km") is not None and cold["distance_km"] < 50:
            out.append(f"about {max(1, round(cold['distance_km']))} km away")
    if "ppr" in c.proof and not fof:
        out.append("you may know them through your network")
    if "ann" in c.proof:
        out.append("similar to people you know")
    if "trending" in c.proof and not fof:
        n = int(c.proof["trending"]["new_ties"])
        out.append(f"made {n} new connection{'s' if n != 1 else ''} lately")
    if "popular" in c.proof and not fof and "trending" not in c.proof:
        out.append(f"well connected ({int(c.proof['popular']['friends'])} friends)")
    return out or ["suggested for you"]
