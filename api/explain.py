"""Plain-words reasons for a suggestion, built only from the proof its sources attached."""

from __future__ import annotations

from candidates.types import Candidate

SHARED_WORDS = {"school": "went to the same school", "employer": "same employer", "city": "lives in your city"}


def reasons(c: Candidate, max_names: int = 3) -> list[str]:
    out: list[str] = []
    fof = c.proof.get("fof")
    if fof:
        m = int(fof["mutual_count"])
        names = list(fof.get("mutual_ids", []))[:max_names]
        more = ", …" if m > len(names) else ""
        listed = f": {', '.join(names)}{more}" if names else ""   # none may be nameable (opted out, deactivated)
        out.append(f"{m} mutual friend{'s' if m != 1 else ''}{listed}")
    if "newcomers" in c.proof:
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
