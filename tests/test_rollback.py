"""`pymk rollback`: the served artifacts moved back (and forward) together, as sets the API serves together."""

from __future__ import annotations

from click.testing import CliRunner

from pymk.artifacts import ArtifactStore
from pymk.cli import main
from pymk.rollback import plan
from pymk.runlock import exclusive
from pymk.settings import Settings
from pymk.status import status
from tests.test_status import _publish, _trained_here


def _night(settings: Settings) -> dict[str, str]:
    """What one nightly refresh publishes: a snapshot, embeddings made from it, a ranker trained with them, and
    lists ranked with all three."""
    snap = _publish(settings.snapshot_dir, kind="snapshot")
    emb = _publish(settings.embeddings_dir, snapshot_version=snap)
    ranker = _publish(settings.ranker_dir, snapshot_version=snap, **_trained_here(emb))
    lists = _publish(settings.candidates_dir, snapshot_version=snap, embeddings_version=emb, ranker_version=ranker)
    return {"snapshot": snap, "embeddings": emb, "ranker": ranker, "candidates": lists}


def _current(settings: Settings) -> dict[str, str | None]:
    return {name: ArtifactStore(root).current_version() for name, root in settings.artifact_dirs.items()}


def _cli(tmp_path, *args: str):
    return CliRunner().invoke(main, list(args), env={"PYMK_DATA_DIR": str(tmp_path)})


def test_a_bad_night_is_undone_in_one_step_and_latest_brings_it_back(tmp_path):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    first, second = _night(settings), _night(settings)
    dry = _cli(tmp_path, "rollback", "--dry-run")
    assert dry.exit_code == 0, dry.output
    for name in first:
        assert f"{name:<11} {second[name]} -> {first[name]}" in dry.output
    assert "the API can serve every one of them together" in dry.output and _current(settings) == second

    done = _cli(tmp_path, "rollback")
    assert done.exit_code == 0 and "done: the API serves these within 5 s" in done.output
    assert _current(settings) == first and status(settings).problems == []
    again = _cli(tmp_path, "rollback")   # nothing older is kept
    assert again.exit_code == 1 and f"nothing to roll back to: no snapshot older than {first['snapshot']}" in \
        again.output and _current(settings) == first

    forward = _cli(tmp_path, "rollback", "--latest")
    assert forward.exit_code == 0 and _current(settings) == second and status(settings).problems == []
    assert _cli(tmp_path, "rollback", "--latest").output.endswith("nothing to change\n")


def test_the_per_store_commands_move_what_was_made_after_it_too(tmp_path):
    """`pymk snapshot rollback` once moved the snapshot alone: the API then served no embeddings (made from
    the other snapshot), refused the ranker trained with them and ranked every request on request."""
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    first, second = _night(settings), _night(settings)
    assert _cli(tmp_path, "snapshot", "rollback").exit_code == 0 and _current(settings) == first
    ArtifactStore(settings.snapshot_dir).set_current(second["snapshot"])   # the snapshot alone, as before
    embeddings, ranker, lists = status(settings).problems
    assert f"embeddings {first['embeddings']} were made from snapshot {first['snapshot']}" in embeddings
    assert f"ranker {first['ranker']} was trained with embeddings {first['embeddings']}, and the API serves " \
           "none" in ranker and f"precomputed lists {first['candidates']}" in lists
    assert _cli(tmp_path, "rollback", "--latest").exit_code == 0 and _current(settings) == second
    assert _cli(tmp_path, "embeddings", "rollback").exit_code == 1   # no older embeddings made from this snapshot


def test_a_ranker_retrained_by_hand_is_rolled_back_with_the_lists_made_with_it(tmp_path):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    night = _night(settings)
    retrained = _publish(settings.ranker_dir, snapshot_version=night["snapshot"], **_trained_here(night["embeddings"]))
    lists = _publish(settings.candidates_dir, snapshot_version=night["snapshot"],
                     embeddings_version=night["embeddings"], ranker_version=retrained)
    rolled = plan(settings, back="ranker")
    assert rolled.moves == {"snapshot": (night["snapshot"],) * 2, "embeddings": (night["embeddings"],) * 2,
                            "ranker": (retrained, night["ranker"]), "candidates": (lists, night["candidates"])}
    assert rolled.problems == []
    # a ranker this code cannot use is passed over: the one before it is chosen
    _publish(settings.ranker_dir, snapshot_version=night["snapshot"],
             **{**_trained_here(night["embeddings"]), "feature_version": 0})
    ArtifactStore(settings.ranker_dir).set_current(retrained)
    assert plan(settings, back="ranker").moves["ranker"] == (retrained, night["ranker"])


def test_nothing_is_changed_while_a_refresh_run_is_publishing(tmp_path):
    settings = Settings.from_env({"PYMK_DATA_DIR": str(tmp_path)})
    _night(settings)
    second = _night(settings)
    with exclusive(tmp_path / "refresh" / ".lock", "refresh"):
        assert _cli(tmp_path, "rollback", "--dry-run").exit_code == 0   # a plan changes nothing
        refused = _cli(tmp_path, "rollback")
        assert refused.exit_code == 1 and "another refresh or rollback is running" in refused.output
    assert _current(settings) == second
    assert _cli(tmp_path, "rollback", "ranker").exit_code == 1   # no older ranker trained with these embeddings


def test_an_empty_data_directory_is_said_so(tmp_path):
    nothing = _cli(tmp_path, "rollback")
    assert nothing.exit_code == 1 and "nothing to roll back: no snapshot is current under" in nothing.output
    latest = _cli(tmp_path, "rollback", "--latest")
    assert latest.exit_code == 0 and "problem: no snapshot is published: the API cannot serve" in latest.output

